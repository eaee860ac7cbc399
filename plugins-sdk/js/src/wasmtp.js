// wasmtp plugin SDK for JavaScript (built with ComponentizeJS).
//
// A plugin is an ES module `plugin.js` whose default export is an object with
// the hooks it wants; every other hook declines and is never called:
//
//   import { deny, DECLINED } from "./wasmtp.js";
//   export default {
//     init(config) { this.banned = config.banned ?? []; },
//     rcpt(conn, txn, recipient, params) {
//       return this.banned.includes(recipient)
//         ? deny(550, "5.7.1", "Recipient refused") : DECLINED;
//     },
//   };
//
// DNS lookups and key-value state: `dns.lookup(name, type)`,
// `dns.reverse(ip)`, `kv.get/set/delete/increment/compareAndSet(bucket, ...)`
// (or `kv.bucket(name)`); a failed call throws a `DnsError` / `KvError`
// whose `case` is the WIT case. Without the operator's grant they throw
// `refused` / `not-granted`.
//
// The message's MIME structure, parsed once by the gateway:
// `mime.parts(txn)`, `mime.text(txn, part)`, `mime.content(txn, part)`,
// `mime.attachments(txn)`, `mime.bodyTexts(txn)`; a failure throws a
// `MimeError` (`case` "too-complex" for hostile structure).
//
// The build (`cargo xtask langs`) stages this file beside the plugin and
// generates the entry module that exports the `hooks` interface (and the
// optional `lifecycle` interface when the plugin defines `transactionEnded`).

import * as host from "wasmtp:plugin/host@0.1.0";
import * as witDns from "wasmtp:plugin/dns@0.1.0";
import * as witKv from "wasmtp:plugin/kv@0.1.0";
import * as witMime from "wasmtp:plugin/mime@0.1.0";

// ---- verdicts -------------------------------------------------------------

/** An SMTP reply; undefined parts are filled in by the gateway. */
export function reply(code, enhanced, ...lines) {
  return { code: code ?? undefined, enhanced: enhanced ?? undefined, lines };
}

/** No opinion: the next plugin decides (the default of every hook). */
export const DECLINED = Object.freeze({ tag: "declined" });
/** Accept; the chain stops and the default success reply is sent. */
export const OK = Object.freeze({ tag: "ok" });

/** No opinion: the next plugin decides. */
export const declined = () => DECLINED;
/** Accept; the chain stops. */
export const ok = () => OK;
/** Permanent failure (5xx), e.g. `deny(550, "5.7.1", "Spam")`. */
export const deny = (code, enhanced, ...lines) => ({ tag: "deny", val: reply(code, enhanced, ...lines) });
/** Temporary failure (4xx). */
export const denySoft = (code, enhanced, ...lines) => ({ tag: "deny-soft", val: reply(code, enhanced, ...lines) });
/** Permanent failure (5xx), then the connection is closed. */
export const denyDisconnect = (code, enhanced, ...lines) => ({
  tag: "deny-disconnect",
  val: reply(code, enhanced, ...lines),
});
/** Temporary failure (4xx), then the connection is closed. */
export const denySoftDisconnect = (code, enhanced, ...lines) => ({
  tag: "deny-soft-disconnect",
  val: reply(code, enhanced, ...lines),
});
/** The plugin's own reply, sent as given; the chain stops. */
export const done = (code, enhanced, ...lines) => ({ tag: "done", val: reply(code, enhanced, ...lines) });

// ---- host services --------------------------------------------------------

function fields(obj) {
  return Object.entries(obj ?? {}).map(([k, v]) => [String(k), String(v)]);
}

/** Structured logging into the gateway's log (with plugin name and session id). */
export const log = {
  trace: (message, kv) => host.log("trace", String(message), fields(kv)),
  debug: (message, kv) => host.log("debug", String(message), fields(kv)),
  info: (message, kv) => host.log("info", String(message), fields(kv)),
  warn: (message, kv) => host.log("warn", String(message), fields(kv)),
  error: (message, kv) => host.log("error", String(message), fields(kv)),
};

/** One value of the plugin's config by dotted path, as text (undefined if absent). */
export function configGet(key) {
  return host.configGet(key) ?? undefined;
}

// ---- DNS ------------------------------------------------------------------

/**
 * A DNS lookup gave no records. `case` is the WIT case: "nx-domain",
 * "no-data", "server-failure", "timeout", "refused" or "invalid"; `detail`
 * the host's text, if any. Only "nx-domain" means "not listed" to a DNSBL.
 */
export class DnsError extends Error {
  constructor(kase, detail) {
    super(detail ? `${kase}: ${detail}` : kase);
    this.name = "DnsError";
    this.case = kase;
    this.detail = detail;
  }
}

/** A key-value call failed and changed nothing. `case`: "not-granted",
 * "quota", "unavailable" or "invalid"; `detail` the host's text. */
export class KvError extends Error {
  constructor(kase, detail) {
    super(detail ? `${kase}: ${detail}` : kase);
    this.name = "KvError";
    this.case = kase;
    this.detail = detail;
  }
}

// Calls a WIT import returning `result<T, E>`; an `err` (thrown by the
// bindings with the variant as `payload`) becomes `new Cls(case, text)`.
function call(Cls, f) {
  try {
    return f();
  } catch (e) {
    const p = e?.payload ?? e;
    if (p && typeof p === "object" && typeof p.tag === "string") {
      throw new Cls(p.tag, p.val === undefined ? undefined : String(p.val));
    }
    throw e;
  }
}

const RECORD_TYPES = new Set(["a", "aaaa", "mx", "txt", "ptr", "cname", "ns"]);

function plainRecord(r) {
  // a, aaaa, ptr, cname, ns: a string; mx: {preference, exchange}; txt: string[].
  if (r.tag === "mx") return { preference: r.val.preference, exchange: r.val.exchange };
  if (r.tag === "txt") return [...r.val];
  return r.val;
}

function plainAnswer(a) {
  return { records: a.records.map(plainRecord), ttl: a.ttl };
}

/** DNS lookups through the gateway's resolver (granted with `dns = true`). */
export const dns = {
  /**
   * Records of `type` ("A", "AAAA", "MX", "TXT", "PTR", "CNAME", "NS"; any
   * case) for `name`: `{ records, ttl }`, records as plain values (strings;
   * `{preference, exchange}` for MX; the character-strings array for TXT).
   * Throws a `DnsError`.
   */
  lookup(name, type = "A") {
    const rtype = String(type).toLowerCase();
    if (!RECORD_TYPES.has(rtype)) throw new DnsError("invalid", `unknown record type ${type}`);
    return plainAnswer(call(DnsError, () => witDns.lookup(String(name), rtype)));
  },
  /** The PTR names of an IP address (not forward-confirmed). Throws a `DnsError`. */
  reverse(ip) {
    return plainAnswer(call(DnsError, () => witDns.reverse(String(ip))));
  },
  /** A and AAAA addresses of `name`; `[]` when there are none. Other failures throw. */
  addresses(name) {
    const out = [];
    for (const type of ["a", "aaaa"]) {
      try {
        out.push(...dns.lookup(name, type).records);
      } catch (e) {
        if (!(e instanceof DnsError && (e.case === "nx-domain" || e.case === "no-data"))) throw e;
      }
    }
    return out;
  },
  /** TXT records of `name`, each one's strings joined; `[]` when there are none. */
  txt(name) {
    try {
      return dns.lookup(name, "txt").records.map((parts) => parts.join(""));
    } catch (e) {
      if (e instanceof DnsError && (e.case === "nx-domain" || e.case === "no-data")) return [];
      throw e;
    }
  },
};

// ---- key-value state ------------------------------------------------------

const encoder = new TextEncoder();

function bytes(value) {
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError("kv values are strings or Uint8Arrays");
}

function ttl(ttlMs) {
  return ttlMs === undefined || ttlMs === null ? undefined : BigInt(ttlMs);
}

/**
 * Key-value state in buckets granted with `kv = ["name", ...]`. Values are
 * Uint8Arrays (a string is stored as UTF-8); `ttlMs` is optional
 * milliseconds (a number or BigInt). A failed call throws a `KvError`.
 */
export const kv = {
  /** The value of `key` (a Uint8Array), or undefined if absent or expired. */
  get(bucket, key) {
    return call(KvError, () => witKv.get(String(bucket), String(key))) ?? undefined;
  },
  /** The value of `key` decoded as UTF-8, or undefined. */
  getText(bucket, key) {
    const v = kv.get(bucket, key);
    return v === undefined ? undefined : new TextDecoder("utf-8").decode(v);
  },
  /** Sets `key`; with `ttlMs` it expires that long from now, without it never. */
  set(bucket, key, value, ttlMs) {
    call(KvError, () => witKv.set(String(bucket), String(key), bytes(value), ttl(ttlMs)));
  },
  /** Removes `key`; true if it was present. */
  delete(bucket, key) {
    // `delete` is a reserved word: the bindings may name it `delete$`.
    const remove = witKv["delete"] ?? witKv["delete$"];
    return call(KvError, () => remove(String(bucket), String(key)));
  },
  /**
   * Adds `delta` (default 1) to the integer at `key` (absent counts as 0)
   * and returns the new value as a Number, atomically. `ttlMs` applies only
   * when the call creates the key (a fixed window).
   */
  increment(bucket, key, delta = 1, ttlMs) {
    const d = Number(delta);
    // componentize-js's lowering of a negative BigInt to `s64` traps the
    // whole instance (seen with the pinned version), so negative deltas
    // are refused here as an ordinary `invalid` error until that is fixed.
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new KvError("invalid", "the JavaScript SDK takes a non-negative integer delta");
    }
    return Number(call(KvError, () => witKv.increment(String(bucket), String(key), BigInt(d), ttl(ttlMs))));
  },
  /** Sets `key` to `value` only if its value is `expected` (undefined: only
   * if absent); true if it was set. Atomic. */
  compareAndSet(bucket, key, expected, value, ttlMs) {
    const want = expected === undefined || expected === null ? undefined : bytes(expected);
    return call(KvError, () =>
      witKv.compareAndSet(String(bucket), String(key), want, bytes(value), ttl(ttlMs)),
    );
  },
  /** The functions above bound to one bucket: `kv.bucket("greylist").get(key)`. */
  bucket(name) {
    return {
      name,
      get: (key) => kv.get(name, key),
      getText: (key) => kv.getText(name, key),
      set: (key, value, ttlMs) => kv.set(name, key, value, ttlMs),
      delete: (key) => kv.delete(name, key),
      increment: (key, delta, ttlMs) => kv.increment(name, key, delta, ttlMs),
      compareAndSet: (key, expected, value, ttlMs) => kv.compareAndSet(name, key, expected, value, ttlMs),
    };
  },
};

// ---- the MIME view ----------------------------------------------------------

// Largest piece one read-body / content call returns.
const BODY_READ_MAX = 1 << 20;

/** The MIME view failed. `case`: "unavailable" (no message yet),
 * "too-complex" (over the host's bounds: 1000 parts, depth 32; refuse such a
 * message rather than pass it unexamined), "unparsable", "no-such-part" or
 * "not-text"; `detail` the host's text or the part index. */
export class MimeError extends Error {
  constructor(kase, detail) {
    super(detail ? `${kase}: ${detail}` : kase);
    this.name = "MimeError";
    this.case = kase;
    this.detail = detail;
  }
}

// The WIT record with plain Numbers for the u64 fields.
function plainPart(p) {
  return {
    index: p.index,
    parent: p.parent,
    depth: p.depth,
    kind: p.kind,
    contentType: p.contentType,
    charset: p.charset,
    disposition: p.disposition,
    filename: p.filename,
    contentId: p.contentId,
    transferEncoding: p.transferEncoding,
    encodedSize: Number(p.encodedSize),
    decodedSize: Number(p.decodedSize),
    bodyRange: p.bodyRange === undefined ? undefined : [Number(p.bodyRange[0]), Number(p.bodyRange[1])],
    encodingProblem: p.encodingProblem,
  };
}

function partIndex(part) {
  return typeof part === "number" ? part : part.index;
}

function isAttachment(p) {
  return p.kind !== "multipart" && (p.disposition === "attachment" || p.filename !== undefined);
}

/**
 * The message's MIME structure, parsed once per message by the gateway and
 * shared by every plugin of the chain (no parser in the plugin). A part:
 * `{ index, parent, depth, kind ("multipart" | "message" | "text" |
 * "binary"), contentType ("text/plain", lower-cased), charset, disposition,
 * filename (RFC 2231 / 2047 decoded), contentId, transferEncoding,
 * encodedSize, decodedSize, bodyRange ([start, end] in the body, or
 * undefined), encodingProblem }`; absent options are `undefined`.
 * Functions taking a part accept the part or its index.
 */
export const mime = {
  /** Every part, depth-first; index 0 is the message itself. */
  parts(txn) {
    return call(MimeError, () => witMime.parts(txn)).map(plainPart);
  },
  /** Parts that are attachments (a disposition `attachment` or a file name). */
  attachments(txn) {
    return mime.parts(txn).filter(isAttachment);
  },
  /** text/plain and text/html parts that are not attachments. */
  bodyTexts(txn) {
    return mime
      .parts(txn)
      .filter((p) => p.kind === "text" && (p.contentType === "text/plain" || p.contentType === "text/html") && p.disposition !== "attachment");
  },
  /** A text part's content converted to a string (at most `maxLen` UTF-8 octets). */
  text(txn, part, maxLen = 1 << 24) {
    return call(MimeError, () => witMime.text(txn, partIndex(part), maxLen));
  },
  /** A part's transfer-decoded octets (at most `limit`), as a Uint8Array. */
  content(txn, part, limit = 1 << 24) {
    const index = partIndex(part);
    const chunks = [];
    let at = 0;
    while (at < limit) {
      const piece = call(MimeError, () => witMime.content(txn, index, BigInt(at), Math.min(BODY_READ_MAX, limit - at)));
      if (piece.length === 0) break;
      chunks.push(piece);
      at += piece.length;
    }
    const out = new Uint8Array(at);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  },
  /** A part's own header fields, `[{ name, value }]` (index 0: the message's). */
  headers(txn, part) {
    return call(MimeError, () => witMime.partHeaders(txn, partIndex(part)));
  },
};

// ---- message helpers ------------------------------------------------------

/** The message body (at most `limit` octets) as a Uint8Array, read in 1 MiB pieces. */
export function readBody(txn, limit = 1 << 24) {
  const size = Math.min(Number(txn.bodySize()), limit);
  const out = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const piece = txn.readBody(BigInt(at), Math.min(BODY_READ_MAX, size - at));
    if (piece.length === 0) break;
    out.set(piece, at);
    at += piece.length;
  }
  return out.subarray(0, at);
}

/** The message body decoded as UTF-8 (invalid bytes replaced). */
export function bodyText(txn, limit) {
  return new TextDecoder("utf-8").decode(readBody(txn, limit));
}

/** The first value of a header field, or undefined. */
export function firstHeader(txn, name) {
  return txn.header(name)[0];
}

// ---- the export glue (used by the generated entry module) ------------------

// WIT hook name (camelCase as ComponentizeJS maps it) -> hooks-wanted flag.
const HOOKS = [
  "connect",
  "helo",
  "ehlo",
  "mail",
  "rcpt",
  "data",
  "dataHeaders",
  "bodyChunk",
  "dataPost",
  "queue",
  "reset",
  "quit",
  "disconnect",
  "unrecognizedCommand",
  "vrfy",
  "noop",
  "help",
  "auth",
  "deny",
  "delivery",
];
// Hooks whose WIT signature returns nothing.
const NOTIFY_ONLY = new Set(["disconnect", "deny", "delivery"]);

/** The hooks-wanted flags of a plugin object: one per hook function it defines. */
export function hooksWanted(plugin) {
  const wanted = {};
  for (const name of HOOKS) {
    wanted[name] = typeof plugin[name] === "function";
  }
  return wanted;
}

/**
 * Builds the `hooks` export of the WIT world from a plugin object.
 * `init(config)` receives the parsed config table; throwing there refuses
 * the plugin with the error's message. An exception thrown by any other hook
 * is a plugin failure: the gateway applies the plugin's failure policy.
 */
export function exportHooks(plugin) {
  if (plugin === null || typeof plugin !== "object") {
    throw new TypeError("plugin.js must `export default` an object of hooks");
  }
  const hooks = {
    init(configJson) {
      try {
        const config = configJson ? JSON.parse(configJson) : {};
        if (typeof plugin.init === "function") {
          plugin.init(config ?? {});
        }
      } catch (e) {
        // A thrown string becomes the `err` of `result<hooks-wanted, string>`.
        throw `${e?.name ?? "Error"}: ${e?.message ?? e}`;
      }
      return hooksWanted(plugin);
    },
  };
  for (const name of HOOKS) {
    const own = plugin[name];
    if (typeof own === "function") {
      hooks[name] = NOTIFY_ONLY.has(name)
        ? (...args) => {
            own.apply(plugin, args);
          }
        : (...args) => {
            // An `async` hook (one that awaits `fetch`, say) returns a
            // promise: ComponentizeJS runs the event loop until it settles.
            const verdict = own.apply(plugin, args);
            return verdict instanceof Promise
              ? verdict.then((v) => v ?? DECLINED)
              : (verdict ?? DECLINED);
          };
    } else {
      hooks[name] = NOTIFY_ONLY.has(name) ? () => {} : () => DECLINED;
    }
  }
  return hooks;
}

/**
 * Builds the optional `lifecycle` export from a plugin object that defines
 * `transactionEnded(conn, why)`; `why` is the WIT case ("delivered",
 * "refused", "reset", "hello", "starttls", "disconnect"). The generated entry
 * module uses it (and the `plugin-with-lifecycle` world) when the plugin's
 * source mentions `transactionEnded`.
 */
export function exportLifecycle(plugin) {
  return {
    transactionEnded(conn, why) {
      if (typeof plugin.transactionEnded === "function") {
        plugin.transactionEnded(conn, why);
      }
    },
  };
}
