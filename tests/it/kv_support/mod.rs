//! A real `redis-server` for the kv tests: started once per test binary on
//! 127.0.0.1 with a free port, no persistence (`--save '' --appendonly no`)
//! and a temporary working directory; stopped by PID when the test process
//! exits (an `atexit` hook, as statics are never dropped). Also a Redis
//! Cluster ([`Cluster`]): the shared one ([`cluster`]) for the contract
//! suite, and clusters of their own for tests that fail nodes over.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The running server: its `redis://` URL.
pub struct Redis {
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
    /// The port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

static SERVER: OnceLock<Redis> = OnceLock::new();
static PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn stop_server() {
    let pid = PID.swap(0, Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) on the PID of the child this process started.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shared server of this test binary, started on first use.
pub fn redis() -> &'static Redis {
    SERVER.get_or_init(start)
}

// The child is killed and reaped by `stop_server` (registered with
// atexit below), by PID, since the `Child` cannot live in the static.
#[allow(clippy::zombie_processes)]
fn start() -> Redis {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.path().to_str().unwrap(),
            "--protected-mode",
            "yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("redis-server must be installed (cargo xtask test installs it)");
    PID.store(child.id() as i32, Ordering::SeqCst);
    // SAFETY: registering a plain extern "C" fn with no captured state.
    #[allow(unsafe_code)]
    unsafe {
        libc::atexit(stop_server);
    }
    // Wait until it answers PING (a bounded readiness wait, not a timing assertion).
    for _ in 0..500 {
        if ping(port) {
            return Redis {
                url: format!("redis://127.0.0.1:{port}/0"),
                port,
                _dir: dir,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_server();
    panic!("redis-server on port {port} did not answer PING");
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

// ------------------------------------------------------------------ cluster

/// PIDs of the cluster nodes this process started and has not ended yet,
/// killed by [`stop_clusters`] when the process exits.
static CLUSTER_PIDS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());
static SHARED_CLUSTER: OnceLock<Cluster> = OnceLock::new();

extern "C" fn stop_clusters() {
    let pids = std::mem::take(&mut *CLUSTER_PIDS.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in pids {
        kill_pid(pid);
    }
}

fn kill_pid(pid: i32) {
    // SAFETY: kill(2) and waitpid(2) on the PID of a child this process started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// One line of `CLUSTER NODES`.
struct NodeView {
    port: u16,
    id: String,
    master: bool,
    /// The id of its master (`-` for a master).
    master_id: String,
    /// Slot ranges served (masters).
    slots: Vec<(u16, u16)>,
}

/// One `redis-server` of a [`Cluster`].
#[derive(Debug, Clone, Copy)]
pub struct Node {
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its process.
    pub pid: i32,
}

/// A Redis Cluster on 127.0.0.1: `masters` masters with `replicas`
/// replicas each, made by `redis-cli --cluster create`, without persistence
/// (`--save '' --appendonly no`: a killed node is not restarted, its
/// replica takes over). Ended by PID on drop (the shared one when the test
/// process exits).
pub struct Cluster {
    /// Every node, in the order given to `redis-cli --cluster create`.
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// The shared three-master cluster of this test process (no replicas).
pub fn cluster() -> &'static Cluster {
    SHARED_CLUSTER.get_or_init(|| Cluster::start(3, 0, 15_000))
}

impl Cluster {
    /// Starts the nodes, creates the cluster and waits (hang guard) until
    /// every node reports `cluster_state:ok` and every replica's link to
    /// its master is up. `node_timeout_ms` is `cluster-node-timeout`: how
    /// long a master may be unreachable before its replica takes over.
    // The children are killed and reaped by PID (drop, or the atexit hook).
    #[allow(clippy::zombie_processes)]
    pub fn start(masters: usize, replicas: usize, node_timeout_ms: u32) -> Self {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            // SAFETY: registering a plain extern "C" fn with no captured state.
            #[allow(unsafe_code)]
            unsafe {
                libc::atexit(stop_clusters);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = free_port();
            let bus = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", &node_timeout_ms.to_string()])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ])
                .args(["--dir", dir.path().to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("redis-server must be installed (cargo xtask test installs it)");
            let pid = child.id() as i32;
            CLUSTER_PIDS.lock().unwrap().push(pid);
            nodes.push(Node { port, pid });
        }
        let cluster = Self { nodes, _dir: dir };
        for n in &cluster.nodes {
            cluster.wait(|| ping(n.port), &format!("node {} answers PING", n.port));
        }
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (package redis-tools, a dependency of redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for n in &cluster.nodes {
            cluster.wait(
                || {
                    cluster
                        .try_query(n.port, &["CLUSTER", "INFO"])
                        .is_some_and(|s| s.contains("cluster_state:ok"))
                },
                &format!("node {} reports cluster_state:ok", n.port),
            );
        }
        for n in cluster.nodes.clone() {
            cluster.wait(
                || {
                    cluster
                        .try_query(n.port, &["INFO", "replication"])
                        .is_some_and(|s| {
                            s.contains("role:master") || s.contains("master_link_status:up")
                        })
                },
                &format!("replica {} linked to its master", n.port),
            );
        }
        cluster
    }

    /// `redis://` URLs of every node (the seed list of `[kv] cluster`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Polls `ready` every 50 ms; panics after two minutes (a hang guard).
    pub fn wait(&self, mut ready: impl FnMut() -> bool, what: &str) {
        for _ in 0..2400 {
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Redis Cluster: never saw: {what}");
    }

    /// One command to the node on `port`, its answer as text (a bulk
    /// string, a status, or an integer); `None` if the node does not answer.
    pub fn try_query(&self, port: u16, args: &[&str]) -> Option<String> {
        let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let v: ::redis::Value = cmd.query(&mut conn).ok()?;
        Some(match v {
            ::redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            ::redis::Value::SimpleString(s) => s,
            ::redis::Value::VerbatimString { text, .. } => text,
            ::redis::Value::Int(i) => i.to_string(),
            ::redis::Value::Okay => "OK".into(),
            other => format!("{other:?}"),
        })
    }

    /// As [`Cluster::try_query`], panicking if the node does not answer.
    pub fn query(&self, port: u16, args: &[&str]) -> String {
        self.try_query(port, args)
            .unwrap_or_else(|| panic!("node {port} did not answer {args:?}"))
    }

    /// The hash slot of `key`.
    pub fn keyslot(&self, key: &str) -> u16 {
        let port = self.live().port;
        self.query(port, &["CLUSTER", "KEYSLOT", key])
            .parse()
            .unwrap()
    }

    fn live(&self) -> Node {
        *self
            .nodes
            .iter()
            .find(|n| ping(n.port))
            .expect("a live cluster node")
    }

    /// `CLUSTER NODES` as seen by a live node, without the nodes flagged failed.
    fn topology(&self) -> Vec<NodeView> {
        let text = self.query(self.live().port, &["CLUSTER", "NODES"]);
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 8 || f[2].contains("fail") {
                    return None;
                }
                let port = f[1].split(['@', ':']).nth(1)?.parse().ok()?;
                let ranges = f[8..]
                    .iter()
                    .filter(|r| !r.starts_with('['))
                    .filter_map(|r| {
                        let (a, b) = r.split_once('-').unwrap_or((r, r));
                        Some((a.parse().ok()?, b.parse().ok()?))
                    })
                    .collect();
                Some(NodeView {
                    port,
                    id: f[0].to_string(),
                    master: f[2].contains("master"),
                    master_id: f[3].to_string(),
                    slots: ranges,
                })
            })
            .collect()
    }

    /// The port of the master serving `slot`.
    pub fn master_of(&self, slot: u16) -> u16 {
        self.topology()
            .into_iter()
            .find(|n| n.master && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The port of a replica of the master on `port`, as a live node
    /// sees the cluster now.
    pub fn replica_of(&self, port: u16) -> Option<u16> {
        let topology = self.topology();
        let id = topology
            .iter()
            .find(|n| n.port == port)
            .map(|n| n.id.clone())?;
        topology
            .into_iter()
            .find(|n| n.master_id == id)
            .map(|n| n.port)
    }

    /// Waits (hang guard) until the node on `port` is a master and every
    /// live node reports `cluster_state:ok`.
    pub fn wait_master(&self, port: u16) {
        self.wait(
            || {
                self.try_query(port, &["INFO", "replication"])
                    .is_some_and(|s| s.contains("role:master"))
            },
            &format!("node {port} promoted to master"),
        );
        for n in self.nodes.iter().filter(|n| ping(n.port)) {
            self.wait(
                || {
                    self.try_query(n.port, &["CLUSTER", "INFO"])
                        .is_some_and(|s| s.contains("cluster_state:ok"))
                },
                &format!("node {} reports cluster_state:ok", n.port),
            );
        }
    }

    /// Kills the node on `port` (SIGKILL, by PID): a crash.
    pub fn kill(&self, port: u16) {
        let node = self.nodes.iter().find(|n| n.port == port).unwrap();
        CLUSTER_PIDS.lock().unwrap().retain(|p| *p != node.pid);
        kill_pid(node.pid);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut pids = CLUSTER_PIDS.lock().unwrap_or_else(|e| e.into_inner());
        for n in &self.nodes {
            if let Some(i) = pids.iter().position(|p| *p == n.pid) {
                pids.remove(i);
                kill_pid(n.pid);
            }
        }
    }
}
