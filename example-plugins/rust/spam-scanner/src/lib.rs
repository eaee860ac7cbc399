//! Ask SpamAssassin's `spamd` about every message (qpsmtpd `spamassassin`,
//! Haraka `spamassassin`), over the TCP socket the operator granted.
//!
//! At data-post the plugin sends the message (header block and body, as
//! edited by earlier plugins) to spamd with the spamc protocol's `SYMBOLS`
//! command. Spam (spamd's verdict, or a score at or above `reject_score`)
//! is refused with `554 5.7.1`; any other message gets `X-Spam-Score` and
//! `X-Spam-Status` headers (earlier ones are removed, so a sender cannot
//! forge them). When spamd cannot be reached or answers nonsense,
//! `on_error` decides: "tempfail" (default, `451 4.7.1`) or "pass" (the
//! message goes on with the note `spam_scanner.error`).
//!
//! Config keys (see README.md): `address` (default "127.0.0.1:783"),
//! `on_error`, `reject` (default true; false only tags spam with
//! `X-Spam-Status: Yes`), `reject_score` (optional), `max_size` (octets;
//! larger messages are not scanned, default 1048576), `timeout_ms`
//! (default 10000), `user` (spamd user name, optional).
//!
//! Grants: `connect = ["127.0.0.1:783"]` (the configured address).

mod spamc;

use std::net::SocketAddr;
use std::time::Duration;

use wasmtp_plugin_sdk::{
    Config, Connection, Hooks, LogLevel, Plugin, Reply, Transaction, Verdict, export_plugin, log,
};

struct SpamScanner {
    address: SocketAddr,
    tempfail_on_error: bool,
    reject: bool,
    reject_score: Option<f64>,
    max_size: u64,
    timeout: Duration,
    user: Option<String>,
}

/// `X-Spam-Status` in SpamAssassin's own format.
fn status_header(v: &spamc::Verdict) -> String {
    format!(
        "{}, score={:.1} required={:.1} tests={}",
        if v.spam { "Yes" } else { "No" },
        v.score,
        v.threshold,
        if v.symbols.is_empty() {
            "none".to_string()
        } else {
            v.symbols.join(",")
        }
    )
}

impl SpamScanner {
    fn failure(&self, conn: &Connection, reason: &str) -> Verdict {
        log(LogLevel::Warn, "spam scan failed", &[("error", reason)]);
        conn.set_note("spam_scanner.error", reason);
        if self.tempfail_on_error {
            Verdict::DenySoft(Reply::full(
                451,
                "4.7.1",
                "spam scanner unavailable, try again later",
            ))
        } else {
            Verdict::Declined
        }
    }

    fn scan(&self, conn: &Connection, txn: &Transaction) -> Verdict {
        let head = txn.header_block();
        let size = head.len() as u64 + txn.body_size();
        if size > self.max_size {
            log(
                LogLevel::Info,
                "message too large to scan",
                &[("size", &size.to_string())],
            );
            txn.set_note("spam_scanner.skipped", "size");
            return Verdict::Declined;
        }
        let mut message = head;
        message.extend_from_slice(&txn.body());
        let verdict = match spamc::check(self.address, &message, self.user.as_deref(), self.timeout)
        {
            Ok(v) => v,
            Err(reason) => return self.failure(conn, &reason),
        };
        let score = format!("{:.1}", verdict.score);
        let spam = verdict.spam || self.reject_score.is_some_and(|t| verdict.score >= t);
        txn.set_note("spam_scanner.score", &score);
        log(
            LogLevel::Info,
            "scanned",
            &[
                ("score", &score),
                ("spam", if spam { "yes" } else { "no" }),
                ("tests", &verdict.symbols.join(",")),
            ],
        );
        if spam && self.reject {
            return Verdict::Deny(Reply::full(
                554,
                "5.7.1",
                format!("message refused as spam (score {score})"),
            ));
        }
        let edits = [
            txn.replace_header("X-Spam-Score", &score),
            txn.replace_header("X-Spam-Status", &status_header(&verdict)),
        ];
        if let Some(Err(e)) = edits.into_iter().find(Result::is_err) {
            log(LogLevel::Warn, "cannot add headers", &[("error", &e)]);
        }
        Verdict::Declined
    }
}

impl Plugin for SpamScanner {
    fn init(config: &Config) -> Result<Self, String> {
        let address = config.str("address").unwrap_or("127.0.0.1:783");
        let address: SocketAddr = address
            .parse()
            .map_err(|_| format!("address must be IP:port, not {address:?}"))?;
        let tempfail_on_error = match config.str("on_error").unwrap_or("tempfail") {
            "tempfail" => true,
            "pass" => false,
            other => {
                return Err(format!(
                    "on_error must be \"tempfail\" or \"pass\", not {other:?}"
                ));
            }
        };
        let reject_score = match config.get("reject_score") {
            None => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| format!("reject_score must be a number, not {v}"))?,
            ),
        };
        let timeout_ms = config.u64("timeout_ms").unwrap_or(10_000).max(1);
        Ok(Self {
            address,
            tempfail_on_error,
            reject: config.bool("reject").unwrap_or(true),
            reject_score,
            max_size: config.u64("max_size").unwrap_or(1 << 20),
            timeout: Duration::from_millis(timeout_ms),
            user: config.str("user").map(str::to_string),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::DATA_POST
    }

    fn data_post(&mut self, conn: &Connection, txn: &Transaction) -> Verdict {
        self.scan(conn, txn)
    }
}

export_plugin!(SpamScanner);
