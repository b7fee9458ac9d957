//! How a cache behaves: its mode, its key, its limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock};

/// How the engine uses the cache for a request, after the `fetch` API's
/// cache modes. Set one for the whole cache with [`Options::mode`], or per
/// request by putting a `CacheMode` into the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// RFC 9111: serve fresh entries, revalidate stale ones, store what the
    /// rules allow.
    #[default]
    Default,
    /// Neither read nor write the cache.
    NoStore,
    /// Always go to the origin, and store the response if it may be stored.
    Reload,
    /// Revalidate every stored entry with the origin before using it.
    NoCache,
    /// Use any stored entry, fresh or stale; go to the origin only on a miss.
    ForceCache,
    /// Use any stored entry, fresh or stale; answer 504 on a miss and never
    /// contact the origin.
    OnlyIfCached,
    /// Store every complete `200`, `203`, `300`, `301`, `308`, `404`, `410`
    /// response whatever its headers say, and serve stored entries as
    /// fresh (bounded by [`Options::max_ttl`] when set).
    IgnoreRules,
}

/// Derives the cache key of a `GET` or `HEAD` request.
pub type KeyFn = Arc<dyn Fn(&http::request::Parts) -> String + Send + Sync>;

/// The engine's settings.
#[derive(Clone)]
pub struct Options {
    /// The mode for requests that carry none of their own.
    pub mode: CacheMode,
    /// A shared cache (a proxy, a CDN) keeps nothing `private` and nothing
    /// requested with `Authorization` unless the response allows it; a
    /// private cache (a client's own) may.
    pub shared: bool,
    /// No entry is used without revalidation once it is older than this,
    /// whatever the response said and in every mode.
    pub max_ttl: Option<Duration>,
    /// The name this cache gives itself in `Cache-Status`.
    pub cache_name: String,
    /// The key function. The default is the method and the absolute URL,
    /// with `HEAD` keyed as `GET` so that a stored `GET` answers it
    /// ([`default_key`]); [`Options::private`] adds a hash of the
    /// request's `Authorization` ([`private_key`]).
    pub key: KeyFn,
    /// Serve a stale response when the origin cannot be reached at all,
    /// unless the response forbids it (`must-revalidate`, `no-cache`, and
    /// in a shared cache `proxy-revalidate` and `s-maxage`), as RFC 9111
    /// §4.2.4 allows a disconnected cache. `5xx` answers are served stale
    /// only within `stale-if-error`.
    pub serve_stale_when_disconnected: bool,
    /// The device token under which the cache obeys `Surrogate-Control`
    /// (and announces itself in `Surrogate-Capability`): set it for a
    /// reverse proxy that the origin is known to address. `None` (the
    /// default) leaves both fields alone.
    pub surrogate: Option<String>,
    /// Shared caches only. The targeted cache-control fields (RFC 9213)
    /// this cache obeys, first first: the first one a response carries
    /// validly governs its freshness and storability in place of
    /// `Cache-Control`. Default `[CDN-Cache-Control]`; a proxy may put a
    /// name of its own in front.
    pub targeted_fields: Vec<http::HeaderName>,
    /// Heuristic freshness, as a fraction of the time since
    /// `Last-Modified`, for responses that state no lifetime.
    pub heuristic_fraction: f32,
    /// Shared caches only. Store a response that states no freshness
    /// (`max-age`, `s-maxage`, `Expires`) and has no validator (`ETag`,
    /// `Last-Modified`), as RFC 9111 allows. Such a response can never be
    /// served fresh, only stale: to a `max-stale` request, or while the
    /// origin is down. Default `false`: not stored.
    pub store_unmarked: bool,
    /// Shared caches only. Serve a response stale (for `max-stale`,
    /// `stale-if-error`, or while the origin is unreachable) only when it
    /// stated its own freshness; one stored for its validator alone, or
    /// fresh by heuristic, is revalidated instead. Default `true`: a
    /// session page the origin sent without `Cache-Control` is never
    /// replayed to another client.
    pub stale_only_if_explicit: bool,
    /// Shared caches only. A response with `Set-Cookie` is stored only
    /// when the origin marked it shareable (`public`, `s-maxage`, or a
    /// `Surrogate-Control` `max-age` for this cache), and a `304`'s
    /// `Set-Cookie` reaches the client that revalidated but is never
    /// merged into the stored entry. Default `true`.
    pub private_set_cookie: bool,
    /// How long a key whose last response could not be stored is
    /// remembered (hit-for-pass): its requests then go to the origin side
    /// by side instead of waiting for one another's responses, which they
    /// could not share. Zero turns it off. Default 60 s.
    pub hit_for_pass: Duration,
    /// The most keys remembered for hit-for-pass; the oldest go first.
    /// Default 10 000.
    pub hit_for_pass_keys: usize,
    /// The longest a transfer the cache makes on its own may last: a
    /// background revalidation, or the rest of a body being stored after
    /// its client got its answer (a `304` to its own condition). Past it
    /// the transfer, and its store, are abandoned. Default 60 s.
    pub background_deadline: Duration,
    /// Requests that miss while another request for the same key is at the
    /// origin wait for it and read its response as it arrives. This bounds
    /// the bytes held for them per key: the origin is read no further
    /// ahead of the slowest of them, and a request that comes once the
    /// body has outgrown it reads the stored entry when it is complete.
    pub coalesce_buffer: usize,
    /// The longest a request waits for the request it follows (the one
    /// already at the origin for its key) before it goes to the origin
    /// itself. As nginx's `proxy_cache_lock_timeout`.
    pub coalesce_wait: Duration,
    /// The longest one reader of a coalesced response may hold the others
    /// back (once [`coalesce_buffer`](Options::coalesce_buffer) is full)
    /// before it is cut off, its body ending in an error. Values under
    /// 10 ms count as 10 ms, so that a lone slow reader does not make the
    /// transfer spin.
    pub coalesce_stall: Duration,
    /// How long an entry is kept past the last moment it could be served
    /// without the origin, when it can still be of use stale: to be
    /// revalidated (it has a validator), or served while the origin is
    /// down. Backends that expire or evict entries are told the sum with
    /// each store; see [`respcache_core::StoreHints`].
    pub keep_stale: Duration,
    /// Where the engine reads the time: every freshness, age and
    /// revalidation decision asks it. [`SystemClock`](crate::SystemClock)
    /// by default; tests use a [`ManualClock`](crate::ManualClock).
    pub clock: Arc<dyn Clock>,
    /// Response fields whose values tag a stored entry, for purging by
    /// tag ([`HttpCache::purge`](crate::HttpCache::purge)): a list of tags
    /// separated by spaces or commas, as `Surrogate-Key` (Fastly, Varnish
    /// xkey) and `Cache-Tag` (Cloudflare) carry them. The tags go to the
    /// backend with each store ([`respcache_core::StoreHints::tags`]).
    pub tag_fields: Vec<http::HeaderName>,
    /// Also send `x-cache` and `x-cache-lookup` (`HIT` or `MISS`) beside
    /// `Cache-Status`, as `http-cache`'s `cache_status_headers` does, for
    /// dashboards and tests that read them: `x-cache` says whether the
    /// body came from storage, `x-cache-lookup` whether a stored response
    /// was found. Off by default. A cache in front of other caches
    /// should leave it off: unlike `Cache-Status`, these fields do not
    /// say which cache they are about, and this one replaces any the
    /// origin sent.
    pub x_cache_headers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: CacheMode::Default,
            shared: true,
            max_ttl: None,
            cache_name: "respcache".to_owned(),
            key: Arc::new(default_key),
            heuristic_fraction: 0.1,
            targeted_fields: vec![http::header::CDN_CACHE_CONTROL],
            store_unmarked: false,
            stale_only_if_explicit: true,
            private_set_cookie: true,
            hit_for_pass: Duration::from_secs(60),
            hit_for_pass_keys: 10_000,
            background_deadline: Duration::from_secs(60),
            serve_stale_when_disconnected: true,
            surrogate: None,
            coalesce_buffer: 1024 * 1024,
            coalesce_wait: Duration::from_secs(5),
            coalesce_stall: Duration::from_secs(5),
            keep_stale: Duration::from_secs(24 * 60 * 60),
            clock: Arc::new(SystemClock),
            tag_fields: vec![
                http::HeaderName::from_static("surrogate-key"),
                http::HeaderName::from_static("cache-tag"),
            ],
            x_cache_headers: false,
        }
    }
}

impl Options {
    /// The settings of a private cache: a client's own, which may keep
    /// `private` responses and those to requests with `Authorization`.
    /// What `respcache-reqwest` and a hyper client want.
    ///
    /// Its key is [`private_key`]: a request with `Authorization` is
    /// keyed by a hash of that header's value too, so that a client that
    /// sends several users' credentials (a server calling an API on their
    /// behalf) never answers one user with another's response, while a
    /// client with one user's credentials still gets hits.
    pub fn private() -> Self {
        Self {
            shared: false,
            key: Arc::new(private_key),
            ..Self::default()
        }
    }

    /// The settings of a shared cache: a proxy or CDN serving many users,
    /// which never hands one user's response to another. The same as
    /// [`Options::default`].
    pub fn shared() -> Self {
        Self::default()
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("mode", &self.mode)
            .field("shared", &self.shared)
            .field("max_ttl", &self.max_ttl)
            .field("cache_name", &self.cache_name)
            .field("heuristic_fraction", &self.heuristic_fraction)
            .field("targeted_fields", &self.targeted_fields)
            .field("store_unmarked", &self.store_unmarked)
            .field("stale_only_if_explicit", &self.stale_only_if_explicit)
            .field("private_set_cookie", &self.private_set_cookie)
            .field("hit_for_pass", &self.hit_for_pass)
            .field("hit_for_pass_keys", &self.hit_for_pass_keys)
            .field("background_deadline", &self.background_deadline)
            .field("surrogate", &self.surrogate)
            .field("coalesce_buffer", &self.coalesce_buffer)
            .field("coalesce_wait", &self.coalesce_wait)
            .field("coalesce_stall", &self.coalesce_stall)
            .field("keep_stale", &self.keep_stale)
            .field("clock", &self.clock)
            .field("tag_fields", &self.tag_fields)
            .field("x_cache_headers", &self.x_cache_headers)
            .field(
                "serve_stale_when_disconnected",
                &self.serve_stale_when_disconnected,
            )
            .finish_non_exhaustive()
    }
}

/// The default key: `GET:` and the absolute URL of the request (a `HEAD`
/// request looks up the stored `GET`).
pub fn default_key(parts: &http::request::Parts) -> String {
    let method = if parts.method == http::Method::HEAD {
        &http::Method::GET
    } else {
        &parts.method
    };
    format!("{method}:{}", absolute_url(parts))
}

/// The key of a private cache ([`Options::private`]): [`default_key`],
/// and for a request with `Authorization`, a SHA-256 of that header's
/// value, so that each credential has its own entries. The value itself
/// is never part of the key, which a backend may keep on disk or in
/// Redis; a weak password in `Basic` credentials could still be guessed
/// from its hash by someone who can read the keys.
pub fn private_key(parts: &http::request::Parts) -> String {
    let key = default_key(parts);
    let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return key;
    };
    let mut hash = Sha256::new();
    hash.update(b"respcache authorization\0");
    hash.update(first.as_bytes());
    for value in values {
        hash.update(b"\0");
        hash.update(value.as_bytes());
    }
    let hex: String = hash
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{key}\nauthorization:{hex}")
}

/// The request's absolute URL: its own when it has one (a client's
/// request), else `http://` with its `Host` (a request a server received).
/// Scheme, host and port are normalised (lower case, no default port:
/// RFC 9110 §4.2.3), so `Host: EXAMPLE.com:80` and `Host: example.com`
/// name one entry; the path and query are kept as sent, because they are
/// what the origin is asked for.
pub fn absolute_url(parts: &http::request::Parts) -> String {
    if let Some(origin) = plain_origin(parts) {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        return format!("{origin}{path}");
    }
    let raw = raw_url(parts);
    match url::Url::parse(&raw) {
        Ok(url) if url.origin().is_tuple() => {
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            format!("{}{path}", url.origin().ascii_serialization())
        }
        _ => raw,
    }
}

/// The absolute URL as the request spells it.
fn raw_url(parts: &http::request::Parts) -> String {
    let uri = &parts.uri;
    if uri.scheme().is_some() && uri.authority().is_some() {
        return uri.to_string();
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("http://{host}{path}")
}

/// Whether the request names its target unambiguously, so that it may be
/// cached:
/// - a `Host` (when the target is not absolute) that is a host and an
///   optional port (RFC 9110 §7.2) and nothing else: `example.com/secret`
///   would otherwise make the key of another path;
/// - a path in normal form: `/a/./b`, `/a/../b` and `/%2e%2e/b` name the
///   same resource as another spelling to some servers and not to others,
///   so what the origin answers for one must not be stored for another.
pub(crate) fn has_valid_target(parts: &http::request::Parts) -> bool {
    if plain_origin(parts).is_some() {
        return true;
    }
    // One URL parse for anything less plain: it checks the host and the
    // path.
    authority(parts).is_some_and(|authority| {
        url::Url::parse(&raw_url(parts))
            .is_ok_and(|url| url.path() == parts.uri.path() && is_canonical(&url, &authority))
    })
}

/// The `Host` half of [`has_valid_target`]: what an unsafe method needs
/// for its target's entries to be invalidated (its path is normalised
/// for that). One `Host` (RFC 9112 §3.2), or an absolute target without
/// user information, whose host is already in the form the key gives it:
/// `127.1` or `0x7f.0.0.1` would share the key of `127.0.0.1` while the
/// origin may route them elsewhere.
pub(crate) fn has_valid_host(parts: &http::request::Parts) -> bool {
    if plain_origin(parts).is_some() {
        return true;
    }
    authority(parts).is_some_and(|authority| {
        url::Url::parse(&format!("http://{authority}/"))
            .is_ok_and(|url| is_canonical(&url, &authority))
    })
}

/// The `http://host[:port]` of the common request that needs no URL
/// parser to be read exactly as [`absolute_url`] and
/// [`has_valid_target`] read it with one: an origin-form target with a
/// path in normal form, and one `Host` that is a plain name (ASCII
/// letters, digits, `-` and `.`, no empty label, no punycode) or a
/// dotted-quad address, with an optional port without leading zeros.
/// Anything else is `None`, and goes the long way.
fn plain_origin(parts: &http::request::Parts) -> Option<String> {
    if parts.uri.scheme().is_some() || !plain_path(parts.uri.path().as_bytes()) {
        return None;
    }
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return None;
    };
    let host = host.as_bytes();
    let (name, port) = match host.iter().position(|&b| b == b':') {
        Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
        None => (host, None),
    };
    // The default port is left out; another is kept as written, which is
    // its plain form when it has no leading zero.
    let port = match port {
        None | Some(b"80") => &[][..],
        Some(digits) => {
            let plain = !digits.is_empty()
                && digits.len() <= 5
                && digits[0] != b'0'
                && digits.iter().all(u8::is_ascii_digit)
                && (digits.len() < 5 || digits <= &b"65535"[..]);
            if !plain {
                return None;
            }
            digits
        }
    };
    if !plain_name(name) {
        return None;
    }
    let mut origin = Vec::with_capacity(8 + host.len());
    origin.extend_from_slice(b"http://");
    origin.extend(name.iter().map(u8::to_ascii_lowercase));
    if !port.is_empty() {
        origin.push(b':');
        origin.extend_from_slice(port);
    }
    // ASCII throughout, checked above.
    String::from_utf8(origin).ok()
}

/// A host name the URL parser leaves as it is but for case: labels of
/// ASCII letters, digits and `-`, none empty and none punycode; or a
/// dotted quad in canonical form. Other all-numeric names are IPv4 in
/// other spellings (`127.1`, `0x7f.1`): the long way.
fn plain_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let (mut labels, mut label_len, mut label_start) = (0, 0, 0);
    let mut only_digits_and_dots = true;
    let mut last_label_digits = true;
    for (i, &b) in name.iter().enumerate() {
        match b {
            b'.' => {
                if label_len == 0 || label_len > 63 {
                    return false;
                }
                labels += 1;
                label_len = 0;
                label_start = i + 1;
                last_label_digits = true;
            }
            b'0'..=b'9' => label_len += 1,
            b'a'..=b'z' | b'A'..=b'Z' | b'-' => {
                label_len += 1;
                only_digits_and_dots = false;
                last_label_digits = false;
                if label_len == 4 && name[label_start..i + 1].eq_ignore_ascii_case(b"xn--") {
                    return false;
                }
            }
            _ => return false,
        }
    }
    if label_len == 0 || label_len > 63 {
        return false;
    }
    labels += 1;
    if !only_digits_and_dots {
        // A last label of digits would make the parser try IPv4.
        return !last_label_digits;
    }
    labels == 4
        && name.split(|&b| b == b'.').all(|label| {
            label.len() <= 3
                && (label.len() == 1 || label[0] != b'0')
                && (label.len() < 3 || label <= &b"255"[..])
        })
}

/// A path the URL parser keeps byte for byte: characters it does not
/// escape, no `.` or `..` segment, and no escaped dot that could make one.
fn plain_path(path: &[u8]) -> bool {
    if !path.starts_with(b"/") {
        return false;
    }
    let escapes_ok = path.windows(3).all(|w| {
        w[0] != b'%'
            || (w[1].is_ascii_hexdigit()
                && w[2].is_ascii_hexdigit()
                && !w[1..].eq_ignore_ascii_case(b"2e"))
    });
    let tail_ok = !path.ends_with(b"%") && !path[path.len().saturating_sub(2)..].starts_with(b"%");
    escapes_ok
        && tail_ok
        && path
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b))
        && path
            .split(|&b| b == b'/')
            .all(|segment| segment != b"." && segment != b"..")
}

/// The target's authority when it is one host and an optional port and
/// nothing else; `localhost` for a request with neither an absolute
/// target nor a `Host` (HTTP/1.0), as [`absolute_url`] keys it.
fn authority(parts: &http::request::Parts) -> Option<http::uri::Authority> {
    let authority = if parts.uri.scheme().is_some()
        && let Some(authority) = parts.uri.authority()
    {
        authority.as_str().to_owned()
    } else {
        let mut hosts = parts.headers.get_all(http::header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (None, _) => return Some(http::uri::Authority::from_static("localhost")),
            (Some(host), None) => host.to_str().ok()?.to_owned(),
            // Several are ambiguous.
            (Some(_), Some(_)) => return None,
        }
    };
    let parsed = authority.parse::<http::uri::Authority>().ok()?;
    (!authority.is_empty() && !authority.contains('@') && parsed.as_str().len() == authority.len())
        .then_some(parsed)
}

/// Whether `url`'s host is `authority`'s as written, but for case.
fn is_canonical(url: &url::Url, authority: &http::uri::Authority) -> bool {
    url.host_str()
        .is_some_and(|canonical| canonical.eq_ignore_ascii_case(authority.host()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_holds_a_hash_of_the_authorization_never_the_value() {
        let with = |token: Option<&str>| {
            let mut request = http::Request::get("https://example.com/orders");
            if let Some(token) = token {
                request = request.header(http::header::AUTHORIZATION, token);
            }
            private_key(&request.body(()).unwrap().into_parts().0)
        };
        let plain = with(None);
        assert_eq!(plain, "GET:https://example.com/orders");
        let (alice, bob) = (
            with(Some("Bearer alice-token")),
            with(Some("Bearer bob-token")),
        );
        assert_ne!(alice, bob);
        assert_ne!(alice, plain);
        assert_eq!(alice, with(Some("Bearer alice-token")), "stable");
        assert!(alice.starts_with("GET:https://example.com/orders\n"));
        assert!(!alice.contains("alice"), "{alice}");
    }

    /// Options' keys are functions, which `Debug` does not show.
    #[test]
    fn private_and_shared_differ_only_in_sharing_and_key() {
        let (private, shared) = (Options::private(), Options::shared());
        assert!(!private.shared);
        assert!(shared.shared);
        let rest = |o: &Options| {
            format!(
                "{:?}",
                Options {
                    shared: true,
                    ..o.clone()
                }
            )
        };
        assert_eq!(rest(&private), rest(&shared));
        assert_eq!(rest(&shared), rest(&Options::default()));
    }

    fn parts(uri: &str, host: Option<&str>) -> http::request::Parts {
        let mut request = http::Request::get(uri);
        if let Some(host) = host {
            request = request.header(http::header::HOST, host);
        }
        request.body(()).unwrap().into_parts().0
    }

    /// The long way, with the URL parser, as the fast way must agree.
    fn slow_key(parts: &http::request::Parts) -> Option<String> {
        authority(parts)
            .is_some_and(|authority| {
                url::Url::parse(&raw_url(parts)).is_ok_and(|url| {
                    url.path() == parts.uri.path() && is_canonical(&url, &authority)
                })
            })
            .then(|| {
                let raw = raw_url(parts);
                let url = url::Url::parse(&raw).unwrap();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                format!("{}{path}", url.origin().ascii_serialization())
            })
    }

    #[test]
    fn the_plain_way_agrees_with_the_url_parser_wherever_it_answers() {
        let hosts = [
            "example.com",
            "EXAMPLE.com",
            "a.test:8080",
            "a.test:80",
            "a.test:080",
            "a-b.c-d.e",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.1",
            "0x7f.0.0.1",
            "010.0.0.1",
            "1.2.3.256",
            "xn--nxasmq6b.com",
            "a..b",
            "a.",
            ".a",
            "a.1",
            "a.b1",
            "1a.b",
            "a_b.c",
            "a:99999",
            "a:",
            "[::1]",
            "[::1]:8080",
            "ex ample",
            "a.test:65535",
            "-a.test",
            "a-.test",
            "ab--cd.test",
            "xN--a.test",
            "a.test:65536",
            "a.test:8080:1",
        ];
        let paths = [
            "/",
            "/a/b",
            "/a/./b",
            "/a/../b",
            "/%2e%2e/b",
            "/%2E/b",
            "/a%2fb",
            "/a%",
            "/a%4",
            "/a%zz",
            "/~user/x;y=1",
            "/a/b?x='y'",
            "/a%20b",
            "/a/.b",
            "/a/..b",
            "/.",
            "/a/b/..",
            "/x?../y",
        ];
        let mut agreed = 0;
        for host in hosts {
            for path in paths {
                let Ok(request) = http::Request::get(path).header("host", host).body(()) else {
                    continue;
                };
                let parts = request.into_parts().0;
                if let Some(origin) = plain_origin(&parts) {
                    let fast = format!("{origin}{}", parts.uri.path_and_query().unwrap().as_str());
                    assert_eq!(Some(fast), slow_key(&parts), "{host} {path}");
                    agreed += 1;
                }
            }
        }
        assert!(agreed > 60, "the plain way answered only {agreed} times");
    }

    #[test]
    fn spellings_of_one_host_make_one_key() {
        let key = |uri, host| default_key(&parts(uri, host));
        let plain = key("http://a.test/p/q?x='y'", None);
        assert_eq!(key("http://A.test:80/p/q?x='y'", None), plain);
        assert_eq!(key("/p/q?x='y'", Some("A.TEST:80")), plain);
        assert_ne!(key("/p/q?x='y'", Some("a.test:8080")), plain);
        assert_ne!(
            key("/P/q?x='y'", Some("a.test")),
            plain,
            "paths keep their case"
        );
        assert_eq!(plain, "GET:http://a.test/p/q?x='y'", "the query as sent");
    }

    #[test]
    fn a_path_not_in_normal_form_is_not_a_valid_target() {
        assert!(has_valid_target(&parts("/p/q?a=./b", Some("a.test"))));
        for path in ["/p/./q", "/p/x/../q", "/p/%2e%2e/q", "/p/%2E/q"] {
            assert!(!has_valid_target(&parts(path, Some("a.test"))), "{path}");
            let absolute = format!("http://a.test{path}");
            assert!(!has_valid_target(&parts(&absolute, None)), "{absolute}");
        }
    }

    #[test]
    fn a_host_with_more_than_host_and_port_is_not_a_valid_target() {
        assert!(has_valid_target(&parts("/x", Some("example.com:8080"))));
        assert!(has_valid_target(&parts("/x", Some("EXAMPLE.com"))));
        assert!(has_valid_target(&parts("/x", Some("[::1]:8080"))));
        assert!(has_valid_target(&parts("/x", Some("127.0.0.1"))));
        assert!(has_valid_target(&parts("/x", None)));
        assert!(has_valid_target(&parts("http://example.com/x", None)));
        let hosts = [
            "example.com/secret",
            "user@example.com",
            "",
            "a b",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
        ];
        for host in hosts {
            assert!(!has_valid_target(&parts("/x", Some(host))), "{host:?}");
        }
        assert!(!has_valid_target(&parts("http://u:p@example.com/x", None)));
        let mut two = parts("/x", Some("a.example"));
        two.headers
            .append(http::header::HOST, "b.example".parse().unwrap());
        assert!(!has_valid_target(&two), "two Host fields");
    }
}
