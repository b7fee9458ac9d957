//! Purging from outside: `POST /purge` on the admin listener, with a
//! bearer token, and `PURGE URL` on the client listener from the
//! addresses `--purge-from` names.
//!
//! ```text
//! POST /purge?url=https://example.com/page          one URL, every Vary variant
//! POST /purge?prefix=https://example.com/blog/      every URL under it
//! POST /purge?tag=product-42                        every response tagged so
//!      ...&soft=true                                mark stale instead of removing
//! Authorization: Bearer TOKEN
//! → 200 {"purged":3,"soft":false}
//! ```

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use ipnet::IpNet;
use respcache_http::{CacheBody, HttpCache, Purge, PurgeError, Storage, Strength};

use crate::config::Fixed;

/// Who may purge.
pub struct Access {
    token: Option<String>,
    from: Vec<IpNet>,
}

// By hand, so that the token never reaches a log through a debug print.
impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

impl Access {
    /// The rules the command line and the config file set.
    pub fn new(fixed: &Fixed) -> Self {
        Self {
            token: fixed
                .purge_token
                .as_ref()
                .map(|token| token.expose().to_owned())
                .filter(|token| !token.is_empty()),
            from: fixed.purge_from.clone(),
        }
    }

    /// `POST /purge` on the admin listener.
    pub async fn admin_request<S: Storage>(
        &self,
        request: Request<Incoming>,
        cache: &HttpCache<S>,
    ) -> Response<CacheBody> {
        if request.method() != Method::POST {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "purge with POST");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let Some(token) = &self.token else {
            return error(
                StatusCode::FORBIDDEN,
                "purging is off: start respcache-proxy with --purge-token or RESPCACHE_PURGE_TOKEN",
            );
        };
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
        if !presented.is_some_and(|presented| same(presented, token.as_bytes())) {
            let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let (target, strength) = match parse_query(request.uri().query().unwrap_or("")) {
            Ok(parsed) => parsed,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        run(cache, &target, strength).await
    }

    /// `PURGE URL` on the client listener: a hard purge of the URL the
    /// request names, for a client in `--purge-from`.
    pub async fn client_request<S: Storage>(
        &self,
        parts: &http::request::Parts,
        peer: SocketAddr,
        cache: &HttpCache<S>,
    ) -> Response<CacheBody> {
        let ip = peer.ip().to_canonical();
        if !self.from.iter().any(|net| net.contains(&ip)) {
            tracing::warn!(%peer, uri = %parts.uri, "PURGE refused: the client is not in --purge-from");
            return error(
                StatusCode::FORBIDDEN,
                "PURGE is not allowed from this address",
            );
        }
        let url = respcache_http::absolute_url(parts);
        run(cache, &Purge::Url(url), Strength::Hard).await
    }
}

/// Carries out a purge and says how it went, as JSON.
async fn run<S: Storage>(
    cache: &HttpCache<S>,
    target: &Purge,
    strength: Strength,
) -> Response<CacheBody> {
    match cache.purge(target, strength).await {
        Ok(purged) => json(
            StatusCode::OK,
            &serde_json::json!({ "purged": purged, "soft": strength == Strength::Soft }),
        ),
        Err(error @ PurgeError::InvalidUrl(_)) => json_error(StatusCode::BAD_REQUEST, &error),
        Err(refused @ PurgeError::Unsupported(what)) => {
            // A backend that cannot list (Redis Cluster, whose keys sit on
            // several masters) still purges by URL, and by tag where it
            // keeps a tag index: say so, rather than only what failed.
            let instead = if what == "by prefix" {
                "purge by url= or tag= instead"
            } else {
                "purge by url= instead"
            };
            tracing::warn!(error = %refused, ?target, "purge refused");
            error(
                StatusCode::NOT_IMPLEMENTED,
                &format!("{refused}; {instead}"),
            )
        }
        Err(error) => {
            tracing::error!(%error, ?target, "purge failed");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, &error)
        }
    }
}

/// The target and strength a query names: exactly one of `url`, `prefix`
/// and `tag`, and `soft=true` or `soft=false` (the default).
fn parse_query(query: &str) -> Result<(Purge, Strength), String> {
    let mut target = None;
    let mut strength = Strength::Hard;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let named = match name.as_ref() {
            "url" => Purge::Url(value.into_owned()),
            "prefix" => Purge::Prefix(value.into_owned()),
            "tag" => Purge::Tag(value.into_owned()),
            "soft" => {
                strength = match value.as_ref() {
                    "true" | "1" => Strength::Soft,
                    "false" | "0" => Strength::Hard,
                    other => return Err(format!("soft={other:?}: expected true or false")),
                };
                continue;
            }
            other => return Err(format!("unknown parameter {other:?}")),
        };
        if target.replace(named).is_some() {
            return Err("name one of url, prefix and tag, once".into());
        }
    }
    let target = target.ok_or("name what to purge: url=, prefix= or tag=")?;
    if matches!(&target, Purge::Tag(tag) if tag.is_empty()) {
        return Err("tag= is empty".into());
    }
    Ok((target, strength))
}

/// Compares two secrets in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<CacheBody> {
    let mut body = value.to_string();
    body.push('\n');
    let mut response = Response::new(respcache_http::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_error(status: StatusCode, error: &dyn std::fmt::Display) -> Response<CacheBody> {
    json(status, &serde_json::json!({ "error": error.to_string() }))
}

fn error(status: StatusCode, message: &str) -> Response<CacheBody> {
    json(status, &serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_one_target_and_a_strength() {
        assert_eq!(
            parse_query("url=http%3A%2F%2Fa%2Fb%3Fq%3D1&soft=true").unwrap(),
            (Purge::Url("http://a/b?q=1".into()), Strength::Soft)
        );
        assert_eq!(
            parse_query("tag=t1").unwrap(),
            (Purge::Tag("t1".into()), Strength::Hard)
        );
        for bad in ["", "url=a&tag=b", "soft=maybe&tag=a", "tag=", "colour=red"] {
            assert!(parse_query(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
