//! The scheduler (timers → ready ids) and the delivery workers (one attempt
//! per ready id: send, classify per recipient, bounce, retry or remove).

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Shared;
use super::bounce::{self, Failed};
use super::report::{DeliveryReport, DeliveryStatus};
use super::spool::{self, RcptStatus};
use crate::delivery::client::{ClientError, MailOptions, RcptMode, TxnOutcome, UpstreamReply};
use crate::delivery::util::blocking;

/// Moves due ids from the timer heap to the ready channel.
pub(super) async fn scheduler(shared: Arc<Shared>) {
    loop {
        let now = spool::now_ms();
        let mut due = Vec::new();
        let next = {
            let mut timers = shared.timers.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match timers.peek() {
                    Some(Reverse((t, _))) if *t <= now => {
                        if let Some(Reverse((t, id))) = timers.pop() {
                            due.push((t, id));
                        }
                    }
                    Some(Reverse((t, _))) => break Some(*t),
                    None => break None,
                }
            }
        };
        for (t, id) in due {
            let go = {
                let mut entries = shared.lock_entries();
                match entries.get_mut(&id) {
                    Some(e) if !e.in_flight && e.state.next_attempt_ms <= t.max(now) => {
                        e.in_flight = true;
                        true
                    }
                    _ => false,
                }
            };
            if go {
                let _ = shared.ready.send(id);
            }
        }
        let sleep = match next {
            Some(t) => Duration::from_millis(t.saturating_sub(spool::now_ms()).max(1)),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Takes ready ids and attempts delivery.
pub(super) async fn worker(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
) {
    loop {
        let id = {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(id) => id,
                None => return,
            }
        };
        attempt(&shared, &id).await;
    }
}

/// One recipient's result of an attempt.
#[derive(Debug)]
enum Outcome {
    Delivered(UpstreamReply),
    Deferred {
        code: u16,
        /// RFC 3463 status for a delay warning.
        status: String,
        text: String,
    },
    Failed {
        code: u16,
        status: String,
        text: String,
        diagnostic: Option<String>,
    },
}

fn classify(
    outcome: &Result<(TxnOutcome, std::net::SocketAddr), ClientError>,
    n: usize,
) -> Vec<Outcome> {
    let o = match outcome {
        Err(e) => {
            // The upstream lacks what the message needs (BINARYMIME,
            // SMTPUTF8): retrying will not help and we do not convert, so
            // it bounces.
            if let Some(r) = e.unsupported_reply() {
                let status = r.enhanced.map(|c| c.to_string()).unwrap_or_default();
                let text = r.lines.join(" ");
                return (0..n)
                    .map(|_| Outcome::Failed {
                        code: r.code,
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
    let from_reply = |r: &UpstreamReply| {
        if r.is_permanent() {
            Outcome::Failed {
                code: r.code,
                status: r.enhanced_or_default().to_string(),
                text: r.text(),
                diagnostic: Some(r.one_line()),
            }
        } else {
            Outcome::Deferred {
                code: r.code,
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
                Some(d) if d.is_success() => Outcome::Delivered(d.clone()),
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

/// Backoff before attempt `attempts + 1`.
fn backoff(shared: &Shared, attempts: u32) -> Duration {
    let first = shared.config.first_retry;
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    first
        .checked_mul(factor)
        .unwrap_or(shared.config.max_retry)
        .min(shared.config.max_retry)
}

/// Spools a report (bounce or delay warning) from the null sender to `to`,
/// under a new queue id; returns that id.
async fn spool_notice(shared: &Arc<Shared>, to: &str, dsn: Vec<u8>) -> std::io::Result<String> {
    shared
        .spool_message(
            &spool::new_id(),
            String::new(),
            vec![to.to_string()],
            dsn,
            Default::default(),
            MailOptions::default(),
        )
        .await
}

/// Queues the one delay warning of a message once it has been pending
/// `delay_warning_after` (when set) since it was accepted, for the
/// recipients deferred in this attempt; never for the null sender. Spooled
/// before the state that records it is written: a crash in between can
/// repeat the warning but never lose it.
async fn delay_warning(
    shared: &Arc<Shared>,
    id: &str,
    meta: &spool::Meta,
    state: &mut spool::State,
    delayed: &[Failed],
    body: &[u8],
) {
    let Some(after) = shared.config.delay_warning_after else {
        return;
    };
    let age = spool::now_ms().saturating_sub(meta.created_ms);
    if state.delay_warned
        || delayed.is_empty()
        || meta.sender.is_empty()
        || age < after.as_millis() as u64
    {
        return;
    }
    let arrival = meta.created_ms / 1000;
    let until = arrival.saturating_add(shared.config.max_lifetime.as_secs());
    let dsn = bounce::build_delay(&meta.sender, id, arrival, until, delayed, body);
    match spool_notice(shared, &meta.sender, dsn).await {
        Ok(wid) => {
            state.delay_warned = true;
            tracing::info!(%id, warning = %wid, to = %meta.sender, "delay warning queued");
        }
        // Not recorded as sent: tried again after the next attempt.
        Err(e) => tracing::error!(%id, error = %e, "cannot spool the delay warning"),
    }
}

async fn attempt(shared: &Arc<Shared>, id: &str) {
    // Snapshot what we need.
    let snap = {
        let mut entries = shared.lock_entries();
        match entries.get_mut(id) {
            Some(e) if e.deleted => {
                entries.remove(id);
                None
            }
            Some(e) => Some((e.meta.clone(), e.state.clone(), e.body.take())),
            None => None,
        }
    };
    let Some((meta, mut state, cached)) = snap else {
        return;
    };
    if let Some(b) = &cached {
        shared.cached_bytes.fetch_sub(b.len(), Ordering::Relaxed);
    }
    let body = match cached {
        Some(b) => b,
        None => {
            let path = shared.dirs.msg.join(id);
            match blocking(move || spool::read_message(&path)).await {
                Ok((_, b)) => Arc::new(b),
                Err(e) => {
                    tracing::error!(%id, error = %e, "cannot read spooled message; leaving it for the next start");
                    shared.lock_entries().remove(id);
                    return;
                }
            }
        }
    };
    let pending: Vec<usize> = state
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == RcptStatus::Pending)
        .map(|(i, _)| i)
        .collect();
    let addrs: Vec<&str> = pending
        .iter()
        .map(|&i| state.recipients[i].address.as_str())
        .collect();
    let result = if addrs.is_empty() {
        Err(ClientError::Lost {
            stage: "none",
            reason: "no pending recipient".into(),
        })
    } else {
        shared
            .pool
            .send(
                &meta.sender,
                &addrs,
                &[&body],
                RcptMode::AcceptedOnly,
                MailOptions {
                    body: meta.body,
                    smtputf8: meta.smtputf8,
                },
            )
            .await
    };
    let outcomes = classify(&result, pending.len());
    drop(addrs);
    state.attempts += 1;
    let expired = spool::now_ms().saturating_sub(meta.created_ms)
        >= shared.config.max_lifetime.as_millis() as u64;
    let mut failed = Vec::new();
    let mut delayed = Vec::new();
    let mut reports = Vec::new();
    for (&i, o) in pending.iter().zip(outcomes) {
        let rcpt = &mut state.recipients[i];
        let (status, code, text) = match o {
            Outcome::Delivered(r) => {
                rcpt.status = RcptStatus::Delivered;
                rcpt.last = Some(r.one_line());
                (DeliveryStatus::Delivered, r.code, r.one_line())
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
        tracing::info!(%id, recipient = %rcpt.address, ?status, code, %text, attempts = state.attempts, "delivery attempt");
        reports.push(DeliveryReport {
            queue_id: id.to_string(),
            sender: meta.sender.clone(),
            recipient: rcpt.address.clone(),
            status,
            code,
            text,
            attempts: state.attempts,
        });
    }

    // Bounce before recording the failure, so a crash in between repeats
    // the bounce rather than losing it.
    if !failed.is_empty() {
        if meta.sender.is_empty() {
            tracing::warn!(%id, "permanent failure of a message from the null sender: no bounce");
        } else {
            let dsn = bounce::build(&meta.sender, id, meta.created_ms / 1000, &failed, &body);
            match spool_notice(shared, &meta.sender, dsn).await {
                Ok(bid) => tracing::info!(%id, bounce = %bid, to = %meta.sender, "bounce queued"),
                Err(e) => {
                    // Keep the recipients pending: retried, bounced later.
                    tracing::error!(%id, error = %e, "cannot spool the bounce; will retry");
                    for f in &failed {
                        if let Some(r) = state
                            .recipients
                            .iter_mut()
                            .find(|r| r.address == f.recipient)
                        {
                            r.status = RcptStatus::Pending;
                        }
                    }
                }
            }
        }
    }

    let done = state
        .recipients
        .iter()
        .all(|r| r.status != RcptStatus::Pending);
    let dirs = shared.dirs.clone();
    let id_s = id.to_string();
    if done {
        let r = blocking(move || spool::remove(&dirs, &id_s)).await;
        if let Err(e) = r {
            tracing::error!(%id, error = %e, "cannot remove delivered message from the spool");
        }
        shared.lock_entries().remove(id);
    } else {
        delay_warning(shared, id, &meta, &mut state, &delayed, &body).await;
        let delay = backoff(shared, state.attempts);
        state.next_attempt_ms = spool::now_ms() + delay.as_millis() as u64;
        let st = state.clone();
        if let Err(e) = blocking(move || spool::write_state(&dirs, &id_s, &st)).await {
            tracing::error!(%id, error = %e, "cannot write delivery state");
        }
        let due = state.next_attempt_ms;
        let deleted = {
            let mut entries = shared.lock_entries();
            match entries.get_mut(id) {
                Some(e) if !e.deleted => {
                    e.state = state;
                    e.in_flight = false;
                    false
                }
                _ => {
                    entries.remove(id);
                    true
                }
            }
        };
        if deleted {
            let dirs = shared.dirs.clone();
            let id_s = id.to_string();
            let _ = blocking(move || spool::remove(&dirs, &id_s)).await;
        } else {
            shared.schedule(id.to_string(), due);
        }
    }
    for r in reports {
        let _ = shared.reports.send(r);
    }
}
