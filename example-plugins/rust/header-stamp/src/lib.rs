//! Adds headers from connection facts and from notes left by earlier plugins.
//!
//! Config keys: `prefix` (header name prefix, default "X-Wasmtp"), `notes`
//! (list of note keys; each one found on the transaction or the connection
//! becomes `<prefix>-Note: key=value`), `static` (table of header name →
//! value added as is).

use wasmtp_plugin_sdk::{
    Config, Connection, HelloKind, Hooks, Plugin, Transaction, Verdict, export_plugin,
};

struct HeaderStamp {
    prefix: String,
    notes: Vec<String>,
    fixed: Vec<(String, String)>,
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Plugin for HeaderStamp {
    fn init(config: &Config) -> Result<Self, String> {
        let prefix = config.str("prefix").unwrap_or("X-Wasmtp").to_string();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("invalid header prefix {prefix:?}"));
        }
        let fixed = match config.get("static") {
            Some(v) => v
                .as_object()
                .ok_or("`static` must be a table")?
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Self {
            prefix,
            notes: config.strings("notes"),
            fixed,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::DATA_POST
    }

    fn data_post(&mut self, conn: &Connection, txn: &Transaction) -> Verdict {
        let p = &self.prefix;
        let hello = match conn.hello() {
            HelloKind::Ehlo => "ehlo",
            HelloKind::Helo => "helo",
            HelloKind::None => "none",
        };
        let mut client = format!(
            "{} port={} {}={}",
            conn.remote_ip(),
            conn.remote_port(),
            hello,
            clean(&conn.hello_host())
        );
        if let Some(host) = conn.remote_host() {
            client.push_str(&format!(" rdns={}", clean(&host)));
        }
        let mut edits = vec![
            (
                format!("{p}-Session"),
                format!("{} txn={}", conn.id(), txn.id()),
            ),
            (format!("{p}-Client"), client),
        ];
        if let Some(tls) = conn.tls() {
            edits.push((
                format!("{p}-TLS"),
                format!("{} {}", clean(&tls.protocol), clean(&tls.cipher)),
            ));
        }
        if let Some(user) = conn.auth_user() {
            edits.push((format!("{p}-Auth"), clean(&user)));
        }
        for key in &self.notes {
            if let Some(v) = txn.note(key).or_else(|| conn.note(key)) {
                edits.push((format!("{p}-Note"), format!("{key}={}", clean(&v))));
            }
        }
        edits.extend(self.fixed.iter().cloned());
        for (name, value) in edits {
            if let Err(e) = txn.add_header(&name, &value) {
                wasmtp_plugin_sdk::warn(&format!("cannot add {name}: {e}"));
            }
        }
        txn.set_note("header_stamp.done", "1");
        Verdict::Declined
    }
}

export_plugin!(HeaderStamp);
