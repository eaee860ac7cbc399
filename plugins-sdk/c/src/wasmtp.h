/*
 * wasmtp plugin SDK for C (clang --target=wasm32-wasi + wit-bindgen c).
 *
 * A plugin fills a `wasmtp_plugin_t` with the hooks it wants; every hook left
 * NULL declines and is never called by the gateway:
 *
 *     #include "wasmtp.h"
 *
 *     static wasmtp_verdict_t on_helo(wasmtp_conn_t conn, const char *host) {
 *         if (strcmp(host, "localhost") == 0 && !wasmtp_conn_is_loopback(conn))
 *             return wasmtp_deny(550, "5.7.1", "You are not localhost");
 *         return wasmtp_declined();
 *     }
 *
 *     WASMTP_PLUGIN(.helo = on_helo);
 *
 * Strings handed to hooks are NUL-terminated copies owned by the SDK, valid
 * for the duration of the call. Strings returned by `wasmtp_*` getters are
 * malloc'd: free() them. Borrowed connection/transaction handles are
 * released by the generated glue when the hook returns (never store them).
 * The generated bindings (`plugin.h`) are produced by `cargo xtask plugins`
 * (wit-bindgen, into target/langs-build/<name>/gen/).
 *
 * DNS (`wasmtp_dns_*`) and key-value state (`wasmtp_kv_*`) return a status:
 * 0 (`WASMTP_DNS_OK` / `WASMTP_KV_OK`) on success, else the WIT error case;
 * `wasmtp_last_error()` holds the host's text of the last failure. Without
 * the operator's grant they return `WASMTP_DNS_REFUSED` / `WASMTP_KV_NOT_GRANTED`.
 */
#ifndef WASMTP_H
#define WASMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

/** A connection handle, lent for one hook call. */
typedef wasmtp_plugin_session_borrow_connection_t wasmtp_conn_t;
/** A transaction handle, lent for one hook call. */
typedef wasmtp_plugin_session_borrow_transaction_t wasmtp_txn_t;
/** What a hook decided. Build it with the helpers below. */
typedef wasmtp_plugin_types_verdict_t wasmtp_verdict_t;
/** A delivery report (store-and-forward), as generated. */
typedef wasmtp_plugin_types_delivery_report_t wasmtp_delivery_report_t;

/** One ESMTP parameter of MAIL/RCPT; `value` is NULL when absent. */
typedef struct {
    const char *key;
    const char *value;
} wasmtp_param_t;

/** The ESMTP parameters of MAIL/RCPT. */
typedef struct {
    size_t len;
    const wasmtp_param_t *items;
} wasmtp_params_t;

/** Log levels. */
typedef enum {
    WASMTP_TRACE = WASMTP_PLUGIN_TYPES_LOG_LEVEL_TRACE,
    WASMTP_DEBUG = WASMTP_PLUGIN_TYPES_LOG_LEVEL_DEBUG,
    WASMTP_INFO = WASMTP_PLUGIN_TYPES_LOG_LEVEL_INFO,
    WASMTP_WARN = WASMTP_PLUGIN_TYPES_LOG_LEVEL_WARN,
    WASMTP_ERROR = WASMTP_PLUGIN_TYPES_LOG_LEVEL_ERROR,
} wasmtp_log_level_t;

/**
 * The hooks of a plugin. `init` gets the config table as JSON (use
 * `wasmtp_config_*` to read values) and returns NULL on success or an error
 * message (a string literal or a malloc'd string) that refuses the plugin.
 */
typedef struct {
    const char *(*init)(const char *config_json);
    wasmtp_verdict_t (*connect)(wasmtp_conn_t conn);
    wasmtp_verdict_t (*helo)(wasmtp_conn_t conn, const char *host);
    wasmtp_verdict_t (*ehlo)(wasmtp_conn_t conn, const char *host);
    wasmtp_verdict_t (*mail)(wasmtp_conn_t conn, wasmtp_txn_t txn, const char *sender,
                             const wasmtp_params_t *params);
    wasmtp_verdict_t (*rcpt)(wasmtp_conn_t conn, wasmtp_txn_t txn, const char *recipient,
                             const wasmtp_params_t *params);
    wasmtp_verdict_t (*data)(wasmtp_conn_t conn, wasmtp_txn_t txn);
    wasmtp_verdict_t (*data_headers)(wasmtp_conn_t conn, wasmtp_txn_t txn);
    wasmtp_verdict_t (*body_chunk)(wasmtp_conn_t conn, wasmtp_txn_t txn, uint64_t offset,
                                   const uint8_t *chunk, size_t len);
    wasmtp_verdict_t (*data_post)(wasmtp_conn_t conn, wasmtp_txn_t txn);
    wasmtp_verdict_t (*queue)(wasmtp_conn_t conn, wasmtp_txn_t txn);
    wasmtp_verdict_t (*reset)(wasmtp_conn_t conn);
    wasmtp_verdict_t (*quit)(wasmtp_conn_t conn);
    void (*disconnect)(wasmtp_conn_t conn);
    wasmtp_verdict_t (*unrecognized_command)(wasmtp_conn_t conn, const char *verb,
                                             const char *args);
    wasmtp_verdict_t (*vrfy)(wasmtp_conn_t conn, const char *arg);
    wasmtp_verdict_t (*noop)(wasmtp_conn_t conn, const char *arg);
    wasmtp_verdict_t (*help)(wasmtp_conn_t conn, const char *arg);
    wasmtp_verdict_t (*auth)(wasmtp_conn_t conn, const char *mechanism, const char *authzid,
                             const char *username, const char *password);
    void (*deny)(wasmtp_conn_t conn, const char *hook, const char *plugin, uint16_t code);
    void (*delivery)(const wasmtp_delivery_report_t *report);
    /**
     * Optional `lifecycle` export: the transaction ended; `why` is the WIT
     * case ("delivered", "refused", "reset", "hello", "starttls",
     * "disconnect"). Setting it makes the build use the world
     * `plugin-with-lifecycle`.
     */
    void (*transaction_ended)(wasmtp_conn_t conn, const char *why);
} wasmtp_plugin_t;

/** The plugin's hooks; define it once with WASMTP_PLUGIN(...). */
extern const wasmtp_plugin_t wasmtp_plugin;

/** Defines the plugin: `WASMTP_PLUGIN(.init = my_init, .rcpt = my_rcpt);` */
#define WASMTP_PLUGIN(...) const wasmtp_plugin_t wasmtp_plugin = {__VA_ARGS__}

/* ---- verdicts ----------------------------------------------------------
 * `code` 0 and NULL `enhanced`/`text` let the gateway fill in its defaults. */

/** No opinion: the next plugin decides. */
wasmtp_verdict_t wasmtp_declined(void);
/** Accept; the chain stops. */
wasmtp_verdict_t wasmtp_ok(void);
/** Permanent failure (5xx). */
wasmtp_verdict_t wasmtp_deny(uint16_t code, const char *enhanced, const char *text);
/** Temporary failure (4xx). */
wasmtp_verdict_t wasmtp_deny_soft(uint16_t code, const char *enhanced, const char *text);
/** Permanent failure (5xx), then disconnect. */
wasmtp_verdict_t wasmtp_deny_disconnect(uint16_t code, const char *enhanced, const char *text);
/** Temporary failure (4xx), then disconnect. */
wasmtp_verdict_t wasmtp_deny_soft_disconnect(uint16_t code, const char *enhanced,
                                             const char *text);
/** The plugin's own reply (any class); the chain stops. */
wasmtp_verdict_t wasmtp_done(uint16_t code, const char *enhanced, const char *text);

/* ---- host services ---------------------------------------------------- */

/** A log record (message formatted like printf). */
void wasmtp_log(wasmtp_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** A config value by dotted path as text (malloc'd), or NULL if absent. */
char *wasmtp_config_get(const char *key);
/** A numeric config value, or `dflt` if absent; `*ok` false if not a number. */
long long wasmtp_config_int(const char *key, long long dflt, bool *ok);
/** A boolean config value ("true"/"false"), or `dflt` if absent or not a bool. */
bool wasmtp_config_bool(const char *key, bool dflt);
/** Parses a JSON array of strings (what a list-valued config key such as
 *  `domains = ["a.test", "b.test"]` reads as through wasmtp_config_get):
 *  a malloc'd array of malloc'd strings and its length in *count, or NULL
 *  (count 0) if `json` is not an array of strings. Escapes (\n, \", \uXXXX
 *  including surrogate pairs) are decoded to UTF-8. Free with
 *  wasmtp_strings_free. */
char **wasmtp_json_strings(const char *json, size_t *count);
/** A list-valued config key as strings (see wasmtp_json_strings); NULL if
 *  absent or not a list of strings. */
char **wasmtp_config_strings(const char *key, size_t *count);
/** Frees what wasmtp_json_strings returned. */
void wasmtp_strings_free(char **strings, size_t count);

/* ---- connection ------------------------------------------------------- */

/** The client's IP address (malloc'd). */
char *wasmtp_conn_remote_ip(wasmtp_conn_t conn);
/** Whether the client connected from 127.0.0.0/8 or ::1. */
bool wasmtp_conn_is_loopback(wasmtp_conn_t conn);
/** A connection note (malloc'd), or NULL. */
char *wasmtp_conn_note(wasmtp_conn_t conn, const char *key);
/** Sets a connection note. */
void wasmtp_conn_set_note(wasmtp_conn_t conn, const char *key, const char *value);

/** Removes a connection note. */
void wasmtp_conn_remove_note(wasmtp_conn_t conn, const char *key);
/** The session id, as on the gateway's log lines (malloc'd). */
char *wasmtp_conn_id(wasmtp_conn_t conn);
/** The client's TCP port. */
uint16_t wasmtp_conn_remote_port(wasmtp_conn_t conn);
/** The client's host name from reverse DNS (malloc'd), or NULL when the
 *  gateway did not resolve one. */
char *wasmtp_conn_remote_host(wasmtp_conn_t conn);
/** The local IP address the client connected to (malloc'd). */
char *wasmtp_conn_local_ip(wasmtp_conn_t conn);
/** The local TCP port the client connected to. */
uint16_t wasmtp_conn_local_port(wasmtp_conn_t conn);

/** How the client introduced itself. */
typedef enum {
    WASMTP_HELLO_NONE = WASMTP_PLUGIN_TYPES_HELLO_KIND_NONE,
    WASMTP_HELLO_HELO = WASMTP_PLUGIN_TYPES_HELLO_KIND_HELO,
    WASMTP_HELLO_EHLO = WASMTP_PLUGIN_TYPES_HELLO_KIND_EHLO,
} wasmtp_hello_t;

/** HELO, EHLO, or WASMTP_HELLO_NONE before a hello was accepted. */
wasmtp_hello_t wasmtp_conn_hello(wasmtp_conn_t conn);
/** The name given with the accepted HELO/EHLO (malloc'd; "" before one). */
char *wasmtp_conn_hello_host(wasmtp_conn_t conn);

/** The TLS layer of a connection; every string is malloc'd, `sni` may be NULL. */
typedef struct {
    char *protocol;
    char *cipher;
    char *sni;
} wasmtp_tls_t;

/** Fills `out` and returns true once TLS is active; false (and `out`
 *  untouched) on a plain connection. Free with wasmtp_tls_free. */
bool wasmtp_conn_tls(wasmtp_conn_t conn, wasmtp_tls_t *out);
/** Frees the strings of a wasmtp_tls_t. */
void wasmtp_tls_free(wasmtp_tls_t *tls);
/** The authenticated user (malloc'd), or NULL before a successful AUTH. */
char *wasmtp_conn_auth_user(wasmtp_conn_t conn);
/** Whether this client may relay to any domain. */
bool wasmtp_conn_relay_client(wasmtp_conn_t conn);
/** Grants or revokes relaying for this client. */
void wasmtp_conn_set_relay_client(wasmtp_conn_t conn, bool allowed);

/* ---- transaction ------------------------------------------------------ */

/** How many recipients the transaction has so far. */
size_t wasmtp_txn_recipient_count(wasmtp_txn_t txn);
/** Body size in octets so far. */
uint64_t wasmtp_txn_body_size(wasmtp_txn_t txn);
/** The first value of a header field (malloc'd), or NULL. */
char *wasmtp_txn_header(wasmtp_txn_t txn, const char *name);
/** Appends a header field; false (and a log record) if the host refused it. */
bool wasmtp_txn_add_header(wasmtp_txn_t txn, const char *name, const char *value);
/** A transaction note (malloc'd), or NULL. */
char *wasmtp_txn_note(wasmtp_txn_t txn, const char *key);
/** Sets a transaction note. */
void wasmtp_txn_set_note(wasmtp_txn_t txn, const char *key, const char *value);
/** The envelope sender without angle brackets (malloc'd); "" for the null sender. */
char *wasmtp_txn_sender(wasmtp_txn_t txn);
/** Removes every field `name`; returns how many were removed. */
uint32_t wasmtp_txn_remove_header(wasmtp_txn_t txn, const char *name);
/** Replaces every field `name` by one with `value` (where the first one
 *  was, or at the end): false (and a log record) if the host refused it. */
bool wasmtp_txn_replace_header(wasmtp_txn_t txn, const char *name, const char *value);

/** Removes a transaction note. */
void wasmtp_txn_remove_note(wasmtp_txn_t txn, const char *key);
/** The transaction id, the queue id of the message once accepted (malloc'd). */
char *wasmtp_txn_id(wasmtp_txn_t txn);
/** Replaces the envelope sender ("" = null sender); false (and a log record)
 *  if the host refused the address. */
bool wasmtp_txn_set_sender(wasmtp_txn_t txn, const char *address);
/** The recipients' addresses so far, in order, without angle brackets
 *  (free with wasmtp_strings_free); NULL with `*count` 0 when there are none. */
char **wasmtp_txn_recipients(wasmtp_txn_t txn, size_t *count);
/** Adds a recipient (no ESMTP parameters); false (and a log record) if the
 *  host refused the address. */
bool wasmtp_txn_add_recipient(wasmtp_txn_t txn, const char *address);
/** Removes every recipient with this address (case-insensitive); returns how many. */
uint32_t wasmtp_txn_remove_recipient(wasmtp_txn_t txn, const char *address);
/** Every value of a header field, in order (free with wasmtp_strings_free);
 *  NULL with `*count` 0 when there is none. */
char **wasmtp_txn_header_values(wasmtp_txn_t txn, const char *name, size_t *count);

/** One header field: name and unfolded value, both malloc'd. */
typedef struct {
    char *name;
    char *value;
} wasmtp_header_t;

/** Every header field, in order (free with wasmtp_headers_free); NULL with
 *  `*count` 0 before the data-headers hook. */
wasmtp_header_t *wasmtp_txn_headers(wasmtp_txn_t txn, size_t *count);
/** Frees what wasmtp_txn_headers returned. */
void wasmtp_headers_free(wasmtp_header_t *headers, size_t count);

/** Octets with their length (malloc'd `ptr`, also NUL-terminated for convenience). */
typedef struct {
    uint8_t *ptr;
    size_t len;
} wasmtp_bytes_t;

/** Every header field exactly as it will be written (name, colon, value
 *  with its folding, no final CRLF), in order; free with wasmtp_bytes_free. */
wasmtp_bytes_t *wasmtp_txn_raw_headers(wasmtp_txn_t txn, size_t *count);
/** Frees what wasmtp_txn_raw_headers returned. */
void wasmtp_bytes_free(wasmtp_bytes_t *items, size_t count);
/** Inserts a header field at the top; false (and a log record) if refused. */
bool wasmtp_txn_prepend_header(wasmtp_txn_t txn, const char *name, const char *value);
/** Copies up to `len` body octets from `offset` into `buf` (at most 1 MiB
 *  per call); returns how many were copied (0 at the end of the body). */
size_t wasmtp_txn_read_body(wasmtp_txn_t txn, uint64_t offset, uint8_t *buf, size_t len);
/** Replaces the whole body (lines must end in CRLF); false (and a log
 *  record) if the host refused it. */
bool wasmtp_txn_replace_body(wasmtp_txn_t txn, const uint8_t *body, size_t len);

/** The value of an ESMTP parameter (case-insensitive key); NULL if absent or valueless. */
const char *wasmtp_param(const wasmtp_params_t *params, const char *key);

/* ---- DNS (granted with `dns = true`) ------------------------------------ */

/** Record types a lookup may ask for. */
typedef enum {
    WASMTP_DNS_A = WASMTP_PLUGIN_DNS_RECORD_TYPE_A,
    WASMTP_DNS_AAAA = WASMTP_PLUGIN_DNS_RECORD_TYPE_AAAA,
    WASMTP_DNS_MX = WASMTP_PLUGIN_DNS_RECORD_TYPE_MX,
    WASMTP_DNS_TXT = WASMTP_PLUGIN_DNS_RECORD_TYPE_TXT,
    WASMTP_DNS_PTR = WASMTP_PLUGIN_DNS_RECORD_TYPE_PTR,
    WASMTP_DNS_CNAME = WASMTP_PLUGIN_DNS_RECORD_TYPE_CNAME,
    WASMTP_DNS_NS = WASMTP_PLUGIN_DNS_RECORD_TYPE_NS,
} wasmtp_dns_type_t;

/** Outcome of a lookup: OK, or the WIT `dns-error` case. */
typedef enum {
    WASMTP_DNS_OK = 0,
    /** The name does not exist: for a DNSBL, "not listed". */
    WASMTP_DNS_NXDOMAIN,
    /** The name exists but has no record of this type. */
    WASMTP_DNS_NODATA,
    /** SERVFAIL, REFUSED or a malformed answer. */
    WASMTP_DNS_SERVFAIL,
    /** No answer within `[dns] timeout`. */
    WASMTP_DNS_TIMEOUT,
    /** Not granted, no resolver configured, or the session's budget spent. */
    WASMTP_DNS_REFUSED,
    /** Not a valid name (or IP address, for reverse). */
    WASMTP_DNS_INVALID,
} wasmtp_dns_status_t;

/**
 * A positive answer. `records[i]` is an address (A, AAAA), a name (PTR,
 * CNAME, NS, and the exchange of MX) or a TXT record's strings joined;
 * `preference[i]` is the MX preference (0 for other types). Free with
 * wasmtp_dns_answer_free().
 */
typedef struct {
    size_t count;
    char **records;
    uint16_t *preference;
    /** Smallest TTL of the records, in seconds. */
    uint32_t ttl;
} wasmtp_dns_answer_t;

/** Records of `type` for `name`; fills `*out` (zeroed on failure). */
wasmtp_dns_status_t wasmtp_dns_lookup(const char *name, wasmtp_dns_type_t type,
                                      wasmtp_dns_answer_t *out);
/** PTR names of an IP address (not forward-confirmed); fills `*out`. */
wasmtp_dns_status_t wasmtp_dns_reverse(const char *ip, wasmtp_dns_answer_t *out);
/** Frees what a lookup put in `*answer` (safe on a zeroed answer). */
void wasmtp_dns_answer_free(wasmtp_dns_answer_t *answer);
/** The WIT name of a status ("nx-domain", ...), "ok" for 0. */
const char *wasmtp_dns_status_name(wasmtp_dns_status_t status);

/* ---- key-value state (granted with `kv = ["bucket", ...]`) --------------- */

/** Outcome of a key-value call: OK, or the WIT `kv-error` case. */
typedef enum {
    WASMTP_KV_OK = 0,
    /** The bucket is not granted to this plugin. */
    WASMTP_KV_NOT_GRANTED,
    /** Over the bucket's quota; nothing changed. */
    WASMTP_KV_QUOTA,
    /** The backend failed or cannot be reached. */
    WASMTP_KV_UNAVAILABLE,
    /** A bad argument (empty or overlong key, not an integer). */
    WASMTP_KV_INVALID,
} wasmtp_kv_status_t;

/**
 * The value of `key`: `*value` is a malloc'd copy with a NUL after its
 * `*len` bytes (free it), or NULL when the key is absent.
 */
wasmtp_kv_status_t wasmtp_kv_get(const char *bucket, const char *key, char **value, size_t *len);
/** Sets `key` to `len` bytes of `value`; `ttl_ms` 0 means no expiry. */
wasmtp_kv_status_t wasmtp_kv_set(const char *bucket, const char *key, const void *value,
                                 size_t len, uint64_t ttl_ms);
/** Removes `key`; `*existed` (may be NULL) tells whether it was present. */
wasmtp_kv_status_t wasmtp_kv_delete(const char *bucket, const char *key, bool *existed);
/**
 * Adds `delta` to the integer at `key` (absent counts as 0), atomically;
 * `*value` gets the new value. `ttl_ms` (0: none) applies only when the
 * call creates the key (a fixed window).
 */
wasmtp_kv_status_t wasmtp_kv_increment(const char *bucket, const char *key, int64_t delta,
                                       uint64_t ttl_ms, int64_t *value);
/**
 * Sets `key` to `value` only if its value is `expected` (`expected` NULL:
 * only if absent); `*swapped` tells whether it was set. Atomic.
 */
wasmtp_kv_status_t wasmtp_kv_compare_and_set(const char *bucket, const char *key,
                                             const void *expected, size_t expected_len,
                                             const void *value, size_t len, uint64_t ttl_ms,
                                             bool *swapped);
/** The WIT name of a status ("not-granted", ...), "ok" for 0. */
const char *wasmtp_kv_status_name(wasmtp_kv_status_t status);

/* ---- the MIME view (no grant needed) -------------------------------------- */

/*
 * The message's MIME structure, parsed once per message by the gateway and
 * shared by the whole chain (call it from data_post). Re-parsed after a
 * plugin replaces the body or edits a Content-* / MIME-Version field.
 */

/** Outcome of a MIME-view call: OK, or the WIT `mime-error` case. */
typedef enum {
    WASMTP_MIME_OK = 0,
    /** No transaction or no message yet. */
    WASMTP_MIME_UNAVAILABLE,
    /** Over the host's bounds (1000 parts, depth 32): refuse the message. */
    WASMTP_MIME_TOO_COMPLEX,
    /** Not a message the parser recognises. */
    WASMTP_MIME_UNPARSABLE,
    /** No part has this index. */
    WASMTP_MIME_NO_SUCH_PART,
    /** The part is not text/\* (for wasmtp_mime_text). */
    WASMTP_MIME_NOT_TEXT,
} wasmtp_mime_status_t;

/** What a part holds. */
typedef enum {
    WASMTP_PART_MULTIPART,
    WASMTP_PART_MESSAGE,
    WASMTP_PART_TEXT,
    WASMTP_PART_BINARY,
} wasmtp_part_kind_t;

/** One MIME part; strings are malloc'd (freed by wasmtp_mime_parts_free), NULL when absent. */
typedef struct {
    uint32_t index;
    /** Index of the containing part, -1 for the message itself. */
    int64_t parent;
    uint32_t depth;
    wasmtp_part_kind_t kind;
    /** "type/subtype", lower-cased ("text/plain" when absent). */
    char *content_type;
    char *charset;
    /** "attachment", "inline", ... */
    char *disposition;
    /** RFC 2231 / RFC 2047 decoded. */
    char *filename;
    char *content_id;
    /** Lower-cased, "7bit" when absent. */
    char *transfer_encoding;
    uint64_t encoded_size;
    uint64_t decoded_size;
    /** Where the body is in the message body (read-body offsets), if known. */
    bool has_body_range;
    uint64_t body_start;
    uint64_t body_end;
    /** Decoding was not clean (bad base64/QP, unknown charset). */
    bool encoding_problem;
} wasmtp_part_t;

/** Every part of a message, depth-first (items[0] is the message). */
typedef struct {
    size_t len;
    wasmtp_part_t *items;
} wasmtp_parts_t;

/** The parts of the transaction's message; free with wasmtp_mime_parts_free(). */
wasmtp_mime_status_t wasmtp_mime_parts(wasmtp_txn_t txn, wasmtp_parts_t *out);
/** Frees what wasmtp_mime_parts() returned. */
void wasmtp_mime_parts_free(wasmtp_parts_t *parts);
/** Whether a part is an attachment (disposition "attachment" or a file name). */
bool wasmtp_part_is_attachment(const wasmtp_part_t *part);
/**
 * A text part's content converted to UTF-8, at most `max_len` octets:
 * `*text` is malloc'd and NUL-terminated (free it); `*len` (may be NULL) its length.
 */
wasmtp_mime_status_t wasmtp_mime_text(wasmtp_txn_t txn, uint32_t index, uint32_t max_len,
                                      char **text, size_t *len);
/**
 * Up to `len` (at most 1 MiB) transfer-decoded octets of a part from
 * `offset`: `*data` is malloc'd with a NUL after its `*out_len` octets.
 */
wasmtp_mime_status_t wasmtp_mime_content(wasmtp_txn_t txn, uint32_t index, uint64_t offset,
                                         uint32_t len, char **data, size_t *out_len);
/** The header fields of a part (`*out` malloc'd, free with
 *  wasmtp_headers_free(*out, *count)). */
wasmtp_mime_status_t wasmtp_mime_part_headers(wasmtp_txn_t txn, uint32_t index,
                                              wasmtp_header_t **out, size_t *count);
/** The WIT name of a status ("too-complex", ...), "ok" for 0. */
const char *wasmtp_mime_status_name(wasmtp_mime_status_t status);

/** The host's text of the last failed DNS, KV or MIME call ("" if none). */
const char *wasmtp_last_error(void);

#endif
