//! Virtual hosts and their routes: which origin a request goes to, and the
//! rules of the first route its path matches (bypass, TTLs, stale windows,
//! the cache key).
//!
//! The engine is told a route's rules in two ways, both its own:
//! - the cache key, through [`Options::key`](respcache_http::Options): the
//!   key function reads the request's [`Route`] from its extensions;
//! - freshness, through a targeted cache-control field (RFC 9213) that
//!   only this proxy obeys, [`ROUTE_FIELD`]: the upstream writes it on the
//!   origin's response before the engine decides whether and for how long
//!   to store it, and the proxy removes it from every response it sends.
//!   Rules apply when a response is stored, as nginx's
//!   `proxy_cache_valid` and Varnish's `beresp.ttl`.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, request, response};

use crate::upstream::Upstream;

/// The targeted field through which a route's TTLs reach the engine. It
/// never leaves the proxy.
pub const ROUTE_FIELD: HeaderName = HeaderName::from_static("respcache-route-control");

/// Every virtual host, matched by `Host`.
#[derive(Debug)]
pub struct Sites {
    vhosts: Vec<Vhost>,
}

/// One virtual host: the names it answers, its origin, its routes.
#[derive(Debug)]
pub struct Vhost {
    hosts: Vec<String>,
    /// Where its requests go.
    pub upstream: Upstream,
    routes: Vec<Arc<Route>>,
}

/// A route: which paths, and what is done with them.
#[derive(Debug, Clone)]
pub struct Route {
    /// Which paths it takes.
    pub matcher: RouteMatch,
    /// What it does to freshness and caching.
    pub rules: Rules,
    /// How its cache keys are made.
    pub key: KeyRule,
}

/// How a route matches a path.
#[derive(Debug, Clone)]
pub enum RouteMatch {
    /// Paths that start with this.
    Prefix(String),
    /// Paths the glob matches (`*` within a segment, `**` across).
    Glob(globset::GlobMatcher),
}

/// What a route does to caching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Neither read nor write the cache.
    pub bypass: bool,
    /// The freshness lifetime, whatever the origin said.
    pub ttl: Option<Duration>,
    /// The freshness lifetime of a response that states none.
    pub default_ttl: Option<Duration>,
    /// `stale-while-revalidate`, whatever the origin said.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error`, whatever the origin said.
    pub stale_if_error: Option<Duration>,
}

/// How a route's cache keys are made from the engine's default key.
#[derive(Debug, Clone, Default)]
pub struct KeyRule {
    /// Query parameters left out of the key (names or patterns).
    pub ignore_query: Option<globset::GlobSet>,
    /// The only query parameters kept in the key.
    pub keep_query: Option<globset::GlobSet>,
    /// Sort the query's parameters, so that their order does not matter.
    pub sort_query: bool,
    /// Request fields whose values join the key.
    pub headers: Vec<HeaderName>,
    /// Cookies whose values join the key.
    pub cookies: Vec<String>,
}

impl Sites {
    /// Virtual hosts, in the config's order.
    pub fn new(vhosts: Vec<Vhost>) -> Self {
        Self { vhosts }
    }

    /// Every virtual host, in order.
    #[cfg(test)]
    pub fn vhosts(&self) -> &[Vhost] {
        &self.vhosts
    }

    /// The virtual host for a request's `Host` (or absolute target): the
    /// one naming it exactly, else the first whose `*.` pattern matches,
    /// else the one with `*`.
    pub fn find(&self, parts: &request::Parts) -> Option<&Vhost> {
        let host = parts
            .uri
            .host()
            .or_else(|| {
                let host = parts.headers.get(header::HOST)?.to_str().ok()?;
                // `[::1]:8080`, `a.example:8080`, `a.example`.
                Some(match host.rfind(':') {
                    Some(colon) if !host[colon..].contains(']') => &host[..colon],
                    _ => host,
                })
            })
            .unwrap_or("")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let exact = self.vhosts.iter().find(|v| v.hosts.contains(&host));
        exact
            .or_else(|| {
                self.vhosts.iter().find(|v| {
                    v.hosts.iter().any(|h| {
                        h.strip_prefix("*.").is_some_and(|suffix| {
                            host.len() > suffix.len() + 1
                                && host.ends_with(suffix)
                                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                        })
                    })
                })
            })
            .or_else(|| {
                self.vhosts
                    .iter()
                    .find(|v| v.hosts.iter().any(|h| h == "*"))
            })
    }
}

impl Vhost {
    /// A virtual host answering `hosts` (lower case), sending to
    /// `upstream`.
    pub fn new(hosts: Vec<String>, upstream: Upstream, routes: Vec<Route>) -> Self {
        Self {
            hosts,
            upstream,
            routes: routes.into_iter().map(Arc::new).collect(),
        }
    }

    /// The first route that matches `path`.
    pub fn route(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|route| match &route.matcher {
            RouteMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            RouteMatch::Glob(glob) => glob.is_match(path),
        })
    }
}

/// `path` as origins commonly read it, for matching routes: unreserved
/// characters percent-decoded, repeated `/` collapsed, `.` and `..`
/// segments resolved. The second value says whether the path holds
/// something an origin may read otherwise still (`%2F`, `%5C`, `\`, a
/// `;` parameter): the caller treats that as a changed path.
pub fn normalise_path(path: &str) -> (String, bool) {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut ambiguous = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let Some(byte) = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                decoded.push(byte);
            } else {
                ambiguous |= byte == b'/' || byte == b'\\';
                decoded.extend_from_slice(&bytes[i..i + 3]);
            }
            i += 3;
            continue;
        }
        ambiguous |= b == b'\\' || b == b';';
        decoded.push(b);
        i += 1;
    }
    // Only ASCII was decoded, and whole escapes kept: still UTF-8.
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    let last = decoded.rsplit('/').next().unwrap_or("");
    if out.is_empty() || decoded.ends_with('/') || last == "." || last == ".." {
        out.push('/');
    }
    (out, ambiguous)
}

/// A query parameter's name as an origin reads it: `+` as a space,
/// percent escapes decoded.
fn query_name(pair: &str) -> String {
    let raw = pair
        .split_once('=')
        .map_or(pair, |(name, _)| name)
        .as_bytes();
    let mut name = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => name.push(b' '),
            b'%' if let Some(byte) = raw
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()) =>
            {
                name.push(byte);
                i += 2;
            }
            b => name.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&name).into_owned()
}

impl KeyRule {
    /// Whether the key leaves out query pair `pair`: by its decoded name,
    /// and never a pair holding `;`, which some origins read as a
    /// separator (the pair may carry a parameter the rule keeps).
    fn drops(&self, pair: &str) -> bool {
        if pair.contains(';') {
            return false;
        }
        let name = query_name(pair);
        let ignored = self
            .ignore_query
            .as_ref()
            .is_some_and(|s| s.is_match(&name));
        let kept = self.keep_query.as_ref().is_none_or(|s| s.is_match(&name));
        ignored || !kept
    }

    /// Whether a request with `query` must not be cached under this rule:
    /// with `keep_query`, a parameter the key leaves out whose name, in
    /// another case, is one it keeps (an origin that reads names without
    /// case would answer by it).
    pub fn query_is_ambiguous(&self, query: Option<&str>) -> bool {
        let (Some(keep), Some(query)) = (&self.keep_query, query) else {
            return false;
        };
        query
            .split('&')
            .filter(|pair| !pair.is_empty() && self.drops(pair))
            .any(|pair| {
                let name = query_name(pair);
                keep.is_match(name.to_lowercase()) || keep.is_match(name.to_uppercase())
            })
    }

    fn is_plain(&self) -> bool {
        self.ignore_query.is_none()
            && self.keep_query.is_none()
            && !self.sort_query
            && self.headers.is_empty()
            && self.cookies.is_empty()
    }

    /// `key` (the engine's default key for `parts`) with this rule's
    /// query parameters left out or sorted, and its fields' and cookies'
    /// values added. Each added value is written with its length, so that
    /// no value can pass for another part of the key.
    pub fn apply(&self, key: String, parts: &request::Parts) -> String {
        if self.is_plain() {
            return key;
        }
        let (base, query) = match key.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (key.as_str(), None),
        };
        let mut out = String::with_capacity(key.len() + 32);
        out.push_str(base);
        if let Some(query) = query {
            let mut pairs: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.is_empty() && !self.drops(pair))
                .collect();
            if self.sort_query {
                pairs.sort_unstable();
            }
            if !pairs.is_empty() {
                out.push('?');
                out.push_str(&pairs.join("&"));
            }
        }
        for name in &self.headers {
            let values: Vec<&[u8]> = parts
                .headers
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            let value = escape(&values.join(&b", "[..]));
            push_part(
                &mut out,
                "h",
                name.as_str(),
                parts.headers.contains_key(name).then_some(&value),
            );
        }
        for name in &self.cookies {
            let value = cookie(&parts.headers, name).map(escape);
            push_part(&mut out, "c", name, value.as_ref());
        }
        out
    }
}

/// `bytes` as text, one to one: visible ASCII and space as they are,
/// every other byte (and `%`) as `%XX`. A lossy conversion would give two
/// different values one key, and one client another's response.
fn escape(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len());
    for &b in bytes {
        if (b == b' ' || b.is_ascii_graphic()) && b != b'%' {
            text.push(char::from(b));
        } else {
            let _ = write!(text, "%{b:02X}");
        }
    }
    text
}

fn push_part(out: &mut String, kind: &str, name: &str, value: Option<&String>) {
    use std::fmt::Write;
    let _ = match value {
        Some(value) => write!(out, " {kind}:{name}:{}:{value}", value.len()),
        None => write!(out, " {kind}:{name}:-"),
    };
}

/// The first value of cookie `name` in the request's `Cookie` fields, as
/// raw bytes. Lines are split and names matched on bytes: a line with a
/// byte beyond ASCII elsewhere still names its session, so that a
/// logged-in user is never keyed as an anonymous one.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let equals = pair.iter().position(|&b| b == b'=')?;
            let (key, value) = (&pair[..equals], &pair[equals + 1..]);
            (key.trim_ascii() == name.as_bytes()).then_some(value)
        })
}

/// The cache key of a request: the engine's default, then its route's
/// rule (the [`Route`] the proxy put in its extensions).
pub fn key(parts: &request::Parts) -> String {
    let key = respcache_http::default_key(parts);
    match parts.extensions.get::<Arc<Route>>() {
        Some(route) => route.key.apply(key, parts),
        None => key,
    }
}

/// Statuses a route's TTL may make cacheable: those a cache may give
/// heuristic freshness (RFC 9110 §15.1), as the origin would allow.
const TTL_STATUSES: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 410];

impl Rules {
    fn changes_freshness(&self) -> bool {
        self.ttl.is_some()
            || self.default_ttl.is_some()
            || self.stale_while_revalidate.is_some()
            || self.stale_if_error.is_some()
    }

    /// Writes [`ROUTE_FIELD`] on an origin's response head, for the
    /// engine to read in place of `Cache-Control`, when the route changes
    /// its freshness. Never where the origin or the request keeps the
    /// response from being shared: `private`, `no-store`, `no-cache`,
    /// `Set-Cookie`, a request with `Authorization` (`authorized`); nor where the origin
    /// targets this cache itself (`targeted`, such as
    /// `CDN-Cache-Control`), or a status not cacheable by default.
    pub fn apply(&self, authorized: bool, head: &mut response::Parts, targeted: &[HeaderName]) {
        head.headers.remove(ROUTE_FIELD);
        if !self.changes_freshness()
            || !TTL_STATUSES.contains(&head.status.as_u16())
            || authorized
            || head.headers.contains_key(header::SET_COOKIE)
            || targeted.iter().any(|name| head.headers.contains_key(name))
        {
            return;
        }
        if let Some(value) = self.field(&head.headers) {
            head.headers.insert(ROUTE_FIELD, value);
        }
    }

    /// The route field for a response with `headers`, or `None` to leave
    /// it as the origin sent it.
    fn field(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut max_age = None;
        let mut kept = Vec::new();
        let mut explicit = headers.contains_key(header::EXPIRES);
        for line in headers.get_all(header::CACHE_CONTROL) {
            let line = line.to_str().ok()?;
            for directive in line.split(',') {
                let directive = directive.trim();
                if directive.is_empty() {
                    continue;
                }
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => {
                        (name.trim(), Some(argument.trim().trim_matches('"')))
                    }
                    None => (directive, None),
                };
                let name = name.to_ascii_lowercase();
                match name.as_str() {
                    // What the origin keeps from shared caches stays kept.
                    "private" | "no-store" | "no-cache" => return None,
                    "max-age" | "s-maxage" => {
                        explicit = true;
                        let seconds: u64 = argument?.parse().ok()?;
                        // s-maxage governs a shared cache.
                        if name == "s-maxage" || max_age.is_none() {
                            max_age = Some(seconds);
                        }
                    }
                    "stale-while-revalidate" | "stale-if-error" => {
                        let seconds: u64 = argument?.parse().ok()?;
                        kept.push((name, Some(seconds)));
                    }
                    "must-revalidate" | "proxy-revalidate" | "public" | "immutable"
                    | "no-transform" => kept.push((name, None)),
                    // Other extensions mean nothing to this cache.
                    _ => {}
                }
            }
        }
        // An Expires date alone is kept as the origin gave it, unless the
        // route overrides the lifetime: the field would hide it.
        let lifetime = match (self.ttl, max_age) {
            (Some(ttl), _) => ttl.as_secs(),
            (None, Some(seconds)) => seconds,
            (None, None) if explicit => return None,
            (None, None) => self.default_ttl?.as_secs(),
        };
        let mut directives = vec![format!("max-age={lifetime}")];
        for (name, window) in [
            ("stale-while-revalidate", self.stale_while_revalidate),
            ("stale-if-error", self.stale_if_error),
        ] {
            if let Some(window) = window {
                kept.retain(|(kept, _)| kept != name);
                kept.push((name.to_owned(), Some(window.as_secs())));
            }
        }
        for (name, argument) in kept {
            directives.push(match argument {
                Some(seconds) => format!("{name}={seconds}"),
                None => name,
            });
        }
        HeaderValue::from_str(&directives.join(", ")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(target: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut request = http::Request::get(target).header("host", "a.test");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn patterns(names: &[&str]) -> globset::GlobSet {
        let mut set = globset::GlobSetBuilder::new();
        for name in names {
            set.add(globset::Glob::new(name).unwrap());
        }
        set.build().unwrap()
    }

    fn key_of(rule: &KeyRule, target: &str, headers: &[(&str, &str)]) -> String {
        let parts = parts(target, headers);
        rule.apply(respcache_http::default_key(&parts), &parts)
    }

    #[test]
    fn ignored_query_parameters_leave_the_key() {
        let rule = KeyRule {
            ignore_query: Some(patterns(&["utm_*", "fbclid"])),
            ..KeyRule::default()
        };
        let plain = key_of(&rule, "/p?id=1", &[]);
        assert_eq!(plain, "GET:http://a.test/p?id=1");
        assert_eq!(key_of(&rule, "/p?utm_source=x&id=1&fbclid=2", &[]), plain);
        assert_eq!(key_of(&rule, "/p?utm_source=x", &[]), "GET:http://a.test/p");
        assert_ne!(key_of(&rule, "/p?id=2&utm_a=1", &[]), plain);
        assert_ne!(
            key_of(&rule, "/p?xutm_a=1&id=1", &[]),
            plain,
            "patterns match whole names"
        );
    }

    #[test]
    fn kept_and_sorted_query_parameters() {
        let rule = KeyRule {
            keep_query: Some(patterns(&["page", "q"])),
            sort_query: true,
            ..KeyRule::default()
        };
        assert_eq!(
            key_of(&rule, "/s?z=1&q=a&page=2", &[]),
            "GET:http://a.test/s?page=2&q=a"
        );
        assert_eq!(
            key_of(&rule, "/s?page=2&q=a", &[]),
            key_of(&rule, "/s?q=a&page=2", &[])
        );
    }

    #[test]
    fn fields_and_cookies_join_the_key_unambiguously() {
        let rule = KeyRule {
            headers: vec![HeaderName::from_static("accept-language")],
            cookies: vec!["lang".to_owned()],
            ..KeyRule::default()
        };
        let en = key_of(
            &rule,
            "/",
            &[("accept-language", "en"), ("cookie", "a=1; lang=fr")],
        );
        let de = key_of(
            &rule,
            "/",
            &[("accept-language", "de"), ("cookie", "lang=fr")],
        );
        let none = key_of(&rule, "/", &[]);
        assert_ne!(en, de);
        assert_ne!(en, none);
        assert!(en.ends_with(" h:accept-language:2:en c:lang:2:fr"), "{en}");
        // Bytes that are not UTF-8 keep their identity.
        let mut request = parts("/", &[]);
        let mut keys = std::collections::HashSet::new();
        for value in [&b"\xff"[..], &b"\xfe"[..], &b"%FF"[..]] {
            let value = HeaderValue::from_bytes(value).unwrap();
            request.headers.insert("accept-language", value);
            keys.insert(rule.apply(respcache_http::default_key(&request), &request));
        }
        assert_eq!(keys.len(), 3, "{keys:?}");
        // A value that spells the rest of another key is still its own.
        let forged = key_of(&rule, "/", &[("accept-language", "en c:lang:2:fr")]);
        assert_ne!(forged, en);
    }

    #[test]
    fn paths_are_normalised_as_origins_read_them() {
        for (raw, normal) in [
            ("/api/private/me", "/api/private/me"),
            ("/api/%70rivate/me", "/api/private/me"),
            ("/api//private/me", "/api/private/me"),
            ("/api/./private/me", "/api/private/me"),
            ("/x/../api/private/me", "/api/private/me"),
            ("/x/%2e%2E/api/private", "/api/private"),
            ("/../../api/private", "/api/private"),
            ("/", "/"),
            ("/dir/", "/dir/"),
            ("/dir/..", "/"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/a%2Fb", "/a%2Fb"),
        ] {
            assert_eq!(normalise_path(raw).0, normal, "{raw}");
        }
        assert!(!normalise_path("/api/%70rivate").1);
        for ambiguous in [
            "/api%2Fprivate",
            "/api%5cprivate",
            "/api\\private",
            "/api;x/private",
        ] {
            assert!(normalise_path(ambiguous).1, "{ambiguous}");
        }
    }

    #[test]
    fn query_names_are_matched_as_origins_decode_them() {
        let keep = KeyRule {
            keep_query: Some(patterns(&["q"])),
            ..KeyRule::default()
        };
        // An escaped name is the name it spells.
        assert_ne!(
            key_of(&keep, "/s?q=a&%71=evil", &[]),
            key_of(&keep, "/s?q=a", &[])
        );
        // A name in another case is not kept, and the request is not cached.
        assert!(keep.query_is_ambiguous(Some("q=a&Q=evil")));
        assert!(!keep.query_is_ambiguous(Some("q=a&page=2")));
        let ignore = KeyRule {
            ignore_query: Some(patterns(&["utm_*"])),
            ..KeyRule::default()
        };
        assert_eq!(
            key_of(&ignore, "/s?%75tm_source=x&q=a", &[]),
            key_of(&ignore, "/s?q=a", &[])
        );
        // A pair holding `;` stays whole: `;` may separate parameters.
        assert_ne!(
            key_of(&ignore, "/s?utm_source=x;q=evil", &[]),
            key_of(&ignore, "/s", &[])
        );
        assert_ne!(
            key_of(&keep, "/s?q=a&page=1;q=evil", &[]),
            key_of(&keep, "/s?q=a", &[])
        );
    }

    #[test]
    fn a_cookie_line_with_bytes_beyond_ascii_still_keys_its_session() {
        let rule = KeyRule {
            cookies: vec!["session".to_owned()],
            ..KeyRule::default()
        };
        let with_cookie = |line: &[u8]| {
            let mut request = parts("/", &[]);
            let value = HeaderValue::from_bytes(line).unwrap();
            request.headers.insert(header::COOKIE, value);
            rule.apply(respcache_http::default_key(&request), &request)
        };
        let anonymous = key_of(&rule, "/", &[]);
        let alice = with_cookie(b"pref=caf\xc3\xa9; session=alice");
        let bob = with_cookie(b"pref=caf\xc3\xa9; session=bob");
        assert_ne!(alice, anonymous, "a logged-in user keyed as anonymous");
        assert_ne!(alice, bob);
        assert!(alice.ends_with(" c:session:5:alice"), "{alice}");
        // The value itself, escaped one to one.
        let odd = with_cookie(b"session=\xff");
        let other = with_cookie(b"session=\xfe");
        assert_ne!(odd, other);
        assert!(odd.ends_with(" c:session:3:%FF"), "{odd}");
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> response::Parts {
        let mut response = http::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        response.body(()).unwrap().into_parts().0
    }

    fn field(rules: &Rules, headers: &[(&str, &str)]) -> Option<String> {
        let mut head = head(200, headers);
        rules.apply(false, &mut head, &[http::header::CDN_CACHE_CONTROL]);
        head.headers
            .get(ROUTE_FIELD)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn ttls_and_stale_windows_become_the_route_field() {
        let default = Rules {
            default_ttl: Some(Duration::from_secs(60)),
            ..Rules::default()
        };
        assert_eq!(field(&default, &[]).as_deref(), Some("max-age=60"));
        assert_eq!(
            field(&default, &[("cache-control", "max-age=5, must-revalidate")]).as_deref(),
            Some("max-age=5, must-revalidate"),
            "the origin's lifetime stands"
        );
        assert_eq!(
            field(&default, &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")]),
            None
        );
        let ttl = Rules {
            ttl: Some(Duration::from_secs(3600)),
            stale_while_revalidate: Some(Duration::from_secs(30)),
            ..Rules::default()
        };
        assert_eq!(
            field(
                &ttl,
                &[(
                    "cache-control",
                    "public, s-maxage=5, stale-while-revalidate=1"
                )]
            )
            .as_deref(),
            Some("max-age=3600, public, stale-while-revalidate=30")
        );
    }

    #[test]
    fn what_the_origin_keeps_from_shared_caches_is_never_shared() {
        let ttl = Rules {
            ttl: Some(Duration::from_secs(3600)),
            ..Rules::default()
        };
        for cc in ["private", "no-store", "no-cache", "max-age=5, Private"] {
            assert_eq!(field(&ttl, &[("cache-control", cc)]), None, "{cc}");
        }
        assert_eq!(field(&ttl, &[("set-cookie", "a=1")]), None);
        assert_eq!(field(&ttl, &[("cdn-cache-control", "max-age=1")]), None);
        let mut head = head(200, &[]);
        ttl.apply(true, &mut head, &[]);
        assert!(!head.headers.contains_key(ROUTE_FIELD));
        let mut error = super::tests::head(500, &[("respcache-route-control", "max-age=99")]);
        ttl.apply(false, &mut error, &[]);
        assert!(
            !error.headers.contains_key(ROUTE_FIELD),
            "the origin's own is removed"
        );
    }
}
