/*
 * wasmtp plugin SDK for C: the exported hook glue and the helpers of wasmtp.h.
 *
 * Ownership rules of the generated bindings (wit-bindgen c): arguments of
 * exported functions are owned by the callee (freed here after the hook),
 * results are freed by the generated post-return functions (so verdict
 * strings are malloc'd), and borrowed handles are dropped by the generated
 * glue when the export returns (autodrop).
 */
#include "wasmtp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- string conversion -------------------------------------------------- */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort(); /* out of memory: trap, the gateway applies the failure policy */
    return p;
}

/* A NUL-terminated copy of a component string. */
static char *cstr(const plugin_string_t *s) {
    char *out = xmalloc(s->len + 1);
    memcpy(out, s->ptr, s->len);
    out[s->len] = '\0';
    return out;
}

/* Borrows a C string as a component string (no copy; for import arguments). */
static plugin_string_t view(const char *s) {
    plugin_string_t out = {(uint8_t *)s, s ? strlen(s) : 0};
    return out;
}

/* ---- verdicts ------------------------------------------------------------ */

static wasmtp_verdict_t with_reply(uint8_t tag, uint16_t code, const char *enhanced,
                                   const char *text) {
    wasmtp_verdict_t v;
    memset(&v, 0, sizeof v);
    v.tag = tag;
    wasmtp_plugin_types_reply_t *r = &v.val.deny; /* every reply arm has the same layout */
    r->code.is_some = code != 0;
    r->code.val = code;
    if (enhanced) {
        r->enhanced.is_some = true;
        plugin_string_dup(&r->enhanced.val, enhanced);
    }
    if (text) {
        r->lines.len = 1;
        r->lines.ptr = xmalloc(sizeof(plugin_string_t));
        plugin_string_dup(&r->lines.ptr[0], text);
    }
    return v;
}

wasmtp_verdict_t wasmtp_declined(void) {
    wasmtp_verdict_t v;
    memset(&v, 0, sizeof v);
    v.tag = WASMTP_PLUGIN_TYPES_VERDICT_DECLINED;
    return v;
}

wasmtp_verdict_t wasmtp_ok(void) {
    wasmtp_verdict_t v;
    memset(&v, 0, sizeof v);
    v.tag = WASMTP_PLUGIN_TYPES_VERDICT_OK;
    return v;
}

wasmtp_verdict_t wasmtp_deny(uint16_t code, const char *enhanced, const char *text) {
    return with_reply(WASMTP_PLUGIN_TYPES_VERDICT_DENY, code, enhanced, text);
}

wasmtp_verdict_t wasmtp_deny_soft(uint16_t code, const char *enhanced, const char *text) {
    return with_reply(WASMTP_PLUGIN_TYPES_VERDICT_DENY_SOFT, code, enhanced, text);
}

wasmtp_verdict_t wasmtp_deny_disconnect(uint16_t code, const char *enhanced, const char *text) {
    return with_reply(WASMTP_PLUGIN_TYPES_VERDICT_DENY_DISCONNECT, code, enhanced, text);
}

wasmtp_verdict_t wasmtp_deny_soft_disconnect(uint16_t code, const char *enhanced,
                                             const char *text) {
    return with_reply(WASMTP_PLUGIN_TYPES_VERDICT_DENY_SOFT_DISCONNECT, code, enhanced, text);
}

wasmtp_verdict_t wasmtp_done(uint16_t code, const char *enhanced, const char *text) {
    return with_reply(WASMTP_PLUGIN_TYPES_VERDICT_DONE, code, enhanced, text);
}

/* ---- host services ------------------------------------------------------- */

void wasmtp_log(wasmtp_log_level_t level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    plugin_string_t msg = view(buf);
    plugin_list_tuple2_string_string_t fields = {NULL, 0};
    wasmtp_plugin_host_log((wasmtp_plugin_host_log_level_t)level, &msg, &fields);
}

char *wasmtp_config_get(const char *key) {
    plugin_string_t k = view(key);
    plugin_string_t value;
    if (!wasmtp_plugin_host_config_get(&k, &value)) return NULL;
    char *out = cstr(&value);
    plugin_string_free(&value);
    return out;
}

/* ---- a minimal JSON string-array parser --------------------------------- */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses the JSON string at *pp (after its opening quote); NULL on error. */
static char *json_string(const char **pp) {
    const char *p = *pp;
    /* Decoded text is never longer than the escaped text. */
    const char *end = p;
    while (*end && *end != '"') end += (*end == '\\' && end[1]) ? 2 : 1;
    if (*end != '"') return NULL;
    char *out = xmalloc((size_t)(end - p) + 1), *o = out;
    while (p < end) {
        if (*p != '\\') { *o++ = *p++; continue; }
        p++;
        switch (*p++) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 4 || !hex4(p, &cp)) { free(out); return NULL; }
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            o += put_utf8(o, cp);
            break;
        }
        default: free(out); return NULL;
        }
    }
    *o = '\0';
    *pp = end + 1;
    return out;
}

char **wasmtp_json_strings(const char *json, size_t *count) {
    *count = 0;
    if (!json) return NULL;
    const char *p = skip_ws(json);
    if (*p++ != '[') return NULL;
    size_t cap = 4, n = 0;
    char **items = xmalloc(cap * sizeof *items);
    p = skip_ws(p);
    if (*p == ']') {
        p++;
    } else {
        for (;;) {
            if (*p++ != '"') goto fail;
            char *item = json_string(&p);
            if (!item) goto fail;
            if (n == cap) {
                cap *= 2;
                char **grown = realloc(items, cap * sizeof *items);
                if (!grown) abort();
                items = grown;
            }
            items[n++] = item;
            p = skip_ws(p);
            if (*p == ',') { p = skip_ws(p + 1); continue; }
            if (*p++ == ']') break;
            goto fail;
        }
    }
    if (*skip_ws(p) != '\0') goto fail;
    *count = n;
    return items;
fail:
    wasmtp_strings_free(items, n);
    return NULL;
}

char **wasmtp_config_strings(const char *key, size_t *count) {
    char *text = wasmtp_config_get(key);
    char **out = wasmtp_json_strings(text, count);
    free(text);
    return out;
}

void wasmtp_strings_free(char **strings, size_t count) {
    if (!strings) return;
    for (size_t i = 0; i < count; i++) free(strings[i]);
    free(strings);
}

long long wasmtp_config_int(const char *key, long long dflt, bool *ok) {
    char *text = wasmtp_config_get(key);
    if (!text) return dflt;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (ok && (end == text || *end != '\0')) *ok = false;
    free(text);
    return v;
}

bool wasmtp_config_bool(const char *key, bool dflt) {
    char *text = wasmtp_config_get(key);
    if (!text) return dflt;
    bool v = dflt;
    if (strcmp(text, "true") == 0) v = true;
    else if (strcmp(text, "false") == 0) v = false;
    free(text);
    return v;
}

/* ---- connection ---------------------------------------------------------- */

/* A string result of a method, as a malloc'd C string. */
#define STRING_METHOD(fn, method, handle_t)                 \
    char *fn(handle_t h) {                                   \
        plugin_string_t s;                                   \
        method(h, &s);                                       \
        char *out = cstr(&s);                                \
        plugin_string_free(&s);                              \
        return out;                                          \
    }

/* An option<string> result of a method, as a malloc'd C string or NULL. */
#define OPTION_STRING_METHOD(fn, method, handle_t)           \
    char *fn(handle_t h) {                                   \
        plugin_string_t s;                                   \
        if (!method(h, &s)) return NULL;                     \
        char *out = cstr(&s);                                \
        plugin_string_free(&s);                              \
        return out;                                          \
    }

STRING_METHOD(wasmtp_conn_remote_ip, wasmtp_plugin_session_method_connection_remote_ip,
              wasmtp_conn_t)
STRING_METHOD(wasmtp_txn_sender, wasmtp_plugin_session_method_transaction_sender, wasmtp_txn_t)
STRING_METHOD(wasmtp_conn_id, wasmtp_plugin_session_method_connection_id, wasmtp_conn_t)
STRING_METHOD(wasmtp_conn_local_ip, wasmtp_plugin_session_method_connection_local_ip, wasmtp_conn_t)
STRING_METHOD(wasmtp_conn_hello_host, wasmtp_plugin_session_method_connection_hello_host,
              wasmtp_conn_t)
STRING_METHOD(wasmtp_txn_id, wasmtp_plugin_session_method_transaction_id, wasmtp_txn_t)
OPTION_STRING_METHOD(wasmtp_conn_remote_host, wasmtp_plugin_session_method_connection_remote_host,
                     wasmtp_conn_t)
OPTION_STRING_METHOD(wasmtp_conn_auth_user, wasmtp_plugin_session_method_connection_auth_user,
                     wasmtp_conn_t)

bool wasmtp_conn_is_loopback(wasmtp_conn_t conn) {
    char *ip = wasmtp_conn_remote_ip(conn);
    bool loopback = strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
                    strncasecmp(ip, "::ffff:127.", 11) == 0;
    free(ip);
    return loopback;
}

char *wasmtp_conn_note(wasmtp_conn_t conn, const char *key) {
    plugin_string_t k = view(key);
    plugin_string_t value;
    if (!wasmtp_plugin_session_method_connection_note(conn, &k, &value)) return NULL;
    char *out = cstr(&value);
    plugin_string_free(&value);
    return out;
}

void wasmtp_conn_set_note(wasmtp_conn_t conn, const char *key, const char *value) {
    plugin_string_t k = view(key), v = view(value);
    wasmtp_plugin_session_method_connection_set_note(conn, &k, &v);
}

/* ---- transaction --------------------------------------------------------- */

size_t wasmtp_txn_recipient_count(wasmtp_txn_t txn) {
    wasmtp_plugin_session_list_recipient_t list;
    wasmtp_plugin_session_method_transaction_recipients(txn, &list);
    size_t n = list.len;
    wasmtp_plugin_session_list_recipient_free(&list);
    return n;
}

uint64_t wasmtp_txn_body_size(wasmtp_txn_t txn) {
    return wasmtp_plugin_session_method_transaction_body_size(txn);
}

char *wasmtp_txn_header(wasmtp_txn_t txn, const char *name) {
    plugin_string_t n = view(name);
    plugin_list_string_t values;
    wasmtp_plugin_session_method_transaction_header(txn, &n, &values);
    char *out = values.len > 0 ? cstr(&values.ptr[0]) : NULL;
    plugin_list_string_free(&values);
    return out;
}

/* Logs the host's refusal of `what` and frees its text; returns false. */
static bool refused(const char *what, const char *arg, plugin_string_t *err) {
    wasmtp_log(WASMTP_WARN, "%s %s refused: %.*s", what, arg, (int)err->len, (char *)err->ptr);
    plugin_string_free(err);
    return false;
}

bool wasmtp_txn_add_header(wasmtp_txn_t txn, const char *name, const char *value) {
    plugin_string_t n = view(name), v = view(value), err;
    if (wasmtp_plugin_session_method_transaction_add_header(txn, &n, &v, &err)) return true;
    return refused("add-header", name, &err);
}

char *wasmtp_txn_note(wasmtp_txn_t txn, const char *key) {
    plugin_string_t k = view(key);
    plugin_string_t value;
    if (!wasmtp_plugin_session_method_transaction_note(txn, &k, &value)) return NULL;
    char *out = cstr(&value);
    plugin_string_free(&value);
    return out;
}

void wasmtp_txn_set_note(wasmtp_txn_t txn, const char *key, const char *value) {
    plugin_string_t k = view(key), v = view(value);
    wasmtp_plugin_session_method_transaction_set_note(txn, &k, &v);
}

uint32_t wasmtp_txn_remove_header(wasmtp_txn_t txn, const char *name) {
    plugin_string_t n = view(name);
    return wasmtp_plugin_session_method_transaction_remove_header(txn, &n);
}

bool wasmtp_txn_replace_header(wasmtp_txn_t txn, const char *name, const char *value) {
    plugin_string_t n = view(name), v = view(value), err;
    if (wasmtp_plugin_session_method_transaction_replace_header(txn, &n, &v, &err)) return true;
    return refused("replace-header", name, &err);
}

uint16_t wasmtp_conn_remote_port(wasmtp_conn_t conn) {
    return wasmtp_plugin_session_method_connection_remote_port(conn);
}

uint16_t wasmtp_conn_local_port(wasmtp_conn_t conn) {
    return wasmtp_plugin_session_method_connection_local_port(conn);
}

wasmtp_hello_t wasmtp_conn_hello(wasmtp_conn_t conn) {
    return (wasmtp_hello_t)wasmtp_plugin_session_method_connection_hello(conn);
}

bool wasmtp_conn_tls(wasmtp_conn_t conn, wasmtp_tls_t *out) {
    wasmtp_plugin_session_tls_info_t info;
    if (!wasmtp_plugin_session_method_connection_tls(conn, &info)) return false;
    out->protocol = cstr(&info.protocol);
    out->cipher = cstr(&info.cipher);
    out->sni = info.sni.is_some ? cstr(&info.sni.val) : NULL;
    wasmtp_plugin_session_tls_info_free(&info);
    return true;
}

void wasmtp_tls_free(wasmtp_tls_t *tls) {
    if (!tls) return;
    free(tls->protocol);
    free(tls->cipher);
    free(tls->sni);
    tls->protocol = tls->cipher = tls->sni = NULL;
}

bool wasmtp_conn_relay_client(wasmtp_conn_t conn) {
    return wasmtp_plugin_session_method_connection_relay_client(conn);
}

void wasmtp_conn_set_relay_client(wasmtp_conn_t conn, bool allowed) {
    wasmtp_plugin_session_method_connection_set_relay_client(conn, allowed);
}

void wasmtp_conn_remove_note(wasmtp_conn_t conn, const char *key) {
    plugin_string_t k = view(key);
    wasmtp_plugin_session_method_connection_remove_note(conn, &k);
}

void wasmtp_txn_remove_note(wasmtp_txn_t txn, const char *key) {
    plugin_string_t k = view(key);
    wasmtp_plugin_session_method_transaction_remove_note(txn, &k);
}

bool wasmtp_txn_set_sender(wasmtp_txn_t txn, const char *address) {
    plugin_string_t a = view(address), err;
    if (wasmtp_plugin_session_method_transaction_set_sender(txn, &a, &err)) return true;
    return refused("set-sender", address, &err);
}

char **wasmtp_txn_recipients(wasmtp_txn_t txn, size_t *count) {
    wasmtp_plugin_session_list_recipient_t list;
    wasmtp_plugin_session_method_transaction_recipients(txn, &list);
    *count = list.len;
    char **out = NULL;
    if (list.len > 0) {
        out = xmalloc(list.len * sizeof(char *));
        for (size_t i = 0; i < list.len; i++) out[i] = cstr(&list.ptr[i].address);
    }
    wasmtp_plugin_session_list_recipient_free(&list);
    return out;
}

bool wasmtp_txn_add_recipient(wasmtp_txn_t txn, const char *address) {
    plugin_string_t a = view(address), err;
    wasmtp_plugin_session_list_param_t none = {NULL, 0};
    if (wasmtp_plugin_session_method_transaction_add_recipient(txn, &a, &none, &err)) return true;
    return refused("add-recipient", address, &err);
}

uint32_t wasmtp_txn_remove_recipient(wasmtp_txn_t txn, const char *address) {
    plugin_string_t a = view(address);
    return wasmtp_plugin_session_method_transaction_remove_recipient(txn, &a);
}

char **wasmtp_txn_header_values(wasmtp_txn_t txn, const char *name, size_t *count) {
    plugin_string_t n = view(name);
    plugin_list_string_t values;
    wasmtp_plugin_session_method_transaction_header(txn, &n, &values);
    *count = values.len;
    char **out = NULL;
    if (values.len > 0) {
        out = xmalloc(values.len * sizeof(char *));
        for (size_t i = 0; i < values.len; i++) out[i] = cstr(&values.ptr[i]);
    }
    plugin_list_string_free(&values);
    return out;
}

/* Copies `len` generated header records into a malloc'd wasmtp_header_t array. */
static wasmtp_header_t *copy_headers(const wasmtp_plugin_types_header_t *items, size_t len) {
    if (len == 0) return NULL;
    wasmtp_header_t *out = xmalloc(len * sizeof *out);
    for (size_t i = 0; i < len; i++) {
        out[i].name = cstr(&items[i].name);
        out[i].value = cstr(&items[i].value);
    }
    return out;
}

wasmtp_header_t *wasmtp_txn_headers(wasmtp_txn_t txn, size_t *count) {
    wasmtp_plugin_session_list_header_t list;
    wasmtp_plugin_session_method_transaction_headers(txn, &list);
    *count = list.len;
    wasmtp_header_t *out = copy_headers(list.ptr, list.len);
    wasmtp_plugin_session_list_header_free(&list);
    return out;
}

void wasmtp_headers_free(wasmtp_header_t *headers, size_t count) {
    for (size_t i = 0; headers && i < count; i++) {
        free(headers[i].name);
        free(headers[i].value);
    }
    free(headers);
}

wasmtp_bytes_t *wasmtp_txn_raw_headers(wasmtp_txn_t txn, size_t *count) {
    plugin_list_list_u8_t list;
    wasmtp_plugin_session_method_transaction_raw_headers(txn, &list);
    *count = list.len;
    wasmtp_bytes_t *out = NULL;
    if (list.len > 0) {
        out = xmalloc(list.len * sizeof *out);
        for (size_t i = 0; i < list.len; i++) {
            out[i].len = list.ptr[i].len;
            out[i].ptr = xmalloc(list.ptr[i].len + 1);
            memcpy(out[i].ptr, list.ptr[i].ptr, list.ptr[i].len);
            out[i].ptr[list.ptr[i].len] = '\0';
        }
    }
    plugin_list_list_u8_free(&list);
    return out;
}

void wasmtp_bytes_free(wasmtp_bytes_t *items, size_t count) {
    for (size_t i = 0; items && i < count; i++) free(items[i].ptr);
    free(items);
}

bool wasmtp_txn_prepend_header(wasmtp_txn_t txn, const char *name, const char *value) {
    plugin_string_t n = view(name), v = view(value), err;
    if (wasmtp_plugin_session_method_transaction_prepend_header(txn, &n, &v, &err)) return true;
    return refused("prepend-header", name, &err);
}

size_t wasmtp_txn_read_body(wasmtp_txn_t txn, uint64_t offset, uint8_t *buf, size_t len) {
    if (len > (1u << 20)) len = 1u << 20;
    plugin_list_u8_t got;
    wasmtp_plugin_session_method_transaction_read_body(txn, offset, (uint32_t)len, &got);
    size_t n = got.len < len ? got.len : len;
    if (n > 0) memcpy(buf, got.ptr, n);
    plugin_list_u8_free(&got);
    return n;
}

bool wasmtp_txn_replace_body(wasmtp_txn_t txn, const uint8_t *body, size_t len) {
    plugin_list_u8_t b = {(uint8_t *)body, len};
    plugin_string_t err;
    if (wasmtp_plugin_session_method_transaction_replace_body(txn, &b, &err)) return true;
    return refused("replace-body", "", &err);
}

const char *wasmtp_param(const wasmtp_params_t *params, const char *key) {
    for (size_t i = 0; params && i < params->len; i++) {
        if (strcasecmp(params->items[i].key, key) == 0) return params->items[i].value;
    }
    return NULL;
}

/* ---- DNS and key-value state ---------------------------------------------- */

static char last_error[256];

const char *wasmtp_last_error(void) { return last_error; }

static void set_last_error(const plugin_string_t *text) {
    size_t n = text && text->len < sizeof last_error ? text->len : sizeof last_error - 1;
    if (text && text->ptr) memcpy(last_error, text->ptr, n);
    else n = 0;
    last_error[n] = '\0';
}

static wasmtp_dns_status_t dns_failure(wasmtp_plugin_dns_dns_error_t *err) {
    wasmtp_dns_status_t status = WASMTP_DNS_SERVFAIL;
    last_error[0] = '\0';
    switch (err->tag) {
    case WASMTP_PLUGIN_DNS_DNS_ERROR_NX_DOMAIN: status = WASMTP_DNS_NXDOMAIN; break;
    case WASMTP_PLUGIN_DNS_DNS_ERROR_NO_DATA: status = WASMTP_DNS_NODATA; break;
    case WASMTP_PLUGIN_DNS_DNS_ERROR_TIMEOUT: status = WASMTP_DNS_TIMEOUT; break;
    case WASMTP_PLUGIN_DNS_DNS_ERROR_SERVER_FAILURE:
        set_last_error(&err->val.server_failure);
        status = WASMTP_DNS_SERVFAIL;
        break;
    case WASMTP_PLUGIN_DNS_DNS_ERROR_REFUSED:
        set_last_error(&err->val.refused);
        status = WASMTP_DNS_REFUSED;
        break;
    case WASMTP_PLUGIN_DNS_DNS_ERROR_INVALID:
        set_last_error(&err->val.invalid);
        status = WASMTP_DNS_INVALID;
        break;
    }
    wasmtp_plugin_dns_dns_error_free(err);
    return status;
}

/* Moves a generated answer into the SDK's flat form and frees it. */
static void flatten_answer(wasmtp_plugin_dns_answer_t *a, wasmtp_dns_answer_t *out) {
    size_t n = a->records.len;
    out->count = n;
    out->ttl = a->ttl;
    out->records = xmalloc(sizeof(char *) * (n ? n : 1));
    out->preference = xmalloc(sizeof(uint16_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        wasmtp_plugin_dns_record_data_t *r = &a->records.ptr[i];
        out->preference[i] = 0;
        switch (r->tag) {
        case WASMTP_PLUGIN_DNS_RECORD_DATA_MX:
            out->preference[i] = r->val.mx.preference;
            out->records[i] = cstr(&r->val.mx.exchange);
            break;
        case WASMTP_PLUGIN_DNS_RECORD_DATA_TXT: {
            size_t total = 0;
            for (size_t j = 0; j < r->val.txt.len; j++) total += r->val.txt.ptr[j].len;
            char *joined = xmalloc(total + 1);
            size_t at = 0;
            for (size_t j = 0; j < r->val.txt.len; j++) {
                memcpy(joined + at, r->val.txt.ptr[j].ptr, r->val.txt.ptr[j].len);
                at += r->val.txt.ptr[j].len;
            }
            joined[at] = '\0';
            out->records[i] = joined;
            break;
        }
        default:
            /* a, aaaa, ptr, cname, ns: one string, the same layout in each arm */
            out->records[i] = cstr(&r->val.a);
            break;
        }
    }
    wasmtp_plugin_dns_answer_free(a);
}

wasmtp_dns_status_t wasmtp_dns_lookup(const char *name, wasmtp_dns_type_t type,
                                      wasmtp_dns_answer_t *out) {
    memset(out, 0, sizeof *out);
    plugin_string_t n = view(name);
    wasmtp_plugin_dns_answer_t answer;
    wasmtp_plugin_dns_dns_error_t err;
    if (!wasmtp_plugin_dns_lookup(&n, (wasmtp_plugin_dns_record_type_t)type, &answer, &err))
        return dns_failure(&err);
    flatten_answer(&answer, out);
    return WASMTP_DNS_OK;
}

wasmtp_dns_status_t wasmtp_dns_reverse(const char *ip, wasmtp_dns_answer_t *out) {
    memset(out, 0, sizeof *out);
    plugin_string_t a = view(ip);
    wasmtp_plugin_dns_answer_t answer;
    wasmtp_plugin_dns_dns_error_t err;
    if (!wasmtp_plugin_dns_reverse(&a, &answer, &err)) return dns_failure(&err);
    flatten_answer(&answer, out);
    return WASMTP_DNS_OK;
}

void wasmtp_dns_answer_free(wasmtp_dns_answer_t *answer) {
    for (size_t i = 0; answer->records && i < answer->count; i++) free(answer->records[i]);
    free(answer->records);
    free(answer->preference);
    memset(answer, 0, sizeof *answer);
}

const char *wasmtp_dns_status_name(wasmtp_dns_status_t status) {
    static const char *const names[] = {"ok",      "nx-domain", "no-data", "server-failure",
                                        "timeout", "refused",   "invalid"};
    return (unsigned)status < sizeof names / sizeof names[0] ? names[status] : "unknown";
}

static wasmtp_kv_status_t kv_failure(wasmtp_plugin_kv_kv_error_t *err) {
    wasmtp_kv_status_t status = WASMTP_KV_UNAVAILABLE;
    switch (err->tag) {
    case WASMTP_PLUGIN_KV_KV_ERROR_NOT_GRANTED: status = WASMTP_KV_NOT_GRANTED; break;
    case WASMTP_PLUGIN_KV_KV_ERROR_QUOTA: status = WASMTP_KV_QUOTA; break;
    case WASMTP_PLUGIN_KV_KV_ERROR_UNAVAILABLE: status = WASMTP_KV_UNAVAILABLE; break;
    case WASMTP_PLUGIN_KV_KV_ERROR_INVALID: status = WASMTP_KV_INVALID; break;
    }
    /* every case carries one string, the same layout in each arm */
    set_last_error(&err->val.not_granted);
    wasmtp_plugin_kv_kv_error_free(err);
    return status;
}

/* ---- the MIME view ------------------------------------------------------- */

static wasmtp_mime_status_t mime_failure(wasmtp_plugin_mime_mime_error_t *err) {
    wasmtp_mime_status_t status = WASMTP_MIME_UNAVAILABLE;
    switch (err->tag) {
    case WASMTP_PLUGIN_MIME_MIME_ERROR_UNAVAILABLE: status = WASMTP_MIME_UNAVAILABLE; break;
    case WASMTP_PLUGIN_MIME_MIME_ERROR_TOO_COMPLEX: status = WASMTP_MIME_TOO_COMPLEX; break;
    case WASMTP_PLUGIN_MIME_MIME_ERROR_UNPARSABLE: status = WASMTP_MIME_UNPARSABLE; break;
    case WASMTP_PLUGIN_MIME_MIME_ERROR_NO_SUCH_PART: status = WASMTP_MIME_NO_SUCH_PART; break;
    case WASMTP_PLUGIN_MIME_MIME_ERROR_NOT_TEXT: status = WASMTP_MIME_NOT_TEXT; break;
    }
    if (status == WASMTP_MIME_NO_SUCH_PART || status == WASMTP_MIME_NOT_TEXT) {
        snprintf(last_error, sizeof last_error, "part %u", (unsigned)err->val.no_such_part);
    } else {
        /* the string cases share one layout */
        set_last_error(&err->val.unavailable);
    }
    wasmtp_plugin_mime_mime_error_free(err);
    return status;
}

static char *opt_cstr(const plugin_option_string_t *s) {
    return s->is_some ? cstr(&s->val) : NULL;
}

wasmtp_mime_status_t wasmtp_mime_parts(wasmtp_txn_t txn, wasmtp_parts_t *out) {
    out->len = 0;
    out->items = NULL;
    wasmtp_plugin_mime_list_part_t ret;
    wasmtp_plugin_mime_mime_error_t err;
    if (!wasmtp_plugin_mime_parts(txn, &ret, &err)) return mime_failure(&err);
    out->items = xmalloc((ret.len ? ret.len : 1) * sizeof *out->items);
    out->len = ret.len;
    for (size_t i = 0; i < ret.len; i++) {
        wasmtp_plugin_mime_part_t *p = &ret.ptr[i];
        wasmtp_part_t *q = &out->items[i];
        q->index = p->index;
        q->parent = p->parent.is_some ? (int64_t)p->parent.val : -1;
        q->depth = p->depth;
        q->kind = (wasmtp_part_kind_t)p->kind;
        q->content_type = cstr(&p->content_type);
        q->charset = opt_cstr(&p->charset);
        q->disposition = opt_cstr(&p->disposition);
        q->filename = opt_cstr(&p->filename);
        q->content_id = opt_cstr(&p->content_id);
        q->transfer_encoding = cstr(&p->transfer_encoding);
        q->encoded_size = p->encoded_size;
        q->decoded_size = p->decoded_size;
        q->has_body_range = p->body_range.is_some;
        q->body_start = p->body_range.is_some ? p->body_range.val.f0 : 0;
        q->body_end = p->body_range.is_some ? p->body_range.val.f1 : 0;
        q->encoding_problem = p->encoding_problem;
    }
    wasmtp_plugin_mime_list_part_free(&ret);
    return WASMTP_MIME_OK;
}

void wasmtp_mime_parts_free(wasmtp_parts_t *parts) {
    for (size_t i = 0; i < parts->len; i++) {
        wasmtp_part_t *q = &parts->items[i];
        free(q->content_type);
        free(q->charset);
        free(q->disposition);
        free(q->filename);
        free(q->content_id);
        free(q->transfer_encoding);
    }
    free(parts->items);
    parts->items = NULL;
    parts->len = 0;
}

bool wasmtp_part_is_attachment(const wasmtp_part_t *part) {
    if (part->kind == WASMTP_PART_MULTIPART) return false;
    return part->filename != NULL ||
           (part->disposition != NULL && strcmp(part->disposition, "attachment") == 0);
}

wasmtp_mime_status_t wasmtp_mime_text(wasmtp_txn_t txn, uint32_t index, uint32_t max_len,
                                      char **text, size_t *len) {
    *text = NULL;
    if (len) *len = 0;
    plugin_string_t ret;
    wasmtp_plugin_mime_mime_error_t err;
    if (!wasmtp_plugin_mime_text(txn, index, max_len, &ret, &err)) return mime_failure(&err);
    *text = cstr(&ret);
    if (len) *len = ret.len;
    plugin_string_free(&ret);
    return WASMTP_MIME_OK;
}

wasmtp_mime_status_t wasmtp_mime_part_headers(wasmtp_txn_t txn, uint32_t index,
                                              wasmtp_header_t **out, size_t *count) {
    *out = NULL;
    *count = 0;
    wasmtp_plugin_mime_list_header_t ret;
    wasmtp_plugin_mime_mime_error_t err;
    if (!wasmtp_plugin_mime_part_headers(txn, index, &ret, &err)) return mime_failure(&err);
    *out = copy_headers(ret.ptr, ret.len);
    *count = ret.len;
    wasmtp_plugin_mime_list_header_free(&ret);
    return WASMTP_MIME_OK;
}

wasmtp_mime_status_t wasmtp_mime_content(wasmtp_txn_t txn, uint32_t index, uint64_t offset,
                                         uint32_t len, char **data, size_t *out_len) {
    *data = NULL;
    if (out_len) *out_len = 0;
    plugin_list_u8_t ret;
    wasmtp_plugin_mime_mime_error_t err;
    if (!wasmtp_plugin_mime_content(txn, index, offset, len, &ret, &err)) return mime_failure(&err);
    char *copy = xmalloc(ret.len + 1);
    if (ret.len) memcpy(copy, ret.ptr, ret.len);
    copy[ret.len] = '\0';
    *data = copy;
    if (out_len) *out_len = ret.len;
    plugin_list_u8_free(&ret);
    return WASMTP_MIME_OK;
}

const char *wasmtp_mime_status_name(wasmtp_mime_status_t status) {
    static const char *names[] = {"ok", "unavailable", "too-complex", "unparsable",
                                  "no-such-part", "not-text"};
    return (unsigned)status < sizeof names / sizeof names[0] ? names[status] : "unknown";
}

static plugin_list_u8_t bytes_view(const void *p, size_t len) {
    plugin_list_u8_t out = {(uint8_t *)p, len};
    return out;
}

/* `option<u64>` arguments are passed as a pointer, NULL for none. */
static uint64_t *ttl_opt(uint64_t *ttl_ms) { return *ttl_ms ? ttl_ms : NULL; }

wasmtp_kv_status_t wasmtp_kv_get(const char *bucket, const char *key, char **value, size_t *len) {
    *value = NULL;
    if (len) *len = 0;
    plugin_string_t b = view(bucket), k = view(key);
    plugin_option_list_u8_t ret;
    wasmtp_plugin_kv_kv_error_t err;
    if (!wasmtp_plugin_kv_get(&b, &k, &ret, &err)) return kv_failure(&err);
    if (ret.is_some) {
        char *copy = xmalloc(ret.val.len + 1);
        memcpy(copy, ret.val.ptr, ret.val.len);
        copy[ret.val.len] = '\0';
        *value = copy;
        if (len) *len = ret.val.len;
        plugin_list_u8_free(&ret.val);
    }
    return WASMTP_KV_OK;
}

wasmtp_kv_status_t wasmtp_kv_set(const char *bucket, const char *key, const void *value,
                                 size_t len, uint64_t ttl_ms) {
    plugin_string_t b = view(bucket), k = view(key);
    plugin_list_u8_t v = bytes_view(value, len);
    wasmtp_plugin_kv_kv_error_t err;
    if (!wasmtp_plugin_kv_set(&b, &k, &v, ttl_opt(&ttl_ms), &err)) return kv_failure(&err);
    return WASMTP_KV_OK;
}

wasmtp_kv_status_t wasmtp_kv_delete(const char *bucket, const char *key, bool *existed) {
    plugin_string_t b = view(bucket), k = view(key);
    bool ret = false;
    wasmtp_plugin_kv_kv_error_t err;
    if (!wasmtp_plugin_kv_delete(&b, &k, &ret, &err)) return kv_failure(&err);
    if (existed) *existed = ret;
    return WASMTP_KV_OK;
}

wasmtp_kv_status_t wasmtp_kv_increment(const char *bucket, const char *key, int64_t delta,
                                       uint64_t ttl_ms, int64_t *value) {
    plugin_string_t b = view(bucket), k = view(key);
    int64_t ret = 0;
    wasmtp_plugin_kv_kv_error_t err;
    if (!wasmtp_plugin_kv_increment(&b, &k, delta, ttl_opt(&ttl_ms), &ret, &err)) return kv_failure(&err);
    if (value) *value = ret;
    return WASMTP_KV_OK;
}

wasmtp_kv_status_t wasmtp_kv_compare_and_set(const char *bucket, const char *key,
                                             const void *expected, size_t expected_len,
                                             const void *value, size_t len, uint64_t ttl_ms,
                                             bool *swapped) {
    plugin_string_t b = view(bucket), k = view(key);
    plugin_list_u8_t want = bytes_view(expected, expected ? expected_len : 0);
    plugin_list_u8_t v = bytes_view(value, len);
    bool ret = false;
    wasmtp_plugin_kv_kv_error_t err;
    if (!wasmtp_plugin_kv_compare_and_set(&b, &k, expected ? &want : NULL, &v, ttl_opt(&ttl_ms), &ret, &err))
        return kv_failure(&err);
    if (swapped) *swapped = ret;
    return WASMTP_KV_OK;
}

const char *wasmtp_kv_status_name(wasmtp_kv_status_t status) {
    static const char *const names[] = {"ok", "not-granted", "quota", "unavailable", "invalid"};
    return (unsigned)status < sizeof names / sizeof names[0] ? names[status] : "unknown";
}

/* ---- export glue ----------------------------------------------------------- */

/* Converted MAIL/RCPT parameters, freed after the hook. */
typedef struct {
    wasmtp_params_t view;
    wasmtp_param_t *items;
} owned_params_t;

static owned_params_t take_params(exports_wasmtp_plugin_hooks_list_param_t *list) {
    owned_params_t out;
    out.items = xmalloc(sizeof(wasmtp_param_t) * (list->len ? list->len : 1));
    for (size_t i = 0; i < list->len; i++) {
        out.items[i].key = cstr(&list->ptr[i].key);
        out.items[i].value = list->ptr[i].value.is_some ? cstr(&list->ptr[i].value.val) : NULL;
    }
    out.view.len = list->len;
    out.view.items = out.items;
    exports_wasmtp_plugin_hooks_list_param_free(list);
    return out;
}

static void free_params(owned_params_t *p) {
    for (size_t i = 0; i < p->view.len; i++) {
        free((char *)p->items[i].key);
        free((char *)p->items[i].value);
    }
    free(p->items);
}

/* Takes ownership of an argument string: a C copy, the original freed. */
static char *take(plugin_string_t *s) {
    char *out = cstr(s);
    plugin_string_free(s);
    return out;
}

bool exports_wasmtp_plugin_hooks_init(plugin_string_t *config,
                                      exports_wasmtp_plugin_hooks_hooks_wanted_t *ret,
                                      plugin_string_t *err) {
    char *json = take(config);
    const char *failure = wasmtp_plugin.init ? wasmtp_plugin.init(json) : NULL;
    free(json);
    if (failure) {
        plugin_string_dup(err, failure);
        return false;
    }
    const wasmtp_plugin_t *p = &wasmtp_plugin;
    uint32_t w = 0;
#define WANT(field, flag)                                                                   \
    if (p->field) w |= WASMTP_PLUGIN_TYPES_HOOKS_WANTED_##flag
    WANT(connect, CONNECT);
    WANT(helo, HELO);
    WANT(ehlo, EHLO);
    WANT(mail, MAIL);
    WANT(rcpt, RCPT);
    WANT(data, DATA);
    WANT(data_headers, DATA_HEADERS);
    WANT(body_chunk, BODY_CHUNK);
    WANT(data_post, DATA_POST);
    WANT(queue, QUEUE);
    WANT(reset, RESET);
    WANT(quit, QUIT);
    WANT(disconnect, DISCONNECT);
    WANT(unrecognized_command, UNRECOGNIZED_COMMAND);
    WANT(vrfy, VRFY);
    WANT(noop, NOOP);
    WANT(help, HELP);
    WANT(auth, AUTH);
    WANT(deny, DENY);
    WANT(delivery, DELIVERY);
#undef WANT
    *ret = w;
    return true;
}

typedef exports_wasmtp_plugin_hooks_borrow_connection_t conn_arg;
typedef exports_wasmtp_plugin_hooks_borrow_transaction_t txn_arg;
typedef exports_wasmtp_plugin_hooks_verdict_t verdict;

void exports_wasmtp_plugin_hooks_connect(conn_arg conn, verdict *ret) {
    *ret = wasmtp_plugin.connect ? wasmtp_plugin.connect(conn) : wasmtp_declined();
}

void exports_wasmtp_plugin_hooks_helo(conn_arg conn, plugin_string_t *host, verdict *ret) {
    char *h = take(host);
    *ret = wasmtp_plugin.helo ? wasmtp_plugin.helo(conn, h) : wasmtp_declined();
    free(h);
}

void exports_wasmtp_plugin_hooks_ehlo(conn_arg conn, plugin_string_t *host, verdict *ret) {
    char *h = take(host);
    *ret = wasmtp_plugin.ehlo ? wasmtp_plugin.ehlo(conn, h) : wasmtp_declined();
    free(h);
}

void exports_wasmtp_plugin_hooks_mail(conn_arg conn, txn_arg txn, plugin_string_t *sender,
                                      exports_wasmtp_plugin_hooks_list_param_t *params,
                                      verdict *ret) {
    char *s = take(sender);
    owned_params_t p = take_params(params);
    *ret = wasmtp_plugin.mail ? wasmtp_plugin.mail(conn, txn, s, &p.view) : wasmtp_declined();
    free_params(&p);
    free(s);
}

void exports_wasmtp_plugin_hooks_rcpt(conn_arg conn, txn_arg txn, plugin_string_t *recipient,
                                      exports_wasmtp_plugin_hooks_list_param_t *params,
                                      verdict *ret) {
    char *r = take(recipient);
    owned_params_t p = take_params(params);
    *ret = wasmtp_plugin.rcpt ? wasmtp_plugin.rcpt(conn, txn, r, &p.view) : wasmtp_declined();
    free_params(&p);
    free(r);
}

void exports_wasmtp_plugin_hooks_data(conn_arg conn, txn_arg txn, verdict *ret) {
    *ret = wasmtp_plugin.data ? wasmtp_plugin.data(conn, txn) : wasmtp_declined();
}

void exports_wasmtp_plugin_hooks_data_headers(conn_arg conn, txn_arg txn, verdict *ret) {
    *ret = wasmtp_plugin.data_headers ? wasmtp_plugin.data_headers(conn, txn) : wasmtp_declined();
}

void exports_wasmtp_plugin_hooks_body_chunk(conn_arg conn, txn_arg txn, uint64_t offset,
                                            plugin_list_u8_t *chunk, verdict *ret) {
    *ret = wasmtp_plugin.body_chunk
               ? wasmtp_plugin.body_chunk(conn, txn, offset, chunk->ptr, chunk->len)
               : wasmtp_declined();
    plugin_list_u8_free(chunk);
}

void exports_wasmtp_plugin_hooks_data_post(conn_arg conn, txn_arg txn, verdict *ret) {
    *ret = wasmtp_plugin.data_post ? wasmtp_plugin.data_post(conn, txn) : wasmtp_declined();
}

void exports_wasmtp_plugin_hooks_queue(conn_arg conn, txn_arg txn, verdict *ret) {
    *ret = wasmtp_plugin.queue ? wasmtp_plugin.queue(conn, txn) : wasmtp_declined();
}

void exports_wasmtp_plugin_hooks_reset(conn_arg conn, verdict *ret) {
    *ret = wasmtp_plugin.reset ? wasmtp_plugin.reset(conn) : wasmtp_declined();
}

void exports_wasmtp_plugin_hooks_quit(conn_arg conn, verdict *ret) {
    *ret = wasmtp_plugin.quit ? wasmtp_plugin.quit(conn) : wasmtp_declined();
}

void exports_wasmtp_plugin_hooks_disconnect(conn_arg conn) {
    if (wasmtp_plugin.disconnect) wasmtp_plugin.disconnect(conn);
}

void exports_wasmtp_plugin_hooks_unrecognized_command(conn_arg conn, plugin_string_t *verb,
                                                      plugin_string_t *args, verdict *ret) {
    char *v = take(verb), *a = take(args);
    *ret = wasmtp_plugin.unrecognized_command ? wasmtp_plugin.unrecognized_command(conn, v, a)
                                              : wasmtp_declined();
    free(v);
    free(a);
}

#define ONE_ARG_HOOK(name)                                                                  \
    void exports_wasmtp_plugin_hooks_##name(conn_arg conn, plugin_string_t *arg,             \
                                            verdict *ret) {                                 \
        char *a = take(arg);                                                                \
        *ret = wasmtp_plugin.name ? wasmtp_plugin.name(conn, a) : wasmtp_declined();        \
        free(a);                                                                            \
    }
ONE_ARG_HOOK(vrfy)
ONE_ARG_HOOK(noop)
ONE_ARG_HOOK(help)
#undef ONE_ARG_HOOK

void exports_wasmtp_plugin_hooks_auth(conn_arg conn, plugin_string_t *mechanism,
                                      plugin_string_t *authzid, plugin_string_t *username,
                                      plugin_string_t *password, verdict *ret) {
    char *m = take(mechanism), *z = take(authzid), *u = take(username), *pw = take(password);
    *ret = wasmtp_plugin.auth ? wasmtp_plugin.auth(conn, m, z, u, pw) : wasmtp_declined();
    memset(pw, 0, strlen(pw));
    free(m);
    free(z);
    free(u);
    free(pw);
}

void exports_wasmtp_plugin_hooks_deny(conn_arg conn, plugin_string_t *hook,
                                      plugin_string_t *plugin, uint16_t code) {
    char *h = take(hook), *p = take(plugin);
    if (wasmtp_plugin.deny) wasmtp_plugin.deny(conn, h, p, code);
    free(h);
    free(p);
}

void exports_wasmtp_plugin_hooks_delivery(exports_wasmtp_plugin_hooks_delivery_report_t *report) {
    if (wasmtp_plugin.delivery) wasmtp_plugin.delivery(report);
    exports_wasmtp_plugin_hooks_delivery_report_free(report);
}

#ifdef WASMTP_LIFECYCLE
void exports_wasmtp_plugin_lifecycle_transaction_ended(
    exports_wasmtp_plugin_lifecycle_borrow_connection_t conn,
    exports_wasmtp_plugin_lifecycle_transaction_end_t why) {
    static const char *const names[] = {"delivered", "refused",  "reset",
                                        "hello",     "starttls", "disconnect"};
    const char *name = why < sizeof names / sizeof names[0] ? names[why] : "unknown";
    if (wasmtp_plugin.transaction_ended) wasmtp_plugin.transaction_ended(conn, name);
}
#endif
