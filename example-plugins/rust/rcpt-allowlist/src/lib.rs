//! Accept only recipients in configured domains or addresses (qpsmtpd `rcpt_ok`).
//!
//! Config keys: `domains` (list), `addresses` (list), `relay_clients` (bool,
//! default true: a relay client is left to the core's policy), `on_match`
//! ("ok" accepts and ends the chain, "declined" lets later plugins decide;
//! default "ok").

use wasmtp_plugin_sdk::{
    Config, Connection, Hooks, Param, Plugin, Transaction, Verdict, export_plugin,
};

struct RcptAllowlist {
    domains: Vec<String>,
    addresses: Vec<String>,
    relay_clients: bool,
    accept: bool,
}

impl Plugin for RcptAllowlist {
    fn init(config: &Config) -> Result<Self, String> {
        let lower = |v: Vec<String>| {
            v.into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        let accept = match config.str("on_match").unwrap_or("ok") {
            "ok" => true,
            "declined" => false,
            other => {
                return Err(format!(
                    "on_match must be \"ok\" or \"declined\", not {other:?}"
                ));
            }
        };
        let me = Self {
            domains: lower(config.strings("domains")),
            addresses: lower(config.strings("addresses")),
            relay_clients: config.bool("relay_clients").unwrap_or(true),
            accept,
        };
        if me.domains.is_empty() && me.addresses.is_empty() {
            return Err("rcpt-allowlist needs `domains` or `addresses`".into());
        }
        Ok(me)
    }

    fn hooks(&self) -> Hooks {
        Hooks::RCPT
    }

    fn rcpt(
        &mut self,
        conn: &Connection,
        txn: &Transaction,
        rcpt: &str,
        _params: &[Param],
    ) -> Verdict {
        let addr = rcpt.to_ascii_lowercase();
        let domain = addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if self.addresses.contains(&addr) || self.domains.iter().any(|d| d == domain) {
            let n: u32 = txn
                .note("rcpt_allowlist.accepted")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            txn.set_note("rcpt_allowlist.accepted", &(n + 1).to_string());
            return if self.accept {
                Verdict::Ok
            } else {
                Verdict::Declined
            };
        }
        if self.relay_clients && conn.relay_client() {
            return Verdict::Declined;
        }
        Verdict::deny("5.7.1", format!("<{rcpt}>: recipient not accepted here"))
    }
}

export_plugin!(RcptAllowlist);
