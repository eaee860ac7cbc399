//! The memory cap of one plugin instance: `memory_mb` bounds the sum of
//! every linear memory of the component instance (a component can hold
//! several core modules, each with its own memory), not each memory alone.
//! The limiter also remembers the size after `init`, so a pooled instance
//! that grew more than [`POOL_GROWTH_MAX`] past it (a large message) is
//! dropped instead of kept warm with its peak (linear memories never
//! shrink).

use wasmtime::ResourceLimiter;

/// Most octets a pooled instance's memory may have grown since `init` and
/// still go back to its pool. Relative to the size after `init`, since
/// that differs a lot between languages (a Python or JS runtime starts far
/// larger than a Rust plugin).
pub(super) const POOL_GROWTH_MAX: usize = 16 << 20;

/// Memory accounting of one instance.
#[derive(Debug, Clone)]
pub(crate) struct InstanceLimits {
    /// Most octets of linear memory, all memories together.
    cap: usize,
    /// Octets of linear memory now, all memories together.
    memory: usize,
    /// `memory` after `init`.
    baseline: usize,
}

impl InstanceLimits {
    /// A cap of `cap` octets.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            memory: 0,
            baseline: 0,
        }
    }

    /// Octets of linear memory the instance holds (memories never shrink).
    pub(crate) fn memory(&self) -> usize {
        self.memory
    }

    /// Records the current size as the instance's size after `init`.
    pub(crate) fn set_baseline(&mut self) {
        self.baseline = self.memory;
    }

    /// Whether the memory grew more than `octets` since `init`.
    pub(crate) fn grew_past(&self, octets: usize) -> bool {
        self.memory.saturating_sub(self.baseline) > octets
    }
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory.saturating_add(desired.saturating_sub(current));
        if total > self.cap {
            // A trap, not a failed grow: the plugin stops and its failure
            // policy answers (a guest allocator would only retry).
            return Err(wasmtime::Error::new(super::failure::MemoryCapReached));
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_covers_every_memory_together() {
        let mut l = InstanceLimits::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        // A second memory of the same instance counts against the same cap.
        assert!(l.memory_growing(0, 60, None).is_err());
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert_eq!(l.memory(), 100);
        assert!(l.memory_growing(60, 61, None).is_err());
        let mut l = InstanceLimits::new(1 << 30);
        assert!(l.memory_growing(0, 2 << 20, None).unwrap());
        l.set_baseline();
        assert!(l.memory_growing(2 << 20, 10 << 20, None).unwrap());
        assert!(!l.grew_past(POOL_GROWTH_MAX));
        assert!(l.memory_growing(10 << 20, 30 << 20, None).unwrap());
        assert!(l.grew_past(POOL_GROWTH_MAX));
    }
}
