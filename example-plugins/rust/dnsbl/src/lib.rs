//! Refuse clients whose IP address a DNS blocklist lists (RFC 5782;
//! qpsmtpd `dnsbl`, Haraka `dnsbl`).
//!
//! For each configured zone the plugin asks `<reversed ip>.<zone>` for A
//! records (IPv4: octets reversed; IPv6: 32 nibbles reversed). The first
//! zone that lists the client refuses it with `554 5.7.1` and the entry's
//! TXT text (or "<ip> is listed in <zone>"); NXDOMAIN (and a name without
//! A records) means "not listed". A lookup that fails (SERVFAIL, timeout,
//! DNS not granted, query budget spent) follows `on_error`.
//!
//! Config keys (see README.md): `zones` (required), `hook` ("rcpt" default,
//! or "connect"), `on_error` ("pass" default, or "tempfail"),
//! `allow_networks` (CIDR list never checked), `allow_recipients`
//! (addresses or local parts accepted even from a listed client, `hook =
//! "rcpt"` only; default `["postmaster", "abuse"]`), `skip_authenticated`
//! (default true) and `skip_relay_clients` (default true).
//!
//! Grants: `dns = true`.

use std::net::IpAddr;

use ipnet::IpNet;
use wasmtp_plugin_sdk::dns::{self, DnsError, Listing};
use wasmtp_plugin_sdk::{
    Config, Connection, Hooks, LogLevel, Param, Plugin, Reply, Transaction, Verdict, export_plugin,
    log,
};

/// Longest reply text taken from a zone's TXT record.
const MAX_TEXT: usize = 300;

/// When the plugin acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// At the greeting: a listed client never gets to say HELO.
    Connect,
    /// At each RCPT, so `allow_recipients` (postmaster) still get mail.
    Rcpt,
}

/// What a failed lookup means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnError {
    /// Let the client through and leave the note `dnsbl.error`.
    Pass,
    /// Answer `451 4.4.3` so the client retries later.
    Tempfail,
}

/// The outcome of checking every zone, computed once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// No zone lists the client and every lookup answered.
    Clean,
    /// A zone lists the client: the reply text.
    Listed { zone: String, text: String },
    /// No zone lists the client but a lookup failed.
    Failed { zone: String, reason: String },
    /// The client is not checked (allow-listed, authenticated, relay client).
    Skipped,
}

struct Dnsbl {
    zones: Vec<String>,
    when: When,
    on_error: OnError,
    allow_networks: Vec<IpNet>,
    allow_recipients: Vec<String>,
    skip_authenticated: bool,
    skip_relay_clients: bool,
    /// The outcome for the connection with this id, once known. Keyed by
    /// the session id because a pooled instance serves many connections.
    outcome: Option<(String, Outcome)>,
}

/// Makes a zone's TXT text safe for a reply line: no control characters,
/// bounded length.
fn reply_text(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    match clean.char_indices().nth(MAX_TEXT) {
        Some((cut, _)) => clean[..cut].to_string(),
        None => clean.to_string(),
    }
}

impl Dnsbl {
    fn skipped(&self, conn: &Connection, ip: IpAddr) -> bool {
        (self.skip_relay_clients && conn.relay_client())
            || (self.skip_authenticated && conn.auth_user().is_some())
            || self.allow_networks.iter().any(|net| net.contains(&ip))
    }

    fn check(&self, conn: &Connection) -> Outcome {
        let remote = conn.remote_ip();
        let Ok(ip) = remote.parse::<IpAddr>() else {
            return Outcome::Failed {
                zone: String::new(),
                reason: format!("client address {remote:?} is not an IP address"),
            };
        };
        if self.skipped(conn, ip) {
            return Outcome::Skipped;
        }
        let mut failure = None;
        for zone in &self.zones {
            match dns::dnsbl(ip, zone) {
                Ok(Listing::NotListed) => {}
                Ok(Listing::Listed { codes, text }) => {
                    let codes: Vec<String> = codes.iter().map(ToString::to_string).collect();
                    log(
                        LogLevel::Info,
                        "client listed",
                        &[("ip", &remote), ("zone", zone), ("codes", &codes.join(","))],
                    );
                    let text = text
                        .map(|t| reply_text(&t))
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| format!("{ip} is listed in {zone}"));
                    return Outcome::Listed {
                        zone: zone.clone(),
                        text,
                    };
                }
                Err(err) => {
                    let level = if matches!(err, DnsError::Refused(_) | DnsError::Invalid(_)) {
                        LogLevel::Error
                    } else {
                        LogLevel::Warn
                    };
                    let reason = err.reason();
                    log(
                        level,
                        "dnsbl lookup failed",
                        &[("ip", &remote), ("zone", zone), ("error", &reason)],
                    );
                    failure.get_or_insert((zone.clone(), reason));
                }
            }
        }
        match failure {
            Some((zone, reason)) => Outcome::Failed { zone, reason },
            None => Outcome::Clean,
        }
    }

    /// The connection's outcome, looked up at the first call.
    fn outcome(&mut self, conn: &Connection) -> Outcome {
        let id = conn.id();
        if let Some((seen, o)) = &self.outcome
            && *seen == id
        {
            return o.clone();
        }
        let o = self.check(conn);
        match &o {
            Outcome::Listed { zone, .. } => conn.set_note("dnsbl.listed", zone),
            Outcome::Failed { zone, reason } => {
                conn.set_note("dnsbl.error", &format!("{zone}: {reason}"))
            }
            Outcome::Clean | Outcome::Skipped => {}
        }
        self.outcome = Some((id, o.clone()));
        o
    }

    fn verdict(&mut self, conn: &Connection) -> Verdict {
        match self.outcome(conn) {
            Outcome::Clean | Outcome::Skipped => Verdict::Declined,
            Outcome::Listed { text, .. } => Verdict::Deny(Reply::full(554, "5.7.1", text)),
            Outcome::Failed { zone, .. } => match self.on_error {
                OnError::Pass => Verdict::Declined,
                OnError::Tempfail => Verdict::DenySoft(Reply::full(
                    451,
                    "4.4.3",
                    format!("blocklist {zone} unavailable, try again later"),
                )),
            },
        }
    }

    fn recipient_allowed(&self, rcpt: &str) -> bool {
        let rcpt = rcpt.to_ascii_lowercase();
        let local = rcpt.rsplit_once('@').map_or(rcpt.as_str(), |(l, _)| l);
        self.allow_recipients
            .iter()
            .any(|a| *a == rcpt || (!a.contains('@') && a == local))
    }
}

fn parse_networks(config: &Config) -> Result<Vec<IpNet>, String> {
    config
        .strings("allow_networks")
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("allow_networks: {s:?} is not a network (CIDR) or address"))
        })
        .collect()
}

impl Plugin for Dnsbl {
    fn init(config: &Config) -> Result<Self, String> {
        let zones: Vec<String> = config
            .strings("zones")
            .into_iter()
            .map(|z| z.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|z| !z.is_empty())
            .collect();
        if zones.is_empty() {
            return Err("zones: at least one DNSBL zone is required".into());
        }
        let when = match config.str("hook").unwrap_or("rcpt") {
            "rcpt" => When::Rcpt,
            "connect" => When::Connect,
            other => {
                return Err(format!(
                    "hook must be \"rcpt\" or \"connect\", not {other:?}"
                ));
            }
        };
        let on_error = match config.str("on_error").unwrap_or("pass") {
            "pass" => OnError::Pass,
            "tempfail" => OnError::Tempfail,
            other => {
                return Err(format!(
                    "on_error must be \"pass\" or \"tempfail\", not {other:?}"
                ));
            }
        };
        let allow_recipients = if config.get("allow_recipients").is_some() {
            config.strings("allow_recipients")
        } else {
            vec!["postmaster".into(), "abuse".into()]
        };
        Ok(Self {
            zones,
            when,
            on_error,
            allow_networks: parse_networks(config)?,
            allow_recipients: allow_recipients
                .into_iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
            skip_authenticated: config.bool("skip_authenticated").unwrap_or(true),
            skip_relay_clients: config.bool("skip_relay_clients").unwrap_or(true),
            outcome: None,
        })
    }

    fn hooks(&self) -> Hooks {
        match self.when {
            When::Connect => Hooks::CONNECT,
            When::Rcpt => Hooks::RCPT,
        }
    }

    fn connect(&mut self, conn: &Connection) -> Verdict {
        self.verdict(conn)
    }

    fn rcpt(&mut self, conn: &Connection, _t: &Transaction, rcpt: &str, _p: &[Param]) -> Verdict {
        if self.recipient_allowed(rcpt) {
            return Verdict::Declined;
        }
        // Authentication may have happened after an earlier RCPT's check.
        if self.skip_authenticated && conn.auth_user().is_some() {
            return Verdict::Declined;
        }
        self.verdict(conn)
    }
}

export_plugin!(Dnsbl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_drops_controls_and_bounds_length() {
        assert_eq!(reply_text(" listed\r\nsee x "), "listed  see x");
        assert_eq!(reply_text(&"a".repeat(1000)).len(), MAX_TEXT);
    }
}
