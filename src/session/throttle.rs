//! Per-client limits that outlive a session: how client addresses are
//! grouped ([`client_key`]: IPv6 by network prefix) and the AUTH failure
//! throttle shared by every session ([`AuthThrottle`]).
//!
//! A client that fails AUTH is answered after a delay that doubles with
//! each failure from its address (`[auth] failure_delay`, at most 32 times
//! it), and past `[auth] max_failures_per_ip` failures within
//! `failure_window` its AUTH commands get `421` without any password check,
//! whatever session they come in. Success forgets the address's failures.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses the throttle remembers; past it, expired entries are
/// dropped, and if none is expired the new address is not recorded.
const MAX_TRACKED: usize = 100_000;

/// The key a client address is counted under: IPv4 (also IPv4-mapped IPv6)
/// as is, IPv6 masked to its first `v6_prefix` bits (at most 128).
pub fn client_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(v6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

/// Failures from one client key.
#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Failures within the window.
    count: u32,
    /// The last one.
    last: Instant,
}

/// AUTH failures per client key across sessions.
#[derive(Debug)]
pub struct AuthThrottle {
    /// Failures by client key.
    map: Mutex<HashMap<IpAddr, Failures>>,
    /// Failures after which AUTH is refused outright.
    max: u32,
    /// How long failures are remembered after the last one.
    window: Duration,
    /// The first failure's delay.
    delay: Duration,
    /// IPv6 grouping prefix.
    v6_prefix: u8,
}

impl AuthThrottle {
    /// A throttle refusing AUTH after `max` failures within `window`, with
    /// delays starting at `delay`; IPv6 clients grouped by `v6_prefix`.
    pub fn new(max: u32, window: Duration, delay: Duration, v6_prefix: u8) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max,
            window,
            delay,
            v6_prefix,
        }
    }

    /// Whether AUTH from `ip` is refused without checking credentials.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let key = client_key(ip, self.v6_prefix);
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key)
            .is_some_and(|f| f.last.elapsed() < self.window && f.count >= self.max)
    }

    /// Records a failure from `ip`; returns how long to wait before answering.
    pub fn failed(&self, ip: IpAddr) -> Duration {
        let key = client_key(ip, self.v6_prefix);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            map.retain(|_, f| f.last.elapsed() < self.window);
            if map.len() >= MAX_TRACKED {
                return self.delay;
            }
        }
        let entry = map.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if entry.last.elapsed() >= self.window {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let doublings = entry.count.saturating_sub(1).min(5);
        self.delay.saturating_mul(1 << doublings)
    }

    /// AUTH from `ip` succeeded: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        let key = client_key(ip, self.v6_prefix);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_grouped_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a, 64), client_key(b, 64));
        assert_ne!(client_key(a, 64), client_key(c, 64));
        assert_eq!(client_key(a, 48), client_key(c, 48));
        assert_ne!(client_key(a, 128), client_key(b, 128));
        assert_eq!(client_key(a, 0), "::".parse::<IpAddr>().unwrap());
        assert_eq!(client_key(a, 200), a);
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_key(v4, 64), v4);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(mapped, 64), v4);
    }

    #[test]
    fn failures_grow_the_delay_then_block() {
        let t = AuthThrottle::new(3, Duration::from_secs(60), Duration::from_millis(10), 64);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!(!t.blocked(ip));
        assert_eq!(t.failed(ip), Duration::from_millis(10));
        assert_eq!(t.failed(neighbour), Duration::from_millis(20));
        assert!(!t.blocked(ip));
        assert_eq!(t.failed(ip), Duration::from_millis(40));
        assert!(t.blocked(ip));
        assert!(t.blocked(neighbour), "same /64");
        assert!(!t.blocked(other));
        t.succeeded(ip);
        assert!(!t.blocked(neighbour));
        for _ in 0..20 {
            t.failed(other);
        }
        assert_eq!(t.failed(other), Duration::from_millis(320), "capped at 32x");
    }
}
