//! The global budget of message octets held in memory (`[limits]
//! memory_budget`), shared by every session.
//!
//! A message being received reserves, at DATA or the first BDAT, the most
//! it can grow to (`max_message_size`): the engine stores a message in
//! memory up to that size and no further. When the reservation does not
//! fit, DATA gets `452 4.3.1` (RFC 3463: mail system full) and the client
//! tries again later; nothing is read into memory for it. The reservation
//! is given back when the message is delivered or refused, the
//! transaction ends, or the session does.
//!
//! Reserving the worst case, not the octets as they arrive, keeps the bound
//! exact without a way to abort a message half-way (a client that is
//! mid-DATA can only be answered at its end), at the cost of turning
//! clients away earlier than strictly needed when most messages are small.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
        let limit = self.limit.load(Ordering::Acquire);
        if limit == 0 {
            return Some(Reservation {
                budget: self.clone(),
                octets: 0,
            });
        }
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(octets).filter(|&n| n <= limit)
            })
            .ok()?;
        Some(Reservation {
            budget: self.clone(),
            octets,
        })
    }

    /// Octets reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
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
        let unlimited = MemoryBudget::new(0);
        assert!(unlimited.reserve(u64::MAX).is_some());
        assert_eq!(unlimited.used(), 0);
    }
}
