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
// The build (`cargo xtask langs`) stages this file beside the plugin and
// generates the entry module that exports the `hooks` interface.

import * as host from "wasmtp:plugin/host@0.1.0";

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

// ---- message helpers ------------------------------------------------------

const BODY_READ_MAX = 1 << 20;

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
        : (...args) => own.apply(plugin, args) ?? DECLINED;
    } else {
      hooks[name] = NOTIFY_ONLY.has(name) ? () => {} : () => DECLINED;
    }
  }
  return hooks;
}
