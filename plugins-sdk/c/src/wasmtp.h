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
 * The generated bindings (`plugin.h`) are produced by `cargo xtask langs`.
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

/* ---- connection ------------------------------------------------------- */

/** The client's IP address (malloc'd). */
char *wasmtp_conn_remote_ip(wasmtp_conn_t conn);
/** Whether the client connected from 127.0.0.0/8 or ::1. */
bool wasmtp_conn_is_loopback(wasmtp_conn_t conn);
/** A connection note (malloc'd), or NULL. */
char *wasmtp_conn_note(wasmtp_conn_t conn, const char *key);
/** Sets a connection note. */
void wasmtp_conn_set_note(wasmtp_conn_t conn, const char *key, const char *value);

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

/** The value of an ESMTP parameter (case-insensitive key); NULL if absent or valueless. */
const char *wasmtp_param(const wasmtp_params_t *params, const char *key);

#endif
