//! Recipient verification at RCPT time (`[delivery.spool]
//! verify_recipients`): before store-and-forward accepts a recipient from
//! a client that is neither authenticated nor in `relay_networks`, the
//! upstream is asked whether it would take mail for it (a probe:
//! `MAIL FROM:<>`, `RCPT TO:`, then RSET before the connection's next use),
//! as Postfix's `reject_unverified_recipient` does. A recipient the
//! upstream refuses is refused in the session (`550 5.1.1`), so the
//! message is never accepted for it and no bounce to a possibly forged
//! sender can follow. Results are cached per address (accepted and refused
//! for their own TTLs; an unreachable upstream or a 4xx is never cached).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::SpoolConfig;
use super::forward::UpstreamPool;
use crate::protocol::{Reply, replies};

/// What the upstream said of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// It would take mail for it.
    Deliverable,
    /// It refused it permanently: the reply for the client (`550 5.1.1`).
    Undeliverable(Reply),
    /// No answer could be had (upstream down, 4xx, timeout): the reply for
    /// the client (`450 4.1.1`), so it tries again later.
    Unknown(Reply),
}

/// Longest upstream text quoted back to the client.
const MAX_QUOTED: usize = 200;

#[derive(Debug)]
struct Entry {
    deliverable: bool,
    /// The upstream's refusal, for the reply.
    text: String,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    /// Keys in insertion order, for dropping the oldest when full.
    order: VecDeque<String>,
}

/// The probe cache and its settings. Shared by every session.
#[derive(Debug)]
pub struct RecipientVerifier {
    cache: Mutex<Cache>,
    positive_ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    timeout: Duration,
}

/// The cache key: the domain is case-insensitive, the local part is not.
fn key(recipient: &str) -> String {
    match recipient.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => recipient.to_string(),
    }
}

/// Printable ASCII only, at most [`MAX_QUOTED`] characters.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(MAX_QUOTED)
        .collect()
}

fn undeliverable(recipient: &str, why: &str) -> Reply {
    replies::recipient_undeliverable(&quoted(recipient), &quoted(why))
}

fn unknown(recipient: &str, why: &str) -> Reply {
    replies::recipient_unverified(&quoted(recipient), &quoted(why))
}

impl RecipientVerifier {
    /// The verifier of `[delivery.spool]`; `None` when `verify_recipients`
    /// is off.
    pub fn new(config: &SpoolConfig) -> Option<Self> {
        config.verify_recipients.then(|| Self {
            cache: Mutex::new(Cache::default()),
            positive_ttl: config.verify_cache_ttl,
            negative_ttl: config.verify_negative_ttl,
            max_entries: config.verify_cache_size.max(1),
            timeout: config.verify_timeout,
        })
    }

    fn cached(&self, key: &str, now: Instant) -> Option<(bool, String)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entries
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| (e.deliverable, e.text.clone()))
    }

    fn remember(&self, key: String, deliverable: bool, text: String, now: Instant) {
        let ttl = if deliverable {
            self.positive_ttl
        } else {
            self.negative_ttl
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        while cache.entries.len() >= self.max_entries {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            cache.entries.remove(&oldest);
        }
        if cache
            .entries
            .insert(
                key.clone(),
                Entry {
                    deliverable,
                    text,
                    expires: now + ttl,
                },
            )
            .is_none()
        {
            cache.order.push_back(key);
        }
    }

    /// Verifies `recipient` against the upstream (or the cache).
    pub async fn verify(&self, pool: &UpstreamPool, recipient: &str) -> Verification {
        let key = key(recipient);
        let now = Instant::now();
        if let Some((deliverable, text)) = self.cached(&key, now) {
            return if deliverable {
                Verification::Deliverable
            } else {
                Verification::Undeliverable(undeliverable(recipient, &text))
            };
        }
        let answer = tokio::time::timeout(self.timeout, pool.probe(recipient)).await;
        match answer {
            Ok(Ok(r)) if r.is_success() => {
                tracing::info!(%recipient, "recipient verified upstream");
                self.remember(key, true, String::new(), Instant::now());
                Verification::Deliverable
            }
            Ok(Ok(r)) if r.is_permanent() => {
                let text = r.one_line();
                tracing::info!(%recipient, upstream = %text, "recipient refused by the upstream probe");
                let reply = undeliverable(recipient, &text);
                self.remember(key, false, text, Instant::now());
                Verification::Undeliverable(reply)
            }
            Ok(Ok(r)) => Verification::Unknown(unknown(recipient, &r.one_line())),
            Ok(Err(e)) => {
                tracing::warn!(%recipient, error = %e, "recipient probe failed");
                Verification::Unknown(unknown(recipient, "upstream unavailable"))
            }
            Err(_) => {
                tracing::warn!(%recipient, "recipient probe timed out");
                Verification::Unknown(unknown(recipient, "upstream did not answer in time"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(max: usize) -> RecipientVerifier {
        let config = SpoolConfig {
            verify_recipients: true,
            verify_cache_size: max,
            ..SpoolConfig::default()
        };
        RecipientVerifier::new(&config).unwrap()
    }

    #[test]
    fn off_unless_configured() {
        assert!(RecipientVerifier::new(&SpoolConfig::default()).is_none());
    }

    #[test]
    fn cache_keys_fold_the_domain_only() {
        assert_eq!(key("Bob@Example.TEST"), "Bob@example.test");
        assert_eq!(key("postmaster"), "postmaster");
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest() {
        let v = verifier(2);
        let now = Instant::now();
        v.remember("a@x".into(), true, String::new(), now);
        v.remember("b@x".into(), false, "550 no".into(), now);
        v.remember("c@x".into(), true, String::new(), now);
        assert_eq!(v.cached("a@x", now), None);
        assert_eq!(v.cached("b@x", now), Some((false, "550 no".into())));
        assert_eq!(v.cached("c@x", now), Some((true, String::new())));
    }

    #[test]
    fn entries_expire_by_their_own_ttl() {
        let v = verifier(10);
        let now = Instant::now();
        v.remember("ok@x".into(), true, String::new(), now);
        v.remember("no@x".into(), false, "550 no".into(), now);
        let later = now + Duration::from_secs(601);
        assert!(v.cached("ok@x", later).is_some(), "positive: 1 h");
        assert_eq!(v.cached("no@x", later), None, "negative: 10 min");
    }

    #[test]
    fn replies_quote_bounded_printable_text() {
        let r = undeliverable("a@x", &format!("550 5.1.1 no\r\nsuch{}", "y".repeat(500)));
        assert_eq!(r.code(), 550);
        let text = r.to_string();
        // One line: the upstream's CR LF became `?`, nothing breaks the reply.
        assert!(!text.contains(['\r', '\n']), "{text:?}");
        assert!(text.contains("no??such"), "{text:?}");
        assert!(text.len() < 300, "{}", text.len());
        assert_eq!(unknown("a@x", "down").code(), 450);
    }
}
