//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

/// Which backend stores responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `respcache-fs`: content-addressed files, streaming both ways.
    Fs,
    /// `respcache-cacache`: cacache, bodies gathered in memory.
    Cacache,
}

/// The proxy's settings.
#[derive(Debug, Clone)]
pub struct Args {
    /// The origin, `http://HOST:PORT`.
    pub upstream: Uri,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where the metrics endpoint listens, if anywhere.
    pub admin: Option<SocketAddr>,
    /// The storage backend.
    pub backend: Backend,
    /// The cache directory.
    pub dir: PathBuf,
    /// The most bytes the fs backend keeps.
    pub max_size: Option<u64>,
    /// The longest wait for the origin's response head.
    pub origin_timeout: Duration,
}

pub const USAGE: &str = "\
usage: respcache-proxy --upstream http://HOST:PORT [--listen ADDR] [--admin ADDR]
                       [--backend fs|cacache] [--dir PATH] [--max-size BYTES]
                       [--origin-timeout SECONDS]

  --upstream  the origin every request not served from cache goes to
  --listen    address for clients (default 127.0.0.1:8080)
  --admin     address for GET /metrics in Prometheus text (default: none)
  --backend   fs (default: streaming, content-addressed files) or cacache
  --dir       cache directory (default ./respcache-cache)
  --max-size  most bytes the fs backend keeps before evicting (default: no limit)
  --origin-timeout
              longest wait for the origin's response head, then 502 or a
              stale entry (default 60)

Logs go to stderr; RUST_LOG sets the level (default info).";

impl Args {
    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut upstream = None;
        let mut listen: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let mut admin = None;
        let mut backend = Backend::Fs;
        let mut dir = PathBuf::from("respcache-cache");
        let mut max_size = None;
        let mut origin_timeout = Duration::from_secs(60);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                return Err(String::new());
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--upstream" => {
                    let uri: Uri = value
                        .parse()
                        .map_err(|e| format!("--upstream {value}: {e}"))?;
                    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                        return Err(format!("--upstream {value}: expected http://HOST:PORT"));
                    }
                    // Requests keep their own paths: a base path would be
                    // dropped without a word.
                    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
                        return Err(format!(
                            "--upstream {value}: expected http://HOST:PORT, without a path"
                        ));
                    }
                    upstream = Some(uri);
                }
                "--listen" => listen = socket(&flag, &value)?,
                "--admin" => admin = Some(socket(&flag, &value)?),
                "--backend" => {
                    backend = match value.as_str() {
                        "fs" => Backend::Fs,
                        "cacache" => Backend::Cacache,
                        other => return Err(format!("--backend {other}: expected fs or cacache")),
                    }
                }
                "--dir" => dir = PathBuf::from(value),
                "--max-size" => {
                    max_size = Some(
                        value
                            .parse()
                            .map_err(|e| format!("--max-size {value}: {e}"))?,
                    )
                }
                "--origin-timeout" => {
                    let seconds: u64 = value
                        .parse()
                        .map_err(|e| format!("--origin-timeout {value}: {e}"))?;
                    if seconds == 0 {
                        return Err(format!("--origin-timeout {value}: must be at least 1"));
                    }
                    origin_timeout = Duration::from_secs(seconds);
                }
                other => return Err(format!("unknown flag {other}")),
            }
        }
        let upstream = upstream.ok_or("--upstream is required")?;
        Ok(Self {
            upstream,
            listen,
            admin,
            backend,
            dir,
            max_size,
            origin_timeout,
        })
    }
}

fn socket(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|e| format!("{flag} {value}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_parse_and_bad_values_say_which_flag() {
        let args = parse(&[
            "--upstream",
            "http://127.0.0.1:9",
            "--backend",
            "cacache",
            "--max-size",
            "10",
        ])
        .unwrap();
        assert_eq!(args.backend, Backend::Cacache);
        assert_eq!(args.max_size, Some(10));
        assert!(parse(&[]).unwrap_err().contains("--upstream"));
        assert!(
            parse(&["--upstream", "https://x"])
                .unwrap_err()
                .contains("http://HOST:PORT")
        );
        assert!(
            parse(&["--upstream", "http://x:1", "--backend", "s3"])
                .unwrap_err()
                .contains("s3")
        );
        assert!(
            parse(&["--upstream", "http://x:1", "--listen"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(&["--upstream", "http://x:1/base"])
                .unwrap_err()
                .contains("without a path")
        );
        assert!(parse(&["--upstream", "http://x:1/"]).is_ok());
        let args = parse(&["--upstream", "http://x:1", "--origin-timeout", "5"]).unwrap();
        assert_eq!(args.origin_timeout, Duration::from_secs(5));
        assert!(
            parse(&["--upstream", "http://x:1", "--origin-timeout", "0"])
                .unwrap_err()
                .contains("at least 1")
        );
    }
}
