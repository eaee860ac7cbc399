//! The host services plugins may be granted (DNS, key-value), shared by
//! every instance, and the per-session budget that bounds their use.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::DnsConfig;
use crate::dns::Lookups;
use crate::kv::KvBackend;

/// What the host offers granted plugins. Cheap to clone.
#[derive(Clone, Default)]
pub struct HostServices {
    /// DNS lookups through `[dns] resolver` (`None`: no resolver configured).
    pub dns: Option<Arc<Lookups>>,
    /// Lookups one session may make (`[dns] max_queries_per_session`).
    pub dns_budget: u32,
    /// The key-value backend, shared by every clone of these services.
    /// Empty until a plugin is first granted a bucket (at start or by a
    /// reload), then set once and kept: a reload swaps plugins, not state.
    pub kv: Arc<OnceLock<Arc<dyn KvBackend>>>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices")
            .field("dns", &self.dns.is_some())
            .field("dns_budget", &self.dns_budget)
            .field("kv", &self.kv.get().is_some())
            .finish()
    }
}

impl HostServices {
    /// The DNS service of `[dns]` (none without a resolver); no key-value
    /// backend (see [`HostServices::with_kv`]).
    pub fn new(dns: &DnsConfig) -> Self {
        Self {
            dns: Lookups::new(dns).map(Arc::new),
            dns_budget: dns.max_queries_per_session,
            kv: Arc::new(OnceLock::new()),
        }
    }

    /// These services with the DNS of `dns` instead (a reload that changed
    /// `[dns]`); the key-value backend is shared, not reopened.
    pub fn with_dns(&self, dns: &DnsConfig) -> Self {
        Self {
            dns: Lookups::new(dns).map(Arc::new),
            dns_budget: dns.max_queries_per_session,
            kv: self.kv.clone(),
        }
    }

    /// The same services with a key-value backend.
    pub fn with_kv(self, kv: Arc<dyn KvBackend>) -> Self {
        self.set_kv(kv);
        self
    }

    /// Whether a key-value backend is set.
    pub fn has_kv(&self) -> bool {
        self.kv.get().is_some()
    }

    /// Sets the key-value backend, for this value and every clone of it
    /// (the loader's, every session's). A backend already set stays: the
    /// call is then a no-op.
    pub fn set_kv(&self, kv: Arc<dyn KvBackend>) {
        let _ = self.kv.set(kv);
    }
}

/// What one session (connection) may still spend, shared by every plugin
/// instance serving it.
#[derive(Debug)]
pub(crate) struct SessionBudget {
    dns_left: AtomicU32,
}

impl SessionBudget {
    /// A fresh budget of `dns` lookups.
    pub(crate) fn new(dns: u32) -> Self {
        Self {
            dns_left: AtomicU32::new(dns),
        }
    }

    /// Takes one DNS lookup from the budget; false when it is spent.
    pub(crate) fn take_dns(&self) -> bool {
        self.dns_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}
