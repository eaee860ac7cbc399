//! {{name}}: a wasmtp plugin (written by `wasmtp plugin new`).
//!
//! Refuses RCPT to the address in config `refuse` with 550 5.7.1, and adds
//! the header `<header>: <value>` (config `header`, default X-Checked-By;
//! `value`, default "{{name}}") to every message at data-post.

use wasmtp_plugin_sdk::{
    Config, Connection, Hooks, Param, Plugin, Reply, Transaction, Verdict, export_plugin,
};

struct MyPlugin {
    refuse: Option<String>,
    header: String,
    value: String,
}

impl Plugin for MyPlugin {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Self {
            refuse: config.str("refuse").map(str::to_ascii_lowercase),
            header: config.str("header").unwrap_or("X-Checked-By").to_string(),
            value: config.str("value").unwrap_or("{{name}}").to_string(),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::RCPT | Hooks::DATA_POST
    }

    fn rcpt(&mut self, _: &Connection, _: &Transaction, rcpt: &str, _: &[Param]) -> Verdict {
        if self.refuse.as_deref() == Some(rcpt.to_ascii_lowercase().as_str()) {
            let text = format!("<{rcpt}>: recipient refused by {{name}}");
            return Verdict::Deny(Reply::full(550, "5.7.1", text));
        }
        Verdict::Declined
    }

    fn data_post(&mut self, _: &Connection, txn: &Transaction) -> Verdict {
        if let Err(e) = txn.add_header(&self.header, &self.value) {
            wasmtp_plugin_sdk::warn(&format!("cannot add {}: {e}", self.header));
        }
        Verdict::Declined
    }
}

export_plugin!(MyPlugin);
