//! The servers a run starts: the nginx origin and the caches in front of
//! it (nginx `proxy_cache`, Varnish, respcache-proxy), each a process tree
//! in a directory of its own under the run's, and stopped, the whole tree,
//! by [`Servers::stop_all`] whichever way the run ends (their directories
//! go with the run's, at its end).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::rss;

/// How long a server may take to accept connections.
const START: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before its whole tree
/// is killed.
const STOP: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// The body sizes served, by file name under the origin's root.
pub const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];
/// The size of each `/u/N` response.
pub const SMALL_BODY: usize = 1000;

/// What stands between wrk and the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// No cache: the origin alone, the ceiling on loopback.
    Origin,
    /// nginx `proxy_cache`.
    Nginx,
    /// Varnish, `-s malloc`.
    Varnish,
    /// respcache-proxy with the fs backend.
    Fs,
    /// respcache-proxy with the cacache backend.
    Cacache,
}

impl Subject {
    /// Every subject, in the order runs and tables use.
    pub const ALL: [Subject; 5] = [
        Subject::Origin,
        Subject::Nginx,
        Subject::Varnish,
        Subject::Fs,
        Subject::Cacache,
    ];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Subject::Origin => "origin alone",
            Subject::Nginx => "nginx",
            Subject::Varnish => "Varnish",
            Subject::Fs => "respcache fs",
            Subject::Cacache => "respcache cacache",
        }
    }

    /// A name fit for a path or a URL.
    pub fn slug(self) -> &'static str {
        match self {
            Subject::Origin => "origin",
            Subject::Nginx => "nginx",
            Subject::Varnish => "varnish",
            Subject::Fs => "respcache-fs",
            Subject::Cacache => "respcache-cacache",
        }
    }
}

/// A server that is running.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    /// The root of its process tree.
    pub pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
}

#[derive(Debug)]
struct Running {
    name: String,
    pid: u32,
    /// Started with `kill_on_drop`: a panic still kills the root.
    child: tokio::process::Child,
}

/// Every server a run started.
#[derive(Debug)]
pub struct Servers {
    /// The run's directory (removed by its owner).
    dir: PathBuf,
    running: Vec<Running>,
    /// Distinguishes the directories of successive instances.
    started: usize,
}

impl Servers {
    /// Servers whose files live under `dir`.
    pub fn new(dir: PathBuf) -> Servers {
        Servers {
            dir,
            running: Vec::new(),
            started: 0,
        }
    }

    /// The nginx origin: `/1KiB`, `/64KiB`, `/1MiB` (static files), `/u/N`
    /// (1000 bytes each), `/slow/...` (passed to `slow`), every response
    /// `Cache-Control: max-age=3600`. Each request is logged, one line
    /// each, to the returned log, so that a run can count what reached the
    /// origin.
    pub async fn start_origin(&mut self, slow: SocketAddr) -> Result<(Server, PathBuf), String> {
        let dir = self.instance_dir("origin")?;
        let root = dir.join("www");
        create(&root)?;
        for (name, size) in SIZES {
            let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            write(&root.join(name), &body)?;
        }
        let addr = respcache_testkit::free_port();
        let log = dir.join("access.log");
        let small = "u".repeat(SMALL_BODY);
        let server = format!(
            r#"
    # Buffered, so that counting requests costs the origin little.
    log_format count "$request_uri";
    access_log {log} count buffer=64k flush=1s;
    server {{
        listen {addr};
        root {root};
        location / {{
            add_header Cache-Control "max-age=3600";
        }}
        location /u/ {{
            add_header Cache-Control "max-age=3600";
            return 200 "{small}";
        }}
        location /slow/ {{
            proxy_pass http://{slow};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"#,
            log = log.display(),
            root = root.display(),
        );
        let server = self.start_nginx("origin", dir, addr, &server).await?;
        Ok((server, log))
    }

    /// `subject` in front of `origin`, with a fresh cache.
    pub async fn start_cache(
        &mut self,
        subject: Subject,
        origin: SocketAddr,
        proxy: &Path,
    ) -> Result<Server, String> {
        let dir = self.instance_dir(subject.slug())?;
        let addr = respcache_testkit::free_port();
        match subject {
            Subject::Origin => Err("the origin is no cache".into()),
            Subject::Nginx => {
                let cache = dir.join("cache");
                let server = format!(
                    r#"
    access_log off;
    proxy_cache_path {cache} levels=1:2 keys_zone=bench:50m max_size=1g inactive=1h use_temp_path=off;
    upstream origin {{
        server {origin};
        keepalive 64;
    }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 30s;
        }}
    }}"#,
                    cache = cache.display()
                );
                self.start_nginx(subject.slug(), dir, addr, &server).await
            }
            Subject::Varnish => {
                let mut command = tokio::process::Command::new("varnishd");
                command
                    // Foreground, so that it stays this run's child;
                    // no jail, so that it runs as whoever runs the bench.
                    .args(["-F", "-j", "none", "-T", "none"])
                    .arg("-n")
                    .arg(dir.join("work"))
                    .args(["-a", &addr.to_string()])
                    .args(["-b", &origin.to_string()])
                    .args(["-s", "malloc,1G"]);
                self.spawn(subject.slug(), command, dir, addr).await
            }
            Subject::Fs | Subject::Cacache => {
                let mut command = tokio::process::Command::new(proxy);
                command
                    .arg("--upstream")
                    .arg(format!("http://{origin}"))
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--backend")
                    .arg(if subject == Subject::Fs {
                        "fs"
                    } else {
                        "cacache"
                    })
                    .arg("--dir")
                    .arg(dir.join("cache"))
                    // Warnings only: nginx logs no access either.
                    .env("RUST_LOG", "warn");
                self.spawn(subject.slug(), command, dir, addr).await
            }
        }
    }

    /// nginx with `server` (the `http` block's contents), in the
    /// foreground, with every path it writes under `dir`.
    async fn start_nginx(
        &mut self,
        name: &str,
        dir: PathBuf,
        addr: SocketAddr,
        server: &str,
    ) -> Result<Server, String> {
        let temp = dir.join("temp");
        create(&temp)?;
        let config = format!(
            r#"# Written by `cargo xtask bench proxy`.
daemon off;
master_process on;
worker_processes auto;
# Ignored unless started as root; as root, the workers read and write
# this run's private directory.
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    # wrk keeps its connections; nginx's default closes one every 1000
    # requests, which neither Varnish nor respcache-proxy do.
    keepalive_requests 1000000;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{server}
}}
"#,
            dir = dir.display(),
            temp = temp.display(),
        );
        let path = dir.join("nginx.conf");
        write(&path, config.as_bytes())?;
        let mut command = tokio::process::Command::new("nginx");
        command
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.join("error.log"));
        self.spawn(name, command, dir, addr).await
    }

    /// Starts `command` with its output in `dir/output.log` and waits for
    /// `addr` to accept connections.
    async fn spawn(
        &mut self,
        name: &str,
        mut command: tokio::process::Command,
        dir: PathBuf,
        addr: SocketAddr,
    ) -> Result<Server, String> {
        let log = dir.join("output.log");
        let file =
            std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let stderr = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        let pid = child
            .id()
            .ok_or_else(|| format!("{name} exited as soon as it started"))?;
        let deadline = Instant::now() + START;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let errors = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                return Err(format!("{name} exited ({status}):\n{output}{errors}"));
            }
            if Instant::now() > deadline {
                self.running.push(Running {
                    name: name.into(),
                    pid,
                    child,
                });
                return Err(format!(
                    "{name} did not accept connections on {addr} within {START:?}"
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        self.running.push(Running {
            name: name.into(),
            pid,
            child,
        });
        Ok(Server { pid, addr })
    }

    /// Stops `server`'s whole tree (its directory is removed with the
    /// run's).
    pub async fn stop(&mut self, server: Server) {
        if let Some(index) = self.running.iter().position(|r| r.pid == server.pid) {
            let running = self.running.remove(index);
            stop(running).await;
        }
    }

    /// Stops every server still running, newest first. Never fails: it
    /// runs on the way out of every outcome.
    pub async fn stop_all(&mut self) {
        while let Some(running) = self.running.pop() {
            stop(running).await;
        }
    }

    /// A fresh directory for one instance of `name`.
    fn instance_dir(&mut self, name: &str) -> Result<PathBuf, String> {
        self.started += 1;
        let dir = self.dir.join(format!("{}-{name}", self.started));
        create(&dir)?;
        Ok(dir)
    }
}

/// SIGTERM to the root (nginx and Varnish stop their workers on it), then
/// SIGKILL to whatever of the tree is left after [`STOP`].
async fn stop(mut running: Running) {
    let tree = rss::tree(running.pid);
    signal("TERM", &[running.pid]);
    let exited = tokio::time::timeout(STOP, running.child.wait()).await;
    if exited.is_err() {
        eprintln!(
            "warning: {} did not exit within {STOP:?} of SIGTERM; killing it",
            running.name
        );
    }
    // Workers outlive a master that was killed, or may still be exiting.
    let deadline = Instant::now() + STOP;
    while tree.iter().any(|&pid| rss::alive(pid)) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let left: Vec<u32> = tree.into_iter().filter(|&pid| rss::alive(pid)).collect();
    if !left.is_empty() {
        signal("KILL", &left);
    }
    let _ = running.child.start_kill();
    let _ = running.child.wait().await;
    // Its directory stays until the run's is removed at the end: deleting
    // the tens of thousands of files a many-URLs load stores, on a disk
    // mounted with `discard`, slowed the file creation of the subject
    // measured next to a third of its rate for half a minute (the fs
    // backend's many-URLs figure: 4.3k requests/s alone, 1.6k after nginx).
}

/// `kill -SIGNAL pids`: the standard library has no signal but SIGKILL,
/// and unsafe code (libc) is forbidden here.
fn signal(signal: &str, pids: &[u32]) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn create(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}
