//! Key-value state for plugins: the `wasmtp:plugin/kv` service.
//!
//! Keys live in buckets; the host checks a plugin's grant before a call
//! reaches this module. [`KvStore`] validates the arguments and the bucket's
//! [`Quota`] (value size here, key count atomically in the backend) and hands
//! the call to one of two backends with one semantics:
//!
//! - [`embedded`]: a redb file on local disk, private to this gateway;
//! - [`redis`]: a Redis server shared by several gateways.
//!
//! Semantics common to both (the shared test suite in `tests/it/kv_backends.rs`
//! runs against each):
//! - a key past its TTL is absent for every call at once, and is purged
//!   later (embedded: a periodic sweep; Redis: its own expiry);
//! - `increment` is atomic; its TTL applies only when the call creates the
//!   key, so a counter made with a TTL is a fixed window;
//! - `compare-and-set` is atomic across sessions (and gateways, with Redis);
//! - a call over quota fails with [`KvError::Quota`] and changes nothing. The
//!   key count of a bucket counts live keys; overwriting a key does not add one.

pub mod config;
pub mod embedded;
pub mod redis;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::{BackendKind, KvConfig, Quota};

/// Longest key, in octets.
pub const MAX_KEY_BYTES: usize = 512;
/// Longest key, in octets (the name the plugin host uses).
pub const MAX_KEY_LEN: usize = MAX_KEY_BYTES;
/// Longest bucket name.
pub const MAX_BUCKET_BYTES: usize = 64;
/// Longest TTL: about ten years (keeps every deadline well inside 2^53 ms).
pub const MAX_TTL_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

/// Why a call failed; mirrors the WIT `kv-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The bucket is not granted to the calling plugin (decided by the host).
    #[error("bucket not granted: {0}")]
    NotGranted(String),
    /// The call would exceed the bucket's quota; nothing was changed.
    #[error("over quota: {0}")]
    Quota(String),
    /// The backend failed or cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bad argument, or `increment` on a value that is not an integer.
    #[error("invalid: {0}")]
    Invalid(String),
}

/// Checks a bucket name: 1 to 64 characters of `A-Z a-z 0-9 _ - .`.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_BUCKET_BYTES {
        return Err(format!(
            "bucket name {name:?} must be 1 to {MAX_BUCKET_BYTES} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!(
            "bucket name {name:?} may hold only letters, digits, `_`, `-` and `.`"
        ));
    }
    Ok(())
}

/// Checks a key: 1 to [`MAX_KEY_LEN`] octets.
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::Invalid("empty key".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::Invalid(format!(
            "key of {} octets is longer than {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

fn check_ttl(ttl_ms: Option<u64>) -> Result<(), KvError> {
    match ttl_ms {
        Some(0) => Err(KvError::Invalid("ttl-ms must be more than zero".into())),
        Some(t) if t > MAX_TTL_MS => Err(KvError::Invalid(format!(
            "ttl-ms {t} is longer than {MAX_TTL_MS} (about ten years)"
        ))),
        _ => Ok(()),
    }
}

/// Converts a WIT `ttl-ms`: `Some(0)` or one past [`MAX_TTL_MS`] is invalid.
pub fn ttl(ttl_ms: Option<u64>) -> KvResult<Option<Duration>> {
    check_ttl(ttl_ms)?;
    Ok(ttl_ms.map(Duration::from_millis))
}

fn ttl_ms(ttl: Option<Duration>) -> Result<Option<u64>, KvError> {
    let ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    check_ttl(ms)?;
    Ok(ms)
}

/// The result of a key-value call.
pub type KvResult<T> = Result<T, KvError>;

/// A boxed future returned by [`KvBackend`] methods (object safe, `Send`).
pub type KvFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = KvResult<T>> + Send + 'a>>;

/// A key-value store shared by every plugin instance of a gateway: what the
/// plugin host (`src/plugin/host_kv.rs`) calls once the bucket is granted.
/// Implementations must not block the calling thread.
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

impl KvBackend for KvStore {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(KvStore::get(self, bucket, key))
    }

    fn set<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, ()> {
        Box::pin(async move { KvStore::set(self, bucket, key, value, ttl_ms(ttl)?).await })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> KvFuture<'a, bool> {
        Box::pin(KvStore::delete(self, bucket, key))
    }

    fn increment<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, i64> {
        Box::pin(async move { KvStore::increment(self, bucket, key, delta, ttl_ms(ttl)?).await })
    }

    fn compare_and_set<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, bool> {
        Box::pin(async move {
            KvStore::compare_and_set(self, bucket, key, expected, value, ttl_ms(ttl)?).await
        })
    }
}

/// Milliseconds since the Unix epoch (the embedded store's clock).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The backend behind a [`KvStore`].
enum Backend {
    Embedded(embedded::Embedded),
    Redis(Box<redis::RedisStore>),
}

/// The gateway's key-value store: argument and quota checks in front of a
/// backend. Cheap to share behind an `Arc`; every method is safe to call from
/// many sessions at once and never blocks a tokio worker thread.
pub struct KvStore {
    backend: Backend,
    config: KvConfig,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore")
            .field("backend", &self.config.backend)
            .finish_non_exhaustive()
    }
}

impl KvStore {
    /// Opens the backend `config` names. The embedded store opens (or
    /// creates) its file now; the Redis backend connects lazily, so a Redis
    /// that is down makes calls fail with `unavailable`, not the start.
    /// Must be called within a tokio runtime.
    pub async fn open(config: &KvConfig) -> Result<Self, KvError> {
        let backend = match config.backend {
            BackendKind::Embedded => Backend::Embedded(embedded::Embedded::open(config).await?),
            BackendKind::Redis => Backend::Redis(Box::new(redis::RedisStore::open(config)?)),
        };
        Ok(Self {
            backend,
            config: config.clone(),
        })
    }

    fn quota(&self, bucket: &str) -> Result<Quota, KvError> {
        check_bucket_name(bucket).map_err(KvError::Invalid)?;
        Ok(self.config.quota(bucket))
    }

    fn check_value(quota: &Quota, bucket: &str, value: &[u8]) -> Result<(), KvError> {
        if value.len() as u64 > quota.max_value_bytes {
            return Err(KvError::Quota(format!(
                "value of {} octets is larger than bucket {bucket:?}'s max_value_bytes {}",
                value.len(),
                quota.max_value_bytes
            )));
        }
        Ok(())
    }

    /// The value of `key`, if present and not expired.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.quota(bucket)?;
        check_key(key)?;
        match &self.backend {
            Backend::Embedded(b) => b.get(bucket, key).await,
            Backend::Redis(b) => b.get(bucket, key).await,
        }
    }

    /// Sets `key` to `value`, expiring `ttl_ms` from now (never without).
    pub async fn set(
        &self,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), KvError> {
        let quota = self.quota(bucket)?;
        check_key(key)?;
        check_ttl(ttl_ms)?;
        Self::check_value(&quota, bucket, &value)?;
        match &self.backend {
            Backend::Embedded(b) => b.set(bucket, key, value, ttl_ms, quota).await,
            Backend::Redis(b) => b.set(bucket, key, value, ttl_ms, quota).await,
        }
    }

    /// Removes `key`; true if it was present (and not expired).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        self.quota(bucket)?;
        check_key(key)?;
        match &self.backend {
            Backend::Embedded(b) => b.delete(bucket, key).await,
            Backend::Redis(b) => b.delete(bucket, key).await,
        }
    }

    /// Adds `delta` to the integer at `key` (absent is 0) and returns the new
    /// value; `ttl_ms` applies only if this call creates the key.
    pub async fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, KvError> {
        let quota = self.quota(bucket)?;
        check_key(key)?;
        check_ttl(ttl_ms)?;
        match &self.backend {
            Backend::Embedded(b) => b.increment(bucket, key, delta, ttl_ms, quota).await,
            Backend::Redis(b) => b.increment(bucket, key, delta, ttl_ms, quota).await,
        }
    }

    /// Sets `key` to `value` only if its value is `expected` (`None`: only
    /// if absent); true if it was set.
    pub async fn compare_and_set(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, KvError> {
        let quota = self.quota(bucket)?;
        check_key(key)?;
        check_ttl(ttl_ms)?;
        Self::check_value(&quota, bucket, &value)?;
        match &self.backend {
            Backend::Embedded(b) => {
                b.compare_and_set(bucket, key, expected, value, ttl_ms, quota)
                    .await
            }
            Backend::Redis(b) => {
                b.compare_and_set(bucket, key, expected, value, ttl_ms, quota)
                    .await
            }
        }
    }
}

/// The integer stored at a key, for `increment`.
fn parse_counter(value: &[u8]) -> Result<i64, KvError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| KvError::Invalid("the value is not a decimal 64-bit integer".into()))
}

fn overflow() -> KvError {
    KvError::Invalid("increment overflows a signed 64-bit integer".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("greylist").is_ok());
        assert!(check_bucket_name("rate.limit-1_x").is_ok());
        assert!(check_bucket_name("").is_err());
        assert!(check_bucket_name("a{b}").is_err());
        assert!(check_bucket_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn keys_and_ttls() {
        assert!(check_key("k").is_ok());
        assert!(matches!(check_key(""), Err(KvError::Invalid(_))));
        assert!(matches!(
            check_key(&"k".repeat(513)),
            Err(KvError::Invalid(_))
        ));
        assert!(check_ttl(None).is_ok());
        assert!(check_ttl(Some(1)).is_ok());
        assert!(matches!(check_ttl(Some(0)), Err(KvError::Invalid(_))));
        assert!(matches!(
            check_ttl(Some(MAX_TTL_MS + 1)),
            Err(KvError::Invalid(_))
        ));
    }

    #[test]
    fn counters() {
        assert_eq!(parse_counter(b"-12"), Ok(-12));
        assert!(parse_counter(b"1.5").is_err());
        assert!(parse_counter(b"\xff").is_err());
    }
}
