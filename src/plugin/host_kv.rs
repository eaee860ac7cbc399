//! Host side of the `kv` interface, implemented on [`KvView`]: the
//! plugin's bucket grant and the shared backend ([`crate::kv::KvBackend`]),
//! borrowed for one call. The functions are async: a call waiting on the
//! backend parks the plugin's fiber.
//!
//! Checked here, before any backend sees the call: the bucket is granted
//! (`not-granted` otherwise), a backend is configured (`unavailable`
//! otherwise), the key is 1 to [`crate::kv::MAX_KEY_LEN`] octets and a
//! TTL is not zero (`invalid`).

use std::sync::Arc;

use wasmtime::component::HasData;

use super::bindings::wasmtp::plugin::kv::{self, KvError as WitKvError};
use super::sandbox::PluginInfo;
use crate::kv::{KvBackend, KvError, check_key, ttl};

/// The `kv` interface's view of a store.
pub(crate) struct KvView<'a> {
    /// The plugin (its grants).
    pub plugin: &'a PluginInfo,
    /// The backend, if one is configured.
    pub backend: Option<&'a Arc<dyn KvBackend>>,
}

/// [`HasData`] marker linking `kv` to [`KvView`].
pub(crate) struct KvHost;

impl HasData for KvHost {
    type Data<'a> = KvView<'a>;
}

fn wit_error(e: KvError) -> WitKvError {
    match e {
        KvError::NotGranted(m) => WitKvError::NotGranted(m),
        KvError::Quota(m) => WitKvError::Quota(m),
        KvError::Unavailable(m) => WitKvError::Unavailable(m),
        KvError::Invalid(m) => WitKvError::Invalid(m),
    }
}

impl KvView<'_> {
    /// The backend, once the grant and the key allow the call.
    fn admit(&self, bucket: &str, key: &str) -> Result<&dyn KvBackend, KvError> {
        if !self.plugin.grants.kv_bucket(bucket) {
            return Err(KvError::NotGranted(format!(
                "bucket {bucket:?} is not granted to plugin {:?} (kv = [...] in its [[plugins]] entry)",
                &*self.plugin.name
            )));
        }
        let Some(backend) = self.backend else {
            return Err(KvError::Unavailable(
                "no key-value backend is configured ([kv])".into(),
            ));
        };
        check_key(key)?;
        Ok(backend.as_ref())
    }
}

type Wit<T> = wasmtime::Result<Result<T, WitKvError>>;

fn out<T>(r: Result<T, KvError>) -> Wit<T> {
    Ok(r.map_err(wit_error))
}

impl kv::Host for KvView<'_> {
    async fn get(&mut self, bucket: String, key: String) -> Wit<Option<Vec<u8>>> {
        let r = match self.admit(&bucket, &key) {
            Ok(b) => b.get(&bucket, &key).await,
            Err(e) => Err(e),
        };
        out(r)
    }

    async fn set(
        &mut self,
        bucket: String,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Wit<()> {
        let r = match (self.admit(&bucket, &key), ttl(ttl_ms)) {
            (Ok(b), Ok(t)) => b.set(&bucket, &key, value, t).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        out(r)
    }

    async fn delete(&mut self, bucket: String, key: String) -> Wit<bool> {
        let r = match self.admit(&bucket, &key) {
            Ok(b) => b.delete(&bucket, &key).await,
            Err(e) => Err(e),
        };
        out(r)
    }

    async fn increment(
        &mut self,
        bucket: String,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Wit<i64> {
        let r = match (self.admit(&bucket, &key), ttl(ttl_ms)) {
            (Ok(b), Ok(t)) => b.increment(&bucket, &key, delta, t).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        out(r)
    }

    async fn compare_and_set(
        &mut self,
        bucket: String,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Wit<bool> {
        let r = match (self.admit(&bucket, &key), ttl(ttl_ms)) {
            (Ok(b), Ok(t)) => b.compare_and_set(&bucket, &key, expected, value, t).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        out(r)
    }
}
