//! The global budget of message octets held in memory (`[limits]
//! memory_budget`), shared by every session.
//!
//! A message being received reserves at DATA or the first BDAT what it is
//! expected to need: the `SIZE=` its MAIL declared, or [`RESERVE_STEP`]
//! (whichever is larger, at most `max_message_size`). Before each read of
//! message content the session grows the reservation, a step at a time,
//! to cover what is stored plus one more read. When the first reservation
//! does not fit, DATA gets `452 4.3.1` (RFC 3463: mail system full) and
//! nothing is read; when a later step does not fit, nothing more of the
//! message is stored, the rest is read and discarded, and the end of data
//! gets `452 4.3.1` (a client mid-DATA can only be answered at its end).
//! The reservation is given back when the message is delivered or
//! refused, the transaction ends, or the session does.
//!
//! So small messages are not turned away for the worst case of large
//! ones: with the default 1 GiB budget and 35 MiB `max_message_size`,
//! about 1,000 messages of up to 1 MiB can be in DATA at once, not 29.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How much a reservation grows at a time (and its least first size).
pub const RESERVE_STEP: u64 = 1 << 20;

/// The octets of message data all sessions may hold at once.
#[derive(Debug)]
pub struct MemoryBudget {
    /// The budget (0: unlimited); a reload may change it.
    limit: AtomicU64,
    /// Octets reserved now.
    used: AtomicU64,
}

/// Octets reserved from a [`MemoryBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    octets: u64,
}

impl MemoryBudget {
    /// A budget of `limit` octets (0: unlimited).
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
        })
    }

    /// Changes the budget (a reload): reservations held stay, and new ones
    /// are checked against the new limit.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Release);
    }

    /// Reserves `octets`, or `None` when they do not fit.
    pub fn reserve(self: &Arc<Self>, octets: u64) -> Option<Reservation> {
        if self.limit.load(Ordering::Acquire) == 0 {
            return Some(Reservation {
                budget: self.clone(),
                octets: 0,
            });
        }
        self.take(octets).then(|| Reservation {
            budget: self.clone(),
            octets,
        })
    }

    /// Octets reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Adds `octets` to what is used, if the sum fits the limit.
    fn take(&self, octets: u64) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        limit == 0
            || self
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    used.checked_add(octets).filter(|&n| n <= limit)
                })
                .is_ok()
    }
}

impl Reservation {
    /// Octets this reservation holds.
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// Grows the reservation to `octets` (no-op if it holds that much
    /// already); false, and unchanged, when the budget cannot give it.
    pub fn grow_to(&mut self, octets: u64) -> bool {
        let Some(more) = octets.checked_sub(self.octets).filter(|&m| m > 0) else {
            return true;
        };
        if self.budget.limit.load(Ordering::Acquire) == 0 {
            return true;
        }
        if !self.budget.take(more) {
            return false;
        }
        self.octets = octets;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.octets, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_within_the_limit_and_gives_back() {
        let b = MemoryBudget::new(100);
        let r1 = b.reserve(60).unwrap();
        assert!(b.reserve(60).is_none());
        let r2 = b.reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        drop(r1);
        assert_eq!(b.used(), 40);
        assert!(b.reserve(60).is_some());
        drop(r2);
        assert_eq!(b.used(), 0);
        let mut r3 = b.reserve(10).unwrap();
        assert!(r3.grow_to(50));
        assert_eq!((r3.octets(), b.used()), (50, 50));
        assert!(!r3.grow_to(101), "beyond the limit");
        assert_eq!((r3.octets(), b.used()), (50, 50));
        assert!(r3.grow_to(20), "shrinking is a no-op");
        assert_eq!(r3.octets(), 50);
        drop(r3);
        assert_eq!(b.used(), 0);
        let unlimited = MemoryBudget::new(0);
        let mut r = unlimited.reserve(5).unwrap();
        assert!(r.grow_to(u64::MAX));
        assert!(unlimited.reserve(u64::MAX).is_some());
        assert_eq!(unlimited.used(), 0);
    }
}
