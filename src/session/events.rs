//! Event → plugin hook → core policy → [`Decision`], and the
//! [`SessionContext`] bookkeeping that goes with each accepted event.
//!
//! The plugin chain runs first (qpsmtpd semantics): any verdict but
//! `declined` decides. When every plugin declines, the core policy does:
//! relay rules for RCPT, the configured users for AUTH, and the engine's
//! defaults for everything else.

use std::time::SystemTime;

use crate::context::{HelloKind, Recipient, Transaction};
use crate::delivery::Envelope;
use crate::delivery::verify::Verification;
use crate::message::Message;
use crate::plugin::{Hook, TransactionEnd, Verdict};
use crate::protocol::params::BodyType;
use crate::protocol::{Decision, Event, replies};

use super::budget::RESERVE_STEP;
use super::{Session, received};
use crate::ids;

/// The decision a verdict imposes; `None` for `declined` (core decides).
fn verdict_decision(verdict: Verdict) -> Option<Decision> {
    match verdict {
        Verdict::Declined => None,
        Verdict::Ok => Some(Decision::Default),
        Verdict::Deny(r) | Verdict::DenySoft(r) | Verdict::Done(r) => Some(Decision::Reply(r)),
        Verdict::DenyDisconnect(r) | Verdict::DenySoftDisconnect(r) => {
            Some(Decision::Disconnect(r))
        }
    }
}

/// The reply code a decision refuses a message with; `None` if it accepts.
fn refusal_code(decision: &Decision) -> Option<u16> {
    match decision {
        Decision::Default => None,
        Decision::Reply(r) if r.is_positive() => None,
        Decision::Reply(r) | Decision::Disconnect(r) => Some(r.code()),
    }
}

/// Most octets of one `body-chunk` call.
pub(super) const BODY_CHUNK_SIZE: usize = 64 * 1024;

impl Session {
    /// Runs the hook chain for `hook`.
    async fn hook(&mut self, hook: Hook<'_>) -> Verdict {
        self.plugins.run(hook, &mut self.ctx).await
    }

    /// Ends the open transaction, if any: tells the plugins exporting
    /// `lifecycle` why, then drops its state.
    pub(super) async fn end_transaction(&mut self, end: TransactionEnd) {
        if self.ctx.txn.is_some() {
            if let Some(observer) = &self.shared.observer {
                observer.transaction_ended(&self.ctx, end);
            }
            self.plugins.transaction_ended(end, &mut self.ctx).await;
        }
        self.ctx.txn = None;
        self.verified.clear();
    }

    /// Answers one engine event.
    pub(super) async fn handle(&mut self, event: Event) -> Decision {
        // Any command but the message's own events ends the DATA phase.
        if !matches!(
            event,
            Event::Data | Event::DataHeaders | Event::MessageComplete
        ) {
            self.reservation = None;
        }
        match event {
            Event::Connect => self.on_connect().await,
            Event::Helo { host } => self.on_hello(HelloKind::Helo, host).await,
            Event::Ehlo { host } => self.on_hello(HelloKind::Ehlo, host).await,
            Event::Mail { sender, params } => self.on_mail(sender, params).await,
            Event::Rcpt { recipient, params } => self.on_rcpt(recipient, params).await,
            Event::Data => {
                // What the message is expected to need must fit the memory
                // budget before anything of it is read; it grows as the
                // message arrives (`grow_reservation`).
                let Some(reservation) = self.shared.memory_budget.reserve(self.first_reservation())
                else {
                    tracing::info!(
                        reserved = self.shared.memory_budget.used(),
                        "memory budget for messages used up"
                    );
                    return Decision::Reply(replies::memory_full());
                };
                let d = verdict_decision(self.hook(Hook::Data).await).unwrap_or(Decision::Default);
                self.reservation = d.accepts().then_some(reservation);
                d
            }
            Event::DataHeaders => {
                let d = self.on_data_headers().await;
                // Refused here, the message is read to its end and answered
                // with this reply: no `MessageComplete` follows.
                if let Some(code) = refusal_code(&d) {
                    self.count_message(Some(code));
                    // The engine stores nothing more of this message.
                    self.reservation = None;
                    self.end_transaction(TransactionEnd::Refused).await;
                }
                d
            }
            Event::MessageComplete => self.on_message_complete().await,
            Event::Rset => {
                // The verdict of the reset hook is informational.
                let _ = self.hook(Hook::Reset).await;
                self.end_transaction(TransactionEnd::Reset).await;
                Decision::Default
            }
            Event::Quit => {
                verdict_decision(self.hook(Hook::Quit).await).unwrap_or(Decision::Default)
            }
            Event::Noop { arg } => {
                verdict_decision(self.hook(Hook::Noop(&arg)).await).unwrap_or(Decision::Default)
            }
            Event::Vrfy { arg } => {
                verdict_decision(self.hook(Hook::Vrfy(&arg)).await).unwrap_or(Decision::Default)
            }
            Event::Help { arg } => {
                verdict_decision(self.hook(Hook::Help(&arg)).await).unwrap_or(Decision::Default)
            }
            Event::Unrecognized { verb, args } => {
                verdict_decision(self.hook(Hook::Unrecognized(&verb, &args)).await)
                    .unwrap_or(Decision::Default)
            }
            Event::Auth {
                mechanism,
                authzid,
                username,
                password,
            } => self.on_auth(mechanism, authzid, username, password).await,
        }
    }

    async fn on_connect(&mut self) -> Decision {
        let verdict = self.hook(Hook::Connect).await;
        let decision = match verdict {
            // A refused connection is closed (qpsmtpd connect semantics).
            Verdict::Deny(r) | Verdict::DenySoft(r) => Decision::Disconnect(r),
            other => verdict_decision(other).unwrap_or(Decision::Default),
        };
        if matches!(decision, Decision::Disconnect(_)) {
            return decision;
        }
        if self.client_talked_early().await {
            tracing::info!("early talker refused");
            return Decision::Disconnect(replies::early_talker());
        }
        decision
    }

    async fn on_hello(&mut self, kind: HelloKind, host: String) -> Decision {
        let hook = match kind {
            HelloKind::Ehlo => Hook::Ehlo(&host),
            _ => Hook::Helo(&host),
        };
        let verdict = self.plugins.run(hook, &mut self.ctx).await;
        let decision = verdict_decision(verdict).unwrap_or(Decision::Default);
        if decision.accepts() {
            self.ctx.conn.hello = kind;
            self.ctx.conn.hello_host = host;
            // HELO/EHLO resets any transaction (RFC 5321 4.1.4).
            self.end_transaction(TransactionEnd::Hello).await;
        }
        decision
    }

    async fn on_mail(&mut self, sender: String, params: Vec<crate::context::Param>) -> Decision {
        // The transaction exists while its MAIL hook runs, so plugins can
        // read and edit the sender.
        self.verified.clear();
        self.ctx.txn = Some(Transaction {
            id: ids::new_id(),
            sender: sender.clone(),
            sender_params: params.clone(),
            ..Transaction::default()
        });
        let verdict = self
            .plugins
            .run(Hook::Mail(&sender, &params), &mut self.ctx)
            .await;
        let decision = verdict_decision(verdict).unwrap_or(Decision::Default);
        if !decision.accepts() {
            self.ctx.txn = None;
        }
        decision
    }

    async fn on_rcpt(&mut self, recipient: String, params: Vec<crate::context::Param>) -> Decision {
        let verdict = self
            .plugins
            .run(Hook::Rcpt(&recipient, &params), &mut self.ctx)
            .await;
        let decision = match verdict_decision(verdict) {
            Some(d) => d,
            None => match self
                .shared
                .relay
                .check_recipient(&recipient, self.ctx.conn.relay_client)
            {
                Ok(()) => Decision::Default,
                Err(reply) => {
                    tracing::info!(%recipient, "relay denied");
                    Decision::Reply(reply)
                }
            },
        };
        let decision = self.verify(decision, &recipient).await;
        if decision.accepts()
            && let Some(txn) = self.ctx.txn.as_mut()
        {
            txn.recipients.push(Recipient {
                address: recipient,
                params,
            });
        }
        decision
    }

    /// Asks the upstream about a recipient about to be accepted from a
    /// client that is neither authenticated nor a relay client, when
    /// store-and-forward verifies recipients (see
    /// [`crate::delivery::verify`]); the postmaster is always accepted
    /// (RFC 5321 4.5.1).
    async fn verify(&mut self, decision: Decision, recipient: &str) -> Decision {
        let postmaster = recipient
            .split('@')
            .next()
            .is_some_and(|local| local.eq_ignore_ascii_case("postmaster"));
        if !decision.accepts() || self.ctx.conn.relay_client || postmaster {
            return decision;
        }
        match self.shared.deliverer.verify_recipient(recipient).await {
            None => decision,
            Some(Verification::Deliverable) => {
                self.verified.push(recipient.to_string());
                decision
            }
            Some(Verification::Undeliverable(reply) | Verification::Unknown(reply)) => {
                Decision::Reply(reply)
            }
        }
    }

    /// Parses the header section (bounded by `[limits]`, scanned before
    /// anything is allocated; only the section is copied) and runs the
    /// data-headers hook.
    async fn on_data_headers(&mut self) -> Decision {
        let parsed =
            Message::parse_prefix(self.engine.message_so_far(), &self.shared.header_limits);
        let message = match parsed {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(error = %e, "header section refused");
                return Decision::Reply(replies::header_too_large(e));
            }
        };
        if let Some(txn) = self.ctx.txn.as_mut() {
            txn.message = Some(message);
        }
        verdict_decision(self.hook(Hook::DataHeaders).await).unwrap_or(Decision::Default)
    }

    async fn on_message_complete(&mut self) -> Decision {
        let decision = self.complete_and_deliver().await;
        let refused = refusal_code(&decision);
        self.count_message(refused);
        let end = match refused {
            None => TransactionEnd::Delivered,
            Some(_) => TransactionEnd::Refused,
        };
        self.end_transaction(end).await;
        self.reservation = None;
        decision
    }

    /// Makes the received buffer the message's one copy (parsing the header
    /// section if data-headers did not), then delivers.
    async fn complete_and_deliver(&mut self) -> Decision {
        let full = self.engine.take_message();
        let Some(txn) = self.ctx.txn.as_mut() else {
            tracing::warn!("message complete without a transaction");
            return Decision::Reply(replies::local_error());
        };
        match txn.message.as_mut() {
            Some(m) => m.complete(full),
            None => match Message::parse_bounded(full, &self.shared.header_limits) {
                Ok(m) => txn.message = Some(m),
                Err(e) => {
                    tracing::info!(error = %e, "header section refused");
                    return Decision::Reply(replies::header_too_large(e));
                }
            },
        }
        self.deliver().await
    }

    /// Counts a message the driver decided on (`[metrics]`): accepted, or
    /// refused with `code`.
    /// The first reservation of a message: the `SIZE=` its MAIL declared or
    /// one [`RESERVE_STEP`], whichever is larger, at most the size limit.
    fn first_reservation(&self) -> u64 {
        let declared = self
            .ctx
            .txn
            .as_ref()
            .and_then(|t| t.sender_params.iter().find(|p| p.key == "SIZE"))
            .and_then(|p| p.value.as_deref())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        declared
            .max(RESERVE_STEP)
            .min(self.listener.engine.max_message_size)
    }

    /// Before reading more of a message: grows its reservation, a step at
    /// a time, to what is stored plus one read. When the budget cannot give
    /// it, the message is refused with `452 4.3.1` at its end and nothing
    /// more of it is stored (the transaction ends now, as for a refusal at
    /// data-headers).
    pub(super) async fn grow_reservation(&mut self) {
        let Some(reservation) = self.reservation.as_mut() else {
            return;
        };
        let need = (self.engine.message_stored_len() + self.buf.len()) as u64;
        if need <= reservation.octets() {
            return;
        }
        let target = need.div_ceil(RESERVE_STEP).saturating_mul(RESERVE_STEP);
        if reservation.grow_to(target) {
            return;
        }
        tracing::info!(
            reserved = self.shared.memory_budget.used(),
            stored = self.engine.message_stored_len(),
            "memory budget for messages used up mid-message"
        );
        let reply = replies::memory_full();
        self.count_message(Some(reply.code()));
        self.engine.refuse_message(reply);
        self.reservation = None;
        self.end_transaction(TransactionEnd::Refused).await;
    }

    fn count_message(&self, refused: Option<u16>) {
        let Some(m) = &self.shared.metrics else {
            return;
        };
        match refused {
            None => m.accepted(),
            Some(code) => m.rejected(code),
        }
    }

    /// The `body-chunk` hooks over the received body (dot-unstuffed), in
    /// order, [`BODY_CHUNK_SIZE`] octets at a time, offsets from the body's
    /// start; only when a plugin wants them, and none for an empty body.
    /// `declined` and `ok` go on with the next chunk; any other verdict
    /// ends the transaction with its reply (`deny-disconnect` and
    /// `deny-soft-disconnect` also close) and no further chunk is sent.
    async fn body_chunks(&mut self) -> Option<Decision> {
        if !self.plugins.wants(&Hook::BodyChunk(0, &[])) {
            return None;
        }
        // A shared handle on the received body (no copy): the context it
        // lives in is lent to the plugins during each call.
        let body = self
            .ctx
            .txn
            .as_ref()?
            .message
            .as_ref()?
            .received_body_bytes();
        let mut offset = 0usize;
        loop {
            if offset >= body.len() {
                return None;
            }
            let end = body.len().min(offset + BODY_CHUNK_SIZE);
            let hook = Hook::BodyChunk(offset as u64, &body[offset..end]);
            match self.plugins.run(hook, &mut self.ctx).await {
                Verdict::Declined | Verdict::Ok => offset = end,
                other => return verdict_decision(other),
            }
        }
    }

    /// body-chunk, data-post and queue hooks, then the Received header and
    /// delivery.
    async fn deliver(&mut self) -> Decision {
        if let Some(d) = self.body_chunks().await {
            return d;
        }
        if let Some(d) = verdict_decision(self.hook(Hook::DataPost).await)
            && !matches!(d, Decision::Default)
        {
            return d;
        }
        let id = self
            .ctx
            .txn
            .as_ref()
            .map(|t| t.id.clone())
            .unwrap_or_default();
        match self.hook(Hook::Queue).await {
            Verdict::Declined => {}
            Verdict::Ok => {
                tracing::info!(%id, "queued by a plugin");
                return Decision::Reply(replies::queued_as(&id));
            }
            other => return verdict_decision(other).unwrap_or(Decision::Default),
        }
        let Some(txn) = self.ctx.txn.as_ref() else {
            return Decision::Reply(replies::local_error());
        };
        if txn.recipients.is_empty() {
            return Decision::Reply(replies::no_recipients());
        }
        let param = |key: &str| {
            txn.sender_params
                .iter()
                .find(|p| p.key.eq_ignore_ascii_case(key))
        };
        let envelope = Envelope {
            id: txn.id.clone(),
            sender: txn.sender.clone(),
            recipients: txn.recipients.clone(),
            body: BodyType::from_param(param("BODY").and_then(|p| p.value.as_deref())),
            smtputf8: param("SMTPUTF8").is_some(),
            trusted: self.ctx.conn.relay_client,
            verified: self.verified.clone(),
        };
        let header = received::received_header(
            &self.ctx,
            &self.shared.hostname,
            &envelope.id,
            self.engine.smtputf8(),
            SystemTime::now(),
        );
        let Some(message) = txn.message.as_ref() else {
            return Decision::Reply(replies::local_error());
        };
        // Shared buffers: the received bytes are not copied for delivery
        // (an edited header section is the only new buffer).
        let [head, body] = message.delivery_parts();
        let size = head.len() + body.len();
        let reply = self
            .shared
            .deliverer
            .deliver(&envelope, &[header.as_slice(), &head[..], &body[..]])
            .await;
        tracing::info!(
            id = %envelope.id,
            from = %envelope.sender,
            recipients = envelope.recipients.len(),
            size,
            code = reply.code(),
            "message delivered"
        );
        Decision::Reply(reply)
    }

    async fn on_auth(
        &mut self,
        mechanism: String,
        authzid: String,
        username: String,
        password: String,
    ) -> Decision {
        let ip = self.ctx.conn.remote.ip();
        if self.shared.auth_throttle.blocked(ip) {
            tracing::info!(user = %username, %mechanism, "authentication refused: too many failures from this address");
            return Decision::Disconnect(replies::too_many_auth_failures_from_address());
        }
        let verdict = self
            .plugins
            .run(
                Hook::Auth(&mechanism, &authzid, &username, &password),
                &mut self.ctx,
            )
            .await;
        let decision = match verdict_decision(verdict) {
            Some(d) => d,
            None => {
                // No proxy authentication: authzid must be empty or the user.
                let proxy = !authzid.is_empty() && authzid != username;
                if !proxy && self.shared.users.verify(&username, &password).await {
                    Decision::Default
                } else {
                    Decision::Reply(replies::auth_failed())
                }
            }
        };
        if decision.accepts() {
            tracing::info!(user = %username, %mechanism, "authenticated");
            self.ctx.conn.auth_user = Some(username);
            self.ctx.conn.relay_client = true;
            self.shared.auth_throttle.succeeded(ip);
        } else {
            tracing::info!(user = %username, %mechanism, "authentication failed");
            // a growing delay per client address, within the session's time
            let delay = self.shared.auth_throttle.failed(ip);
            tokio::time::sleep_until(
                self.session_deadline
                    .min(tokio::time::Instant::now() + delay),
            )
            .await;
        }
        decision
    }
}
