//! Refuse bare-IP, non-FQDN or our-own-name HELO/EHLO (qpsmtpd `helo`).
//!
//! Config keys: `our_names` (list of names that only we may use),
//! `reject_bare_ip` (default true), `require_fqdn` (default true),
//! `check_literal` (default true: an address literal `[1.2.3.4]` must be the
//! client's own address), `action` ("deny" refuses at HELO, "note" only
//! leaves the connection note `helo_check.fail` = reason; default "deny").

use std::net::IpAddr;

use wasmtp_plugin_sdk::{Config, Connection, Hooks, Plugin, Verdict, export_plugin};

struct HeloCheck {
    our_names: Vec<String>,
    reject_bare_ip: bool,
    require_fqdn: bool,
    check_literal: bool,
    deny: bool,
}

impl HeloCheck {
    fn problem(&self, conn: &Connection, host: &str) -> Option<String> {
        let name = host.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Some("empty HELO name".into());
        }
        if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            let literal = literal.strip_prefix("ipv6:").unwrap_or(literal);
            let Ok(ip) = literal.parse::<IpAddr>() else {
                return Some(format!("invalid address literal {host}"));
            };
            let remote = conn.remote_ip().parse::<IpAddr>().ok();
            if self.check_literal && remote != Some(ip) {
                return Some(format!("address literal {host} is not your address"));
            }
            return None;
        }
        if self.reject_bare_ip && name.parse::<IpAddr>().is_ok() {
            return Some(format!("bare IP address {host} (use an address literal)"));
        }
        if self.our_names.contains(&name) && !conn.relay_client() {
            return Some(format!("{host} is my name, not yours"));
        }
        let labels_ok = name.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if self.require_fqdn && (!name.contains('.') || !labels_ok) {
            return Some(format!("{host} is not a fully qualified domain name"));
        }
        None
    }

    fn check(&self, conn: &Connection, host: &str) -> Verdict {
        match self.problem(conn, host) {
            None => Verdict::Declined,
            Some(reason) if self.deny => Verdict::deny("5.7.1", format!("HELO refused: {reason}")),
            Some(reason) => {
                conn.set_note("helo_check.fail", &reason);
                Verdict::Declined
            }
        }
    }
}

impl Plugin for HeloCheck {
    fn init(config: &Config) -> Result<Self, String> {
        let deny = match config.str("action").unwrap_or("deny") {
            "deny" => true,
            "note" => false,
            other => {
                return Err(format!(
                    "action must be \"deny\" or \"note\", not {other:?}"
                ));
            }
        };
        Ok(Self {
            our_names: config
                .strings("our_names")
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            reject_bare_ip: config.bool("reject_bare_ip").unwrap_or(true),
            require_fqdn: config.bool("require_fqdn").unwrap_or(true),
            check_literal: config.bool("check_literal").unwrap_or(true),
            deny,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::HELO | Hooks::EHLO
    }

    fn helo(&mut self, conn: &Connection, host: &str) -> Verdict {
        self.check(conn, host)
    }

    fn ehlo(&mut self, conn: &Connection, host: &str) -> Verdict {
        self.check(conn, host)
    }
}

export_plugin!(HeloCheck);
