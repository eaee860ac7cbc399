//! State that outlives a connection (the `kv` interface).
//!
//! Keys live in buckets; the operator grants buckets per plugin with
//! `kv = ["ratelimit"]` in its `[[plugins]]` entry. A call on a bucket that
//! is not granted fails with [`KvError::NotGranted`] (never a trap); a call
//! over the bucket's quota fails with [`KvError::Quota`] and changes
//! nothing. Every plugin instance — and, with the Redis backend, every
//! gateway on that Redis — sees the same keys.
//!
//! ```no_run
//! use std::time::Duration;
//! use wasmtp_plugin_sdk::kv::Bucket;
//!
//! let counts = Bucket::new("ratelimit");
//! // A fixed one-minute window: the TTL is set when the key is created.
//! let n = counts.increment("ip:192.0.2.7", 1, Some(Duration::from_secs(60)));
//! match n {
//!     Ok(n) if n > 100 => println!("over the limit"),
//!     Ok(_) => {}
//!     Err(e) => println!("state unavailable: {}", e.reason()),
//! }
//! counts.set("last", b"192.0.2.7", None).ok();
//! assert!(counts.compare_and_set("lock", None, b"me", Some(Duration::from_secs(5))).is_ok());
//! ```

use std::time::Duration;

use crate::bindings::wasmtp::plugin::kv as raw;

pub use raw::KvError;

/// A TTL in whole milliseconds (at least 1 ms: the host refuses a zero TTL).
fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// One bucket of the key-value store, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    name: String,
}

impl Bucket {
    /// A handle on the bucket `name` (nothing is checked until the first call).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key`, if present and not expired.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        raw::get(&self.name, key)
    }

    /// The value of `key` as text (invalid UTF-8 replaced with U+FFFD).
    pub fn get_string(&self, key: &str) -> Result<Option<String>, KvError> {
        Ok(self
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Sets `key` to `value`; with a TTL it expires that long from now,
    /// without one never (a previous TTL is removed).
    pub fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        raw::set(&self.name, key, value, ttl_ms(ttl))
    }

    /// Removes `key`; true if it was present.
    pub fn delete(&self, key: &str) -> Result<bool, KvError> {
        raw::delete(&self.name, key)
    }

    /// Adds `delta` to the integer at `key` (absent counts as 0) and returns
    /// the new value, atomically across sessions and gateways. The TTL
    /// applies only when this call creates the key, so a counter made with a
    /// TTL counts a fixed window.
    pub fn increment(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        raw::increment(&self.name, key, delta, ttl_ms(ttl))
    }

    /// Sets `key` to `value` only if its current value is `expected`
    /// (`None`: only if absent). True if it was set. Atomic.
    pub fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        raw::compare_and_set(&self.name, key, expected, value, ttl_ms(ttl))
    }
}

impl KvError {
    /// True when the bucket is not granted to this plugin.
    pub fn is_not_granted(&self) -> bool {
        matches!(self, KvError::NotGranted(_))
    }

    /// True when the backend could not be reached (a retry may succeed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, KvError::Unavailable(_))
    }

    /// A short human-readable description, for logs and notes.
    pub fn reason(&self) -> String {
        match self {
            KvError::NotGranted(why) => format!("not granted: {why}"),
            KvError::Quota(why) => format!("over quota: {why}"),
            KvError::Unavailable(why) => format!("unavailable: {why}"),
            KvError::Invalid(why) => format!("invalid: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_whole_milliseconds_never_zero() {
        assert_eq!(ttl_ms(None), None);
        assert_eq!(ttl_ms(Some(Duration::from_secs(60))), Some(60_000));
        assert_eq!(ttl_ms(Some(Duration::from_micros(10))), Some(1));
    }
}
