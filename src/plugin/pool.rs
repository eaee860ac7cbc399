//! Warm instances kept across connections for `instances = "pooled"`
//! plugins.
//!
//! Each loaded plugin of a chain generation owns its pool, so a live swap
//! never hands an instance of an old plugin to the new chain: the old
//! generation's pools are emptied and closed when it is replaced. An idle
//! instance holds a slot of the pooling allocator; the [`IdleBudget`],
//! shared by every pool of every generation, caps how many are kept, and
//! the engine reserves that many slots on top of the per-connection ones.
//!
//! What is reset when an instance comes back: the session state is never
//! in the store between calls (it is lent per call), the `connection` and
//! `transaction` handles are borrows that cannot outlive a call, the CPU
//! budget is re-armed per call and the log records' session id is renamed.
//! The guest's own memory and globals persist.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::instance::Instance;

/// How many idle instances may be kept at once, across every pool.
#[derive(Debug)]
pub(crate) struct IdleBudget {
    max: usize,
    idle: AtomicUsize,
}

impl IdleBudget {
    /// A budget of `max` idle instances.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            idle: AtomicUsize::new(0),
        }
    }

    fn acquire(&self) -> bool {
        self.idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.idle.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The idle warm instances of one plugin of one chain generation.
pub(crate) struct InstancePool {
    /// Most idle instances kept (0: the plugin is not pooled).
    size: usize,
    idle: Mutex<Vec<Instance>>,
    budget: std::sync::Arc<IdleBudget>,
    /// Set when the chain generation is replaced: nothing is kept any more.
    closed: AtomicBool,
}

impl std::fmt::Debug for InstancePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstancePool")
            .field("size", &self.size)
            .field("idle", &self.idle())
            .finish()
    }
}

impl InstancePool {
    /// A pool keeping at most `size` idle instances (0: never keeps any).
    pub(crate) fn new(size: usize, budget: std::sync::Arc<IdleBudget>) -> Self {
        Self {
            size,
            idle: Mutex::new(Vec::new()),
            budget,
            closed: AtomicBool::new(false),
        }
    }

    /// Whether instances of this plugin are reused across connections.
    pub(crate) fn enabled(&self) -> bool {
        self.size > 0
    }

    /// A warm instance, if one is idle (most recently used first).
    pub(crate) fn take(&self) -> Option<Instance> {
        if !self.enabled() {
            return None;
        }
        let inst = self.lock().pop()?;
        self.budget.release(1);
        Some(inst)
    }

    /// Keeps `inst` for the next connection if there is room (in this pool
    /// and in the budget) and the generation is current; else drops it.
    /// Returns whether it was kept.
    pub(crate) fn put(&self, inst: Instance) -> bool {
        if !self.enabled() || self.closed.load(Ordering::Acquire) {
            return false;
        }
        let mut idle = self.lock();
        if idle.len() >= self.size || !self.budget.acquire() {
            return false;
        }
        idle.push(inst);
        true
    }

    /// Drops every idle instance and keeps none from now on (the chain
    /// generation was replaced).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let drained = std::mem::take(&mut *self.lock());
        self.budget.release(drained.len());
    }

    /// Idle instances kept right now.
    pub(crate) fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Instance>> {
        // The vector stays consistent whatever panicked while it was held.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for InstancePool {
    fn drop(&mut self) {
        let n = self
            .idle
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        self.budget.release(n);
    }
}
