//! The decisions of one delivery attempt, without I/O: given the spooled
//! envelope, its delivery state, what the upstream said of each pending
//! recipient and the time, which recipients are done, deferred or failed,
//! whom the sender is told about (a bounce, a delay warning, or nothing:
//! the backscatter guard of [`Meta::may_notify`]), and when to try again.
//! The worker ([`super::worker`]) does the sending, spooling and file
//! writes around it.

use std::time::Duration;

use super::bounce::Failed;
use super::report::DeliveryStatus;
use super::spool::{Meta, RcptStatus, State};
use crate::delivery::SpoolConfig;
use crate::delivery::client::{ClientError, TxnOutcome};
use crate::protocol::Reply;

/// One pending recipient's result of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The upstream took the message for it: its reply to the data.
    Delivered {
        /// The reply code.
        code: u16,
        /// The reply on one line.
        reply: String,
    },
    /// Try again later.
    Deferred {
        /// The upstream's code, 0 when it gave none.
        code: u16,
        /// RFC 3463 status for a delay warning.
        status: String,
        /// What happened.
        text: String,
    },
    /// Refused for good.
    Failed {
        /// The upstream's code.
        code: u16,
        /// RFC 3463 status.
        status: String,
        /// What happened.
        text: String,
        /// The upstream's reply (`Diagnostic-Code`), when there was one.
        diagnostic: Option<String>,
    },
}

/// The outcome for each of `n` recipients of one transaction (or of the
/// error that ended it).
pub(super) fn classify(
    outcome: &Result<(TxnOutcome, std::net::SocketAddr), ClientError>,
    n: usize,
) -> Vec<Outcome> {
    let o = match outcome {
        Err(e) => {
            // The upstream lacks what the message needs (BINARYMIME,
            // SMTPUTF8): retrying will not help and we do not convert, so
            // it bounces.
            if let Some(r) = e.unsupported_reply() {
                let status = r.enhanced().map(|c| c.to_string()).unwrap_or_default();
                let text = r.text();
                return (0..n)
                    .map(|_| Outcome::Failed {
                        code: r.code(),
                        status: status.clone(),
                        text: text.clone(),
                        diagnostic: None,
                    })
                    .collect();
            }
            return (0..n)
                .map(|_| Outcome::Deferred {
                    code: 0,
                    // No (usable) answer from the upstream.
                    status: "4.4.1".into(),
                    text: e.to_string(),
                })
                .collect();
        }
        Ok((o, _)) => o,
    };
    let from_reply = |r: &Reply| {
        if r.is_permanent() {
            Outcome::Failed {
                code: r.code(),
                status: r.enhanced_or_default().to_string(),
                text: r.text(),
                diagnostic: Some(r.one_line()),
            }
        } else {
            Outcome::Deferred {
                code: r.code(),
                status: r.enhanced_or_default().to_string(),
                text: r.one_line(),
            }
        }
    };
    (0..n)
        .map(|i| {
            let r = o.rcpts.get(i).unwrap_or(&o.mail);
            if !r.is_success() {
                return from_reply(r);
            }
            match &o.data {
                Some(d) if d.is_success() => Outcome::Delivered {
                    code: d.code(),
                    reply: d.one_line(),
                },
                Some(d) => from_reply(d),
                None => Outcome::Deferred {
                    code: 0,
                    status: "4.4.1".into(),
                    text: "message not sent".into(),
                },
            }
        })
        .collect()
}

/// What the planner needs of `[delivery.spool]`.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    /// Delay before the first retry; doubles per failed attempt.
    pub first_retry: Duration,
    /// Cap of the retry delay.
    pub max_retry: Duration,
    /// Pending this long after acceptance: failed (`4.4.7`).
    pub max_lifetime: Duration,
    /// Pending this long: one delay warning.
    pub delay_warning_after: Option<Duration>,
    /// Tell untrusted senders of unverified recipients too.
    pub bounce_unverified: bool,
}

impl Policy {
    /// The policy of a spool config.
    pub(super) fn new(c: &SpoolConfig) -> Self {
        Self {
            first_retry: c.first_retry,
            max_retry: c.max_retry,
            max_lifetime: c.max_lifetime,
            delay_warning_after: c.delay_warning_after,
            bounce_unverified: c.bounce_unverified,
        }
    }

    /// The delay before attempt `attempts + 1`: `first_retry` doubled per
    /// attempt after the first, capped at `max_retry`.
    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        self.first_retry
            .checked_mul(factor)
            .unwrap_or(self.max_retry)
            .min(self.max_retry)
    }
}

/// One recipient's line of the attempt, for the log and the `delivery`
/// hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RecipientReport {
    /// The recipient.
    pub recipient: String,
    /// What happened.
    pub status: DeliveryStatus,
    /// The upstream's code, 0 when it gave none.
    pub code: u16,
    /// The upstream's reply or a description.
    pub text: String,
}

/// The decisions of one attempt.
#[derive(Debug)]
pub(super) struct Plan {
    /// The state after the attempt: `attempts` counted, recipients updated,
    /// `next_attempt_ms` set for a retry.
    pub state: State,
    /// One line per recipient tried.
    pub reports: Vec<RecipientReport>,
    /// Failed recipients the sender is told of in one bounce.
    pub bounce: Vec<Failed>,
    /// Failed recipients the sender is not told of (null sender, or the
    /// backscatter guard).
    pub untold: Vec<Failed>,
    /// Deferred recipients for the message's one delay warning (empty: no
    /// warning now).
    pub warn: Vec<Failed>,
}

/// No recipient is left pending: the message leaves the spool.
pub(super) fn done(state: &State) -> bool {
    state
        .recipients
        .iter()
        .all(|r| r.status != RcptStatus::Pending)
}

/// Plans the attempt that tried the `pending` recipients (indexes into
/// `state.recipients`) and got `outcomes` (one each, same order) at
/// `now_ms`.
pub(super) fn plan(
    meta: &Meta,
    state: &State,
    pending: &[usize],
    outcomes: Vec<Outcome>,
    now_ms: u64,
    policy: &Policy,
) -> Plan {
    let mut state = state.clone();
    state.attempts += 1;
    let age = now_ms.saturating_sub(meta.created_ms);
    let expired = u128::from(age) >= policy.max_lifetime.as_millis();
    let mut failed = Vec::new();
    let mut delayed = Vec::new();
    let mut reports = Vec::new();
    for (&i, o) in pending.iter().zip(outcomes) {
        let Some(rcpt) = state.recipients.get_mut(i) else {
            continue;
        };
        let (status, code, text) = match o {
            Outcome::Delivered { code, reply } => {
                rcpt.status = RcptStatus::Delivered;
                rcpt.last = Some(reply.clone());
                (DeliveryStatus::Delivered, code, reply)
            }
            Outcome::Failed {
                code,
                status,
                text,
                diagnostic,
            } => {
                rcpt.status = RcptStatus::Failed;
                rcpt.last = diagnostic.clone().or(Some(text.clone()));
                failed.push(Failed {
                    recipient: rcpt.address.clone(),
                    status,
                    diagnostic,
                    reason: text.clone(),
                });
                (DeliveryStatus::Bounced, code, text)
            }
            Outcome::Deferred { code, text, .. } if expired => {
                rcpt.status = RcptStatus::Failed;
                let reason = format!(
                    "delivery time expired after {} attempts; last error: {text}",
                    state.attempts
                );
                rcpt.last = Some(reason.clone());
                failed.push(Failed {
                    recipient: rcpt.address.clone(),
                    status: "4.4.7".into(),
                    diagnostic: (code != 0).then(|| text.clone()),
                    reason: reason.clone(),
                });
                (DeliveryStatus::Bounced, code, reason)
            }
            Outcome::Deferred { code, status, text } => {
                rcpt.last = Some(text.clone());
                delayed.push(Failed {
                    recipient: rcpt.address.clone(),
                    status,
                    diagnostic: (code != 0).then(|| text.clone()),
                    reason: text.clone(),
                });
                (DeliveryStatus::Deferred, code, text)
            }
        };
        reports.push(RecipientReport {
            recipient: rcpt.address.clone(),
            status,
            code,
            text,
        });
    }
    let tell = |f: &Failed| meta.may_notify(&f.recipient, policy.bounce_unverified);
    let (bounce, untold): (Vec<Failed>, Vec<Failed>) = failed.into_iter().partition(tell);
    let warn_due = policy
        .delay_warning_after
        .is_some_and(|after| u128::from(age) >= after.as_millis());
    let warn = if warn_due && !state.delay_warned {
        delayed.into_iter().filter(tell).collect()
    } else {
        Vec::new()
    };
    let delay = u64::try_from(policy.backoff(state.attempts).as_millis()).unwrap_or(u64::MAX);
    state.next_attempt_ms = now_ms.saturating_add(delay);
    Plan {
        state,
        reports,
        bounce,
        untold,
        warn,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::protocol::params::BodyType;

    const HOUR: u64 = 3_600_000;

    fn policy() -> Policy {
        Policy {
            first_retry: Duration::from_secs(300),
            max_retry: Duration::from_secs(4 * 3600),
            max_lifetime: Duration::from_secs(5 * 86400),
            delay_warning_after: Some(Duration::from_secs(4 * 3600)),
            bounce_unverified: false,
        }
    }

    fn meta(sender: &str, trusted: bool, verified: &[&str]) -> Meta {
        Meta {
            id: "Q1".into(),
            sender: sender.into(),
            recipients: vec!["a@x".into(), "b@x".into()],
            created_ms: 0,
            size: 10,
            notes: BTreeMap::new(),
            body: BodyType::SevenBit,
            smtputf8: false,
            trusted,
            verified: verified.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ok() -> Outcome {
        Outcome::Delivered {
            code: 250,
            reply: "250 2.0.0 Ok".into(),
        }
    }

    fn refused() -> Outcome {
        Outcome::Failed {
            code: 550,
            status: "5.1.1".into(),
            text: "no such user".into(),
            diagnostic: Some("550 5.1.1 no such user".into()),
        }
    }

    fn later() -> Outcome {
        Outcome::Deferred {
            code: 451,
            status: "4.3.0".into(),
            text: "451 4.3.0 try later".into(),
        }
    }

    fn run(m: &Meta, outcomes: Vec<Outcome>, now: u64) -> Plan {
        plan(m, &State::fresh(m), &[0, 1], outcomes, now, &policy())
    }

    fn names(f: &[Failed]) -> Vec<&str> {
        f.iter().map(|f| f.recipient.as_str()).collect()
    }

    /// (case, trusted, verified, outcomes, age, done, bounced, untold, warned)
    #[test]
    fn attempts_table() {
        type Row<'a> = (
            &'a str,
            &'a str,
            bool,
            &'a [&'a str],
            Vec<Outcome>,
            u64,
            bool,
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let rows: Vec<Row> = vec![
            (
                "all delivered",
                "s@y",
                true,
                &[],
                vec![ok(), ok()],
                0,
                true,
                &[],
                &[],
                &[],
            ),
            (
                "trusted: bounce",
                "s@y",
                true,
                &[],
                vec![ok(), refused()],
                0,
                true,
                &["b@x"],
                &[],
                &[],
            ),
            (
                "untrusted: untold",
                "s@y",
                false,
                &[],
                vec![ok(), refused()],
                0,
                true,
                &[],
                &["b@x"],
                &[],
            ),
            (
                "untrusted, verified",
                "s@y",
                false,
                &["b@x"],
                vec![refused(), refused()],
                0,
                true,
                &["b@x"],
                &["a@x"],
                &[],
            ),
            (
                "null sender",
                "",
                true,
                &[],
                vec![refused(), ok()],
                0,
                true,
                &[],
                &["a@x"],
                &[],
            ),
            (
                "deferred, young",
                "s@y",
                true,
                &[],
                vec![later(), ok()],
                HOUR,
                false,
                &[],
                &[],
                &[],
            ),
            (
                "deferred, warn",
                "s@y",
                true,
                &[],
                vec![later(), ok()],
                5 * HOUR,
                false,
                &[],
                &[],
                &["a@x"],
            ),
            (
                "deferred, warn untrusted",
                "s@y",
                false,
                &["b@x"],
                vec![later(), later()],
                5 * HOUR,
                false,
                &[],
                &[],
                &["b@x"],
            ),
            (
                "expired",
                "s@y",
                true,
                &[],
                vec![later(), ok()],
                6 * 24 * HOUR,
                true,
                &["a@x"],
                &[],
                &[],
            ),
            (
                "expired untrusted",
                "s@y",
                false,
                &[],
                vec![later(), ok()],
                6 * 24 * HOUR,
                true,
                &[],
                &["a@x"],
                &[],
            ),
        ];
        for (case, sender, trusted, verified, outcomes, age, finished, bounced, untold, warned) in
            rows
        {
            let m = meta(sender, trusted, verified);
            let p = run(&m, outcomes, age);
            assert_eq!(done(&p.state), finished, "{case}: done");
            assert_eq!(names(&p.bounce), bounced, "{case}: bounce");
            assert_eq!(names(&p.untold), untold, "{case}: untold");
            assert_eq!(names(&p.warn), warned, "{case}: warn");
            assert_eq!(p.state.attempts, 1, "{case}");
            assert_eq!(p.reports.len(), 2, "{case}");
        }
    }

    #[test]
    fn statuses_and_reports_follow_the_outcomes() {
        let m = meta("s@y", true, &[]);
        let p = run(&m, vec![ok(), refused()], 0);
        assert_eq!(p.state.recipients[0].status, RcptStatus::Delivered);
        assert_eq!(p.state.recipients[1].status, RcptStatus::Failed);
        assert_eq!(
            p.state.recipients[1].last.as_deref(),
            Some("550 5.1.1 no such user")
        );
        assert_eq!(p.reports[0].status, DeliveryStatus::Delivered);
        assert_eq!(p.reports[1].status, DeliveryStatus::Bounced);
        assert_eq!(p.reports[1].code, 550);
        assert_eq!(p.bounce[0].status, "5.1.1");
        let expired = run(&m, vec![later(), ok()], 6 * 24 * HOUR);
        assert_eq!(expired.bounce[0].status, "4.4.7");
        assert!(
            expired.bounce[0].reason.contains("try later"),
            "{:?}",
            expired.bounce[0]
        );
    }

    #[test]
    fn one_warning_per_message() {
        let m = meta("s@y", true, &[]);
        let mut state = State::fresh(&m);
        state.delay_warned = true;
        let p = plan(
            &m,
            &state,
            &[0, 1],
            vec![later(), later()],
            5 * HOUR,
            &policy(),
        );
        assert!(p.warn.is_empty());
        let off = Policy {
            delay_warning_after: None,
            ..policy()
        };
        let p = plan(
            &m,
            &State::fresh(&m),
            &[0, 1],
            vec![later(), later()],
            5 * HOUR,
            &off,
        );
        assert!(p.warn.is_empty());
    }

    #[test]
    fn retries_back_off_doubling_to_the_cap() {
        let p = policy();
        let secs: Vec<u64> = (1..=8).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(secs, [300, 600, 1200, 2400, 4800, 9600, 14400, 14400]);
        assert_eq!(p.backoff(u32::MAX).as_secs(), 14400);
        let m = meta("s@y", true, &[]);
        let plan = run(&m, vec![later(), ok()], 1000);
        assert_eq!(plan.state.next_attempt_ms, 1000 + 300_000);
    }

    #[test]
    fn only_pending_recipients_are_touched() {
        let m = meta("s@y", true, &[]);
        let mut state = State::fresh(&m);
        state.recipients[0].status = RcptStatus::Delivered;
        let p = plan(&m, &state, &[1], vec![refused()], 0, &policy());
        assert_eq!(p.state.recipients[0].status, RcptStatus::Delivered);
        assert_eq!(p.reports.len(), 1);
        assert_eq!(p.reports[0].recipient, "b@x");
        assert!(done(&p.state));
    }

    #[test]
    fn an_error_defers_everyone_an_unsupported_extension_fails_everyone() {
        let lost = Err(ClientError::Lost {
            stage: "connect",
            reason: "refused".into(),
        });
        let o = classify(&lost, 2);
        assert!(
            o.iter()
                .all(|o| matches!(o, Outcome::Deferred { code: 0, .. }))
        );
        let unsupported = Err(ClientError::Unsupported {
            peer: "127.0.0.1:25".parse().unwrap(),
            extension: "SMTPUTF8",
        });
        let o = classify(&unsupported, 2);
        assert!(
            o.iter().all(|o| matches!(o, Outcome::Failed { .. })),
            "{o:?}"
        );
    }
}
