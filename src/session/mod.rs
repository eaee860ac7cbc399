//! The per-connection driver: the thin tokio loop around the sans-IO
//! [`SmtpEngine`].
//!
//! ```text
//!  poll() ─▶ NeedInput ─▶ flush queued replies in one write, read (timeouts) ─▶ receive()
//!        ─▶ Event     ─▶ plugin chain ─▶ core policy ─▶ decide()     (events.rs)
//!        ─▶ StartTls  ─▶ flush the 220, TLS handshake ─▶ tls_established()
//!        ─▶ Close     ─▶ flush, close
//! ```
//!
//! Timeouts: a command must be complete within `[timeouts] command` of the
//! previous one (a client dripping bytes does not extend it); during DATA
//! each read must come within `data_block`; TLS handshakes within
//! `tls_handshake`; and the whole session ends at `session`, whatever the
//! client does. Expiry sends `421 4.4.2` and closes. A forced shutdown
//! (after the grace period) sends `421 4.3.2` at the next read; a session
//! never abandons a message it is delivering.

pub mod budget;
mod events;
pub mod proxy;
pub mod received;
mod stream;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::auth::Users;
use crate::config::{ListenerMode, TimeoutsConfig};
use crate::context::{Connection, PluginLimits, SessionContext, TlsInfo};
use crate::delivery::Deliverer;
use crate::dns::ReverseDns;
use crate::message::HeaderLimits;
use crate::metrics::{ActiveConnection, SessionMetrics};
use crate::plugin::{PluginHost, PluginSession, TransactionEnd};
use crate::protocol::{Action, EngineConfig, Reply, SmtpEngine, replies};
use crate::relay::RelayPolicy;

pub use stream::Stream;

use budget::{MemoryBudget, Reservation};

/// What every session of the server shares: the settings of the config
/// last (re)loaded and the services they run on. The server publishes one
/// `Shared` at a time (a reload builds the next); a session keeps the one
/// current at its accept until it ends.
pub struct Shared {
    /// Our host name (greeting, Received, 421 texts).
    pub hostname: String,
    /// `[timeouts]`.
    pub timeouts: TimeoutsConfig,
    /// Core relay policy.
    pub relay: RelayPolicy,
    /// Users for AUTH when no plugin decides.
    pub users: Users,
    /// AUTH failures per client address across sessions.
    pub auth_throttle: Arc<throttle::AuthThrottle>,
    /// Reverse DNS (disabled without a configured resolver).
    pub dns: ReverseDns,
    /// Where accepted messages go.
    pub deliverer: Arc<Deliverer>,
    /// The plugin host; reload swaps its chain, and each session keeps the
    /// chain it took at accept.
    pub plugins: Arc<PluginHost>,
    /// TLS for STARTTLS and smtps.
    pub tls: crate::tls::ServerTls,
    /// Connection and message counters; `None` when `[metrics]` is off.
    pub metrics: Option<SessionMetrics>,
    /// Bounds on a received header section (`[limits]`).
    pub header_limits: HeaderLimits,
    /// Message octets in memory across sessions (`[limits] memory_budget`).
    pub memory_budget: Arc<MemoryBudget>,
    /// What plugins may make the host hold per session.
    pub plugin_limits: PluginLimits,
    /// Each `[[listeners]]` entry's settings, in config order.
    pub listeners: Vec<Arc<ListenerInfo>>,
    /// `[server] max_connections`.
    pub max_connections: usize,
    /// `[server] max_connections_per_ip`.
    pub max_connections_per_ip: usize,
    /// `[server] shutdown_grace`.
    pub shutdown_grace: Duration,
    /// Sees every transaction as it ends: the offline harness's window
    /// (`wasmtp plugin test`); `None` in the gateway.
    pub observer: Option<Arc<dyn TransactionObserver>>,
}

/// Sees each transaction as it ends, before its state is dropped: how the
/// offline harness (`crate::harness`) reads the notes, recipients and
/// message the plugins left behind. Called once per ended transaction, with
/// `ctx.txn` the ending one, before the plugins' `transaction-ended`.
pub trait TransactionObserver: Send + Sync {
    /// The transaction in `ctx.txn` ends because of `end`.
    fn transaction_ended(&self, ctx: &SessionContext, end: TransactionEnd);
}

/// The client of an offline session (`wasmtp plugin test`), as a dialog
/// declares it: facts a real client would have established first.
#[derive(Debug, Clone, Default)]
pub struct ClientFacts {
    /// TLS already active (the engine starts as on an smtps listener, no
    /// handshake happens): what plugins see as the connection's TLS.
    pub tls: Option<TlsInfo>,
    /// An authenticated user (the connection's `auth-user`; it makes the
    /// client a relay client, as a successful AUTH does).
    pub auth_user: Option<String>,
    /// A relay client whatever `[relay] relay_networks` say.
    pub relay: Option<bool>,
    /// The client's reverse DNS name.
    pub remote_host: Option<String>,
}

/// What a session knows about the listener it came in on.
#[derive(Debug)]
pub struct ListenerInfo {
    /// The listener mode.
    pub mode: ListenerMode,
    /// Engine settings for this listener.
    pub engine: Arc<EngineConfig>,
    /// PROXY protocol (`proxy_protocol = true`): the trusted senders.
    pub proxy: Option<proxy::ProxyPolicy>,
}

/// Why reading stopped.
enum ReadStop {
    /// The client closed the connection (or it broke).
    Closed,
    /// A timeout or the session deadline expired.
    Timeout,
    /// The server is shutting down and the grace period is over.
    Shutdown,
}

/// One SMTP session from accept to close.
pub struct Session {
    shared: Arc<Shared>,
    listener: Arc<ListenerInfo>,
    stream: Stream,
    engine: SmtpEngine,
    ctx: SessionContext,
    plugins: PluginSession,
    /// True (sent once) when the grace period is over: 421 at the next read.
    force_close: Signal,
    /// The whole-session deadline.
    session_deadline: Instant,
    /// When the command being received must be complete.
    command_deadline: Instant,
    /// The message being received's share of the memory budget.
    reservation: Option<Reservation>,
    /// Recipients of the open transaction the upstream accepted at RCPT
    /// time (`[delivery.spool] verify_recipients`).
    verified: Vec<String>,
    /// Read buffer.
    buf: Box<[u8]>,
    /// The load balancer's address when the client's came in a PROXY header.
    proxied_by: Option<SocketAddr>,
    /// This session's unit of `wasmtp_connections_active` (`[metrics]`),
    /// given back in [`Session::finish`] before "disconnected" is logged.
    active: Option<ActiveConnection>,
}

impl Session {
    /// A session for an accepted connection (`stream`: its TCP socket, or
    /// an in-memory pipe). `remote` and `local` are the client's addresses:
    /// the socket's, or those of a PROXY header.
    pub fn new(
        shared: Arc<Shared>,
        listener: Arc<ListenerInfo>,
        stream: Stream,
        remote: SocketAddr,
        local: SocketAddr,
        id: String,
        force_close: Signal,
    ) -> Self {
        let now = Instant::now();
        let implicit_tls = listener.mode == ListenerMode::Smtps;
        let engine = SmtpEngine::new(listener.engine.clone(), implicit_tls);
        let mut conn = Connection::new(id, remote, local);
        conn.relay_client = shared.relay.is_relay_network(remote.ip());
        conn.limits = PluginLimits {
            max_recipients: listener.engine.max_recipients,
            ..shared.plugin_limits
        };
        let ctx = SessionContext {
            conn,
            txn: None,
            max_message_size: listener.engine.max_message_size,
        };
        let plugins = shared.plugins.session();
        Self {
            session_deadline: now + shared.timeouts.session,
            command_deadline: now + shared.timeouts.command,
            shared,
            listener,
            stream,
            engine,
            ctx,
            plugins,
            force_close,
            reservation: None,
            verified: Vec::new(),
            buf: vec![0u8; 16 * 1024].into_boxed_slice(),
            proxied_by: None,
            active: None,
        }
    }

    /// Sets what an offline dialog declares about its client (see
    /// [`ClientFacts`]); before [`Session::run`].
    pub fn with_client(mut self, facts: ClientFacts) -> Self {
        if let Some(tls) = facts.tls {
            self.engine = SmtpEngine::new(self.listener.engine.clone(), true);
            self.ctx.conn.tls = Some(tls);
        }
        if let Some(user) = facts.auth_user {
            self.ctx.conn.auth_user = Some(user);
            self.ctx.conn.relay_client = true;
        }
        if let Some(relay) = facts.relay {
            self.ctx.conn.relay_client = relay;
        }
        self.ctx.conn.remote_host = facts.remote_host.or(self.ctx.conn.remote_host.take());
        self
    }

    /// Notes that `remote` came from a PROXY header sent by `peer` (logged
    /// with "connected").
    pub fn proxied_by(mut self, peer: SocketAddr) -> Self {
        self.proxied_by = Some(peer);
        self
    }

    /// Runs the session to its end (the caller wraps it in the session span).
    pub async fn run(mut self) {
        self.active = self.shared.metrics.as_ref().map(SessionMetrics::connection);
        match self.proxied_by {
            None => tracing::info!(
                remote = %self.ctx.conn.remote,
                local = %self.ctx.conn.local,
                mode = %self.listener.mode,
                "connected"
            ),
            Some(proxy) => tracing::info!(
                remote = %self.ctx.conn.remote,
                local = %self.ctx.conn.local,
                mode = %self.listener.mode,
                %proxy,
                "connected"
            ),
        }
        if self.listener.mode == ListenerMode::Smtps && !self.handshake().await {
            self.finish().await;
            return;
        }
        if self.shared.dns.enabled() {
            let lookup = self.shared.dns.lookup(self.ctx.conn.remote.ip());
            self.ctx.conn.remote_host = tokio::time::timeout_at(self.session_deadline, lookup)
                .await
                .ok()
                .flatten();
        }
        self.drive().await;
        self.finish().await;
    }

    /// The engine loop.
    async fn drive(&mut self) {
        loop {
            match self.engine.poll() {
                Action::NeedInput => {
                    self.grow_reservation().await;
                    if !self.flush().await {
                        return;
                    }
                    match self.read().await {
                        Ok(n) => {
                            let bytes = &self.buf[..n];
                            self.engine.receive(bytes);
                        }
                        Err(ReadStop::Closed) => return,
                        Err(ReadStop::Timeout) => {
                            tracing::info!("timeout");
                            let reply = replies::timeout(&self.shared.hostname);
                            self.write_reply(&reply).await;
                            return;
                        }
                        Err(ReadStop::Shutdown) => {
                            tracing::info!("closing for shutdown");
                            let reply = replies::shutting_down(&self.shared.hostname);
                            self.write_reply(&reply).await;
                            return;
                        }
                    }
                }
                Action::Event(event) => {
                    let decision = self.handle(event).await;
                    self.engine.decide(decision);
                    // A whole command arrived: the next one gets a fresh allowance.
                    self.command_deadline = Instant::now() + self.shared.timeouts.command;
                }
                Action::StartTls => {
                    if !self.flush().await || !self.handshake().await {
                        return;
                    }
                    self.engine.tls_established();
                    self.end_transaction(TransactionEnd::Starttls).await;
                    self.after_tls();
                    self.command_deadline = Instant::now() + self.shared.timeouts.command;
                }
                Action::Close => {
                    self.flush().await;
                    return;
                }
            }
        }
    }

    /// After STARTTLS: RFC 3207 4.2, forget everything learnt from the
    /// client before, plugin connection notes included (a note set at HELO
    /// must not vouch for the session after TLS).
    fn after_tls(&mut self) {
        let conn = &mut self.ctx.conn;
        conn.tls = self.stream.tls_info();
        conn.hello = crate::context::HelloKind::None;
        conn.hello_host.clear();
        conn.auth_user = None;
        conn.notes = crate::context::Notes::new();
        conn.relay_client = self.shared.relay.is_relay_network(conn.remote.ip());
        self.ctx.txn = None;
        self.reservation = None;
    }

    /// The TLS handshake (STARTTLS or implicit); false if it failed.
    async fn handshake(&mut self) -> bool {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            tracing::warn!("TLS requested on a stream that is not plain TCP");
            return false;
        };
        let deadline = self
            .session_deadline
            .min(Instant::now() + self.shared.timeouts.tls_handshake);
        match tokio::time::timeout_at(deadline, self.shared.tls.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                let info = self.stream.tls_info();
                if let Some(info) = &info {
                    tracing::info!(protocol = %info.protocol, cipher = %info.cipher, "TLS established");
                }
                self.ctx.conn.tls = info;
                true
            }
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                false
            }
            Err(_) => {
                tracing::info!("TLS handshake timeout");
                false
            }
        }
    }

    /// Writes every queued reply in one write; false if the client is gone.
    async fn flush(&mut self) -> bool {
        let deadline = self
            .session_deadline
            .min(Instant::now() + self.shared.timeouts.command);
        let ok = {
            let Self { engine, stream, .. } = self;
            let out = engine.output();
            if out.is_empty() {
                true
            } else {
                let write = async {
                    stream.write_all(out).await?;
                    stream.flush().await
                };
                match tokio::time::timeout_at(deadline, write).await {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "write failed");
                        false
                    }
                    Err(_) => {
                        tracing::info!("write timeout");
                        false
                    }
                }
            }
        };
        self.engine.clear_output();
        ok
    }

    /// Writes one reply of the driver's own (timeouts, shutdown), best effort.
    async fn write_reply(&mut self, reply: &Reply) {
        let bytes = reply.to_bytes();
        let write = async {
            self.stream.write_all(&bytes).await?;
            self.stream.flush().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
    }

    /// Reads some bytes, within the current phase's deadline.
    async fn read(&mut self) -> Result<usize, ReadStop> {
        let now = Instant::now();
        // the engine says whether message content is being read: a message
        // it refused by itself is over, and commands get the command timeout
        let phase = if self.engine.receiving_message() {
            now + self.shared.timeouts.data_block
        } else {
            self.command_deadline
        };
        let deadline = phase.min(self.session_deadline);
        if self.force_close.fired() {
            return Err(ReadStop::Shutdown);
        }
        let force = self.force_close.clone();
        tokio::select! {
            biased;
            _ = force.wait() => Err(ReadStop::Shutdown),
            r = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)) => match r {
                Ok(Ok(0)) => Err(ReadStop::Closed),
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "read failed");
                    Err(ReadStop::Closed)
                }
                Err(_) => Err(ReadStop::Timeout),
            },
        }
    }

    /// Early-talker check before the greeting: waits `greeting_delay`
    /// watching the socket, or (delay 0) looks at what already arrived.
    /// True if the client spoke first.
    async fn client_talked_early(&mut self) -> bool {
        let delay = self.shared.timeouts.greeting_delay;
        let Stream::Plain(tcp) = &self.stream else {
            return false;
        };
        if !delay.is_zero() {
            let mut one = [0u8; 1];
            let waited = tokio::time::timeout(delay, tcp.peek(&mut one)).await;
            return matches!(waited, Ok(Ok(n)) if n > 0);
        }
        matches!(self.stream.peek_now(), Ok(Some(n)) if n > 0)
    }

    /// Disconnect hook, then a graceful close.
    async fn finish(&mut self) {
        self.end_transaction(TransactionEnd::Disconnect).await;
        self.plugins.disconnect(&mut self.ctx).await;
        close_gracefully(&mut self.stream).await;
        self.active = None;
        tracing::info!("disconnected");
    }
}

/// Shuts our side down, then reads and discards what the client still
/// sends (bounded in time and size), so closing does not reset the
/// connection and destroy our last reply before the client has read it.
async fn close_gracefully(stream: &mut Stream) {
    let drain = async {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < 1 << 20 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}
