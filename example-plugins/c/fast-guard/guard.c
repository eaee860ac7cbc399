/*
 * fast-guard: cheap checks that should run before anything expensive.
 *
 * - HELO/EHLO sanity: refuses `localhost` (and `localhost.localdomain`) from a
 *   client that is not on loopback, a bare IP address without brackets
 *   (`HELO 192.0.2.1` instead of `HELO [192.0.2.1]`), an address literal that
 *   is not the client's address (optional), a name without a dot (optional).
 * - Message size: refuses a MAIL whose SIZE= exceeds `max_message_size`, and
 *   a message whose body exceeds it at the end of DATA.
 * - Recipient count: refuses the RCPT beyond `max_recipients` (452 4.5.3).
 *
 * It leaves the connection note `helo-check` (`ok` or the refusal reason) and,
 * with `stamp_header` set, adds that header with the recipient count and size.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wasmtp.h"

static struct {
    long long max_message_size; /* 0: no limit */
    long long max_recipients;   /* 0: no limit */
    bool helo_checks;
    bool require_fqdn;
    bool literal_must_match;
    char *stamp_header; /* NULL: no header */
} cfg;

static const char *guard_init(const char *config_json) {
    bool ok = true;
    cfg.max_message_size = wasmtp_config_int("max_message_size", 0, &ok);
    if (!ok || cfg.max_message_size < 0) return "max_message_size must be a non-negative integer";
    cfg.max_recipients = wasmtp_config_int("max_recipients", 0, &ok);
    if (!ok || cfg.max_recipients < 0) return "max_recipients must be a non-negative integer";
    cfg.helo_checks = wasmtp_config_bool("helo_checks", true);
    cfg.require_fqdn = wasmtp_config_bool("require_fqdn", false);
    cfg.literal_must_match = wasmtp_config_bool("literal_must_match", false);
    cfg.stamp_header = wasmtp_config_get("stamp_header");
    return NULL;
}

/* True if `s` is a dotted-quad IPv4 address or looks like a bare IPv6 address. */
static bool is_bare_ip(const char *s) {
    int dots = 0, digits = 0;
    const char *p = s;
    for (; *p; p++) {
        if (isdigit((unsigned char)*p)) {
            if (++digits > 3) break;
        } else if (*p == '.' && digits > 0) {
            dots++;
            digits = 0;
        } else {
            break;
        }
    }
    if (*p == '\0' && dots == 3 && digits > 0) return true;
    /* IPv6: hex digits and at least two colons, nothing else. */
    int colons = 0;
    for (p = s; *p; p++) {
        if (*p == ':') colons++;
        else if (!isxdigit((unsigned char)*p) && *p != '.') return false;
    }
    return colons >= 2;
}

static bool ieq(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

static wasmtp_verdict_t check_hello(wasmtp_conn_t conn, const char *host) {
    if (!cfg.helo_checks) return wasmtp_declined();
    const char *why = NULL;
    const char *text = NULL;
    if (host[0] == '\0') {
        why = "empty";
        text = "HELO/EHLO requires a name";
    } else if ((ieq(host, "localhost") || ieq(host, "localhost.localdomain")) &&
               !wasmtp_conn_is_loopback(conn)) {
        why = "localhost";
        text = "You are not localhost";
    } else if (is_bare_ip(host)) {
        why = "bare-ip";
        text = "An address literal must be in brackets, e.g. [192.0.2.1]";
    } else if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']') {
            why = "bad-literal";
            text = "Malformed address literal";
        } else if (cfg.literal_must_match) {
            char *ip = wasmtp_conn_remote_ip(conn);
            const char *lit = host + 1;
            size_t litlen = n - 2;
            if (strncasecmp(lit, "IPv6:", 5) == 0) {
                lit += 5;
                litlen -= 5;
            }
            if (strlen(ip) != litlen || strncasecmp(lit, ip, litlen) != 0) {
                why = "literal-mismatch";
                text = "Address literal does not match your address";
            }
            free(ip);
        }
    } else if (cfg.require_fqdn && strchr(host, '.') == NULL) {
        why = "not-fqdn";
        text = "HELO/EHLO requires a fully qualified domain name";
    }
    wasmtp_conn_set_note(conn, "helo-check", why ? why : "ok");
    if (why) {
        wasmtp_log(WASMTP_INFO, "refused hello %s: %s", host, why);
        return wasmtp_deny(550, "5.7.1", text);
    }
    return wasmtp_declined();
}

static wasmtp_verdict_t guard_helo(wasmtp_conn_t conn, const char *host) {
    return check_hello(conn, host);
}

static wasmtp_verdict_t guard_ehlo(wasmtp_conn_t conn, const char *host) {
    return check_hello(conn, host);
}

static wasmtp_verdict_t guard_mail(wasmtp_conn_t conn, wasmtp_txn_t txn, const char *sender,
                                   const wasmtp_params_t *params) {
    const char *size = wasmtp_param(params, "SIZE");
    if (size && cfg.max_message_size > 0) {
        char *end = NULL;
        unsigned long long declared = strtoull(size, &end, 10);
        if (end && *end == '\0' && declared > (unsigned long long)cfg.max_message_size) {
            return wasmtp_deny(552, "5.3.4", "Message size exceeds fixed maximum message size");
        }
    }
    return wasmtp_declined();
}

static wasmtp_verdict_t guard_rcpt(wasmtp_conn_t conn, wasmtp_txn_t txn, const char *recipient,
                                   const wasmtp_params_t *params) {
    if (cfg.max_recipients > 0 &&
        wasmtp_txn_recipient_count(txn) >= (size_t)cfg.max_recipients) {
        return wasmtp_deny_soft(452, "4.5.3", "Too many recipients");
    }
    return wasmtp_declined();
}

static wasmtp_verdict_t guard_data_post(wasmtp_conn_t conn, wasmtp_txn_t txn) {
    uint64_t size = wasmtp_txn_body_size(txn);
    if (cfg.max_message_size > 0 && size > (uint64_t)cfg.max_message_size) {
        return wasmtp_deny(552, "5.3.4", "Message size exceeds fixed maximum message size");
    }
    if (cfg.stamp_header && cfg.stamp_header[0]) {
        char value[96];
        snprintf(value, sizeof value, "rcpts=%zu body=%llu", wasmtp_txn_recipient_count(txn),
                 (unsigned long long)size);
        wasmtp_txn_add_header(txn, cfg.stamp_header, value);
    }
    return wasmtp_declined();
}

WASMTP_PLUGIN(.init = guard_init, .helo = guard_helo, .ehlo = guard_ehlo, .mail = guard_mail,
              .rcpt = guard_rcpt, .data_post = guard_data_post);
