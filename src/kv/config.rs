//! `[kv]`: which backend holds the plugins' key-value state, and the
//! per-bucket quotas.
//!
//! ```toml
//! [kv]
//! backend = "embedded"        # or "redis"
//! path = "var/kv"             # embedded: directory of the store file
//! sweep_interval = "30s"      # embedded: how often expired keys are purged
//! # url = "redis://127.0.0.1:6379/0"   # redis: the server (this or `cluster`)
//! # cluster = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
//! #                                    # redis: seed nodes of a Redis Cluster
//! # pool_size = 4                      # redis: multiplexed connections
//! # key_prefix = "wasmtp:"             # redis: prepended to every key
//! # connect_timeout = "2s"
//! # command_timeout = "1s"
//! max_value_bytes = "64k"     # quota of a bucket without its own section
//! max_keys = 100000
//!
//! [kv.buckets.greylist]       # a bucket's own quotas (either key optional)
//! max_value_bytes = 256
//! max_keys = 1000000
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::units;

/// The largest value a quota may allow (the store keeps values whole in memory).
pub const MAX_VALUE_BYTES_LIMIT: u64 = 16 * 1024 * 1024;

/// Which store holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A file on local disk (redb), private to this gateway.
    #[default]
    Embedded,
    /// A Redis server, shared by every gateway that points at it.
    Redis,
}

/// `[kv]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    /// `embedded` (default) or `redis`.
    pub backend: BackendKind,
    /// Embedded: the directory holding the store file `kv.redb` (created if missing).
    pub path: PathBuf,
    /// Embedded: how often keys past their TTL are removed (reads never see
    /// them in between).
    #[serde(deserialize_with = "units::duration")]
    pub sweep_interval: Duration,
    /// Embedded: when set, writes are committed without an fsync each and
    /// made durable together at most this often (and at shutdown): a crash
    /// of the machine loses at most this much of the latest writes, in
    /// exchange for not waiting on the disk per write. Absent (the
    /// default): every write is durable when it returns.
    #[serde(deserialize_with = "opt_duration")]
    pub flush_interval: Option<Duration>,
    /// Redis: `redis://[user:password@]host:port[/db]`. With `backend =
    /// "redis"`, exactly one of `url` and `cluster` is required.
    pub url: Option<String>,
    /// Redis Cluster: seed nodes (`redis://[user:password@]host:port`); the
    /// client learns the rest of the cluster from them and follows its
    /// slot moves and failovers.
    pub cluster: Option<Vec<String>>,
    /// Redis: how many multiplexed connections calls are spread over (with
    /// `cluster`: cluster connections, each with one connection per node).
    pub pool_size: usize,
    /// Redis: prepended to every key (no `{` or `}`: the bucket is the hash tag).
    pub key_prefix: String,
    /// Redis: how long to wait for a connection.
    #[serde(deserialize_with = "units::duration")]
    pub connect_timeout: Duration,
    /// Redis: how long to wait for the answer to one call.
    #[serde(deserialize_with = "units::duration")]
    pub command_timeout: Duration,
    /// Largest value of a bucket without its own `max_value_bytes`.
    #[serde(deserialize_with = "units::size")]
    pub max_value_bytes: u64,
    /// Most keys of a bucket without its own `max_keys`.
    pub max_keys: u64,
    /// `[kv.buckets.NAME]`: quotas of named buckets.
    pub buckets: BTreeMap<String, BucketConfig>,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Embedded,
            path: PathBuf::from("var/kv"),
            sweep_interval: Duration::from_secs(30),
            flush_interval: None,
            url: None,
            cluster: None,
            pool_size: 4,
            key_prefix: "wasmtp:".into(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(1),
            max_value_bytes: 64 * 1024,
            max_keys: 100_000,
            buckets: BTreeMap::new(),
        }
    }
}

/// `[kv.buckets.NAME]`: a bucket's own quotas; an absent key takes the `[kv]` default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BucketConfig {
    /// Largest value in octets.
    #[serde(deserialize_with = "opt_size")]
    pub max_value_bytes: Option<u64>,
    /// Most keys at once (expired keys do not count).
    pub max_keys: Option<u64>,
}

fn opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    units::size(d).map(Some)
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    units::duration(d).map(Some)
}

/// The quotas in force for one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Largest value in octets.
    pub max_value_bytes: u64,
    /// Most keys at once.
    pub max_keys: u64,
}

impl KvConfig {
    /// The quotas of `bucket`: its own section over the `[kv]` defaults.
    pub fn quota(&self, bucket: &str) -> Quota {
        let own = self.buckets.get(bucket);
        Quota {
            max_value_bytes: own
                .and_then(|b| b.max_value_bytes)
                .unwrap_or(self.max_value_bytes),
            max_keys: own.and_then(|b| b.max_keys).unwrap_or(self.max_keys),
        }
    }

    /// Semantic checks: the failing key and the message.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((format!("kv.{key}"), message));
        if self.backend == BackendKind::Redis {
            match (&self.url, &self.cluster) {
                (None, None) => {
                    return fail(
                        "backend",
                        "`url` (one server) or `cluster` (Redis Cluster seed nodes) is \
                         required with backend = \"redis\""
                            .into(),
                    );
                }
                (Some(_), Some(_)) => {
                    return fail(
                        "cluster",
                        "give either `url` (one server) or `cluster` (Redis Cluster seed \
                         nodes), not both"
                            .into(),
                    );
                }
                (Some(url), None) => {
                    if let Err(e) = ::redis::Client::open(url.as_str()) {
                        return fail("url", format!("invalid Redis URL: {e}"));
                    }
                }
                (None, Some(nodes)) => check_cluster(nodes)?,
            }
        } else if self.cluster.is_some() {
            return fail("cluster", "is only used with backend = \"redis\"".into());
        }
        if self.backend == BackendKind::Embedded && self.path.as_os_str().is_empty() {
            return fail("path", "must not be empty".into());
        }
        if self.sweep_interval.is_zero() {
            return fail("sweep_interval", "must be more than zero".into());
        }
        if !(1..=64).contains(&self.pool_size) {
            return fail(
                "pool_size",
                format!("{} is not within 1..=64", self.pool_size),
            );
        }
        if self.key_prefix.contains(['{', '}']) {
            return fail(
                "key_prefix",
                format!(
                    "{:?} contains `{{` or `}}` (the bucket name is the key's hash tag)",
                    self.key_prefix
                ),
            );
        }
        if self.connect_timeout.is_zero() {
            return fail("connect_timeout", "must be more than zero".into());
        }
        if self.command_timeout.is_zero() {
            return fail("command_timeout", "must be more than zero".into());
        }
        check_quota("", Some(self.max_value_bytes), Some(self.max_keys))?;
        for (name, b) in &self.buckets {
            if let Err(why) = super::check_bucket_name(name) {
                return fail(&format!("buckets.{name}"), why);
            }
            check_quota(&format!("buckets.{name}."), b.max_value_bytes, b.max_keys)?;
        }
        Ok(())
    }
}

/// The seed nodes of `cluster`: at least one, each a valid `redis://` URL
/// without a database number (a Redis Cluster has only database 0), all
/// with the same credentials.
fn check_cluster(nodes: &[String]) -> Result<(), (String, String)> {
    if nodes.is_empty() {
        return Err((
            "kv.cluster".into(),
            "must list at least one seed node".into(),
        ));
    }
    for (i, url) in nodes.iter().enumerate() {
        let key = format!("kv.cluster[{i}]");
        let info = match ::redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
            Ok(info) => info,
            Err(e) => return Err((key, format!("invalid Redis URL: {e}"))),
        };
        if info.redis_settings().db() != 0 {
            return Err((
                key,
                format!(
                    "{url:?} names database {}; a Redis Cluster has only database 0",
                    info.redis_settings().db()
                ),
            ));
        }
    }
    if let Err(e) = ::redis::cluster::ClusterClient::new(nodes.iter().map(String::as_str)) {
        return Err(("kv.cluster".into(), format!("{e}")));
    }
    Ok(())
}

fn check_quota(
    prefix: &str,
    max_value_bytes: Option<u64>,
    max_keys: Option<u64>,
) -> Result<(), (String, String)> {
    if let Some(v) = max_value_bytes
        && !(1..=MAX_VALUE_BYTES_LIMIT).contains(&v)
    {
        return Err((
            format!("kv.{prefix}max_value_bytes"),
            format!("{v} is not within 1..={MAX_VALUE_BYTES_LIMIT}"),
        ));
    }
    if max_keys == Some(0) {
        return Err((format!("kv.{prefix}max_keys"), "must be at least 1".into()));
    }
    Ok(())
}
