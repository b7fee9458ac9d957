//! [`RedisServer`]: a throwaway `redis-server` on loopback.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a new server gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a [`RedisServer`] did not start.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    /// There is no `redis-server` on the PATH.
    #[error(
        "redis-server is not installed: the Redis tests run against a real redis-server; \
         install it (Debian/Ubuntu: `sudo apt-get install redis-server`) or run \
         `cargo xtask ci`, which installs it"
    )]
    NotInstalled,
    /// It is there but could not be run.
    #[error("could not run redis-server")]
    Spawn(#[source] std::io::Error),
    /// No free port was found for it.
    #[error("could not find a free port on 127.0.0.1 for redis-server")]
    Port(#[source] std::io::Error),
    /// It exited before it accepted connections.
    #[error("redis-server exited at start ({status}); its log: {}", log.display())]
    Exited {
        /// How it exited.
        status: ExitStatus,
        /// What it wrote.
        log: PathBuf,
    },
    /// It did not accept connections in time.
    #[error("redis-server did not accept connections on 127.0.0.1:{port} within {START_TIMEOUT:?}; its log: {}", log.display())]
    NotListening {
        /// The port it was given.
        port: u16,
        /// What it wrote.
        log: PathBuf,
    },
}

/// A `redis-server` process on 127.0.0.1 with persistence off, its files
/// and log (`redis-server.log`) in a directory of the caller's; killed when
/// dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server on a free port in `dir` and waits until it accepts
    /// connections. Where `redis-server` is not installed, the error is
    /// [`RedisServerError::NotInstalled`], which a demo can take as "skip
    /// the Redis part".
    pub fn try_start(dir: &Path) -> Result<Self, RedisServerError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(RedisServerError::Port)?
            .port();
        let mut server = Self {
            child: None,
            port,
            dir: dir.to_path_buf(),
        };
        server.launch()?;
        Ok(server)
    }

    /// [`RedisServer::try_start`] for tests: a server, or a panic whose
    /// message is the one sentence that says why there is none (where
    /// `redis-server` is missing: that it is, and how to install it).
    #[track_caller]
    pub fn start(dir: &Path) -> Self {
        // A `match`, not `unwrap_or_else`: a closure would report its own
        // line instead of the caller's.
        match Self::try_start(dir) {
            Ok(server) => server,
            Err(error) => panic!("{}", chain(&error)),
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (its data is gone: persistence is off).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) -> Result<(), RedisServerError> {
        self.stop();
        self.launch()
    }

    fn launch(&mut self) -> Result<(), RedisServerError> {
        let log = self.dir.join("redis-server.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::NotFound => RedisServerError::NotInstalled,
                _ => RedisServerError::Spawn(error),
            })?;
        let child = self.child.insert(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(RedisServerError::Exited { status, log });
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(RedisServerError::NotListening {
                    port: self.port,
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The error and its sources, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_server_error_is_one_sentence_with_the_command() {
        let message = RedisServerError::NotInstalled.to_string();
        assert!(message.starts_with("redis-server is not installed"));
        assert!(message.contains("`sudo apt-get install redis-server`"));
        assert!(!message.contains('\n'));
    }
}
