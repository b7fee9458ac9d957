//! Conditional requests: the validators a cache sends when it revalidates,
//! the `304` it merges into a stored head, and the client's own conditions
//! it answers from a full response (RFC 9110 §13, RFC 9111 §4.3).

use std::time::SystemTime;

use http::header::{self, HeaderName};
use http::{HeaderMap, Response, StatusCode, response};

use crate::directives::split_list;

/// A client's `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    if_none_match: Option<Vec<String>>,
    if_modified_since: Option<SystemTime>,
}

impl Conditions {
    pub(crate) fn take_from(headers: &HeaderMap) -> Self {
        let if_none_match = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(split_list)
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let if_modified_since = headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| httpdate::parse_http_date(value).ok());
        // Present but unreadable still wins over If-Modified-Since; it then
        // matches nothing.
        let present = headers.contains_key(header::IF_NONE_MATCH);
        Self {
            if_none_match: present.then_some(if_none_match),
            if_modified_since,
        }
    }

    /// Whether a response with these headers satisfies the conditions as
    /// "not modified" (RFC 9110 §13.2.2: `If-None-Match` wins over
    /// `If-Modified-Since`; entity tags compare weakly).
    pub(crate) fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(tags) = &self.if_none_match {
            let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
                return tags.iter().any(|tag| tag == "*");
            };
            let etag = weak(etag);
            return tags.iter().any(|tag| tag == "*" || weak(tag) == etag);
        }
        if let Some(since) = self.if_modified_since {
            // Without Last-Modified, a cache compares with the Date the
            // response was generated (RFC 9111 §4.3.2).
            let date = |name| {
                headers
                    .get(name)
                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok())
            };
            let modified = date(header::LAST_MODIFIED).or_else(|| date(header::DATE));
            return modified.is_some_and(|modified| modified <= since);
        }
        false
    }
}

fn weak(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/")
}

/// Removes the conditions of a client's request that the cache answers
/// itself. `If-Range` stays: it goes with a `Range` that is forwarded, and
/// without it the origin would send part of another version
/// (RFC 9110 §13.1.5).
pub(crate) fn strip(headers: &mut HeaderMap) {
    headers.remove(header::IF_NONE_MATCH);
    headers.remove(header::IF_MODIFIED_SINCE);
}

/// Whether a response to `HEAD` describes the stored response (RFC 9111
/// §4.3.5): each validator it carries (`ETag`, `Last-Modified`) and its
/// `Content-Length`, when it has one, are the stored response's own.
pub(crate) fn describes(head_response: &HeaderMap, stored: &HeaderMap) -> bool {
    [header::ETAG, header::LAST_MODIFIED, header::CONTENT_LENGTH]
        .iter()
        .all(|name| match head_response.get(name) {
            None => true,
            Some(value) => stored.get(name) == Some(value),
        })
}

/// Adds the stored response's validators to a revalidation request.
pub(crate) fn add_validators(headers: &mut HeaderMap, stored: &HeaderMap) {
    if let Some(etag) = stored.get(header::ETAG) {
        headers.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = stored.get(header::LAST_MODIFIED) {
        headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
    }
}

/// Fields a `304` never replaces in a stored head: they describe the
/// stored body or the connection, not the resource (RFC 9111 §3.2); the
/// entity tag stays the stored body's own.
const KEPT_FROM_STORED: &[&str] = &[
    "etag",
    "content-md5",
    "content-length",
    "content-encoding",
    "content-range",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// The stored head updated with a `304`'s fields, received at `received`:
/// each field the `304` carries replaces every stored value of it. The
/// stored `Age` and `Date` described the old response; a `304` without
/// them is dated when it arrived (RFC 9110 §6.6.1) and has no age.
pub(crate) fn merge_304(
    stored: &response::Parts,
    update: &HeaderMap,
    received: SystemTime,
) -> response::Parts {
    let mut head = respcache_core::clone_head(stored);
    head.headers.remove(header::AGE);
    if !update.contains_key(header::DATE)
        && let Ok(date) = http::HeaderValue::from_str(&httpdate::fmt_http_date(received))
    {
        head.headers.insert(header::DATE, date);
    }
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in update {
        if KEPT_FROM_STORED.contains(&name.as_str()) || crate::vary::is_internal(name) {
            continue;
        }
        if !replaced.contains(&name) {
            head.headers.remove(name);
            replaced.push(name);
        }
        head.headers.append(name.clone(), value.clone());
    }
    head
}

/// Fields a `304` to a client carries (RFC 9110 §15.4.5), plus the cache's
/// own `Age` and `Cache-Status`.
const NOT_MODIFIED_FIELDS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "last-modified",
    "age",
    "cache-status",
];

/// The head of a `304` answering a client's condition from a full response.
pub(crate) fn not_modified_head(full: &response::Parts) -> response::Parts {
    let mut head = Response::new(()).into_parts().0;
    head.status = StatusCode::NOT_MODIFIED;
    head.version = full.version;
    for (name, value) in &full.headers {
        if NOT_MODIFIED_FIELDS.contains(&name.as_str()) {
            head.headers.append(name.clone(), value.clone());
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn if_none_match_compares_weakly_and_wins_over_dates() {
        let conditions = Conditions::take_from(&headers(&[
            ("if-none-match", r#""a", W/"b""#),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]));
        assert!(conditions.not_modified(&headers(&[("etag", r#"W/"a""#)])));
        assert!(!conditions.not_modified(&headers(&[
            ("etag", r#""c""#),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ])));
    }

    #[test]
    fn if_modified_since_needs_a_last_modified_no_later() {
        let conditions = Conditions::take_from(&headers(&[(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        )]));
        assert!(conditions.not_modified(&headers(&[(
            "last-modified",
            "Sun, 06 Nov 1994 08:00:00 GMT"
        )])));
        assert!(!conditions.not_modified(&headers(&[(
            "last-modified",
            "Mon, 07 Nov 1994 08:00:00 GMT"
        )])));
        assert!(!conditions.not_modified(&HeaderMap::new()));
        assert!(conditions.not_modified(&headers(&[("date", "Sun, 06 Nov 1994 08:00:00 GMT")])));
    }

    #[test]
    fn a_head_response_describes_a_stored_one_with_the_same_validators_and_length() {
        let stored = headers(&[("etag", "\"a\""), ("content-length", "10")]);
        assert!(describes(&headers(&[]), &stored));
        assert!(describes(
            &headers(&[("etag", "\"a\""), ("content-length", "10")]),
            &stored
        ));
        assert!(!describes(&headers(&[("etag", "\"b\"")]), &stored));
        assert!(!describes(&headers(&[("content-length", "11")]), &stored));
        assert!(!describes(
            &headers(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            &stored
        ));
    }

    #[test]
    fn a_304_replaces_every_value_of_its_fields_but_not_the_body_s() {
        let mut stored = Response::new(()).into_parts().0;
        stored.headers = headers(&[
            ("x-a", "1"),
            ("x-a", "2"),
            ("content-length", "10"),
            ("x-kept", "k"),
            ("age", "100"),
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let received = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let update = headers(&[("x-a", "3"), ("content-length", "0")]);
        let merged = merge_304(&stored, &update, received);
        let all = |name| {
            merged
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(all("x-a"), ["3"]);
        assert_eq!(all("content-length"), ["10"]);
        assert_eq!(all("x-kept"), ["k"]);
        assert!(all("age").is_empty(), "the old response's age");
        assert_eq!(all("date"), ["Sun, 09 Sep 2001 01:46:40 GMT"]);
        let dated = headers(&[("date", "Mon, 07 Nov 1994 08:49:37 GMT")]);
        let merged = merge_304(&stored, &dated, received);
        assert_eq!(merged.headers["date"], "Mon, 07 Nov 1994 08:49:37 GMT");
    }
}
