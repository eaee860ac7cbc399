//! What a reload changed: the config file's keys as written, old against
//! new, one [`Change`] per key, and which keys need a restart.
//!
//! Pure (no I/O): the reloader compares the keys it last applied with the
//! file it just read for the lines it logs, and the keys the process
//! started with for the ones that cannot change live.

use toml::{Table, Value};

/// Longest rendering of one value in a change line.
const MAX_VALUE: usize = 160;

/// One key whose value differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The dotted key path: `limits.max_message_size`, `listeners[0].address`.
    pub key: String,
    /// The old value as TOML (`None`: not set, the default applied).
    pub old: Option<String>,
    /// The new value as TOML (`None`: removed, the default applies).
    pub new: Option<String>,
}

impl Change {
    /// Whether the change takes effect only after a restart: listener
    /// addresses, modes and PROXY protocol, listeners added or removed,
    /// `[server] control_socket` and `ipv6_prefix_per_ip`, the AUTH
    /// failure throttle, `[delivery]`, `[metrics]`, `[log]`, `[kv]` and the
    /// plugin file watcher.
    pub fn needs_restart(&self) -> bool {
        let key = self.key.as_str();
        let section = key.split(['.', '[']).next().unwrap_or(key);
        match section {
            "delivery" | "metrics" | "log" | "kv" => true,
            "listeners" => match key.rsplit_once('.') {
                // a whole listener added or removed
                None => true,
                Some((_, field)) => matches!(field, "address" | "mode" | "proxy_protocol"),
            },
            "server" => matches!(key, "server.control_socket" | "server.ipv6_prefix_per_ip"),
            "auth" => matches!(
                key,
                "auth.max_failures_per_ip" | "auth.failure_window" | "auth.failure_delay"
            ),
            "plugin_host" => matches!(key, "plugin_host.watch" | "plugin_host.watch_interval_ms"),
            _ => false,
        }
    }

    /// Whether the change is under `section` (`auth.users`, `dns`).
    pub fn is_under(&self, section: &str) -> bool {
        self.key
            .strip_prefix(section)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        write!(f, "{} {} → {}", self.key, show(&self.old), show(&self.new))
    }
}

/// Every key whose value differs between `old` and `new`, section by
/// section in key order. Secrets (`password`, `secret`,
/// `token`, `url` keys) are shown as `(changed)`.
pub fn diff(old: &Table, new: &Table) -> Vec<Change> {
    let mut out = Vec::new();
    tables(&mut out, "", old, new);
    out
}

fn join(prefix: &str, key: &str) -> String {
    match prefix.is_empty() {
        true => key.to_string(),
        false => format!("{prefix}.{key}"),
    }
}

fn tables(out: &mut Vec<Change>, prefix: &str, old: &Table, new: &Table) {
    for (k, n) in new {
        values(out, join(prefix, k), old.get(k), Some(n));
    }
    for (k, o) in old {
        if !new.contains_key(k) {
            values(out, join(prefix, k), Some(o), None);
        }
    }
}

fn values(out: &mut Vec<Change>, key: String, old: Option<&Value>, new: Option<&Value>) {
    // A section or array of tables on one side only: key by key.
    let (no_table, no_array) = (Value::Table(Table::new()), Value::Array(Vec::new()));
    let (old, new) = match (old, new) {
        (None, Some(n @ Value::Table(_))) => (Some(&no_table), Some(n)),
        (Some(o @ Value::Table(_)), None) => (Some(o), Some(&no_table)),
        (None, Some(n @ Value::Array(a))) if all_tables(a) => (Some(&no_array), Some(n)),
        (Some(o @ Value::Array(a)), None) if all_tables(a) => (Some(o), Some(&no_array)),
        other => other,
    };
    match (old, new) {
        (Some(Value::Table(o)), Some(Value::Table(n))) => tables(out, &key, o, n),
        (Some(Value::Array(o)), Some(Value::Array(n)))
            if all_tables(o) && all_tables(n) && o != n =>
        {
            for i in 0..o.len().max(n.len()) {
                let (o, n) = (o.get(i), n.get(i));
                match (o, n) {
                    // an entry added or removed: shown whole
                    (None, Some(_)) | (Some(_), None) => push(out, format!("{key}[{i}]"), o, n),
                    _ => values(out, format!("{key}[{i}]"), o, n),
                }
            }
        }
        (o, n) if o != n => push(out, key, o, n),
        _ => {}
    }
}

fn push(out: &mut Vec<Change>, key: String, old: Option<&Value>, new: Option<&Value>) {
    let secret = is_secret(&key);
    out.push(Change {
        old: old.map(|v| render(v, secret)),
        new: new.map(|v| render(v, secret)),
        key,
    });
}

fn all_tables(a: &[Value]) -> bool {
    a.iter().all(Value::is_table)
}

fn is_secret(key: &str) -> bool {
    let last = key.rsplit(['.', '[']).next().unwrap_or(key).to_lowercase();
    ["password", "secret", "token", "url"]
        .iter()
        .any(|s| last.contains(s))
}

fn render(v: &Value, secret: bool) -> String {
    if secret {
        return "(changed)".into();
    }
    let text = redacted(v).to_string();
    match text.char_indices().nth(MAX_VALUE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `v` with the values of secret keys inside it replaced.
fn redacted(v: &Value) -> Value {
    match v {
        Value::Table(t) => Value::Table(
            t.iter()
                .map(|(k, v)| {
                    let v = match is_secret(k) {
                        true => Value::String("(hidden)".into()),
                        false => redacted(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Table {
        toml::from_str(s).unwrap()
    }

    fn lines(old: &str, new: &str) -> Vec<String> {
        diff(&t(old), &t(new))
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn scalar_changes_added_and_removed_keys() {
        assert_eq!(
            lines(
                "[limits]\nmax_message_size = \"10M\"\nmax_recipients = 100\n",
                "[limits]\nmax_message_size = \"20M\"\n[relay]\nrelay_networks = [\"10.0.0.0/8\"]\n"
            ),
            [
                "limits.max_message_size \"10M\" → \"20M\"",
                "limits.max_recipients 100 → (unset)",
                "relay.relay_networks (unset) → [\"10.0.0.0/8\"]",
            ]
        );
        assert!(
            lines(
                "[limits]\nmax_recipients = 100\n",
                "[limits]\nmax_recipients = 100\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn arrays_of_tables_by_index_and_secrets_hidden() {
        let old = "[[listeners]]\naddress = \"127.0.0.1:25\"\n\
                   [[auth.users]]\nusername = \"a\"\npassword_hash = \"x\"\n";
        let new = "[[listeners]]\naddress = \"127.0.0.1:26\"\n[[listeners]]\naddress = \"127.0.0.1:27\"\n\
                   [[auth.users]]\nusername = \"a\"\npassword_hash = \"y\"\n";
        let changes = diff(&t(old), &t(new));
        let text: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            text,
            [
                "auth.users[0].password_hash (changed) → (changed)",
                "listeners[0].address \"127.0.0.1:25\" → \"127.0.0.1:26\"",
                "listeners[1] (unset) → { address = \"127.0.0.1:27\" }",
            ]
        );
        let restart: Vec<bool> = changes.iter().map(Change::needs_restart).collect();
        assert_eq!(restart, [false, true, true]);
        assert!(changes[0].is_under("auth.users"));
        assert!(!changes[0].is_under("auth.user"));
    }

    #[test]
    fn sections_on_one_side_compared_key_by_key() {
        assert_eq!(
            lines(
                "",
                "[server]\nhostname = \"mx.test\"\n[[auth.users]]\nusername = \"b\"\npassword_hash = \"h\"\n"
            ),
            [
                "auth.users[0] (unset) → { password_hash = \"(hidden)\", username = \"b\" }",
                "server.hostname (unset) → \"mx.test\"",
            ]
        );
    }

    #[test]
    fn which_keys_need_a_restart() {
        let c = |key: &str| Change {
            key: key.into(),
            old: None,
            new: None,
        };
        for key in [
            "delivery.mode",
            "kv.backend",
            "metrics.listen",
            "log.filter",
            "server.control_socket",
            "listeners[0].mode",
            "listeners[2]",
            "auth.failure_delay",
            "plugin_host.watch",
        ] {
            assert!(c(key).needs_restart(), "{key}");
        }
        for key in [
            "limits.max_message_size",
            "server.max_connections",
            "server.hostname",
            "tls.cert",
            "relay.relay_networks",
            "auth.users[0].username",
            "dns.resolver",
            "plugins[1].config.x",
            "plugin_host.max_connections",
            "listeners[0].require_auth",
            "listeners[0].proxy_trusted",
        ] {
            assert!(!c(key).needs_restart(), "{key}");
        }
    }
}
