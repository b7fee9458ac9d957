//! The config file (TOML), and the command line laid over it: what the
//! proxy runs with.
//!
//! The file is read into [`File`], whose fields check their own values as
//! they are read (so a bad value's error names its line), then checked as
//! a whole and turned into a [`Config`]. Flags given on the command line
//! override the file's values; without `--config` the flags alone make a
//! config with one virtual host.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::access::Format;
use crate::args::{self, Args, Backend};
use crate::routes::{KeyRule, Route, RouteMatch, Rules, Sites, Vhost};
use crate::secret::Secret;
use crate::tls::ServerTls;

/// Everything the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// What needs a restart to change: listeners, backend, engine options.
    pub fixed: Fixed,
    /// The virtual hosts, their upstreams and routes: reloaded on SIGHUP.
    pub sites: Vec<VhostConfig>,
    /// The access log's format (reloaded on SIGHUP).
    pub access_log: Format,
    /// The TLS listener's certificate and key, read (reloaded on SIGHUP).
    pub tls: Option<ServerTls>,
    /// What `https://` upstreams are checked against: the system's roots
    /// and `upstream_ca` (reloaded on SIGHUP).
    pub upstream_tls: Arc<rustls::ClientConfig>,
}

/// The settings a reload cannot change: they are bound at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where clients connect over TLS.
    pub tls_listen: Option<SocketAddr>,
    /// Where the admin endpoints are served.
    pub admin: Option<SocketAddr>,
    /// Longest wait for a client's TLS handshake or request head, and
    /// the longest a connection stays idle.
    pub client_timeout: Duration,
    /// Peers whose forwarding fields are trusted.
    pub trust_forwarded: Vec<IpNet>,
    /// This proxy's name in `Via`.
    pub via_name: Option<String>,
    /// The bearer token `POST /purge` on the admin listener requires.
    pub purge_token: Option<Secret>,
    /// Clients allowed to send `PURGE URL` on the client listener.
    pub purge_from: Vec<IpNet>,
    /// The backend and the engine's options.
    pub cache: CacheConfig,
}

/// The `[cache]` table, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Which backend.
    pub backend: Backend,
    /// The cache directory (fs, cacache).
    pub dir: PathBuf,
    /// The Redis URL (redis).
    pub redis_url: Option<Secret>,
    /// The Redis key prefix.
    pub redis_prefix: String,
    /// The fs backend's byte budget.
    pub max_size: u64,
    /// The largest body stored.
    pub max_body_size: u64,
    /// Store responses without freshness or validator.
    pub store_unmarked: bool,
    /// Serve responses stored without stated freshness stale too.
    pub serve_stale_unmarked: bool,
    /// Store `Set-Cookie` responses not marked shareable.
    pub share_set_cookie: bool,
    /// How long hit-for-pass lasts.
    pub hit_for_pass: Duration,
    /// Targeted cache-control fields of this proxy's.
    pub targeted_fields: Vec<http::HeaderName>,
}

impl CacheConfig {
    /// The targeted fields (RFC 9213) the origin may steer this proxy
    /// with, first first: the configured ones, then `CDN-Cache-Control`.
    pub fn targeted_fields(&self) -> Vec<http::HeaderName> {
        self.targeted_fields
            .iter()
            .cloned()
            .chain([http::header::CDN_CACHE_CONTROL])
            .collect()
    }
}

/// One `[[vhost]]`, checked.
#[derive(Debug, Clone)]
pub struct VhostConfig {
    /// The `Host` names it answers (`*.example.com`, `*` for any).
    pub hosts: Vec<String>,
    /// Its origin.
    pub upstream: Uri,
    /// Longest wait for the origin's response head.
    pub origin_timeout: Duration,
    /// Its routes, first match first.
    pub routes: Vec<Route>,
}

/// Why a config cannot be used: where, and what.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

// The file's shape. Unknown keys are errors: a misspelt key silently
// ignored is a setting silently not applied.

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default, deserialize_with = "socket_addr")]
    listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "socket_addr")]
    tls_listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    upstream_ca: Option<PathBuf>,
    #[serde(default, deserialize_with = "socket_addr")]
    admin: Option<SocketAddr>,
    #[serde(default, deserialize_with = "duration")]
    client_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "nets")]
    trust_forwarded: Vec<IpNet>,
    via_name: Option<String>,
    purge_token: Option<Secret>,
    #[serde(default, deserialize_with = "nets")]
    purge_from: Vec<IpNet>,
    #[serde(default)]
    cache: CacheFile,
    #[serde(default)]
    access_log: AccessLogFile,
    #[serde(default)]
    vhost: Vec<VhostFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    backend: Option<Backend>,
    dir: Option<PathBuf>,
    redis_url: Option<Secret>,
    redis_prefix: Option<String>,
    #[serde(default, deserialize_with = "size")]
    max_size: Option<u64>,
    #[serde(default, deserialize_with = "size")]
    max_body_size: Option<u64>,
    #[serde(default)]
    store_unmarked: bool,
    #[serde(default)]
    serve_stale_unmarked: bool,
    #[serde(default)]
    share_set_cookie: bool,
    #[serde(default, deserialize_with = "duration")]
    hit_for_pass: Option<Duration>,
    #[serde(default, deserialize_with = "field_names")]
    targeted_fields: Vec<http::HeaderName>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessLogFile {
    format: Option<Format>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VhostFile {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(deserialize_with = "upstream")]
    upstream: Uri,
    #[serde(default, deserialize_with = "duration")]
    origin_timeout: Option<Duration>,
    #[serde(default)]
    route: Vec<RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    /// A path prefix.
    path: Option<String>,
    /// A glob over the path (`*` within a segment, `**` across).
    #[serde(default, deserialize_with = "path_glob")]
    glob: Option<globset::GlobMatcher>,
    #[serde(default, deserialize_with = "duration")]
    ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    default_ttl: Option<Duration>,
    #[serde(default)]
    bypass: bool,
    #[serde(default, deserialize_with = "duration")]
    stale_while_revalidate: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    stale_if_error: Option<Duration>,
    #[serde(default, deserialize_with = "name_patterns")]
    ignore_query: Option<(Vec<String>, globset::GlobSet)>,
    #[serde(default, deserialize_with = "name_patterns")]
    keep_query: Option<(Vec<String>, globset::GlobSet)>,
    #[serde(default)]
    sort_query: bool,
    #[serde(default, deserialize_with = "field_names")]
    key_headers: Vec<http::HeaderName>,
    #[serde(default)]
    key_cookies: Vec<String>,
}

impl Config {
    /// The config of `args`: its file (when `--config` names one) with
    /// the flags laid over it.
    pub fn load(args: &Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read(path)?,
            None => File::default(),
        };
        Self::build(file, args)
    }

    fn build(file: File, args: &Args) -> Result<Config, ConfigError> {
        let source = args.config.as_deref().map_or_else(
            || "the command line".to_owned(),
            |p| p.display().to_string(),
        );
        let cache = file.cache;
        let backend = args.backend.or(cache.backend).unwrap_or(Backend::Fs);
        let redis_url = args.redis_url.clone().or(cache.redis_url);
        if backend == Backend::Redis && redis_url.is_none() {
            return Err(ConfigError(format!(
                "{source}: the redis backend needs a server: `redis_url` in [cache], --redis-url or RESPCACHE_REDIS_URL"
            )));
        }
        let mut targeted_fields = args.targeted_field.clone();
        targeted_fields.extend(cache.targeted_fields);
        let cache = CacheConfig {
            backend,
            dir: args
                .dir
                .clone()
                .or(cache.dir)
                .unwrap_or_else(|| PathBuf::from("respcache-cache")),
            redis_url,
            redis_prefix: args
                .redis_prefix
                .clone()
                .or(cache.redis_prefix)
                .unwrap_or_else(|| "respcache".to_owned()),
            max_size: args.max_size.or(cache.max_size).unwrap_or(1 << 30),
            max_body_size: args
                .max_body_size
                .or(cache.max_body_size)
                .unwrap_or(64 << 20),
            store_unmarked: args.store_unmarked || cache.store_unmarked,
            serve_stale_unmarked: args.serve_stale_unmarked || cache.serve_stale_unmarked,
            share_set_cookie: args.share_set_cookie || cache.share_set_cookie,
            hit_for_pass: args
                .hit_for_pass
                .or(cache.hit_for_pass)
                .unwrap_or(Duration::from_secs(60)),
            targeted_fields,
        };
        let fixed = Fixed {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            tls_listen: args.tls_listen.or(file.tls_listen),
            admin: args.admin.or(file.admin),
            client_timeout: args
                .client_timeout
                .or(file.client_timeout)
                .unwrap_or(Duration::from_secs(30)),
            trust_forwarded: if args.trust_forwarded.is_empty() {
                file.trust_forwarded
            } else {
                args.trust_forwarded.clone()
            },
            via_name: args.via_name.clone().or(file.via_name),
            purge_token: args.purge_token.clone().or(file.purge_token),
            purge_from: if args.purge_from.is_empty() {
                file.purge_from
            } else {
                args.purge_from.clone()
            },
            cache,
        };
        let default_timeout = Duration::from_secs(60);
        let sites = match (&args.upstream, file.vhost.is_empty()) {
            (Some(upstream), true) => vec![VhostConfig {
                hosts: vec!["*".to_owned()],
                upstream: upstream.clone(),
                origin_timeout: args.origin_timeout.unwrap_or(default_timeout),
                routes: Vec::new(),
            }],
            // One vhost: the flag overrides its upstream, its routes stay.
            (Some(upstream), false) if file.vhost.len() == 1 => file
                .vhost
                .into_iter()
                .map(|mut vhost| {
                    vhost.upstream = upstream.clone();
                    vhost_config(&source, 0, vhost, args.origin_timeout)
                })
                .collect::<Result<_, _>>()?,
            (Some(_), false) => {
                return Err(ConfigError(format!(
                    "{source}: --upstream would override the upstream of several [[vhost]] tables: give each its upstream in the file"
                )));
            }
            (None, true) => {
                return Err(ConfigError(format!(
                    "{source}: no upstream: add a [[vhost]] with `upstream = \"http://HOST:PORT\"` (or https://), or give --upstream"
                )));
            }
            (None, false) => file
                .vhost
                .into_iter()
                .enumerate()
                .map(|(i, vhost)| vhost_config(&source, i, vhost, args.origin_timeout))
                .collect::<Result<_, _>>()?,
        };
        check_hosts(&source, &sites)?;
        let tls = match (
            fixed.tls_listen,
            args.tls_cert.as_ref().or(file.tls_cert.as_ref()),
            args.tls_key.as_ref().or(file.tls_key.as_ref()),
        ) {
            (Some(_), Some(cert), Some(key)) => Some(
                ServerTls::load(cert, key).map_err(|e| ConfigError(format!("{source}: {e}")))?,
            ),
            (None, None, None) => None,
            (Some(_), _, _) => {
                return Err(ConfigError(format!(
                    "{source}: tls_listen needs tls_cert and tls_key (--tls-cert, --tls-key)"
                )));
            }
            (None, _, _) => {
                return Err(ConfigError(format!(
                    "{source}: tls_cert and tls_key are for a TLS listener: give tls_listen (--tls-listen)"
                )));
            }
        };
        // The system's roots are read only where an upstream needs them.
        let upstream_ca = args.upstream_ca.as_ref().or(file.upstream_ca.as_ref());
        let upstream_tls = if upstream_ca.is_some()
            || sites
                .iter()
                .any(|site| site.upstream.scheme_str() == Some("https"))
        {
            crate::tls::client_config(upstream_ca.map(PathBuf::as_path))
                .map_err(|e| ConfigError(format!("{source}: {e}")))?
        } else {
            crate::tls::no_roots()
        };
        Ok(Config {
            fixed,
            sites,
            access_log: args
                .access_log
                .or(file.access_log.format)
                .unwrap_or(Format::Off),
            tls,
            upstream_tls,
        })
    }

    /// The live part: virtual hosts and their routes, ready to match.
    /// Their upstreams take the targeted fields of `started`, the config
    /// the engine was built from: `[cache]` waits for a restart, and an
    /// upstream that knew other fields than the engine obeys would let a
    /// route override what the origin told this cache.
    pub fn sites(&self, started: &Fixed, via: &http::HeaderValue) -> Result<Sites, ConfigError> {
        let mut vhosts = Vec::with_capacity(self.sites.len());
        for site in &self.sites {
            let upstream = crate::upstream::Upstream::new(
                &site.upstream,
                site.origin_timeout,
                via.clone(),
                &self.upstream_tls,
            )
            .ok_or_else(|| ConfigError(format!("{} has no host", site.upstream)))?
            .with_targeted(started.cache.targeted_fields());
            vhosts.push(Vhost::new(
                site.hosts.clone(),
                upstream,
                site.routes.clone(),
            ));
        }
        Ok(Sites::new(vhosts))
    }
}

/// Reads and parses `path`.
pub fn read(path: &Path) -> Result<File, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

/// Parses a config file's text; the error names the line and the key.
pub fn parse(text: &str) -> Result<File, toml::de::Error> {
    toml::from_str(text)
}

fn vhost_config(
    source: &str,
    index: usize,
    vhost: VhostFile,
    origin_timeout: Option<Duration>,
) -> Result<VhostConfig, ConfigError> {
    let name = format!("{source}: vhost[{index}] ({})", vhost.upstream);
    let hosts = if vhost.hosts.is_empty() {
        vec!["*".to_owned()]
    } else {
        vhost.hosts
    };
    for host in &hosts {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let valid = host == "*"
            || (!bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        if !valid {
            return Err(ConfigError(format!(
                "{name}: hosts: {host:?} is not a host name, `*.` and a host name, or `*`"
            )));
        }
    }
    let routes = vhost
        .route
        .into_iter()
        .enumerate()
        .map(|(i, route)| route_config(&format!("{name}: route[{i}]"), route))
        .collect::<Result<_, _>>()?;
    Ok(VhostConfig {
        hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        upstream: vhost.upstream,
        origin_timeout: origin_timeout
            .or(vhost.origin_timeout)
            .unwrap_or(Duration::from_secs(60)),
        routes,
    })
}

fn route_config(name: &str, route: RouteFile) -> Result<Route, ConfigError> {
    let matcher = match (route.path, route.glob) {
        (Some(prefix), None) if prefix.starts_with('/') => RouteMatch::Prefix(prefix),
        (Some(prefix), None) => {
            return Err(ConfigError(format!(
                "{name}: path {prefix:?} must start with `/`"
            )));
        }
        (None, Some(glob)) => RouteMatch::Glob(glob),
        (None, None) => {
            return Err(ConfigError(format!(
                "{name}: give `path` (a prefix) or `glob`"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError(format!(
                "{name}: give `path` or `glob`, not both"
            )));
        }
    };
    if route.ignore_query.is_some() && route.keep_query.is_some() {
        return Err(ConfigError(format!(
            "{name}: give `ignore_query` or `keep_query`, not both"
        )));
    }
    if route.bypass
        && (route.ttl.is_some()
            || route.default_ttl.is_some()
            || route.stale_while_revalidate.is_some()
            || route.stale_if_error.is_some())
    {
        return Err(ConfigError(format!(
            "{name}: `bypass` leaves nothing to cache: drop it or the TTLs"
        )));
    }
    for cookie in &route.key_cookies {
        if cookie.is_empty() || cookie.contains([';', '=', ' ']) {
            return Err(ConfigError(format!(
                "{name}: key_cookies: {cookie:?} is not a cookie name"
            )));
        }
    }
    Ok(Route {
        matcher,
        rules: Rules {
            bypass: route.bypass,
            ttl: route.ttl,
            default_ttl: route.default_ttl,
            stale_while_revalidate: route.stale_while_revalidate,
            stale_if_error: route.stale_if_error,
        },
        key: KeyRule {
            ignore_query: route.ignore_query.map(|(_, set)| set),
            keep_query: route.keep_query.map(|(_, set)| set),
            sort_query: route.sort_query,
            headers: route.key_headers,
            cookies: route.key_cookies,
        },
    })
}

/// Two virtual hosts that claim one name would make the second
/// unreachable for it, unnoticed.
fn check_hosts(source: &str, sites: &[VhostConfig]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashMap::new();
    for (i, site) in sites.iter().enumerate() {
        for host in &site.hosts {
            if let Some(first) = seen.insert(host.clone(), i) {
                return Err(ConfigError(format!(
                    "{source}: vhost[{i}] names host {host:?}, which vhost[{first}] already answers"
                )));
            }
        }
    }
    Ok(())
}

/// A duration: whole seconds, or a number and a unit (`500ms`, `30s`,
/// `5m`, `2h`, `7d`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{value:?} is not a duration (digits, then ms, s, m, h or d)"))?;
    let scale = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m, h or d")),
    };
    number
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{value:?} is too long"))
}

/// A number, or a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match NumberOrText::deserialize(d).map_err(|_| {
        de::Error::custom(
            "expected a duration: seconds, or a string such as \"30s\", \"5m\", \"1h\"",
        )
    })? {
        NumberOrText::Number(seconds) => Ok(Some(Duration::from_secs(seconds))),
        NumberOrText::Text(text) => parse_duration(&text).map(Some).map_err(de::Error::custom),
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match NumberOrText::deserialize(d)
        .map_err(|_| de::Error::custom("expected a size: bytes, or a string such as \"64MiB\""))?
    {
        NumberOrText::Number(bytes) => Ok(Some(bytes)),
        NumberOrText::Text(text) => args::parse_size(&text).map(Some).map_err(de::Error::custom),
    }
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(|_| {
        de::Error::custom(format!(
            "{text:?} is not an address: HOST:PORT, such as \"127.0.0.1:8080\""
        ))
    })
}

fn upstream<'de, D: Deserializer<'de>>(d: D) -> Result<Uri, D::Error> {
    let text = String::deserialize(d)?;
    args::parse_upstream(&text).map_err(|e| de::Error::custom(format!("{text:?}: {e}")))
}

fn nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|net| args::parse_net(net).map_err(de::Error::custom))
        .collect()
}

fn field_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<http::HeaderName>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|name| args::parse_field_name(name).map_err(de::Error::custom))
        .collect()
}

fn path_glob<'de, D: Deserializer<'de>>(d: D) -> Result<Option<globset::GlobMatcher>, D::Error> {
    let text = String::deserialize(d)?;
    if !text.starts_with('/') {
        return Err(de::Error::custom(format!(
            "glob {text:?} must start with `/`"
        )));
    }
    let glob = globset::GlobBuilder::new(&text)
        .literal_separator(true)
        .build()
        .map_err(|e| de::Error::custom(format!("glob {text:?}: {e}")))?;
    Ok(Some(glob.compile_matcher()))
}

/// Query parameter names or patterns (`utm_*`).
fn name_patterns<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<(Vec<String>, globset::GlobSet)>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let mut set = globset::GlobSetBuilder::new();
    for name in &names {
        let glob = globset::Glob::new(name)
            .map_err(|e| de::Error::custom(format!("pattern {name:?}: {e}")))?;
        set.add(glob);
    }
    let set = set
        .build()
        .map_err(|e| de::Error::custom(format!("patterns {names:?}: {e}")))?;
    Ok(Some((names, set)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(flags: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("respcache-proxy").chain(flags.iter().copied()))
            .unwrap()
    }

    fn build(text: &str, flags: &[&str]) -> Result<Config, String> {
        let file = parse(text).map_err(|e| e.to_string())?;
        let mut args = args(&[&["--config", "test.toml"], flags].concat());
        args.config = Some("test.toml".into());
        Config::build(file, &args).map_err(|e| e.to_string())
    }

    #[test]
    fn the_example_file_parses_and_says_what_it_says() {
        let text = include_str!("../respcache-proxy.example.toml");
        let config = build(text, &[]).unwrap();
        assert_eq!(config.fixed.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.fixed.cache.backend, Backend::Fs);
        assert_eq!(config.sites.len(), 2);
        assert!(!config.sites[0].routes.is_empty());
        assert_eq!(config.access_log, Format::Common);
    }

    #[test]
    fn a_bad_value_names_its_line_and_key() {
        let text = "listen = \"127.0.0.1:8080\"\n\n[[vhost]]\nupstream = \"http://127.0.0.1:1\"\norigin_timeout = \"5 fortnights\"\n";
        let error = build(text, &[]).unwrap_err();
        assert!(error.contains("line 5"), "{error}");
        assert!(error.contains("origin_timeout"), "{error}");
        assert!(error.contains("unknown unit"), "{error}");
        let misspelt = build(
            "[[vhost]]\nupstream = \"http://127.0.0.1:1\"\n[[vhost.route]]\npath = \"/\"\nttl_override = 5\n",
            &[],
        )
        .unwrap_err();
        assert!(misspelt.contains("line 5"), "{misspelt}");
        assert!(misspelt.contains("ttl_override"), "{misspelt}");
        let https = build("[[vhost]]\nupstream = \"ftp://x\"\n", &[]).unwrap_err();
        assert!(
            https.contains("line 2") && https.contains("http://HOST:PORT"),
            "{https}"
        );
    }

    #[test]
    fn whole_file_mistakes_name_the_vhost_and_route() {
        let both = build(
            "[[vhost]]\nupstream = \"http://127.0.0.1:1\"\n[[vhost.route]]\npath = \"/a\"\nignore_query = [\"a\"]\nkeep_query = [\"b\"]\n",
            &[],
        )
        .unwrap_err();
        assert!(
            both.contains("vhost[0]") && both.contains("route[0]"),
            "{both}"
        );
        assert!(both.contains("not both"), "{both}");
        let twice = build(
            "[[vhost]]\nupstream = \"http://127.0.0.1:1\"\n[[vhost]]\nhosts = [\"*\"]\nupstream = \"http://127.0.0.1:2\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            twice.contains("vhost[1]") && twice.contains("vhost[0]"),
            "{twice}"
        );
        let none = build("listen = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        assert!(none.contains("no upstream"), "{none}");
        let redis = build(
            "[cache]\nbackend = \"redis\"\n[[vhost]]\nupstream = \"http://127.0.0.1:1\"\n",
            &[],
        );
        // The environment may name a server; without one it is an error.
        if std::env::var_os("RESPCACHE_REDIS_URL").is_none() {
            assert!(redis.unwrap_err().contains("redis_url"));
        }
    }

    #[test]
    fn a_reload_keeps_the_targeted_fields_the_engine_started_with() {
        let with = |field: &str| {
            format!(
                "[cache]\ntargeted_fields = [\"{field}\"]\n[[vhost]]\nupstream = \"http://127.0.0.1:1\"\n"
            )
        };
        let started = build(&with("edge-control"), &[]).unwrap();
        let reloaded = build(&with("other-control"), &[]).unwrap();
        let via = http::HeaderValue::from_static("1.1 test");
        let sites = reloaded.sites(&started.fixed, &via).unwrap();
        let targeted = sites.vhosts()[0].upstream.targeted();
        assert_eq!(targeted, started.fixed.cache.targeted_fields().as_slice());
        assert!(targeted.iter().any(|name| name == "edge-control"));
    }

    #[test]
    fn flags_override_the_file() {
        let text = "listen = \"127.0.0.1:1000\"\n[cache]\nmax_size = \"2MiB\"\n[[vhost]]\nupstream = \"http://127.0.0.1:1\"\norigin_timeout = 7\n";
        let config = build(text, &[]).unwrap();
        assert_eq!(config.fixed.listen.port(), 1000);
        assert_eq!(config.fixed.cache.max_size, 2 << 20);
        assert_eq!(config.sites[0].origin_timeout, Duration::from_secs(7));
        let config = build(
            text,
            &[
                "--listen",
                "127.0.0.1:2000",
                "--max-size",
                "3MiB",
                "--origin-timeout",
                "9",
            ],
        )
        .unwrap();
        assert_eq!(config.fixed.listen.port(), 2000);
        assert_eq!(config.fixed.cache.max_size, 3 << 20);
        assert_eq!(config.sites[0].origin_timeout, Duration::from_secs(9));
        let one = build(text, &["--upstream", "http://127.0.0.1:3"]).unwrap();
        assert_eq!(one.sites[0].upstream, "http://127.0.0.1:3");
        let two = format!("{text}[[vhost]]\nhosts = [\"b\"]\nupstream = \"http://127.0.0.1:4\"\n");
        let conflict = build(&two, &["--upstream", "http://127.0.0.1:3"]).unwrap_err();
        assert!(conflict.contains("several [[vhost]]"), "{conflict}");
    }

    #[test]
    fn flags_alone_make_one_vhost_for_every_host() {
        let config = Config::load(&args(&["--upstream", "http://127.0.0.1:9"])).unwrap();
        assert_eq!(config.sites.len(), 1);
        assert_eq!(config.sites[0].hosts, ["*"]);
        assert_eq!(config.fixed.cache.max_body_size, 64 << 20);
        assert_eq!(config.access_log, Format::Off);
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("1w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("h").is_err());
    }
}
