// {{name}}: a wasmtp plugin (written by `wasmtp plugin new`).
//
// Refuses RCPT to the address in config `refuse` with 550 5.7.1, and adds
// the header `<header>: <value>` (config `header`, default X-Checked-By;
// `value`, default "{{name}}") to every message at data-post.
import { DECLINED, deny, log } from "./wasmtp.js";

let refuse = null;
let header = "X-Checked-By";
let value = "{{name}}";

export default {
  init(config) {
    refuse = typeof config.refuse === "string" ? config.refuse.toLowerCase() : null;
    header = config.header ?? header;
    value = config.value ?? value;
  },

  rcpt(conn, txn, recipient) {
    if (refuse !== null && recipient.toLowerCase() === refuse) {
      return deny(550, "5.7.1", `<${recipient}>: recipient refused by {{name}}`);
    }
    return DECLINED;
  },

  dataPost(conn, txn) {
    try {
      txn.addHeader(header, value);
    } catch (e) {
      log.warn(`cannot add ${header}: ${e}`);
    }
    return DECLINED;
  },
};
