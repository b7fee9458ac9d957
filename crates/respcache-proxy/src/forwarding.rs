//! What the proxy tells the origin about the client, and what it does not
//! let a client tell it: `Forwarded` (RFC 7239), `X-Forwarded-For` and
//! `-Proto` from the connection itself; the client's own claims dropped
//! unless it is a trusted proxy; a `Via` loop refused; a request without
//! `Host` given the one the origin will see; and one name for a request's
//! target whatever the protocol ([`normalise_target`]).

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Version, request};
use ipnet::IpNet;

/// Fields through which a client could claim to be someone else, or
/// steer an origin that trusts them (absolute links built from
/// `X-Forwarded-Host` are a classic way to poison a cache).
const CLAIMS: [HeaderName; 11] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-host"),
];

/// How the proxy forwards who its clients are.
#[derive(Debug, Clone)]
pub struct Forwarding {
    trusted: Vec<IpNet>,
    /// This proxy's `received-by` in `Via`.
    via_name: String,
    /// `1.1 <via_name>`.
    via: HeaderValue,
}

/// The scheme a client reached the proxy with: which listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The plain listener (HTTP/1.1, or h2c with prior knowledge).
    Http,
    /// The TLS listener.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Why a request's target cannot be named.
pub const AUTHORITY_MISMATCH: &str =
    "respcache-proxy: the Host field names another authority than the request's :authority\n";

/// Gives a request one name for its target, whatever the protocol, so
/// that it is routed, keyed and sent to its origin under the same host:
/// - an HTTP/2 request carries its host in `:authority` (the URI); its
///   `Host` field becomes that authority, and a `Host` naming another is
///   refused (RFC 9113 §8.3.1: malformed);
/// - the target's scheme is the listener's, never the client's claim: on
///   the TLS listener the target becomes `https://HOST/PATH`, so that
///   entries stored for TLS clients are keyed apart from cleartext ones
///   (an origin may answer by `X-Forwarded-Proto`, with a redirect to
///   https for one), and a cleartext client's absolute `https://` target
///   is made `http://`, so that it can never fill the TLS clients' keys.
///
/// A request without any host (HTTP/1.0) is left as it is.
pub fn normalise_target(parts: &mut request::Parts, scheme: Scheme) -> Result<(), &'static str> {
    if parts.version == Version::HTTP_2
        && let Some(authority) = parts.uri.authority()
    {
        let named = authority.as_str().as_bytes();
        if parts
            .headers
            .get_all(header::HOST)
            .iter()
            .any(|host| !host.as_bytes().eq_ignore_ascii_case(named))
        {
            return Err(AUTHORITY_MISMATCH);
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| AUTHORITY_MISMATCH)?;
        parts.headers.insert(header::HOST, host);
    }
    let authority = match parts.uri.authority() {
        Some(authority) => authority.clone(),
        None if scheme == Scheme::Http => return Ok(()),
        None => {
            let mut hosts = parts.headers.get_all(header::HOST).iter();
            // No Host, or several: nothing to name (and nothing cached).
            let (Some(host), None) = (hosts.next(), hosts.next()) else {
                return Ok(());
            };
            match http::uri::Authority::try_from(host.as_bytes()) {
                Ok(authority) if authority.as_str().len() == host.len() => authority,
                // Not a host: the engine will not store it either.
                _ => return Ok(()),
            }
        }
    };
    if parts.uri.scheme_str() == Some(scheme.as_str()) {
        return Ok(());
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Ok(uri) = http::Uri::builder()
        .scheme(scheme.as_str())
        .authority(authority)
        .path_and_query(path)
        .build()
    {
        parts.uri = uri;
    }
    Ok(())
}

/// What the connection shows of a client, worked out once per connection.
#[derive(Debug, Clone)]
pub struct Peer {
    trusted: bool,
    /// Its address, as `X-Forwarded-For` lists it.
    address: String,
    /// `for=…;proto=…`, as `Forwarded` lists it.
    element: String,
    /// The listener's scheme, as `X-Forwarded-Proto` says it.
    scheme: Scheme,
}

/// Why a request is refused before it reaches the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request has passed through this proxy already: a loop.
    Loop,
}

impl Forwarding {
    /// Forwarding that trusts the claims of peers in `trusted`, naming
    /// itself `via_name` (a random one when `None`).
    pub fn new(trusted: Vec<IpNet>, via_name: Option<String>) -> Result<Self, String> {
        let via_name =
            via_name.unwrap_or_else(|| format!("respcache-{:08x}", rand::random::<u32>()));
        let via = HeaderValue::from_str(&format!("1.1 {via_name}"))
            .map_err(|_| format!("--via-name {via_name:?} cannot go in a header"))?;
        if via_name.is_empty() || via_name.contains([',', ' ', '(', ')']) {
            return Err(format!(
                "--via-name {via_name:?}: one token, without spaces, commas or parentheses"
            ));
        }
        Ok(Self {
            trusted,
            via_name,
            via,
        })
    }

    /// What the connection from `peer` to the `scheme` listener shows of
    /// its client.
    pub fn peer(&self, peer: SocketAddr, scheme: Scheme) -> Peer {
        let ip = peer.ip().to_canonical();
        // RFC 7239 §6: an IPv6 address is quoted, in brackets.
        let node = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        Peer {
            trusted: self.trusts(ip),
            address: ip.to_string(),
            element: format!("for={node};proto={}", scheme.as_str()),
            scheme,
        }
    }

    /// The `Via` value this proxy adds to what it forwards.
    pub fn via(&self) -> &HeaderValue {
        &self.via
    }

    /// Prepares a client's request for the cache and the origin: refuses a
    /// loop, drops the claims of an untrusted client, and adds what the
    /// connection from `peer` shows. A request without `Host` (HTTP/1.0) is
    /// given `upstream_host`, the one the origin will receive, so that it
    /// is keyed as it is answered.
    pub fn prepare(
        &self,
        parts: &mut request::Parts,
        peer: &Peer,
        upstream_host: &HeaderValue,
    ) -> Result<(), Refusal> {
        if self.has_passed_here(&parts.headers) {
            return Err(Refusal::Loop);
        }
        let headers = &mut parts.headers;
        // One pass over the names: most requests make no such claim.
        if !peer.trusted && headers.keys().any(|name| CLAIMS.contains(name)) {
            for name in CLAIMS {
                headers.remove(name);
            }
        }
        let host = match headers.get(header::HOST) {
            Some(host) => host.clone(),
            None if parts.uri.authority().is_some() => {
                // An absolute target names the host (RFC 9112 §3.2.2).
                HeaderValue::from_str(parts.uri.authority().map_or("", |a| a.as_str()))
                    .unwrap_or_else(|_| upstream_host.clone())
            }
            None => {
                headers.insert(header::HOST, upstream_host.clone());
                upstream_host.clone()
            }
        };
        append(headers, "x-forwarded-for", &peer.address);
        const PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
        if !peer.trusted || !headers.contains_key(&PROTO) {
            headers.insert(PROTO, HeaderValue::from_static(peer.scheme.as_str()));
        }
        match host.to_str() {
            Ok(host) if is_token(host) => {
                append(
                    headers,
                    "forwarded",
                    &format!("{};host={host}", peer.element),
                );
            }
            _ => append(headers, "forwarded", &peer.element),
        }
        Ok(())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Whether any `Via` names this proxy.
    fn has_passed_here(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::VIA)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .filter_map(|hop| {
                // `1.1 name (comment)`: the second word.
                let hop = std::str::from_utf8(hop).ok()?;
                hop.split_whitespace().nth(1)
            })
            .any(|received_by| received_by.eq_ignore_ascii_case(&self.via_name))
    }
}

/// Appends `value` to the comma-separated list in `name`, as one field.
fn append(headers: &mut HeaderMap, name: &'static str, value: &str) {
    let name = HeaderName::from_static(name);
    // Every line of a trusted peer's list, then ours.
    let existing: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let joined = if existing.is_empty() {
        HeaderValue::from_str(value)
    } else {
        HeaderValue::from_str(&format!("{}, {value}", existing.join(", ")))
    };
    if let Ok(joined) = joined {
        headers.insert(name, joined);
    }
}

/// Whether `host` can go unquoted in a `Forwarded` element.
fn is_token(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'*+^`|:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(pairs: &[(&'static str, &'static str)]) -> request::Parts {
        let mut builder = http::Request::get("/x");
        for (name, value) in pairs {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    const UPSTREAM: HeaderValue = HeaderValue::from_static("origin.internal:8000");

    #[test]
    fn an_untrusted_client_s_claims_are_replaced_by_what_the_connection_shows() {
        let forwarding = Forwarding::new(vec![], Some("edge".into())).unwrap();
        let mut request = parts(&[
            ("host", "www.site"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-original-url", "/admin"),
        ]);
        forwarding
            .prepare(
                &mut request,
                &forwarding.peer(peer("192.0.2.7"), Scheme::Http),
                &UPSTREAM,
            )
            .unwrap();
        let headers = &request.headers;
        assert!(headers.get("x-forwarded-host").is_none());
        assert!(headers.get("x-original-url").is_none());
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(
            headers["forwarded"],
            "for=192.0.2.7;proto=http;host=www.site"
        );
    }

    #[test]
    fn a_trusted_proxy_s_list_is_extended() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let forwarding = Forwarding::new(trusted, Some("edge".into())).unwrap();
        let mut request = parts(&[
            ("host", "www.site"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        forwarding
            .prepare(
                &mut request,
                &forwarding.peer(peer("10.1.2.3"), Scheme::Http),
                &UPSTREAM,
            )
            .unwrap();
        assert_eq!(request.headers["x-forwarded-for"], "203.0.113.9, 10.1.2.3");
        assert_eq!(request.headers["x-forwarded-proto"], "https");
        let mut v6 = parts(&[("host", "www.site")]);
        forwarding
            .prepare(
                &mut v6,
                &forwarding.peer(peer("::1"), Scheme::Http),
                &UPSTREAM,
            )
            .unwrap();
        assert_eq!(
            v6.headers["forwarded"],
            "for=\"[::1]\";proto=http;host=www.site"
        );
    }

    #[test]
    fn a_request_through_this_proxy_already_is_a_loop() {
        let forwarding = Forwarding::new(vec![], Some("edge-1".into())).unwrap();
        let mut looped = parts(&[("host", "a"), ("via", "1.1 other, 1.1 EDGE-1 (respcache)")]);
        let refused = forwarding.prepare(
            &mut looped,
            &forwarding.peer(peer("127.0.0.1"), Scheme::Http),
            &UPSTREAM,
        );
        assert_eq!(refused, Err(Refusal::Loop));
        let mut chained = parts(&[("host", "a"), ("via", "1.1 edge-2")]);
        assert!(
            forwarding
                .prepare(
                    &mut chained,
                    &forwarding.peer(peer("127.0.0.1"), Scheme::Http),
                    &UPSTREAM
                )
                .is_ok()
        );
        assert_eq!(forwarding.via(), "1.1 edge-1");
        assert!(Forwarding::new(vec![], Some("two words".into())).is_err());
    }

    fn target(
        uri: &str,
        version: Version,
        host: Option<&str>,
        scheme: Scheme,
    ) -> Result<(String, Option<String>), &'static str> {
        let mut builder = http::Request::get(uri).version(version);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        let mut parts = builder.body(()).unwrap().into_parts().0;
        normalise_target(&mut parts, scheme)?;
        let host = parts
            .headers
            .get("host")
            .map(|h| h.to_str().unwrap().to_owned());
        Ok((parts.uri.to_string(), host))
    }

    #[test]
    fn a_target_is_named_by_its_listener_s_scheme_and_one_host() {
        use Scheme::{Http, Https};
        const HTTP_11: Version = Version::HTTP_11;
        const HTTP_2: Version = Version::HTTP_2;
        /// The target and `Host` a request is left with, or the refusal.
        type Named = Result<(&'static str, Option<&'static str>), &'static str>;
        let cases: [(&str, Version, Option<&str>, Scheme, Named); 9] = [
            // HTTP/1.1 in the clear: as it came.
            (
                "/a",
                HTTP_11,
                Some("x:8080"),
                Http,
                Ok(("/a", Some("x:8080"))),
            ),
            // A cleartext client cannot claim https.
            ("https://x/a", HTTP_11, None, Http, Ok(("http://x/a", None))),
            // h2c: Host is the authority.
            (
                "http://x:8080/a?q",
                HTTP_2,
                None,
                Http,
                Ok(("http://x:8080/a?q", Some("x:8080"))),
            ),
            (
                "https://x/a",
                HTTP_2,
                Some("X"),
                Http,
                Ok(("http://x/a", Some("x"))),
            ),
            (
                "http://x/a",
                HTTP_2,
                Some("y"),
                Http,
                Err(AUTHORITY_MISMATCH),
            ),
            // TLS: https, whatever the client says.
            (
                "/a?q",
                HTTP_11,
                Some("x:8443"),
                Https,
                Ok(("https://x:8443/a?q", Some("x:8443"))),
            ),
            (
                "http://x/a",
                HTTP_2,
                None,
                Https,
                Ok(("https://x/a", Some("x"))),
            ),
            // No host, or not a host: left for the engine not to store.
            ("/a", HTTP_11, None, Https, Ok(("/a", None))),
            ("/a", HTTP_11, Some("x/y"), Https, Ok(("/a", Some("x/y")))),
        ];
        for (uri, version, host, scheme, expected) in cases {
            let expected = expected.map(|(uri, host)| (uri.to_owned(), host.map(str::to_owned)));
            assert_eq!(
                target(uri, version, host, scheme),
                expected,
                "{uri} {version:?} {host:?} {scheme:?}"
            );
        }
    }

    #[test]
    fn a_request_without_host_gets_the_one_the_origin_will_see() {
        let forwarding = Forwarding::new(vec![], None).unwrap();
        let mut old = parts(&[]);
        forwarding
            .prepare(
                &mut old,
                &forwarding.peer(peer("127.0.0.1"), Scheme::Http),
                &UPSTREAM,
            )
            .unwrap();
        assert_eq!(old.headers["host"], "origin.internal:8000");
    }
}
