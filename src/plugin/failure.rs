//! Why a plugin call failed, typed: the chain answers every failure with
//! the plugin's policy, the log keeps the whole cause chain, and
//! `wasmtp_plugin_failures_total` counts them by [`PluginFailure::reason`].

use std::time::Duration;

/// A boxed error with its cause chain (a `wasmtime::Error` converted).
pub(super) type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed plugin call (or instantiation).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginFailure {
    /// The call ran past the plugin's wall-clock `timeout_ms`.
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The call used up the plugin's `cpu_ms` budget.
    #[error("CPU budget of the hook exhausted")]
    CpuBudget,
    /// The guest tried to grow its memory past `memory_mb`.
    #[error("out of memory (memory_mb reached)")]
    OutOfMemory,
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access).
    #[error("trap: {trap}")]
    Trap {
        /// The trap code.
        trap: wasmtime::Trap,
        /// The whole error, with the guest backtrace.
        #[source]
        cause: Cause,
    },
    /// Instantiating the component or its `init` failed.
    #[error("instantiation failed: {0}")]
    Init(String),
    /// `init` returned an error: the plugin refused its config.
    #[error("init refused: {0}")]
    InitRefused(String),
    /// The verdict broke the reply rules (code class, CR/LF, length).
    #[error("invalid verdict: {0}")]
    InvalidVerdict(String),
    /// A host call was refused in a way that ends the call (a host
    /// function trapped, e.g. notes over their size limit).
    #[error("host call refused: {0}")]
    HostCallRefused(String),
    /// Anything else wasmtime reported.
    #[error("call failed: {0}")]
    Other(#[source] Cause),
}

impl PluginFailure {
    /// The `reason` label of `wasmtp_plugin_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::CpuBudget => "cpu-budget",
            Self::OutOfMemory => "out-of-memory",
            Self::Trap { .. } => "trap",
            Self::Init(_) | Self::InitRefused(_) => "init",
            Self::InvalidVerdict(_) => "invalid-verdict",
            Self::HostCallRefused(_) => "host-call-refused",
            Self::Other(_) => "other",
        }
    }

    /// Every `reason` label value, for registering the series up front.
    pub const REASONS: [&'static str; 8] = [
        "timeout",
        "cpu-budget",
        "out-of-memory",
        "trap",
        "init",
        "invalid-verdict",
        "host-call-refused",
        "other",
    ];

    /// Classifies an error a guest call returned.
    pub fn from_wasmtime(e: wasmtime::Error) -> Self {
        if e.is::<CpuBudgetExhausted>() {
            return Self::CpuBudget;
        }
        if e.is::<MemoryCapReached>() {
            return Self::OutOfMemory;
        }
        if let Some(r) = e.downcast_ref::<HostRefusal>() {
            return Self::HostCallRefused(r.0.clone());
        }
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>().copied() {
            return Self::Trap {
                trap,
                cause: e.into(),
            };
        }
        Self::Other(e.into())
    }
}

/// Raised by the epoch callback when a call's CPU budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("CPU budget of the hook exhausted")]
pub(crate) struct CpuBudgetExhausted;

/// Raised by the store limiter when a memory would grow past its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory would grow past the plugin's memory_mb")]
pub(crate) struct MemoryCapReached;

/// Raised by a host function that refuses a call by trapping (e.g. notes
/// over their size limit).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostRefusal(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_typed_errors() {
        let f = PluginFailure::from_wasmtime(wasmtime::Error::new(CpuBudgetExhausted));
        assert_eq!(f.reason(), "cpu-budget");
        let f = PluginFailure::from_wasmtime(wasmtime::Error::new(MemoryCapReached));
        assert_eq!(f.reason(), "out-of-memory");
        let f = PluginFailure::from_wasmtime(wasmtime::Error::new(HostRefusal("x".into())));
        assert_eq!(f.reason(), "host-call-refused");
        let f = PluginFailure::from_wasmtime(wasmtime::Error::new(
            wasmtime::Trap::UnreachableCodeReached,
        ));
        assert_eq!(f.reason(), "trap");
        let f = PluginFailure::from_wasmtime(wasmtime::Error::msg("other"));
        assert_eq!(f.reason(), "other");
        for r in PluginFailure::REASONS {
            assert!(!r.is_empty());
        }
    }
}
