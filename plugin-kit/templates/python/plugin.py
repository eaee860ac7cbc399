"""{{name}}: a wasmtp plugin (written by `wasmtp plugin new`).

Refuses RCPT to the address in config `refuse` with 550 5.7.1, and adds the
header `<header>: <value>` (config `header`, default X-Checked-By; `value`,
default "{{name}}") to every message at data-post.
"""

import wasmtp


class MyPlugin(wasmtp.Plugin):
    def init(self, config):
        refuse = config.get("refuse")
        self.refuse = refuse.lower() if isinstance(refuse, str) else None
        self.header = config.get("header", "X-Checked-By")
        self.value = config.get("value", "{{name}}")

    def rcpt(self, conn, txn, recipient, params):
        if self.refuse is not None and recipient.lower() == self.refuse:
            return wasmtp.deny(550, "5.7.1", f"<{recipient}>: recipient refused by {{name}}")
        return wasmtp.DECLINED

    def data_post(self, conn, txn):
        try:
            txn.add_header(self.header, self.value)
        except Exception as e:  # the host refused the edit
            wasmtp.log.warn(f"cannot add {self.header}: {e}")
        return wasmtp.DECLINED


Hooks = wasmtp.export(MyPlugin)  # the class componentize-py exports
