//! The `[delivery]` configuration section and its sub-tables.
//!
//! ```toml
//! [delivery]
//! mode = "maildir"              # "maildir" | "forward" | "store-and-forward"
//! maildir = "var/maildir"       # Maildir root (tmp/, new/, cur/ are created)
//!
//! [delivery.forward]            # upstream (smarthost) settings: forward and store-and-forward
//! upstreams = ["127.0.0.1:2525"] # IP:port, tried in order (failover)
//! tls = "opportunistic"         # "none" | "opportunistic" | "required"
//! # ca_file = "upstream-ca.pem"  # PEM roots for "required"; default: webpki roots
//! # tls_server_name = "mx.example.net" # name to verify; default: the upstream IP
//! # helo_name = "gw.example.net" # default: the machine's host name
//! pool_size = 16                # idle upstream connections kept for reuse
//! connect_timeout = "30s"
//! command_timeout = "5m"        # each reply to a command (RFC 5321 4.5.3.2)
//! data_timeout = "10m"          # the reply to the final dot
//! idle_timeout = "30s"          # close pooled connections idle this long
//! max_messages_per_connection = 1000
//!
//! [delivery.spool]              # store-and-forward only
//! dir = "var/spool"
//! workers = 8                   # concurrent delivery attempts
//! commit_wait = "500us"         # group commit: wait this long for more messages
//! commit_max_batch = 256        # group commit: at most this many per fsync round
//! first_retry = "5m"            # backoff after the first failure
//! max_retry = "4h"              # backoff cap (doubles each attempt up to this)
//! max_lifetime = "5d"           # then the message bounces
//! # delay_warning_after = "4h"  # one "delayed" DSN to the sender; off when absent
//! ```
//!
//! Durations are written as an integer with a unit: `us`, `ms`, `s`, `m`,
//! `h` or `d`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// How accepted messages are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// Write one file per message into a Maildir (the mailbox of every local
    /// recipient), fsynced before the 250.
    #[default]
    Maildir,
    /// Relay synchronously to the upstream(s): the client gets the upstream's verdict.
    Forward,
    /// Spool durably (fsync, group commit), answer 250, deliver in the background
    /// with retries and bounces.
    StoreAndForward,
}

/// Upstream TLS policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsPolicy {
    /// Never STARTTLS.
    None,
    /// STARTTLS when the upstream offers it, certificate not verified
    /// (encryption against passive listeners, like Postfix `may`); plaintext
    /// when it is not offered or the handshake fails.
    #[default]
    Opportunistic,
    /// STARTTLS is mandatory and the certificate must verify against
    /// `ca_file` (or the webpki roots). Never falls back to plaintext and
    /// never sends MAIL in plaintext: the attempt fails temporarily instead.
    Required,
}

/// `[delivery]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Delivery mode; `maildir` by default.
    pub mode: DeliveryMode,
    /// Maildir root for `mode = "maildir"`.
    pub maildir: PathBuf,
    /// Upstream settings for `forward` and `store-and-forward`.
    pub forward: ForwardConfig,
    /// Spool settings for `store-and-forward`.
    pub spool: SpoolConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            mode: DeliveryMode::Maildir,
            maildir: PathBuf::from("var/maildir"),
            forward: ForwardConfig::default(),
            spool: SpoolConfig::default(),
        }
    }
}

/// `[delivery.forward]`: the upstream SMTP servers (smarthosts).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// Upstreams as `IP:port`, tried in order: the next one is used when a
    /// connection to the previous fails. Host names are refused (they would
    /// need DNS).
    #[serde(deserialize_with = "de_socket_addrs")]
    pub upstreams: Vec<SocketAddr>,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// PEM file with the CA certificates that verify upstreams (`required`);
    /// the webpki roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Name the upstream certificate must be valid for; the upstream's IP
    /// address when absent.
    pub tls_server_name: Option<String>,
    /// Name sent with EHLO; the machine's host name when absent.
    pub helo_name: Option<String>,
    /// Idle connections kept per upstream for reuse across messages.
    pub pool_size: usize,
    /// TCP connect timeout.
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Timeout for each reply (greeting, EHLO, MAIL, RCPT, DATA, RSET, STARTTLS
    /// and the TLS handshake).
    #[serde(deserialize_with = "de_duration")]
    pub command_timeout: Duration,
    /// Timeout for sending the message and reading the reply to the final dot.
    #[serde(deserialize_with = "de_duration")]
    pub data_timeout: Duration,
    /// Pooled connections idle longer than this are closed instead of reused.
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// A connection is closed (QUIT) after this many messages.
    pub max_messages_per_connection: u32,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            tls: TlsPolicy::Opportunistic,
            ca_file: None,
            tls_server_name: None,
            helo_name: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(30),
            max_messages_per_connection: 1000,
        }
    }
}

/// `[delivery.spool]`: the durable queue of `store-and-forward`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Spool directory (`tmp/`, `msg/`, `state/` and `control.sock` inside).
    pub dir: PathBuf,
    /// Concurrent delivery attempts.
    pub workers: usize,
    /// Group commit: after the first message of a round arrives, wait this
    /// long for others before fsyncing them together.
    #[serde(deserialize_with = "de_duration")]
    pub commit_wait: Duration,
    /// Group commit: most messages fsynced in one round.
    pub commit_max_batch: usize,
    /// Delay before the first retry; doubles on each failed attempt.
    #[serde(deserialize_with = "de_duration")]
    pub first_retry: Duration,
    /// Cap of the retry delay.
    #[serde(deserialize_with = "de_duration")]
    pub max_retry: Duration,
    /// A message still undelivered this long after it was accepted bounces.
    #[serde(deserialize_with = "de_duration")]
    pub max_lifetime: Duration,
    /// When set, a message still undelivered (to some recipient) this long
    /// after it was accepted causes one RFC 3464 delay warning
    /// (`Action: delayed`) to the envelope sender, never to the null
    /// sender. Off when absent (like Postfix's `delay_warning_time = 0`).
    #[serde(deserialize_with = "de_opt_duration")]
    pub delay_warning_after: Option<Duration>,
    /// Verify each recipient of a client that is neither authenticated nor
    /// in `relay_networks` at RCPT time, with a probe of the upstream
    /// (`MAIL FROM:<>`, `RCPT TO:`, `RSET`, like Postfix's
    /// `reject_unverified_recipient`): refused there → `550 5.1.1` in the
    /// session; upstream unreachable or 4xx → `450 4.1.1`. Results are
    /// cached (see `verify_cache_ttl`, `verify_negative_ttl`).
    pub verify_recipients: bool,
    /// How long an accepted probe result is reused.
    #[serde(deserialize_with = "de_duration")]
    pub verify_cache_ttl: Duration,
    /// How long a refused probe result is reused.
    #[serde(deserialize_with = "de_duration")]
    pub verify_negative_ttl: Duration,
    /// Most probe results kept (the oldest are dropped first).
    pub verify_cache_size: usize,
    /// How long a probe may take before the client gets `450 4.1.1`.
    #[serde(deserialize_with = "de_duration")]
    pub verify_timeout: Duration,
    /// Bounce (and warn) also for recipients of a client that was neither
    /// authenticated nor in `relay_networks` when the recipient was not
    /// verified at RCPT time. Off by default: such a sender may be forged,
    /// and a bounce to it is backscatter; the failure is logged instead.
    pub bounce_unverified: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("var/spool"),
            workers: 8,
            commit_wait: Duration::from_micros(500),
            commit_max_batch: 256,
            first_retry: Duration::from_secs(300),
            max_retry: Duration::from_secs(4 * 3600),
            max_lifetime: Duration::from_secs(5 * 86400),
            delay_warning_after: None,
            verify_recipients: false,
            verify_cache_ttl: Duration::from_secs(3600),
            verify_negative_ttl: Duration::from_secs(600),
            verify_cache_size: 100_000,
            verify_timeout: Duration::from_secs(10),
            bounce_unverified: false,
        }
    }
}

/// Parses `"500us"`, `"250ms"`, `"30s"`, `"5m"`, `"4h"`, `"5d"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86400)?),
        _ => return None,
    };
    Some(d)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?}: expected a number with a unit (us, ms, s, m, h, d), e.g. \"30s\""
        ))
    })
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

fn de_socket_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| {
            s.parse::<SocketAddr>().map_err(|_| {
                serde::de::Error::custom(format!(
                    "invalid upstream {s:?}: expected IP:port (host names would need DNS)"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432_000)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn parses_full_section() {
        let c: DeliveryConfig = toml::from_str(
            r#"
            mode = "store-and-forward"
            maildir = "m"
            [forward]
            upstreams = ["127.0.0.1:2525", "[::1]:25"]
            tls = "required"
            command_timeout = "2s"
            [spool]
            dir = "s"
            first_retry = "100ms"
            "#,
        )
        .unwrap();
        assert_eq!(c.mode, DeliveryMode::StoreAndForward);
        assert_eq!(c.forward.upstreams.len(), 2);
        assert_eq!(c.forward.tls, TlsPolicy::Required);
        assert_eq!(c.forward.command_timeout, Duration::from_secs(2));
        assert_eq!(c.spool.first_retry, Duration::from_millis(100));
        assert_eq!(c.spool.max_lifetime, Duration::from_secs(5 * 86400));
        assert_eq!(c.spool.delay_warning_after, None);
        let c: DeliveryConfig = toml::from_str("[spool]\ndelay_warning_after = \"4h\"").unwrap();
        assert_eq!(
            c.spool.delay_warning_after,
            Some(Duration::from_secs(4 * 3600))
        );
    }

    #[test]
    fn refuses_unknown_and_hostnames() {
        assert!(toml::from_str::<DeliveryConfig>("bogus = 1").is_err());
        assert!(
            toml::from_str::<DeliveryConfig>("[forward]\nupstreams = [\"mx.example:25\"]").is_err()
        );
        assert!(toml::from_str::<DeliveryConfig>("[forward]\nconnect_timeout = \"3\"").is_err());
        assert!(toml::from_str::<DeliveryConfig>("[spool]\ndelay_warning_after = \"4\"").is_err());
    }
}
