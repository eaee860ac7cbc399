//! Key-value state for plugins (the `kv` WIT interface): the backend trait
//! the plugin host calls. Backends (embedded, Redis) implement
//! [`KvBackend`]; the host checks the plugin's bucket grant before any call
//! reaches a backend ([`crate::plugin`]'s `host_kv`), so a backend sees only
//! granted buckets and validated keys.
//!
//! Semantics every backend keeps (one shared test suite checks them):
//! - keys live in buckets; a bucket is a namespace, two plugins granted the
//!   same bucket share it;
//! - `ttl` is a duration from now; a key past its TTL is absent for every
//!   call;
//! - `set` without a TTL removes a previous TTL;
//! - `increment` treats an absent key as 0, stores the new value as signed
//!   64-bit decimal text, applies `ttl` only when it creates the key (a
//!   fixed window) and fails with [`KvError::Invalid`] on a non-integer
//!   value; it is atomic across sessions (and gateways sharing a backend);
//! - `compare_and_set` sets only when the current value equals `expected`
//!   (`None`: only when absent), atomically.

use std::time::Duration;

/// Longest key accepted (octets).
pub const MAX_KEY_LEN: usize = 512;

/// Why a key-value call failed (maps onto the WIT `kv-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The bucket is not granted to this plugin (or no backend is configured).
    #[error("not granted: {0}")]
    NotGranted(String),
    /// The call would exceed the bucket's quota; nothing changed.
    #[error("over quota: {0}")]
    Quota(String),
    /// The backend cannot be reached or failed.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A bad argument (empty or overlong key, zero TTL, non-integer counter).
    #[error("invalid: {0}")]
    Invalid(String),
}

/// The result of a key-value call.
pub type KvResult<T> = Result<T, KvError>;

/// A boxed future returned by [`KvBackend`] methods (object safe, `Send`).
pub type KvFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = KvResult<T>> + Send + 'a>>;

/// A key-value store shared by every plugin instance of a gateway.
///
/// Called from the plugin host with a bucket the plugin is granted and a
/// key the host has checked (1 to [`MAX_KEY_LEN`] octets); `ttl` is never
/// zero. Implementations must not block the calling thread (the call is
/// awaited on a tokio worker while the plugin's fiber is parked).
pub trait KvBackend: Send + Sync + 'static {
    /// The value of `key`, if present and not expired.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>>;

    /// Sets `key` to `value`, expiring after `ttl` (none: never; a previous TTL is removed).
    fn set<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, ()>;

    /// Removes `key`; true if it was present.
    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> KvFuture<'a, bool>;

    /// Adds `delta` to the integer at `key` (absent: 0) and returns the new
    /// value; `ttl` applies only when this call creates the key.
    fn increment<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, i64>;

    /// Sets `key` to `value` only if its value is `expected` (`None`: absent).
    fn compare_and_set<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, bool>;
}

/// Checks a key: 1 to [`MAX_KEY_LEN`] octets.
pub fn check_key(key: &str) -> KvResult<()> {
    if key.is_empty() {
        return Err(KvError::Invalid("empty key".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KvError::Invalid(format!(
            "key longer than {MAX_KEY_LEN} octets"
        )));
    }
    Ok(())
}

/// Converts a WIT `ttl-ms`: `Some(0)` is invalid.
pub fn ttl(ttl_ms: Option<u64>) -> KvResult<Option<Duration>> {
    match ttl_ms {
        Some(0) => Err(KvError::Invalid("a TTL of 0 ms".into())),
        Some(ms) => Ok(Some(Duration::from_millis(ms))),
        None => Ok(None),
    }
}
