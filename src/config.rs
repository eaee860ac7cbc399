//! The gateway configuration: one TOML file, every section optional.
//!
//! A config holding only `[relay] local_domains = [...]` is complete: every
//! other section has sensible defaults (RFC 5321 limits and timeouts, one
//! `smtp` listener on 127.0.0.1:2525, a self-signed certificate, Maildir
//! delivery). Unknown keys are errors, and every error names the key and its
//! `line:column` in the file (see [`ConfigError`]).
//!
//! Durations are humane strings (`"30s"`, `"5m"`, `"250ms"`) or integers
//! (seconds); sizes are strings (`"35M"`, `"512k"`) or integers (octets).
//!
//! The `[delivery]`, `[plugin_host]`, `[[plugins]]`, `[metrics]` and `[kv]`
//! sections belong to their modules ([`crate::delivery`], [`crate::plugin`],
//! [`crate::metrics`], [`crate::kv`]) and are composed here as they are.

mod locate;
mod paths;
pub mod units;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::delivery::DeliveryConfig;
use crate::kv::KvConfig;
use crate::metrics::MetricsConfig;
use crate::plugin::{PluginConfig, PluginHostConfig};
use crate::protocol::{BareLineEndings, EngineConfig};

pub use locate::Locator;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: identity, connection caps, shutdown.
    pub server: ServerConfig,
    /// `[[listeners]]`: where to accept connections, each with a mode.
    /// Empty means one `smtp` listener on 127.0.0.1:2525.
    pub listeners: Vec<ListenerConfig>,
    /// `[tls]`: certificate and key, or a self-signed certificate.
    pub tls: TlsConfig,
    /// `[limits]`: protocol limits handed to the engine.
    pub limits: LimitsConfig,
    /// `[timeouts]`: per-phase timeouts and the whole-session deadline.
    pub timeouts: TimeoutsConfig,
    /// `[relay]`: local domains and relay networks.
    pub relay: RelayConfig,
    /// `[auth]`: users and AUTH policy.
    pub auth: AuthConfig,
    /// `[dns]`: the resolver for reverse lookups; none means no DNS at all.
    pub dns: DnsConfig,
    /// `[data]`: message body policy.
    pub data: DataConfig,
    /// `[log]`: log format and filter.
    pub log: LogConfig,
    /// `[delivery]`: owned by [`crate::delivery`].
    pub delivery: DeliveryConfig,
    /// `[plugin_host]`: owned by [`crate::plugin`].
    pub plugin_host: PluginHostConfig,
    /// `[[plugins]]`: the plugin chain, in order; owned by [`crate::plugin`].
    pub plugins: Vec<PluginConfig>,
    /// `[metrics]`: the Prometheus endpoint; owned by [`crate::metrics`].
    pub metrics: MetricsConfig,
    /// `[kv]`: the plugins' key-value store; owned by [`crate::kv`].
    pub kv: KvConfig,
    /// Where the config was read from (for reloads and messages); not a key.
    #[serde(skip)]
    pub origin: Option<PathBuf>,
    /// The file's keys as written, before defaults (what a reload compares
    /// to log what changed); not a key.
    #[serde(skip)]
    pub raw: toml::Table,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Our host name: greeting, EHLO, Received headers, default certificate name.
    pub hostname: String,
    /// Sessions served at once across all listeners; the excess get 421 and close.
    pub max_connections: usize,
    /// Sessions at once from one client IP address; the excess get 421 and close.
    pub max_connections_per_ip: usize,
    /// IPv6 clients are counted per network of this prefix length for
    /// `max_connections_per_ip` and the AUTH failure limit (one host
    /// usually holds a whole /64); 128 counts each address.
    pub ipv6_prefix_per_ip: u8,
    /// On SIGTERM/SIGINT, how long open sessions may go on before they get 421.
    #[serde(deserialize_with = "units::duration")]
    pub shutdown_grace: Duration,
    /// The Unix socket `wasmtp reload` asks the running gateway through
    /// (created `0600`; only `wasmtp run` opens it). Empty: none.
    pub control_socket: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_connections: 1000,
            max_connections_per_ip: 20,
            ipv6_prefix_per_ip: 64,
            shutdown_grace: Duration::from_secs(30),
            control_socket: PathBuf::from("var/wasmtp.sock"),
        }
    }
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerMode {
    /// Relay/MX service: STARTTLS offered, AUTH optional (port 25).
    #[default]
    Smtp,
    /// Message submission (RFC 6409): STARTTLS and AUTH required before MAIL (port 587).
    Submission,
    /// Submission over implicit TLS (RFC 8314): TLS from the first byte, AUTH required (port 465).
    Smtps,
}

impl fmt::Display for ListenerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Smtp => "smtp",
            Self::Submission => "submission",
            Self::Smtps => "smtps",
        })
    }
}

/// One `[[listeners]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `ip:port` to bind; port 0 picks a free port.
    pub address: SocketAddr,
    /// `smtp` (default), `submission` or `smtps`.
    #[serde(default)]
    pub mode: ListenerMode,
    /// Overrides whether AUTH is required before MAIL (default: false for
    /// `smtp`, true for `submission` and `smtps`).
    #[serde(default)]
    pub require_auth: Option<bool>,
    /// Expect a PROXY protocol header (v1 or v2, HAProxy) before SMTP on
    /// every connection, and use the client address it names. Only peers in
    /// `proxy_trusted` may connect; anything else is closed before the
    /// greeting.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// The load balancers allowed to send the PROXY header (CIDR or
    /// addresses); required with `proxy_protocol = true`.
    #[serde(default)]
    pub proxy_trusted: Vec<Network>,
}

impl ListenerConfig {
    /// The listener used when the config names none.
    pub fn default_listener() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 2525)),
            mode: ListenerMode::Smtp,
            require_auth: None,
            proxy_protocol: false,
            proxy_trusted: Vec::new(),
        }
    }

    /// Whether AUTH is required before MAIL on this listener.
    pub fn auth_required(&self) -> bool {
        self.require_auth
            .unwrap_or(!matches!(self.mode, ListenerMode::Smtp))
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain. With neither `cert` nor `key`, a self-signed
    /// certificate is generated at start.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Names in the generated self-signed certificate (default: the hostname).
    pub self_signed_names: Vec<String>,
}

/// `[limits]`: mapped onto [`EngineConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Max command line in octets including CRLF (at least 512, RFC 5321 4.5.3.1.4).
    pub max_command_line: usize,
    /// Extra octets allowed on MAIL/RCPT lines for ESMTP parameters.
    pub command_line_extension: usize,
    /// Max text line in DATA in octets including CRLF (at least 1000, RFC 5321 4.5.3.1.6).
    pub max_text_line: usize,
    /// Max message size (SIZE); larger messages are read, discarded and refused 552.
    #[serde(deserialize_with = "units::size")]
    pub max_message_size: u64,
    /// Max recipients per transaction (at least 100, RFC 5321 4.5.3.1.8); past it 452.
    pub max_recipients: usize,
    /// Protocol errors before 421 and close.
    pub max_errors: usize,
    /// Offer CHUNKING (BDAT).
    pub chunking: bool,
    /// Offer SMTPUTF8.
    pub smtputf8: bool,
    /// Most header fields in a received message; past it `552 5.3.4`.
    pub max_header_fields: usize,
    /// Most octets of a received message's header section; past it `552 5.3.4`.
    #[serde(deserialize_with = "units::size")]
    pub max_header_bytes: u64,
    /// Message octets held in memory across every session at once. Each
    /// message being received reserves its declared `SIZE=` or 1 MiB at
    /// DATA/BDAT and grows the reservation a MiB at a time as it arrives;
    /// when the first reservation does not fit, DATA gets `452 4.3.1`, when
    /// a later one does not, the end of data does (the client retries
    /// later). 0: no budget.
    #[serde(deserialize_with = "units::size")]
    pub memory_budget: u64,
    /// NOOP, VRFY, HELP and RSET allowed per session; the next gets 421.
    pub max_junk_commands: usize,
    /// Refuse `MAIL FROM: <a>` / `RCPT TO:a@b` (space after the colon, no
    /// angle brackets); off by default, as Postfix's `strict_rfc821_envelopes`.
    pub strict_envelopes: bool,
    /// Refuse (554, close) an unauthenticated client that sends commands
    /// before the reply to the end of DATA (Postfix
    /// `smtpd_forbid_unauth_pipelining`); off by default.
    pub forbid_unauth_pipelining: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let e = EngineConfig::default();
        Self {
            max_command_line: e.max_command_line,
            command_line_extension: e.command_line_extension,
            max_text_line: e.max_text_line,
            max_message_size: e.max_message_size,
            max_recipients: e.max_recipients,
            max_errors: e.max_errors,
            chunking: e.chunking,
            smtputf8: e.smtputf8,
            max_header_fields: 1000,
            max_header_bytes: 1 << 20,
            memory_budget: 1 << 30,
            max_junk_commands: e.max_junk_commands,
            strict_envelopes: e.strict_envelopes,
            forbid_unauth_pipelining: e.forbid_unauth_pipelining,
        }
    }
}

/// `[timeouts]` (RFC 5321 4.5.3.2 server defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// Time to receive one whole command (not an idle timer: a client
    /// dripping a byte at a time does not extend it). RFC 5321: 5 minutes.
    #[serde(deserialize_with = "units::duration")]
    pub command: Duration,
    /// Time between two reads of message data. RFC 5321: 3 minutes.
    #[serde(deserialize_with = "units::duration")]
    pub data_block: Duration,
    /// Time for a TLS handshake (STARTTLS or implicit TLS).
    #[serde(deserialize_with = "units::duration")]
    pub tls_handshake: Duration,
    /// Whole-session deadline, from accept to close, whatever the client does.
    #[serde(deserialize_with = "units::duration")]
    pub session: Duration,
    /// Delay before the greeting; a client that talks before it is refused
    /// (early talker). 0 checks only what already arrived.
    #[serde(deserialize_with = "units::duration")]
    pub greeting_delay: Duration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(300),
            data_block: Duration::from_secs(180),
            tls_handshake: Duration::from_secs(30),
            session: Duration::from_secs(30 * 60),
            greeting_delay: Duration::ZERO,
        }
    }
}

/// `[relay]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Domains we accept mail for from anyone (case-insensitive).
    pub local_domains: Vec<String>,
    /// Client networks allowed to relay (CIDR like `192.0.2.0/24`, or one address).
    pub relay_networks: Vec<Network>,
}

/// An IP network in the config: `10.0.0.0/8`, `::1/128` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network(pub ipnet::IpNet);

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Self(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self(ipnet::IpNet::from(ip)));
        }
        Err(format!(
            "invalid network {s:?}: expected CIDR like \"192.0.2.0/24\" or an IP address"
        ))
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Users allowed to authenticate (`[[auth.users]]`).
    pub users: Vec<AuthUser>,
    /// Allow AUTH without TLS (off by default: passwords would cross in clear).
    pub allow_plaintext: bool,
    /// AUTH failures in one session before 421 and close.
    pub max_failures: usize,
    /// AUTH failures from one client address (IPv6: its
    /// `ipv6_prefix_per_ip` network) across sessions within
    /// `failure_window`; past it AUTH gets 421 without checking credentials.
    pub max_failures_per_ip: u32,
    /// Failures are forgotten this long after the last one from the address.
    #[serde(deserialize_with = "units::duration")]
    pub failure_window: Duration,
    /// Delay before answering a failed AUTH: this, doubled for each earlier
    /// failure from the same address, at most 32 times this.
    #[serde(deserialize_with = "units::duration")]
    pub failure_delay: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            allow_plaintext: false,
            max_failures: EngineConfig::default().max_auth_failures,
            max_failures_per_ip: 10,
            failure_window: Duration::from_secs(3600),
            failure_delay: Duration::from_secs(1),
        }
    }
}

/// One `[[auth.users]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthUser {
    /// Login name.
    pub username: String,
    /// Argon2 PHC string (`$argon2id$v=19$m=...`), as printed by `wasmtp hash-password`.
    pub password_hash: PasswordHash,
}

/// A validated argon2 PHC hash string.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl FromStr for PasswordHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        crate::auth::check_phc(s)?;
        Ok(Self(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for PasswordHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[dns]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// The only DNS server ever queried (`ip` or `ip:port`). None: no DNS at
    /// all (no reverse lookups; the system resolver is never used).
    pub resolver: Option<ResolverAddr>,
    /// Timeout of one lookup.
    #[serde(deserialize_with = "units::duration")]
    pub timeout: Duration,
    /// Most `dns` lookups the plugins of one session may send (cache hits
    /// included); past it a lookup fails with `refused`.
    pub max_queries_per_session: u32,
    /// Most answers kept in the plugins' DNS cache (entries).
    pub cache_size: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            timeout: Duration::from_secs(5),
            max_queries_per_session: 50,
            cache_size: 10_000,
        }
    }
}

/// A DNS server address: `ip:port`, or `ip` for port 53.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolverAddr(pub SocketAddr);

impl FromStr for ResolverAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Self(a));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self(SocketAddr::new(ip, 53)));
        }
        Err(format!(
            "invalid resolver address {s:?}: expected \"ip\" or \"ip:port\""
        ))
    }
}

impl<'de> Deserialize<'de> for ResolverAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[data]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Bare CR or LF in DATA: `reject` (default, 550 5.5.2) or `normalize`.
    pub bare_line_endings: BareLineEndings,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json` (the `--log-format` flag overrides it).
    pub format: LogFormat,
    /// tracing filter directives (`info`, `wasmtp=debug`); `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// A config that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A syntax, type or semantic error at a position.
    #[error("{}", format_invalid(origin, key, *line, *column, message))]
    Invalid {
        /// File name (or another origin label).
        origin: String,
        /// Dotted key path (`listeners[1].address`); empty at the top level.
        key: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

fn format_invalid(origin: &str, key: &str, line: usize, column: usize, message: &str) -> String {
    if key.is_empty() {
        format!("{origin}:{line}:{column}: {message}")
    } else {
        format!("{origin}:{line}:{column}: key `{key}`: {message}")
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // Every relative path in the file is relative to the file's directory.
        let base = path.parent().unwrap_or(Path::new(""));
        let mut config = Self::parse(&text, &path.display().to_string(), base)?;
        config.origin = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates config text; `origin` names it in errors.
    /// Relative paths stay as written (relative to the current directory);
    /// [`Config::load`] resolves them against the file's directory.
    pub fn from_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::parse(text, origin, Path::new(""))
    }

    /// Parses config text, resolves its relative paths against `base`
    /// (`""`: left as they are) and validates it.
    fn parse(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        let locator = Locator::new(text);
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = locator.line_col(offset);
            ConfigError::Invalid {
                origin: origin.to_string(),
                key: locator.path_at(offset),
                line,
                column,
                message: one_line(e.message()),
            }
        })?;
        config.raw = toml::from_str(text).unwrap_or_default();
        if config.listeners.is_empty() {
            config.listeners.push(ListenerConfig::default_listener());
        }
        paths::resolve(&mut config, base);
        validate::validate(&mut config).map_err(|(key, message)| {
            let offset = locator.span_of(&key).map_or(0, |s| s.start);
            let (line, column) = locator.line_col(offset);
            ConfigError::Invalid {
                origin: origin.to_string(),
                key,
                line,
                column,
                message,
            }
        })?;
        Ok(config)
    }

    /// The engine settings for one listener.
    pub fn engine_config(&self, listener: &ListenerConfig) -> EngineConfig {
        let l = &self.limits;
        EngineConfig {
            hostname: self.server.hostname.clone(),
            starttls: listener.mode != ListenerMode::Smtps,
            require_tls: listener.mode == ListenerMode::Submission,
            require_auth: listener.auth_required(),
            auth: !self.auth.users.is_empty() || !self.plugins.is_empty(),
            auth_plaintext: self.auth.allow_plaintext,
            max_command_line: l.max_command_line,
            command_line_extension: l.command_line_extension,
            max_text_line: l.max_text_line,
            max_message_size: l.max_message_size,
            max_recipients: l.max_recipients,
            max_errors: l.max_errors,
            max_auth_failures: self.auth.max_failures,
            bare_line_endings: self.data.bare_line_endings,
            chunking: l.chunking,
            smtputf8: l.smtputf8,
            strict_envelopes: l.strict_envelopes,
            postmaster: self.postmaster(),
            forbid_unauth_pipelining: l.forbid_unauth_pipelining,
            max_junk_commands: l.max_junk_commands,
        }
    }

    /// What `RCPT TO:<Postmaster>` (RFC 5321 4.5.1) is delivered to:
    /// `postmaster@` the first of `[relay] local_domains`, or `[server]
    /// hostname` when there is none.
    pub fn postmaster(&self) -> String {
        let domain = self
            .relay
            .local_domains
            .first()
            .unwrap_or(&self.server.hostname);
        format!("postmaster@{domain}")
    }
}

fn one_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
