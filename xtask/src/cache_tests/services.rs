//! The processes a run of the caching tests needs (the suite's origin and
//! `respcache-proxy`) and the directory the proxy caches into: started
//! here, and all stopped and removed by [`Services::stop`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{node, not_installed};

/// How long the origin may take to print where it listens.
const ORIGIN_START: Duration = Duration::from_secs(15);
/// How long the proxy may take to accept connections.
const PROXY_START: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// Everything one run started.
#[derive(Debug)]
pub struct Services {
    /// This run's directory: the proxy's cache and the origin's pid file.
    dir: PathBuf,
    running: Vec<Service>,
}

#[derive(Debug)]
struct Service {
    name: &'static str,
    /// Started with `kill_on_drop`, so not even a panic leaves it running.
    child: tokio::process::Child,
}

impl Services {
    /// Creates `dir` afresh (a directory left by an interrupted run of the
    /// same process id is stale).
    pub fn new(dir: PathBuf) -> Result<Services, String> {
        remove(&dir).map_err(|e| format!("removing the stale {}: {e}", dir.display()))?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Services {
            dir,
            running: Vec::new(),
        })
    }

    /// Stops what was started, newest first, waits for each to exit, then
    /// removes the run's directory. Never fails: it runs on the way out of
    /// every outcome, and a leftover is only worth a warning.
    pub async fn stop(&mut self) {
        while let Some(mut service) = self.running.pop() {
            // An error here means it has exited already.
            let _ = service.child.start_kill();
            if let Err(e) = service.child.wait().await {
                eprintln!("warning: waiting for the {} to exit: {e}", service.name);
            }
        }
        if let Err(e) = remove(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
        // Only when no other run is using it.
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }

    /// Starts the suite's origin server on a free loopback port and returns
    /// its address. `script` is `origin.mjs`; `log` receives the server's
    /// output (with `--id`, its side of the dump).
    pub async fn start_origin(
        &mut self,
        script: &Path,
        package: &Path,
        log: &Path,
    ) -> Result<SocketAddr, String> {
        let mut command = node();
        command
            .arg(script)
            .arg(package)
            .current_dir(package)
            .env("npm_config_protocol", "http")
            .env("npm_config_port", "0")
            .env("npm_config_pidfile", self.dir.join("origin.pid"))
            // origin.mjs exits when this closes: it cannot outlive us.
            .stdin(Stdio::piped());
        self.spawn("origin", command, log)?;
        let deadline = Instant::now() + ORIGIN_START;
        loop {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(address) = output.lines().find_map(listening_address) {
                return Ok(address);
            }
            self.still_running("origin", log)?;
            if Instant::now() > deadline {
                return Err(failure(
                    &format!("the origin did not start listening within {ORIGIN_START:?}"),
                    log,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts `respcache-proxy` in front of `upstream`, caching into this
    /// run's directory with `backend`, and returns its address once it
    /// accepts connections.
    pub async fn start_proxy(
        &mut self,
        binary: &Path,
        upstream: SocketAddr,
        backend: &str,
        extra: &[String],
        log: &Path,
    ) -> Result<SocketAddr, String> {
        // Another process could take it before the proxy does; the proxy
        // would then fail to start, and say so.
        let address = respcache_testkit::free_port();
        let cache = self.dir.join("cache");
        std::fs::create_dir_all(&cache)
            .map_err(|e| format!("creating {}: {e}", cache.display()))?;
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("--upstream")
            .arg(format!("http://{upstream}"))
            .arg("--listen")
            .arg(address.to_string())
            .arg("--backend")
            .arg(backend)
            .arg("--dir")
            .arg(&cache)
            .args(extra)
            .stdin(Stdio::null());
        self.spawn("respcache-proxy", command, log)?;
        let deadline = Instant::now() + PROXY_START;
        loop {
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return Ok(address);
            }
            self.still_running("respcache-proxy", log)?;
            if Instant::now() > deadline {
                return Err(failure(
                    &format!(
                        "respcache-proxy did not accept connections on {address} within {PROXY_START:?}"
                    ),
                    log,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Spawns `command` with its stdout and stderr going to `log`, and
    /// keeps it to stop later.
    fn spawn(
        &mut self,
        name: &'static str,
        mut command: tokio::process::Command,
        log: &Path,
    ) -> Result<(), String> {
        let file =
            std::fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let stderr = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = command
            .stdout(file)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match name {
                "origin" => not_installed("node", e),
                _ => format!("could not start {name}: {e}"),
            })?;
        self.running.push(Service { name, child });
        Ok(())
    }

    /// Fails, with the end of its output, if `name` has exited.
    fn still_running(&mut self, name: &str, log: &Path) -> Result<(), String> {
        let exited = self
            .running
            .iter_mut()
            .find(|service| service.name == name)
            .map(|service| service.child.try_wait())
            .transpose()
            .map_err(|e| format!("{name}: {e}"))?
            .flatten();
        match exited {
            Some(status) => Err(failure(&format!("{name} exited ({status})"), log)),
            None => Ok(()),
        }
    }
}

/// The address in server.mjs's `Listening on http://127.0.0.1:PORT/`.
fn listening_address(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("Listening on http://")?
        .trim_end()
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// `what`, followed by the last lines `log` holds.
fn failure(what: &str, log: &Path) -> String {
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = output.lines().collect();
    if lines.is_empty() {
        return format!("{what}, and printed nothing ({})", log.display());
    }
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("{what}; the end of its output ({}):\n{tail}", log.display())
}

fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_the_origin_prints() {
        assert_eq!(
            listening_address("Listening on http://127.0.0.1:40123/"),
            Some(SocketAddr::from(([127, 0, 0, 1], 40123)))
        );
        assert_eq!(listening_address("PID file write error: EACCES"), None);
    }
}
