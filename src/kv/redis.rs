//! The Redis backend: state shared by every gateway on one Redis server.
//!
//! Connections: `[kv] pool_size` multiplexed [`ConnectionManager`]s, used
//! round-robin; each reconnects by itself. They connect lazily, so a Redis
//! that is down at start (or later) makes calls fail with `unavailable`
//! within `connect_timeout + command_timeout`, never stalls the gateway.
//!
//! Redis Cluster (`[kv] cluster = [seed nodes]`): `pool_size`
//! [`ClusterConnection`]s (each holds one multiplexed connection per node),
//! made on first use (a failed connect is retried by the next call). The
//! cluster client routes each call by its key's slot, follows `MOVED`/`ASK`
//! redirections, refreshes its slot map after a failover (`READONLY`,
//! `CLUSTERDOWN`, a lost node) and retries a few times, all within the same
//! deadline. A retried write whose first attempt reached Redis but whose
//! answer was lost can be applied twice (an `increment` counted twice); an
//! acknowledged write is lost only as Redis documents for a failover:
//! replication is asynchronous, so a master killed before its replica got
//! the last writes loses them (a manual `CLUSTER FAILOVER` loses none).
//!
//! Layout: a bucket's keys share the hash tag `{bucket}`, so every key of a
//! bucket lands in one Redis Cluster slot and each script below touches one
//! slot only:
//! - `<prefix>{<bucket>}:v:<key>`: the value (a Redis string, with the
//!   key's TTL as Redis's own expiry, `PXAT`);
//! - `<prefix>{<bucket>}:idx`: a sorted set of the bucket's keys scored by
//!   their deadline (`+inf` for none). Its size is the bucket's key count
//!   for `max_keys`; each script first drops the members past their deadline
//!   (`ZREMRANGEBYSCORE`), so expired keys never hold a quota.
//!
//! Atomicity: every write is one Lua script (`EVALSHA`, loaded on first
//! use), which Redis runs without interleaving: the quota check and the
//! write, `increment`'s create-with-TTL or `INCRBY`, and `compare-and-set`'s
//! compare and write cannot be split by another gateway. Deadlines come from
//! the server's `TIME`, so gateways with skewed clocks agree.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Client, FromRedisValue, RedisError, Script, ScriptInvocation};
use tokio::sync::OnceCell;

use super::{KvConfig, KvError, Quota};

/// Shared head of every script: `now` (server ms), drop expired index
/// members, `admit` (may this member be written under `max`?) and `store`.
const PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
local function admit(member, max)
  if redis.call('ZSCORE', KEYS[2], member) then return true end
  return redis.call('ZCARD', KEYS[2]) < tonumber(max)
end
local function store(value, ttl, member)
  if ttl == '' then
    redis.call('SET', KEYS[1], value)
    redis.call('ZADD', KEYS[2], '+inf', member)
  else
    local at = now + tonumber(ttl)
    redis.call('SET', KEYS[1], value, 'PXAT', at)
    redis.call('ZADD', KEYS[2], at, member)
  end
end
";

/// ARGV: value, ttl ('' = none), member, max_keys. Returns {1} or {-1} (quota).
const SET: &str = r"
if not admit(ARGV[3], ARGV[4]) then return {-1, ''} end
store(ARGV[1], ARGV[2], ARGV[3])
return {1, ''}
";

/// ARGV: member. Returns {1} if the key was there, else {0}.
const DELETE: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {n, ''}
";

/// ARGV: delta, ttl, member, max_keys. Returns {1, new value}, {-1} (quota)
/// or {-2, why} (not an integer, overflow).
const INCREMENT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local r = redis.pcall('INCRBY', KEYS[1], ARGV[1])
  if type(r) == 'table' and r.err then return {-2, r.err} end
  return {1, redis.call('GET', KEYS[1])}
end
if not admit(ARGV[3], ARGV[4]) then return {-1, ''} end
store(ARGV[1], ARGV[2], ARGV[3])
return {1, ARGV[1]}
";

/// ARGV: '1' if expected is given else '0', expected, value, ttl, member,
/// max_keys. Returns {1} set, {0} not set, {-1} quota.
const COMPARE_AND_SET: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return {0, ''} end
elseif (not cur) or cur ~= ARGV[2] then
  return {0, ''}
end
if not admit(ARGV[5], ARGV[6]) then return {-1, ''} end
store(ARGV[3], ARGV[4], ARGV[5])
return {1, ''}
";

/// Retries of one call inside the cluster client (redirections, a
/// failover in progress), and the waits between them, in milliseconds; the
/// call's deadline bounds them all.
const CLUSTER_RETRIES: u32 = 8;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 20;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 400;

/// Where calls go: one server or a Redis Cluster.
enum Pool {
    Single(Vec<ConnectionManager>),
    Cluster {
        client: Box<ClusterClient>,
        conns: Vec<OnceCell<ClusterConnection>>,
    },
}

/// One connection of the pool, for one call.
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The Redis store.
pub struct RedisStore {
    pool: Pool,
    next: AtomicUsize,
    prefix: String,
    /// Longest wait for one call, connecting included.
    deadline: Duration,
    set: Script,
    delete: Script,
    increment: Script,
    compare_and_set: Script,
}

fn unavailable(e: RedisError) -> KvError {
    KvError::Unavailable(format!("redis: {e}"))
}

fn ttl_arg(ttl_ms: Option<u64>) -> String {
    ttl_ms.map(|t| t.to_string()).unwrap_or_default()
}

fn over_quota(bucket: &str, quota: &Quota) -> KvError {
    KvError::Quota(format!(
        "bucket {bucket:?} holds its max_keys of {}",
        quota.max_keys
    ))
}

impl RedisStore {
    /// Builds the pool without connecting (see the module doc). Must be
    /// called within a tokio runtime.
    pub fn open(config: &KvConfig) -> Result<Self, KvError> {
        let size = config.pool_size.max(1);
        let pool = match (&config.cluster, config.url.as_deref()) {
            (Some(nodes), _) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.command_timeout)
                    .overall_response_timeout(Some(config.connect_timeout + config.command_timeout))
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                    .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                    .build()
                    .map_err(unavailable)?;
                Pool::Cluster {
                    client: Box::new(client),
                    conns: (0..size).map(|_| OnceCell::new()).collect(),
                }
            }
            (None, Some(url)) => {
                let client = Client::open(url).map_err(unavailable)?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.command_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(config.connect_timeout);
                Pool::Single(
                    (0..size)
                        .map(|_| client.get_connection_manager_lazy(manager_config.clone()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(unavailable)?,
                )
            }
            (None, None) => {
                return Err(KvError::Invalid(
                    "[kv] url or cluster is required for redis".into(),
                ));
            }
        };
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Ok(Self {
            pool,
            next: AtomicUsize::new(0),
            prefix: config.key_prefix.clone(),
            deadline: config.connect_timeout + config.command_timeout,
            set: script(SET),
            delete: script(DELETE),
            increment: script(INCREMENT),
            compare_and_set: script(COMPARE_AND_SET),
        })
    }

    /// The next connection of the pool; a cluster connection is made here
    /// on its first use.
    async fn conn(&self) -> Result<Conn, RedisError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match &self.pool {
            Pool::Single(pool) => Ok(Conn::Single(pool[i % pool.len()].clone())),
            Pool::Cluster { client, conns } => conns[i % conns.len()]
                .get_or_try_init(|| client.get_async_connection())
                .await
                .cloned()
                .map(Conn::Cluster),
        }
    }

    /// Runs `inv` on a connection of the pool, within the deadline.
    async fn invoke<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T, KvError> {
        let call = async {
            match self.conn().await? {
                Conn::Single(mut c) => inv.invoke_async(&mut c).await,
                Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
            }
        };
        tokio::time::timeout(self.deadline, call)
            .await
            .map_err(|_| KvError::Unavailable("redis: no answer in time".into()))?
            .map_err(unavailable)
    }

    fn value_key(&self, bucket: &str, key: &str) -> String {
        format!("{}{{{bucket}}}:v:{key}", self.prefix)
    }

    fn index_key(&self, bucket: &str) -> String {
        format!("{}{{{bucket}}}:idx", self.prefix)
    }

    /// Runs `script` on this bucket's two keys with `args`, within the deadline.
    async fn run(
        &self,
        script: &Script,
        bucket: &str,
        key: &str,
        args: &[&[u8]],
    ) -> Result<(i64, Vec<u8>), KvError> {
        let mut inv = script.prepare_invoke();
        inv.key(self.value_key(bucket, key))
            .key(self.index_key(bucket));
        for a in args {
            inv.arg(*a);
        }
        self.invoke(&inv).await
    }

    /// The value of `key`, if present and not expired.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let cmd = ::redis::cmd("GET")
            .arg(self.value_key(bucket, key))
            .to_owned();
        let call = async {
            match self.conn().await? {
                Conn::Single(mut c) => cmd.query_async(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
            }
        };
        tokio::time::timeout(self.deadline, call)
            .await
            .map_err(|_| KvError::Unavailable("redis: no answer in time".into()))?
            .map_err(unavailable)
    }

    /// Sets `key`; see [`super::KvStore::set`].
    pub async fn set(
        &self,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        quota: Quota,
    ) -> Result<(), KvError> {
        let ttl = ttl_arg(ttl_ms);
        let max = quota.max_keys.to_string();
        let (code, _) = self
            .run(
                &self.set,
                bucket,
                key,
                &[&value, ttl.as_bytes(), key.as_bytes(), max.as_bytes()],
            )
            .await?;
        match code {
            1 => Ok(()),
            _ => Err(over_quota(bucket, &quota)),
        }
    }

    /// Removes `key`; true if it was there.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        let (code, _) = self
            .run(&self.delete, bucket, key, &[key.as_bytes()])
            .await?;
        Ok(code == 1)
    }

    /// Atomic increment; see [`super::KvStore::increment`].
    pub async fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
        quota: Quota,
    ) -> Result<i64, KvError> {
        let delta = delta.to_string();
        let ttl = ttl_arg(ttl_ms);
        let max = quota.max_keys.to_string();
        let (code, data) = self
            .run(
                &self.increment,
                bucket,
                key,
                &[
                    delta.as_bytes(),
                    ttl.as_bytes(),
                    key.as_bytes(),
                    max.as_bytes(),
                ],
            )
            .await?;
        match code {
            1 => super::parse_counter(&data).map_err(|_| {
                KvError::Unavailable("redis: a counter that is not an integer".into())
            }),
            -1 => Err(over_quota(bucket, &quota)),
            _ => Err(KvError::Invalid(format!(
                "cannot increment: {}",
                String::from_utf8_lossy(&data)
            ))),
        }
    }

    /// Atomic compare-and-set; see [`super::KvStore::compare_and_set`].
    pub async fn compare_and_set(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        quota: Quota,
    ) -> Result<bool, KvError> {
        let has: &[u8] = if expected.is_some() { b"1" } else { b"0" };
        let expected = expected.unwrap_or_default();
        let ttl = ttl_arg(ttl_ms);
        let max = quota.max_keys.to_string();
        let (code, _) = self
            .run(
                &self.compare_and_set,
                bucket,
                key,
                &[
                    has,
                    &expected,
                    &value,
                    ttl.as_bytes(),
                    key.as_bytes(),
                    max.as_bytes(),
                ],
            )
            .await?;
        match code {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(over_quota(bucket, &quota)),
        }
    }
}
