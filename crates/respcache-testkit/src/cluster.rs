//! [`RedisCluster`]: a throwaway Redis Cluster of six `redis-server`
//! processes on loopback, three masters with a replica each.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the cluster gets to form, and a failover to finish.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a node may be unreachable before the others fail it over:
/// short, so the failover tests take seconds.
const NODE_TIMEOUT_MS: u32 = 1000;

/// Six `redis-server` processes with `--cluster-enabled yes` on 127.0.0.1
/// (persistence off), joined with `redis-cli --cluster create
/// --cluster-replicas 1`. Its files live in a temp directory.
///
/// [`RedisCluster::shared`] starts one per process (per test binary);
/// [`RedisCluster::prefix`] gives each user of it its own key prefix. The
/// nodes are stopped, and the directory removed, when the process that
/// started them exits, even though statics are never dropped: a watcher
/// process waits for that.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Mutex<Vec<Node>>,
    dir: PathBuf,
}

#[derive(Debug)]
struct Node {
    port: u16,
    bus_port: u16,
    child: Option<Child>,
}

static SHARED: OnceLock<RedisCluster> = OnceLock::new();
static PREFIXES: AtomicU64 = AtomicU64::new(0);

impl RedisCluster {
    /// The cluster of this process, started on first use. Panics, saying
    /// why, when it cannot start (`redis-server` or `redis-cli` missing).
    pub fn shared() -> &'static RedisCluster {
        SHARED.get_or_init(|| match Self::start() {
            Ok(cluster) => cluster,
            Err(error) => panic!("could not start a Redis Cluster: {error}"),
        })
    }

    /// A key prefix no other caller in this process gets.
    pub fn prefix(&self, name: &str) -> String {
        format!("{name}-{}", PREFIXES.fetch_add(1, Ordering::Relaxed))
    }

    /// The nodes' addresses as `redis://127.0.0.1:PORT/`.
    pub fn seeds(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…/`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports()
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}/", hosts.join(","))
    }

    fn ports(&self) -> Vec<u16> {
        self.lock().iter().map(|node| node.port).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "respcache-cluster-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ports = crate::free_ports::<12>();
        let mut nodes: Vec<Node> = (0..6)
            .map(|i| Node {
                port: ports[i].port(),
                bus_port: ports[i + 6].port(),
                child: None,
            })
            .collect();
        for node in &mut nodes {
            node.launch(&dir)?;
        }
        let cluster = RedisCluster {
            nodes: Mutex::new(nodes),
            dir,
        };
        cluster.watch_parent()?;
        for port in cluster.ports() {
            wait_for(|| cli(port, &["PING"]).is_ok_and(|out| out.trim() == "PONG"))
                .map_err(|()| format!("node {port} did not answer PING"))?;
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for port in cluster.ports() {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "redis-cli is not installed (Debian: \
                    `sudo apt-get install redis-tools`, or `cargo xtask ci`)"
                    .to_owned(),
                _ => format!("could not run redis-cli: {e}"),
            })?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        cluster.wait_until_ok()?;
        Ok(cluster)
    }

    /// Waits until every running node says the cluster is ok, and every
    /// slot's master has a replica in sync (or failed over to one).
    pub fn wait_until_ok(&self) -> Result<(), String> {
        let ports: Vec<u16> = self
            .lock()
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
            .collect();
        wait_for(|| {
            ports.iter().all(|&port| {
                cli(port, &["CLUSTER", "INFO"]).is_ok_and(|info| info.contains("cluster_state:ok"))
            }) && self.masters().len() == 3
        })
        .map_err(|()| format!("the cluster was not ok within {FORM_TIMEOUT:?}"))
    }

    /// The ports of the masters that serve slots now, as the running nodes
    /// see it.
    pub fn masters(&self) -> Vec<u16> {
        let Some(nodes) = self.cluster_nodes() else {
            return Vec::new();
        };
        nodes
            .lines()
            .filter(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                fields.len() > 8 && fields[2].contains("master") && !fields[2].contains("fail")
            })
            .filter_map(|line| port_of(line.split(' ').nth(1)?))
            .collect()
    }

    /// The port of the master serving `key`'s slot now.
    pub fn master_of(&self, key: &str) -> Option<u16> {
        let port = self.any_running()?;
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", key])
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let nodes = self.cluster_nodes()?;
        nodes.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                return None;
            }
            let serves = fields[8..].iter().any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                matches!((low.parse::<u16>(), high.parse::<u16>()),
                    (Ok(low), Ok(high)) if (low..=high).contains(&slot))
            });
            serves.then(|| port_of(fields[1])).flatten()
        })
    }

    /// Kills the node on `port` (SIGKILL: no goodbye to the others).
    pub fn kill(&self, port: u16) {
        for node in self.lock().iter_mut() {
            if node.port == port
                && let Some(mut child) = node.child.take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts a killed node again, empty; it rejoins as a replica.
    pub fn revive(&self, port: u16) -> Result<(), String> {
        let mut nodes = self.lock();
        for node in nodes.iter_mut() {
            if node.port == port && node.child.is_none() {
                node.launch(&self.dir)?;
            }
        }
        Ok(())
    }

    fn any_running(&self) -> Option<u16> {
        self.lock()
            .iter()
            .find(|node| node.child.is_some())
            .map(|node| node.port)
    }

    fn cluster_nodes(&self) -> Option<String> {
        cli(self.any_running()?, &["CLUSTER", "NODES"]).ok()
    }

    /// A shell that waits for this process to end, then kills the nodes
    /// and removes their directory.
    fn watch_parent(&self) -> Result<(), String> {
        // Each launch writes its node's process id to `<port>.pid`.
        let script = format!(
            "cd '{dir}' || exit; while kill -0 {parent} 2>/dev/null; do sleep 0.2; done; \
             for f in *.pid; do kill -9 \"$(cat \"$f\")\" 2>/dev/null; done; \
             cd / && rm -rf '{dir}'",
            parent = std::process::id(),
            dir = self.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("could not start the cluster's watcher: {e}"))
    }
}

impl Node {
    fn launch(&mut self, dir: &Path) -> Result<(), String> {
        let dir = dir.join(self.port.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // A revived node forgets who it was: it joins again as a new node.
        let _ = std::fs::remove_file(dir.join("nodes.conf"));
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-port", &self.bus_port.to_string()])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis-server.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => crate::RedisServerError::NotInstalled.to_string(),
                _ => format!("could not run redis-server: {e}"),
            })?;
        let pid_file = dir.with_extension("pid");
        std::fs::write(&pid_file, child.id().to_string())
            .map_err(|e| format!("{}: {e}", pid_file.display()))?;
        self.child = Some(child);
        Ok(())
    }
}

/// Runs `redis-cli -p PORT ARGS…` and returns what it printed.
fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("redis-cli exited with {}", output.status))
    }
}

/// `127.0.0.1:7000@17000` → 7000.
fn port_of(address: &str) -> Option<u16> {
    address
        .split(['@', ','])
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

fn wait_for(mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + FORM_TIMEOUT;
    while Instant::now() < deadline {
        if done() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_give_their_port() {
        assert_eq!(port_of("127.0.0.1:7000@17000"), Some(7000));
        assert_eq!(port_of("127.0.0.1:7001@17001,hostname"), Some(7001));
        assert_eq!(port_of(":0@0"), Some(0));
    }
}
