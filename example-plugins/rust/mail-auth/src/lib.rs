//! Mail authentication of incoming mail: SPF (RFC 7208), DKIM verification
//! (RFC 6376, RFC 8463), DMARC (RFC 7489), and one `Authentication-Results`
//! field (RFC 8601) with the gateway's authserv-id.
//!
//! - MAIL: SPF of the MAIL FROM identity (the HELO identity for the null
//!   sender) for the client IP, through the host's `dns` interface
//!   (`viaspf`: lookup and void-lookup limits, macros, `exp=`, IPv6). The
//!   results named in `spf_refuse` are refused (`550 5.7.23` for fail and
//!   softfail, `550 5.7.24` for permerror, `451 4.7.24` for temperror);
//!   by default nothing is refused (tag only).
//! - data-post: every DKIM signature is verified (`viadkim`), DMARC is
//!   evaluated from the SPF and DKIM results, every incoming
//!   `Authentication-Results` field claiming our authserv-id is removed,
//!   and `Authentication-Results` and `Received-SPF` are prepended. A DMARC
//!   failure under `p=reject` is refused with `550 5.7.1`, under
//!   `p=quarantine` tagged with a header field (see `dmarc_reject` and
//!   `dmarc_quarantine`).
//!
//! Results are handed on as transaction notes `auth-results.<method>`
//! holding RFC 8601 resinfo strings (see `results.rs` and README.md).
//!
//! Grants: `dns = true`.

mod dkim;
mod dmarc;
mod results;
mod spf;

use std::net::IpAddr;

use wasmtp_plugin_sdk::{
    Config, Connection, Hooks, LogLevel, Param, Plugin, Reply, Transaction, Verdict, export_plugin,
    log,
};

use crate::dmarc::Policy;
use crate::results::{NOTE_PREFIX, authserv_id, header_value, property, result_of};

/// Note: the `Received-SPF` value computed at MAIL (private to this plugin).
const NOTE_RECEIVED_SPF: &str = "mail-auth.received-spf";
/// Note: set when this transaction is not checked (authenticated or relay client).
const NOTE_SKIPPED: &str = "mail-auth.skipped";

/// What to do with a message whose DMARC evaluation asks for a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Refuse with `550 5.7.1`.
    Reject,
    /// Add the quarantine header field.
    Quarantine,
    /// Only the `Authentication-Results` field.
    Tag,
}

impl Action {
    fn parse(key: &str, value: Option<&str>, default: Self) -> Result<Self, String> {
        match value {
            None => Ok(default),
            Some("reject") => Ok(Self::Reject),
            Some("quarantine") => Ok(Self::Quarantine),
            Some("tag") | Some("none") => Ok(Self::Tag),
            Some(other) => Err(format!(
                "{key} must be \"reject\", \"quarantine\" or \"tag\", not {other:?}"
            )),
        }
    }
}

const SPF_RESULTS: &[&str] = &[
    "none",
    "neutral",
    "pass",
    "fail",
    "softfail",
    "temperror",
    "permerror",
];

struct MailAuth {
    authserv_id: String,
    spf: bool,
    spf_refuse: Vec<String>,
    dkim: bool,
    dmarc: bool,
    dmarc_reject: Action,
    dmarc_quarantine: Action,
    quarantine_header: String,
    received_spf: bool,
    collect_methods: Vec<String>,
    skip_authenticated: bool,
    skip_relay_clients: bool,
}

/// A number 0..100 from the transaction id, for DMARC `pct=` sampling.
fn sample(id: &str) -> u8 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    u8::try_from(h % 100).unwrap_or(0)
}

impl MailAuth {
    fn skipped(&self, conn: &Connection) -> bool {
        (self.skip_relay_clients && conn.relay_client())
            || (self.skip_authenticated && conn.auth_user().is_some())
    }

    /// Removes every `Authentication-Results` field claiming our
    /// authserv-id (RFC 8601 5); the others are kept, in order, at the top.
    fn remove_forged(&self, txn: &Transaction) {
        let values = txn.header("Authentication-Results");
        let forged = values
            .iter()
            .filter(|v| authserv_id(v).as_deref() == Some(self.authserv_id.as_str()))
            .count();
        if forged == 0 {
            return;
        }
        log(
            LogLevel::Info,
            "removed Authentication-Results claiming our authserv-id",
            &[("count", &forged.to_string())],
        );
        txn.remove_header("Authentication-Results");
        for v in values
            .iter()
            .rev()
            .filter(|v| authserv_id(v).as_deref() != Some(self.authserv_id.as_str()))
        {
            if txn.prepend_header("Authentication-Results", v).is_err() {
                log(
                    LogLevel::Warn,
                    "could not keep an Authentication-Results field",
                    &[],
                );
            }
        }
    }

    fn spf_verdict(&self, result: &str, explanation: Option<&str>, domain: &str) -> Verdict {
        if !self.spf_refuse.iter().any(|r| r == result) {
            return Verdict::Declined;
        }
        let text = match explanation.filter(|e| !e.is_empty()) {
            Some(e) => format!("SPF {result} for {domain}: {e}"),
            None => format!("SPF {result} for {domain}"),
        };
        match result {
            "temperror" => Verdict::DenySoft(Reply::full(451, "4.7.24", text)),
            "permerror" => Verdict::Deny(Reply::full(550, "5.7.24", text)),
            _ => Verdict::Deny(Reply::full(550, "5.7.23", text)),
        }
    }
}

impl Plugin for MailAuth {
    fn init(config: &Config) -> Result<Self, String> {
        let authserv_id = config
            .str("authserv_id")
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            })
            .ok_or(
                "authserv_id: the gateway's host name (letters, digits, '.', '-') is required",
            )?;
        let spf_refuse = config.strings("spf_refuse");
        if let Some(bad) = spf_refuse
            .iter()
            .find(|r| !SPF_RESULTS.contains(&r.as_str()))
        {
            return Err(format!("spf_refuse: {bad:?} is not an SPF result"));
        }
        let collect_methods = config.strings("collect_methods");
        if let Some(bad) = collect_methods
            .iter()
            .find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(format!("collect_methods: {bad:?} is not a method name"));
        }
        let quarantine_header = config
            .str("quarantine_header")
            .unwrap_or("X-Quarantine")
            .to_string();
        if quarantine_header.is_empty()
            || !quarantine_header
                .bytes()
                .all(|b| (33..=126).contains(&b) && b != b':')
        {
            return Err("quarantine_header: not a header field name".into());
        }
        Ok(Self {
            authserv_id,
            spf: config.bool("spf").unwrap_or(true),
            spf_refuse,
            dkim: config.bool("dkim").unwrap_or(true),
            dmarc: config.bool("dmarc").unwrap_or(true),
            dmarc_reject: Action::parse(
                "dmarc_reject",
                config.str("dmarc_reject"),
                Action::Reject,
            )?,
            dmarc_quarantine: Action::parse(
                "dmarc_quarantine",
                config.str("dmarc_quarantine"),
                Action::Quarantine,
            )?,
            quarantine_header,
            received_spf: config.bool("received_spf").unwrap_or(true),
            collect_methods,
            skip_authenticated: config.bool("skip_authenticated").unwrap_or(true),
            skip_relay_clients: config.bool("skip_relay_clients").unwrap_or(true),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::MAIL | Hooks::DATA_POST
    }

    fn mail(&mut self, conn: &Connection, txn: &Transaction, sender: &str, _: &[Param]) -> Verdict {
        if self.skipped(conn) {
            txn.set_note(NOTE_SKIPPED, "1");
            return Verdict::Declined;
        }
        if !self.spf {
            return Verdict::Declined;
        }
        let remote = conn.remote_ip();
        let Ok(ip) = remote.parse::<IpAddr>() else {
            return Verdict::Declined;
        };
        let helo = conn.hello_host();
        let outcome = spf::check(ip, sender, &helo, &self.authserv_id);
        log(
            LogLevel::Debug,
            "spf",
            &[
                ("result", outcome.result),
                ("domain", &outcome.domain),
                ("ip", &remote),
            ],
        );
        txn.set_note(&format!("{NOTE_PREFIX}spf"), &outcome.resinfo);
        txn.set_note(NOTE_RECEIVED_SPF, &outcome.received_spf);
        self.spf_verdict(
            outcome.result,
            outcome.explanation.as_deref(),
            &outcome.domain,
        )
    }

    fn data_post(&mut self, conn: &Connection, txn: &Transaction) -> Verdict {
        if txn.note(NOTE_SKIPPED).is_some() || self.skipped(conn) {
            self.remove_forged(txn);
            return Verdict::Declined;
        }
        // Verify on the message as received, before any edit of ours.
        let signatures = if self.dkim {
            dkim::verify(txn)
        } else {
            Vec::new()
        };
        self.remove_forged(txn);
        if self.dkim {
            let dkim_note = if signatures.is_empty() {
                "dkim=none".to_string()
            } else {
                signatures
                    .iter()
                    .map(|s| s.resinfo.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            txn.set_note(&format!("{NOTE_PREFIX}dkim"), &dkim_note);
        }
        let spf_note = txn.note(&format!("{NOTE_PREFIX}spf"));
        let mut refusal = None;
        if self.dmarc {
            let spf = spf_note.as_deref().and_then(|r| {
                let result = result_of(r, "spf")?;
                let domain = property(r, "smtp.mailfrom")
                    .map(|m| m.rsplit('@').next().unwrap_or(m))
                    .or_else(|| property(r, "smtp.helo"))?;
                Some((result, domain))
            });
            let dkim: Vec<(&str, &str)> = signatures
                .iter()
                .filter_map(|s| Some((s.result, s.domain.as_deref()?)))
                .collect();
            let outcome = dmarc::evaluate(&txn.header("From"), spf, &dkim, sample(&txn.id()));
            txn.set_note(&format!("{NOTE_PREFIX}dmarc"), &outcome.resinfo);
            let action = match outcome.disposition {
                Policy::Reject => self.dmarc_reject,
                Policy::Quarantine => self.dmarc_quarantine,
                Policy::None => Action::Tag,
            };
            let from = outcome.from.unwrap_or_default();
            match action {
                Action::Reject => {
                    refusal = Some(Verdict::Deny(Reply::full(
                        550,
                        "5.7.1",
                        format!("DMARC policy of {from} refuses this message"),
                    )));
                }
                Action::Quarantine => {
                    if txn
                        .prepend_header(
                            &self.quarantine_header,
                            &format!("dmarc=fail header.from={from}"),
                        )
                        .is_err()
                    {
                        log(LogLevel::Warn, "could not add the quarantine field", &[]);
                    }
                }
                Action::Tag => {}
            }
        }
        let mut methods: Vec<String> = ["spf", "dkim", "dmarc"].map(String::from).to_vec();
        methods.extend(self.collect_methods.iter().cloned());
        let resinfos: Vec<String> = methods
            .iter()
            .filter_map(|m| txn.note(&format!("{NOTE_PREFIX}{m}")))
            .flat_map(|v| {
                v.split("; ")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        if txn
            .prepend_header(
                "Authentication-Results",
                &header_value(&self.authserv_id, &resinfos),
            )
            .is_err()
        {
            log(LogLevel::Warn, "could not add Authentication-Results", &[]);
        }
        if self.received_spf
            && let Some(received) = txn.note(NOTE_RECEIVED_SPF)
            && txn.prepend_header("Received-SPF", &received).is_err()
        {
            log(LogLevel::Warn, "could not add Received-SPF", &[]);
        }
        refusal.unwrap_or(Verdict::Declined)
    }
}

export_plugin!(MailAuth);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_in_range() {
        for id in ["", "a", "0123456789abcdef", "x".repeat(300).as_str()] {
            assert!(sample(id) < 100);
        }
    }
}
