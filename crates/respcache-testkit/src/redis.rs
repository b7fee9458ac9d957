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
    /// The certificate authority's PEM when the server speaks only TLS.
    ca: Option<String>,
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
            ca: None,
        };
        server.launch()?;
        Ok(server)
    }

    /// A server that speaks only TLS (`--tls-port`), with a certificate
    /// for `127.0.0.1` and `localhost` issued by a certificate authority
    /// made for it ([`RedisServer::ca_pem`]); clients need no certificate.
    #[track_caller]
    pub fn start_tls(dir: &Path) -> Self {
        let ca = match write_certificates(dir) {
            Ok(ca) => ca,
            Err(error) => panic!("could not make test certificates: {error}"),
        };
        let port = crate::free_port().port();
        let mut server = Self {
            child: None,
            port,
            dir: dir.to_path_buf(),
            ca: Some(ca),
        };
        if let Err(error) = server.launch() {
            panic!("{}", chain(&error));
        }
        server
    }

    /// The PEM of the authority that issued a [`RedisServer::start_tls`]
    /// server's certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_deref()
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

    /// `redis://127.0.0.1:PORT/`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
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
        let mut command = Command::new("redis-server");
        match self.ca {
            None => command.args(["--port", &self.port.to_string()]),
            Some(_) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args(["--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.pem"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.dir.join("ca.pem")),
        };
        let child = command
            .args(["--bind", "127.0.0.1"])
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

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir`: a new
/// authority and a certificate for 127.0.0.1 it issued. Returns the
/// authority's PEM.
fn write_certificates(dir: &Path) -> Result<String, Box<dyn std::error::Error>> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "respcache test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
        .signed_by(&key, &ca)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("server.pem"), server.pem())?;
    std::fs::write(dir.join("server.key"), key.serialize_pem())?;
    Ok(ca.pem())
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
