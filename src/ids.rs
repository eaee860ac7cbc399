//! Unique ids and names: the one id helper for sessions and queued
//! messages (a spooled message keeps its session's transaction id), and
//! the random numbers behind unique file names, MIME boundaries and
//! Message-IDs.
//!
//! 20 characters of Crockford base32 (lower case, time-sortable): 52 bits
//! of microseconds since the epoch, 20 bits of a process-wide counter and 28
//! random bits, so ids stay unique across restarts and concurrent processes
//! and sort by arrival time (handy in Maildir listings and logs).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static FALLBACK: LazyLock<RandomState> = LazyLock::new(RandomState::new);

fn random28(counter: u32) -> u128 {
    let mut bytes = [0u8; 4];
    let r = match getrandom::getrandom(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes),
        // No OS randomness: a per-process random hash of the counter.
        Err(_) => FALLBACK.hash_one(counter) as u32,
    };
    u128::from(r & 0x0fff_ffff)
}

/// A new unique id.
pub fn new_id() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros()) as u64;
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let value: u128 = (u128::from(micros & ((1 << 52) - 1)) << 48)
        | (u128::from(counter & 0xf_ffff) << 28)
        | random28(counter);
    let mut out = String::with_capacity(20);
    for i in (0..20).rev() {
        let digit = ((value >> (i * 5)) & 31) as usize;
        out.push(ALPHABET[digit] as char);
    }
    out
}

/// A random 64-bit number (SipHash keyed by the process-random
/// `RandomState`, mixed with a counter and the time); good for unique
/// names, not for cryptography.
pub fn random_u64() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = FALLBACK.build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn unique_and_well_formed() {
        let ids: Vec<String> = (0..10_000).map(|_| new_id()).collect();
        let set: HashSet<&String> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 20);
            assert!(id.bytes().all(|b| ALPHABET.contains(&b)));
        }
    }
}
