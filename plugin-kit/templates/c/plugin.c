/*
 * {{name}}: a wasmtp plugin (written by `wasmtp plugin new`).
 *
 * Refuses RCPT to the address in config `refuse` with 550 5.7.1, and adds
 * the header `<header>: <value>` (config `header`, default X-Checked-By;
 * `value`, default "{{name}}") to every message at data-post.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "wasmtp.h"

static char *refuse; /* NULL: refuse nothing */
static const char *header;
static const char *value;

static const char *my_init(const char *config_json) {
    refuse = wasmtp_config_get("refuse");
    header = wasmtp_config_get("header");
    if (!header) header = "X-Checked-By";
    value = wasmtp_config_get("value");
    if (!value) value = "{{name}}";
    return NULL;
}

static wasmtp_verdict_t my_rcpt(wasmtp_conn_t conn, wasmtp_txn_t txn, const char *recipient,
                                const wasmtp_params_t *params) {
    if (refuse && strcasecmp(recipient, refuse) == 0) {
        char text[600];
        snprintf(text, sizeof text, "<%s>: recipient refused by {{name}}", recipient);
        return wasmtp_deny(550, "5.7.1", text);
    }
    return wasmtp_declined();
}

static wasmtp_verdict_t my_data_post(wasmtp_conn_t conn, wasmtp_txn_t txn) {
    wasmtp_txn_add_header(txn, header, value); /* a refused edit is logged by the SDK */
    return wasmtp_declined();
}

WASMTP_PLUGIN(.init = my_init, .rcpt = my_rcpt, .data_post = my_data_post);
