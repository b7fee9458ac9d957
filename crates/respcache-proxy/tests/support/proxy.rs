//! The real `respcache-proxy` binary, run as a child process.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::net::TcpStream;

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_respcache-proxy");

/// How long the proxy gets to start or to stop before a test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// A running proxy, killed when dropped so that no process outlives its
/// test. Its log is printed when the test fails.
#[derive(Debug)]
pub struct Proxy {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served.
    pub admin: SocketAddr,
    log: PathBuf,
    // Dropped after the child is killed.
    _dir: TempDir,
}

impl Proxy {
    /// Starts the proxy in front of `upstream` (`http://HOST:PORT`) with
    /// `backend` (`fs` or `cacache`) in a fresh cache directory, and waits
    /// until both its ports accept connections.
    pub async fn start(upstream: &str, backend: &str) -> Self {
        Self::start_with(upstream, backend, &[]).await
    }

    /// [`Proxy::start`] with more flags.
    pub async fn start_with(upstream: &str, backend: &str, flags: &[&str]) -> Self {
        Self::start_with_env(upstream, backend, flags, &[]).await
    }

    /// Starts the proxy with `--config` and a file written by `config`
    /// from the client and admin addresses and a fresh cache directory,
    /// with `env` in its environment; its stdout (the access log) goes to
    /// a file, read by [`Proxy::stdout`].
    pub async fn start_config(
        config: impl Fn(SocketAddr, SocketAddr, &Path) -> String,
        env: &[(&str, &str)],
    ) -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("a cache directory");
            let log = dir.path().join("proxy.log");
            let [addr, admin] = respcache_testkit::free_ports();
            let file = dir.path().join("proxy.toml");
            std::fs::write(&file, config(addr, admin, &dir.path().join("cache")))
                .expect("writing the config file");
            let child = Command::new(BINARY)
                .arg("--config")
                .arg(&file)
                .envs(env.iter().copied())
                .env(
                    "RUST_LOG",
                    "info,respcache_proxy=debug,respcache_http=debug",
                )
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(File::create(dir.path().join("stdout")).expect("the proxy's stdout"))
                .stderr(File::create(&log).expect("the proxy's log file"))
                .spawn()
                .expect("starting respcache-proxy");
            let mut proxy = Self {
                child,
                addr,
                admin,
                log,
                _dir: dir,
            };
            if proxy.ready().await {
                return proxy;
            }
            let log = proxy.log();
            assert!(
                log.contains("cannot listen"),
                "respcache-proxy exited at start:\n{log}"
            );
        }
        panic!("respcache-proxy found no free ports in five tries");
    }

    /// The config file of a proxy started by [`Proxy::start_config`].
    pub fn config_file(&self) -> PathBuf {
        self._dir.path().join("proxy.toml")
    }

    /// What the proxy has written to stdout (the access log) so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stdout")).unwrap_or_default()
    }

    /// Sends `signal` (`HUP`, `KILL`...) to the proxy.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed: {status}");
    }

    /// Waits until the proxy accepts connections on both ports; `false` if
    /// it exited first.
    async fn ready(&mut self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.child.try_wait().expect("polling the proxy").is_some() {
                return false;
            }
            if TcpStream::connect(self.addr).await.is_ok()
                && TcpStream::connect(self.admin).await.is_ok()
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "respcache-proxy did not accept connections within {PATIENCE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `http://`, the proxy's address and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://`, the admin address and `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// [`Proxy::start_with`], with `env` in the proxy's environment (for
    /// settings read from environment variables, such as secrets).
    pub async fn start_with_env(
        upstream: &str,
        backend: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("a cache directory");
            let log = dir.path().join("proxy.log");
            let [addr, admin] = respcache_testkit::free_ports();
            let child = Command::new(BINARY)
                .args(["--upstream", upstream])
                .args(["--listen", &addr.to_string()])
                .args(["--admin", &admin.to_string()])
                .arg("--dir")
                .arg(dir.path().join("cache"))
                .args(["--backend", backend])
                .args(flags)
                .envs(env.iter().copied())
                .env(
                    "RUST_LOG",
                    "info,respcache_proxy=debug,respcache_http=debug",
                )
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("the proxy's log file"))
                .spawn()
                .expect("starting respcache-proxy");
            let mut proxy = Self {
                child,
                addr,
                admin,
                log,
                _dir: dir,
            };
            if proxy.ready().await {
                return proxy;
            }
            let log = proxy.log();
            assert!(
                log.contains("cannot listen"),
                "respcache-proxy exited at start:\n{log}"
            );
        }
        panic!("respcache-proxy found no free ports in five tries");
    }

    /// Sends SIGTERM, as a service manager stopping the proxy would.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// The proxy's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("polling the proxy")
    }

    /// Waits for the proxy to exit; fails the test if it takes longer
    /// than it should.
    pub async fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "respcache-proxy still running {PATIENCE:?} after being told to stop:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What the proxy has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- respcache-proxy log ---\n{}", self.log());
        }
    }
}

/// Runs the proxy with `args` and waits for it, for command lines that
/// must be refused before anything starts. It runs in a directory of its
/// own, and a proxy that starts instead is killed and fails the test.
pub fn run(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("a working directory");
    let mut child = Command::new(BINARY)
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running respcache-proxy");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("polling the proxy").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("the proxy's output");
            panic!(
                "respcache-proxy {args:?} kept running instead of refusing its command line:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("the proxy's output")
}
