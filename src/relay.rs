//! The core relay policy: never an open relay.
//!
//! Mail to any domain is accepted only from relay clients (authenticated
//! sessions, clients in `relay_networks`, or sessions a plugin marked as
//! relay clients). Anyone else may only send to the local domains, with a
//! plain local part: `%` and `!` (percent hack, bang paths), a quoted `@`
//! and source routes (`@hop:user@domain`) are refused, so no address trick
//! can make us forward mail elsewhere.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::RelayConfig;
use crate::protocol::{Reply, replies};

/// Local domains and relay networks, ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct RelayPolicy {
    local_domains: HashSet<String>,
    networks: Vec<IpNet>,
    /// What `<Postmaster>` was mapped to (RFC 5321 4.5.1): always accepted.
    postmaster: String,
}

impl RelayPolicy {
    /// The policy of `[relay]` (domains already normalised by validation).
    pub fn new(config: &RelayConfig) -> Self {
        Self {
            local_domains: config
                .local_domains
                .iter()
                .map(|d| normalize_domain(d))
                .collect(),
            networks: config.relay_networks.iter().map(|n| n.0).collect(),
            postmaster: String::new(),
        }
    }

    /// Also accepts `address`, what `RCPT TO:<Postmaster>` stands for
    /// (it may be at the server's host name, not a local domain).
    pub fn with_postmaster(mut self, address: &str) -> Self {
        self.postmaster = address.to_string();
        self
    }

    /// Whether a client address is in a relay network. IPv4-mapped IPv6
    /// addresses are checked as IPv4.
    pub fn is_relay_network(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether `domain` is one of ours.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.local_domains.contains(&normalize_domain(domain))
    }

    /// Core decision for a RCPT nobody else decided: `Ok` to accept, or the
    /// refusal.
    pub fn check_recipient(&self, recipient: &str, relay_client: bool) -> Result<(), Reply> {
        if relay_client {
            return Ok(());
        }
        // RFC 5321 4.5.1: "Postmaster" without a domain must be accepted.
        if recipient.eq_ignore_ascii_case("postmaster")
            || (!self.postmaster.is_empty() && recipient.eq_ignore_ascii_case(&self.postmaster))
        {
            return Ok(());
        }
        if recipient.starts_with('@') {
            // Source route (@hop,@hop:user@domain): never from outsiders.
            return Err(replies::relay_denied());
        }
        let Some((local, domain)) = recipient.rsplit_once('@') else {
            return Err(replies::relay_denied());
        };
        if local.is_empty() || local.contains(['%', '!', '@']) {
            return Err(replies::relay_denied());
        }
        if self.is_local_domain(domain) {
            Ok(())
        } else {
            Err(replies::relay_denied())
        }
    }
}

fn normalize_domain(d: &str) -> String {
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;

    fn policy() -> RelayPolicy {
        RelayPolicy::new(&RelayConfig {
            local_domains: vec!["example.test".into(), "localhost".into()],
            relay_networks: vec!["10.0.0.0/8".parse::<Network>().unwrap()],
        })
    }

    #[test]
    fn local_recipients_accepted() {
        let p = policy();
        for r in [
            "user@example.test",
            "User@EXAMPLE.TEST",
            "user@example.test.",
            "postmaster@localhost",
            "Postmaster",
            "first.last+tag@example.test",
        ] {
            assert_eq!(p.check_recipient(r, false), Ok(()), "{r}");
        }
    }

    #[test]
    fn relay_tricks_denied() {
        let p = policy();
        for r in [
            "user@remote.test",
            "user%remote.test@example.test",
            "remote.test!user@example.test",
            "\"user@remote.test\"@example.test",
            "@example.test:user@remote.test",
            "@remote.test:user@example.test",
            "@example.test,@x:user@example.test",
            "user@[127.0.0.1]",
            "user",
            "@example.test",
            "",
        ] {
            assert_eq!(
                p.check_recipient(r, false),
                Err(replies::relay_denied()),
                "{r}"
            );
        }
    }

    #[test]
    fn relay_clients_may_relay() {
        let p = policy();
        assert_eq!(p.check_recipient("user@remote.test", true), Ok(()));
        assert!(p.is_relay_network("10.1.2.3".parse().unwrap()));
        assert!(p.is_relay_network("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!p.is_relay_network("127.0.0.1".parse().unwrap()));
    }
}
