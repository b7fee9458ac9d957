//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use http::Uri;
use ipnet::IpNet;

use crate::secret::Secret;

/// Which backend stores responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `respcache-fs`: content-addressed files, streaming both ways.
    Fs,
    /// `respcache-cacache`: cacache, bodies gathered in memory. It never
    /// evicts: `--max-size` does not apply to it.
    Cacache,
    /// `respcache-redis`: one cache shared by every proxy that reaches
    /// the server (`--redis-url`).
    Redis,
}

/// A caching reverse proxy: respcache's RFC 9111 engine in front of one
/// origin (or several, chosen by `Host`, from a config file). What the
/// cache does not answer passes through.
///
/// Flags given beside `--config` override the file's values.
#[derive(Debug, Clone, Parser)]
#[command(name = "respcache-proxy", version, about, max_term_width = 100)]
pub struct Args {
    /// A TOML config file: listeners, virtual hosts, routes, backend,
    /// access log. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the config file (and flags), print what is wrong, and exit:
    /// 0 when it is valid.
    #[arg(long, requires = "config")]
    pub check_config: bool,
    /// The origin every request not served from cache goes to,
    /// `http://HOST:PORT` or `https://HOST:PORT`. Required without
    /// `--config`.
    #[arg(long, value_name = "URL", value_parser = parse_upstream, required_unless_present = "config")]
    pub upstream: Option<Uri>,
    /// Where clients connect [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Where clients connect over TLS (HTTP/2 or HTTP/1.1 by ALPN); none
    /// by default. Needs `--tls-cert` and `--tls-key`.
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// The TLS listener's certificate chain, PEM, leaf first. Read again
    /// on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS listener's private key, PEM. Read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// More certificate authorities (PEM) that `https://` upstreams may
    /// be signed by, beside the system's roots.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Where `GET /metrics`, `/healthz` and `/readyz` are served; none by
    /// default.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// The storage backend [default: fs].
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// The cache directory (fs, cacache) [default: respcache-cache].
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// The Redis server of `--backend redis`, `redis://HOST:PORT/`; from
    /// the environment so that a password stays off the command line.
    #[arg(
        long,
        value_name = "URL",
        env = "RESPCACHE_REDIS_URL",
        hide_env_values = true
    )]
    pub redis_url: Option<Secret>,
    /// The prefix of every Redis key this proxy writes [default:
    /// respcache].
    #[arg(long, value_name = "PREFIX")]
    pub redis_prefix: Option<String>,
    /// The most bytes of bodies the fs backend keeps, temporary files of
    /// stores under way included; past it, entries past their lifetime and
    /// then the least recently used are evicted. Sizes take KiB, MiB or
    /// GiB [default: 1GiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// The largest body stored; a larger one still reaches its client
    /// whole, uncached [default: 64MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_body_size: Option<u64>,
    /// Longest wait for the origin's response head, then 502 or a stale
    /// entry [default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub origin_timeout: Option<Duration>,
    /// Longest wait for a client's TLS handshake and request head, and
    /// for the next request on an idle connection (HTTP/1.1 or HTTP/2);
    /// the connection is closed after it [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub client_timeout: Option<Duration>,
    /// Store responses that state no freshness and have no validator
    /// (never served fresh; off by default, as nginx).
    #[arg(long)]
    pub store_unmarked: bool,
    /// Serve responses stored without stated freshness stale too
    /// (`max-stale`, `stale-if-error`, origin down); off by default.
    #[arg(long)]
    pub serve_stale_unmarked: bool,
    /// Store responses with `Set-Cookie` that are not marked `public` or
    /// `s-maxage`, and merge a 304's `Set-Cookie` into the entry; off by
    /// default, as nginx and Varnish.
    #[arg(long)]
    pub share_set_cookie: bool,
    /// How long a URL whose response could not be stored skips request
    /// coalescing (hit-for-pass); 0 turns it off [default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds_or_zero)]
    pub hit_for_pass: Option<Duration>,
    /// Peers whose `Forwarded`, `X-Forwarded-*` fields are kept and
    /// extended (addresses or networks, comma-separated); from anyone
    /// else they are dropped and replaced.
    #[arg(long, value_name = "NETS", value_delimiter = ',', value_parser = parse_net)]
    pub trust_forwarded: Vec<IpNet>,
    /// This proxy's name in `Via`; a request that already names it is a
    /// loop and gets 508. Default: `respcache-` and a random id.
    #[arg(long, value_name = "NAME")]
    pub via_name: Option<String>,
    /// A targeted cache-control field (RFC 9213) for this proxy, obeyed
    /// before `CDN-Cache-Control` (repeat for several, first first).
    #[arg(long, value_name = "NAME", value_parser = parse_field_name)]
    pub targeted_field: Vec<http::HeaderName>,
    /// The access log: `common`, `json` or `off` [default: off without
    /// `--config`].
    #[arg(long, value_name = "FORMAT")]
    pub access_log: Option<crate::access::Format>,
    /// The bearer token `POST /purge` on the admin listener requires;
    /// without one, purging there is off.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RESPCACHE_PURGE_TOKEN",
        hide_env_values = true
    )]
    pub purge_token: Option<Secret>,
    /// Clients allowed to send `PURGE URL` on the client listener
    /// (addresses or networks, comma-separated); none by default.
    #[arg(long, value_name = "NETS", value_delimiter = ',', value_parser = parse_net)]
    pub purge_from: Vec<IpNet>,
}

/// A field name.
pub fn parse_field_name(value: &str) -> Result<http::HeaderName, String> {
    http::HeaderName::from_bytes(value.as_bytes())
        .map_err(|_| format!("{value:?} is not a field name"))
}

/// An origin's base URL: `http://HOST:PORT` or `https://HOST:PORT` and
/// nothing more.
pub fn parse_upstream(value: &str) -> Result<Uri, String> {
    let uri: Uri = value.parse().map_err(|e| format!("{e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err("expected http://HOST:PORT or https://HOST:PORT".into());
    }
    // Requests keep their own paths: a base path would be dropped without
    // a word.
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err("expected http://HOST:PORT or https://HOST:PORT, without a path".into());
    }
    Ok(uri)
}

/// A byte count: digits, optionally followed by `KiB`, `MiB` or `GiB`.
pub fn parse_size(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{value:?} is not a size (digits, then KiB, MiB or GiB)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}: use KiB, MiB or GiB")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{value:?} is too large"))
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    match parse_seconds_or_zero(value)? {
        Duration::ZERO => Err("must be at least 1".into()),
        seconds => Ok(seconds),
    }
}

pub fn parse_seconds_or_zero(value: &str) -> Result<Duration, String> {
    value
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("{value:?} is not a whole number of seconds"))
}

/// An address or a network.
pub fn parse_net(value: &str) -> Result<IpNet, String> {
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{value:?} is neither an address nor a network"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::try_parse_from(std::iter::once("respcache-proxy").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_parse_and_bad_values_say_which_flag() {
        let args = parse(&[
            "--upstream",
            "http://127.0.0.1:9",
            "--backend",
            "cacache",
            "--max-size",
            "10MiB",
            "--trust-forwarded",
            "10.0.0.0/8,::1",
        ])
        .unwrap();
        assert_eq!(args.backend, Some(Backend::Cacache));
        assert_eq!(args.max_size, Some(10 << 20));
        assert_eq!(args.max_body_size, None, "the config's default applies");
        assert_eq!(args.trust_forwarded.len(), 2);
        assert!(parse(&[]).unwrap_err().contains("--upstream"));
        let ftp = parse(&["--upstream", "ftp://x"]).unwrap_err();
        assert!(ftp.contains("http://HOST:PORT"), "{ftp}");
        assert!(parse(&["--upstream", "https://x"]).is_ok());
        assert!(
            parse(&["--upstream", "http://x:1", "--backend", "s3"])
                .unwrap_err()
                .contains("s3")
        );
        let base = parse(&["--upstream", "http://x:1/base"]).unwrap_err();
        assert!(base.contains("without a path"), "{base}");
        assert!(parse(&["--upstream", "http://x:1/"]).is_ok());
        let args = parse(&["--upstream", "http://x:1", "--origin-timeout", "5"]).unwrap();
        assert_eq!(args.origin_timeout, Some(Duration::from_secs(5)));
        let zero = parse(&["--upstream", "http://x:1", "--origin-timeout", "0"]).unwrap_err();
        assert!(zero.contains("at least 1"), "{zero}");
        let net = parse(&["--upstream", "http://x:1", "--trust-forwarded", "nope"]).unwrap_err();
        assert!(net.contains("neither an address nor a network"), "{net}");
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("17"), Ok(17));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("3 GiB"), Ok(3 << 30));
        assert!(parse_size("1GB").unwrap_err().contains("unknown unit"));
        assert!(
            parse_size("99999999999999GiB")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_size("MiB").is_err());
    }
}
