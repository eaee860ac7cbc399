//! The scheduler (timers → ready ids) and the delivery workers (one attempt
//! per ready id: send, then carry out what [`plan`] decided: bounce, warn,
//! retry or remove).

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use super::bounce::{self, Failed};
use super::report::DeliveryReport;
use super::spool::{self, RcptStatus};
use super::{Shared, plan};
use crate::delivery::client::{ClientError, MailOptions, RcptMode};
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

/// Spools a report (bounce or delay warning) from the null sender to `to`,
/// under a new queue id; returns that id.
async fn spool_notice(shared: &Arc<Shared>, to: &str, dsn: Vec<u8>) -> std::io::Result<String> {
    let meta = spool::Meta {
        id: String::new(),
        sender: String::new(),
        recipients: vec![to.to_string()],
        created_ms: 0,
        size: 0,
        notes: Default::default(),
        body: Default::default(),
        smtputf8: false,
        // Our own report: a failure to deliver it is never bounced (the
        // null sender), and nothing else depends on these.
        trusted: true,
        verified: Vec::new(),
    };
    shared.spool_message(&spool::new_id(), meta, dsn).await
}

/// Queues the message's one delay warning for the recipients the plan
/// chose (see [`plan::plan`]). Spooled before the state that records it is
/// written: a crash in between can repeat the warning but never lose it.
async fn delay_warning(
    shared: &Arc<Shared>,
    id: &str,
    meta: &spool::Meta,
    state: &mut spool::State,
    delayed: &[Failed],
    body: &[u8],
) {
    if delayed.is_empty() {
        return;
    }
    let arrival = meta.created_ms / 1000;
    let until = arrival.saturating_add(shared.config.max_lifetime.as_secs());
    let dsn = bounce::build_delay(
        &shared.hostname,
        &meta.sender,
        id,
        arrival,
        until,
        delayed,
        body,
    );
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
    let Some((meta, state, body)) = load(shared, id).await else {
        return;
    };
    let pending: Vec<usize> = state
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == RcptStatus::Pending)
        .map(|(i, _)| i)
        .collect();
    let result = send_pending(shared, &meta, &state, &pending, &body).await;
    let outcomes = plan::classify(&result, pending.len());
    let policy = plan::Policy::new(&shared.config);
    let plan::Plan {
        mut state,
        reports,
        bounce: failed,
        untold,
        warn,
    } = plan::plan(&meta, &state, &pending, outcomes, spool::now_ms(), &policy);
    for r in &reports {
        tracing::info!(%id, recipient = %r.recipient, status = ?r.status, code = r.code, text = %r.text, attempts = state.attempts, "delivery attempt");
    }
    if meta.sender.is_empty() && !untold.is_empty() {
        tracing::warn!(%id, "permanent failure of a message from the null sender: no bounce");
    } else {
        for f in &untold {
            tracing::warn!(%id, recipient = %f.recipient, sender = %meta.sender, reason = %f.reason,
                "bounce suppressed: the client was neither authenticated nor a relay client and the recipient was not verified at RCPT (the sender may be forged)");
        }
    }
    // Bounce before recording the failure, so a crash in between repeats
    // the bounce rather than losing it.
    if !failed.is_empty() {
        queue_bounce(shared, id, &meta, &failed, &body, &mut state).await;
    }
    let reports: Vec<DeliveryReport> = reports
        .into_iter()
        .map(|r| DeliveryReport {
            queue_id: id.to_string(),
            sender: meta.sender.clone(),
            recipient: r.recipient,
            status: r.status,
            code: r.code,
            text: r.text,
            attempts: state.attempts,
        })
        .collect();
    if plan::done(&state) {
        forget(shared, id).await;
    } else {
        delay_warning(shared, id, &meta, &mut state, &warn, &body).await;
        reschedule(shared, id, state).await;
    }
    for r in reports {
        let _ = shared.reports.send(r);
    }
}

/// The message's metadata, state and body (cached or read from the spool);
/// `None` if it was deleted or cannot be read.
async fn load(
    shared: &Arc<Shared>,
    id: &str,
) -> Option<(Arc<spool::Meta>, spool::State, Arc<Vec<u8>>)> {
    let (meta, state, cached) = {
        let mut entries = shared.lock_entries();
        match entries.get_mut(id) {
            Some(e) if e.deleted => {
                entries.remove(id);
                return None;
            }
            Some(e) => (e.meta.clone(), e.state.clone(), e.body.take()),
            None => return None,
        }
    };
    if let Some(b) = &cached {
        shared.cached_bytes.fetch_sub(b.len(), Ordering::Relaxed);
        return Some((meta, state, b.clone()));
    }
    let path = shared.dirs.msg.join(id);
    match blocking(move || spool::read_message(&path)).await {
        Ok((_, b)) => Some((meta, state, Arc::new(b))),
        Err(e) => {
            tracing::error!(%id, error = %e, "cannot read spooled message; leaving it for the next start");
            shared.lock_entries().remove(id);
            None
        }
    }
}

/// One upstream transaction for the pending recipients (by index).
async fn send_pending(
    shared: &Arc<Shared>,
    meta: &spool::Meta,
    state: &spool::State,
    pending: &[usize],
    body: &[u8],
) -> Result<(crate::delivery::client::TxnOutcome, std::net::SocketAddr), ClientError> {
    let addrs: Vec<&str> = pending
        .iter()
        .map(|&i| state.recipients[i].address.as_str())
        .collect();
    if addrs.is_empty() {
        return Err(ClientError::Lost {
            stage: "none",
            reason: "no pending recipient".into(),
        });
    }
    shared
        .pool
        .send(
            &meta.sender,
            &addrs,
            &[body],
            RcptMode::AcceptedOnly,
            MailOptions {
                body: meta.body,
                smtputf8: meta.smtputf8,
            },
        )
        .await
}

/// Spools the bounce for `failed`; if that fails, the recipients stay
/// pending (retried, bounced later).
async fn queue_bounce(
    shared: &Arc<Shared>,
    id: &str,
    meta: &spool::Meta,
    failed: &[Failed],
    body: &[u8],
    state: &mut spool::State,
) {
    let dsn = bounce::build(
        &shared.hostname,
        &meta.sender,
        id,
        meta.created_ms / 1000,
        failed,
        body,
    );
    match spool_notice(shared, &meta.sender, dsn).await {
        Ok(bid) => tracing::info!(%id, bounce = %bid, to = %meta.sender, "bounce queued"),
        Err(e) => {
            tracing::error!(%id, error = %e, "cannot spool the bounce; will retry");
            for f in failed {
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

/// Removes a finished message from the spool and the schedule.
async fn forget(shared: &Arc<Shared>, id: &str) {
    let dirs = shared.dirs.clone();
    let id_s = id.to_string();
    if let Err(e) = blocking(move || spool::remove(&dirs, &id_s)).await {
        tracing::error!(%id, error = %e, "cannot remove delivered message from the spool");
    }
    shared.lock_entries().remove(id);
}

/// Records `state` and schedules the next attempt (or removes the message
/// if it was deleted meanwhile).
async fn reschedule(shared: &Arc<Shared>, id: &str, state: spool::State) {
    let dirs = shared.dirs.clone();
    let id_s = id.to_string();
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
