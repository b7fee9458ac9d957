//! The rules of RFC 9111 as pure functions of a request, a response and
//! a time: what to do with a stored entry, and what may be stored (when a
//! stale response may stand in, and how long an entry is worth keeping,
//! are in `stale`). Nothing here touches storage, the origin or the clock.

use std::time::Duration;

use http::header::{self, HeaderName};
use http::{HeaderMap, Method, Response, request, response};
use url::Url;

use crate::body::CacheBody;
use crate::directives::{Delta, Directives};
use crate::freshness::{Freshness, HEURISTIC_STATUSES};
use crate::options::{CacheMode, Options};
use crate::stale::{may_serve_stale, may_stand_in};
use crate::status::Forward;
use crate::surrogate::SurrogateControl;
use crate::targeted::{response_directives, targeted};

/// What to do with a stored entry for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Serve it as it is.
    Serve,
    /// Serve it stale, and revalidate it in the background
    /// (`stale-while-revalidate`).
    ServeStale,
    /// Ask the origin whether it is still good.
    Revalidate,
    /// Ask the origin for a new response, for this reason.
    Forward(Forward),
    /// Nothing stored may answer, and the origin may not be asked
    /// (`only-if-cached`): `504`.
    Unsatisfiable,
}

/// Decides what to do with a stored entry whose head is `stored` and whose
/// freshness is `freshness`, for a request with `request`'s head in `mode`
/// (RFC 9111 §4.2 and §5.2.1, and the mode).
pub(crate) fn choose(
    request: &request::Parts,
    mode: CacheMode,
    stored: &HeaderMap,
    freshness: &Freshness,
    options: &Options,
) -> Choice {
    let within_cap = options.max_ttl.is_none_or(|cap| freshness.age < cap);
    match mode {
        CacheMode::Reload => return Choice::Forward(Forward::Request),
        CacheMode::NoCache => return Choice::Revalidate,
        CacheMode::ForceCache | CacheMode::OnlyIfCached | CacheMode::IgnoreRules => {
            return if within_cap {
                Choice::Serve
            } else {
                Choice::Revalidate
            };
        }
        CacheMode::Default | CacheMode::NoStore => {}
    }
    let request_cc = Directives::of(&request.headers);
    if request_cc.has("no-cache") || pragma_no_cache(&request.headers) {
        return Choice::Revalidate;
    }
    let max_age = request_cc.delta("max-age");
    let min_fresh = request_cc.delta("min-fresh");
    let acceptable_age = match max_age {
        Delta::Absent => true,
        Delta::Invalid => false,
        Delta::Seconds(max) => freshness.age.as_secs() <= max,
    };
    let fresh_enough = min_fresh
        .seconds()
        .is_none_or(|min| freshness.ttl_seconds() >= min as i64);
    if freshness.is_fresh() && within_cap && acceptable_age && fresh_enough {
        return Choice::Serve;
    }
    let may_be_stale = within_cap && may_serve_stale(stored, options);
    if may_be_stale && may_stand_in(stored, options) && !freshness.is_fresh() && acceptable_age {
        match request_cc.delta("max-stale") {
            Delta::Seconds(max) if freshness.staleness().as_secs() <= max => return Choice::Serve,
            // `max-stale` without a (valid) value accepts any staleness.
            Delta::Invalid => return Choice::Serve,
            Delta::Seconds(_) | Delta::Absent => {}
        }
    }
    if only_if_cached(request) {
        return Choice::Unsatisfiable;
    }
    let asked_for_origin = max_age.is_present() || min_fresh.seconds().is_some();
    if may_be_stale
        && !asked_for_origin
        && let Some(window) = response_directives(stored, options)
            .delta("stale-while-revalidate")
            .seconds()
        && freshness.staleness() <= Duration::from_secs(window)
    {
        return Choice::ServeStale;
    }
    Choice::Revalidate
}

/// The statuses `IgnoreRules` stores.
pub(crate) const IGNORE_RULES_STATUSES: &[u16] = &[200, 203, 300, 301, 308, 404, 410];

/// Statuses the cache understands, for `must-understand`.
const UNDERSTOOD_STATUSES: &[u16] = &[
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// Whether a response to the request in `request` may be stored in
/// `mode`: RFC 9111 §3, or the mode's own rule.
pub(crate) fn may_store(
    request: &request::Parts,
    head: &response::Parts,
    mode: CacheMode,
    options: &Options,
) -> bool {
    request.method == Method::GET
        && match mode {
            CacheMode::IgnoreRules => IGNORE_RULES_STATUSES.contains(&head.status.as_u16()),
            CacheMode::NoStore => false,
            _ => storable(request, head, options),
        }
}

/// RFC 9111 §3: whether a response to a `GET` may be stored, with the
/// shared-cache defaults of [`Options`] on top. Partial (`206`) and `304`
/// responses are not stored: this cache keeps whole responses only.
pub(crate) fn storable(
    request: &request::Parts,
    head: &response::Parts,
    options: &Options,
) -> bool {
    let status = head.status.as_u16();
    if status < 200 || status == 206 || status == 304 {
        return false;
    }
    let shared = options.shared;
    let surrogate = surrogate_control(&head.headers, options);
    // Surrogate-Control takes precedence over the response's
    // Cache-Control for what it says (no-store, a lifetime), never over a
    // request's no-store, a private response or an authorized request.
    if surrogate.as_ref().is_some_and(|control| control.no_store) {
        return false;
    }
    let surrogate_lifetime = surrogate.is_some_and(|control| control.max_age.is_some());
    let request_cc = Directives::of(&request.headers);
    let cc = response_directives(&head.headers, options);
    if request_cc.has("no-store") {
        return false;
    }
    if surrogate_lifetime {
        // The origin's word to this surrogate outranks its no-store to
        // caches at large.
    } else if cc.has("must-understand") {
        if !UNDERSTOOD_STATUSES.contains(&status) {
            return false;
        }
    } else if cc.has("no-store") {
        return false;
    }
    if shared && cc.has("private") && cc.fields("private").is_empty() {
        return false;
    }
    if shared
        && request.headers.contains_key(header::AUTHORIZATION)
        && !(cc.has("public") || cc.has("must-revalidate") || cc.has("s-maxage"))
    {
        return false;
    }
    // A lifetime addressed to shared caches marks it shareable too.
    let targeted_lifetime = cc.has("max-age") && targeted(&head.headers, options).is_some();
    let marked_shareable =
        cc.has("public") || cc.has("s-maxage") || surrogate_lifetime || targeted_lifetime;
    if shared
        && options.private_set_cookie
        && head.headers.contains_key(header::SET_COOKIE)
        && !marked_shareable
    {
        return false;
    }
    let explicit = explicitly_fresh(&head.headers, options);
    if shared && !options.store_unmarked && !explicit && !has_validator(&head.headers) {
        return false;
    }
    cc.has("public")
        || (!shared && cc.has("private"))
        || explicit
        || HEURISTIC_STATUSES.contains(&status)
}

/// Whether a response states its own freshness to this cache:
/// `max-age`, `s-maxage` (shared caches), `Expires`, or a
/// `Surrogate-Control` `max-age` meant for it.
pub(crate) fn explicitly_fresh(headers: &HeaderMap, options: &Options) -> bool {
    let cc = response_directives(headers, options);
    cc.has("max-age")
        || (options.shared && cc.has("s-maxage"))
        || headers.contains_key(header::EXPIRES)
        || surrogate_control(headers, options).is_some_and(|control| control.max_age.is_some())
}

/// Whether a response carries a validator to revalidate it with.
pub(crate) fn has_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED)
}

/// The `Surrogate-Control` directives meant for this cache, when it is a
/// surrogate.
fn surrogate_control(headers: &HeaderMap, options: &Options) -> Option<SurrogateControl> {
    let token = options.surrogate.as_deref()?;
    SurrogateControl::of(headers, token)
}

/// RFC 9110 §9.3.3: a response to a `POST` may answer later `GET`s of the
/// same URL when it is a `2xx` with explicit freshness and a
/// `Content-Location` that names that URL. Whether it may be stored at
/// all is [`storable`]'s business.
pub(crate) fn reusable_for_get(
    request_url: &str,
    response: &Response<CacheBody>,
    options: &Options,
) -> bool {
    let headers = response.headers();
    let Ok(base) = Url::parse(request_url) else {
        return false;
    };
    let names_the_url = headers
        .get(header::CONTENT_LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| base.join(value).ok())
        .is_some_and(|location| location == base);
    let cc = response_directives(headers, options);
    // Content-Location names the response's own URL only in a 2xx (RFC
    // 9110 §8.7).
    response.status().is_success()
        && names_the_url
        && (cc.has("max-age") || cc.has("s-maxage") || headers.contains_key(header::EXPIRES))
}

/// Removes the fields a `private="…"` (shared caches) or `no-cache="…"`
/// directive names: they may not be served from storage without the origin.
pub(crate) fn strip_qualified(headers: &mut HeaderMap, options: &Options) {
    let shared = options.shared;
    let cc = response_directives(headers, options);
    let mut fields = cc.fields("no-cache");
    if shared {
        fields.extend(cc.fields("private"));
    }
    for field in fields {
        if let Ok(name) = HeaderName::from_bytes(field.as_bytes()) {
            headers.remove(name);
        }
    }
}

/// The request asks not to be answered by the origin.
pub(crate) fn only_if_cached(request: &request::Parts) -> bool {
    Directives::of(&request.headers).has("only-if-cached")
}

fn pragma_no_cache(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::CACHE_CONTROL)
        && headers
            .get_all(header::PRAGMA)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"))
}

/// Whether a request may wait for another request's response to the same
/// key (request coalescing): not when it could not share that response.
pub(crate) fn may_collapse(request: &request::Parts, mode: CacheMode, shared: bool) -> bool {
    let headers = &request.headers;
    let authorized = shared && headers.contains_key(header::AUTHORIZATION);
    // Another range's part would not answer a range request.
    let ranged = headers.contains_key(header::RANGE);
    matches!(
        mode,
        CacheMode::Default | CacheMode::ForceCache | CacheMode::IgnoreRules
    ) && !authorized
        && !ranged
        && !Directives::of(headers).has("no-store")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &'static str)]) -> request::Parts {
        let mut builder = http::Request::get("http://a.test/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn head(status: u16, headers: &[(&'static str, &'static str)]) -> response::Parts {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    /// Freshness of a response with `lifetime` seconds at `age` seconds.
    fn freshness(lifetime: u64, age: u64) -> Freshness {
        Freshness {
            lifetime: Duration::from_secs(lifetime),
            age: Duration::from_secs(age),
        }
    }

    fn private() -> Options {
        Options {
            shared: false,
            ..Options::default()
        }
    }

    /// A request or response head with one `Cache-Control` line (none
    /// when empty).
    fn with_cc(cc: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if !cc.is_empty() {
            headers.insert(header::CACHE_CONTROL, cc.parse().unwrap());
        }
        headers
    }

    #[test]
    fn choices_for_fresh_and_stale_entries_by_request_directive() {
        use Choice::*;
        // Request Cache-Control, stored Cache-Control, lifetime, age.
        #[rustfmt::skip]
        let table = [
            ("", "", 60, 10, Serve),
            ("", "", 60, 70, Revalidate),
            ("no-cache", "", 60, 10, Revalidate),
            ("max-age=5", "", 60, 10, Revalidate),
            ("max-age=10", "", 60, 10, Serve),
            ("max-age=x", "", 60, 10, Revalidate),
            ("min-fresh=55", "", 60, 10, Revalidate),
            ("max-stale=20", "max-age=60", 60, 70, Serve),
            ("max-stale=5", "max-age=60", 60, 70, Revalidate),
            ("max-stale", "max-age=60", 60, 7000, Serve),
            // Stored without stating its freshness: never served stale
            // in a shared cache.
            ("max-stale", "", 60, 70, Revalidate),
            ("max-stale", "must-revalidate", 60, 70, Revalidate),
            ("max-stale", "s-maxage=60", 60, 70, Revalidate),
            ("only-if-cached", "", 60, 70, Unsatisfiable),
            ("", "stale-while-revalidate=30", 60, 80, ServeStale),
            ("", "stale-while-revalidate=30", 60, 100, Revalidate),
            ("max-age=1000", "stale-while-revalidate=30", 60, 80, Revalidate),
        ];
        for (request_cc, stored_cc, lifetime, age, expected) in table {
            let mut request = request(&[]);
            request.headers = with_cc(request_cc);
            let fresh = freshness(lifetime, age);
            let choice = choose(
                &request,
                CacheMode::Default,
                &with_cc(stored_cc),
                &fresh,
                &Options::default(),
            );
            assert_eq!(
                choice, expected,
                "{request_cc:?} on {stored_cc:?} at {age}/{lifetime}"
            );
        }
        let pragma = request(&[("pragma", "no-cache")]);
        let choice = choose(
            &pragma,
            CacheMode::Default,
            &HeaderMap::new(),
            &freshness(60, 1),
            &Options::default(),
        );
        assert_eq!(choice, Revalidate);
    }

    #[test]
    fn modes_override_freshness_within_max_ttl() {
        let request = request(&[]);
        let stored = HeaderMap::new();
        let stale = freshness(0, 500);
        let capped = Options {
            max_ttl: Some(Duration::from_secs(100)),
            ..Options::default()
        };
        let choice = |mode, options: &Options| choose(&request, mode, &stored, &stale, options);
        assert_eq!(
            choice(CacheMode::ForceCache, &Options::default()),
            Choice::Serve
        );
        assert_eq!(choice(CacheMode::ForceCache, &capped), Choice::Revalidate);
        assert_eq!(
            choice(CacheMode::IgnoreRules, &Options::default()),
            Choice::Serve
        );
        assert_eq!(
            choice(CacheMode::Reload, &Options::default()),
            Choice::Forward(Forward::Request)
        );
        assert_eq!(
            choice(CacheMode::NoCache, &Options::default()),
            Choice::Revalidate
        );
    }

    #[test]
    fn storable_responses_by_status_directive_and_sharing() {
        // Status, request field, response Cache-Control, in a shared
        // cache, in a private one.
        #[rustfmt::skip]
        let table = [
            // Neither freshness nor a validator: never served fresh.
            (200, None, "", false, true),
            (206, None, "max-age=60", false, false),
            (304, None, "max-age=60", false, false),
            (302, None, "", false, false),
            (302, None, "max-age=60", true, true),
            (200, None, "no-store", false, false),
            (200, Some(("cache-control", "no-store")), "", false, false),
            (200, None, "private", false, true),
            (200, None, "private=\"x-a\", max-age=60", true, true),
            (200, Some(("authorization", "x")), "max-age=60", false, true),
            (200, Some(("authorization", "x")), "public, max-age=60", true, true),
            (200, Some(("authorization", "x")), "s-maxage=5", true, true),
            (299, None, "no-store, must-understand", false, false),
            (200, None, "no-store, must-understand, max-age=60", true, true),
        ];
        for (status, field, cc, in_shared, in_private) in table {
            let request = request(&field.into_iter().collect::<Vec<_>>());
            let mut head = head(status, &[]);
            head.headers = with_cc(cc);
            let row = format!("{status} {field:?} {cc:?}");
            assert_eq!(
                storable(&request, &head, &Options::default()),
                in_shared,
                "shared: {row}"
            );
            assert_eq!(
                storable(&request, &head, &private()),
                in_private,
                "private: {row}"
            );
        }
    }

    #[test]
    fn validators_cookies_and_a_surrogate_s_lifetime_decide_in_a_shared_cache() {
        type Row = (&'static [(&'static str, &'static str)], bool, bool);
        // Response fields, stored in a shared cache, in a private one.
        #[rustfmt::skip]
        let table: [Row; 9] = [
            (&[("etag", "\"a\"")], true, true),
            (&[("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT")], true, true),
            (&[("cache-control", "max-age=60"), ("set-cookie", "sid=1")], false, true),
            (&[("cache-control", "public, max-age=60"), ("set-cookie", "sid=1")], true, true),
            (&[("cache-control", "s-maxage=60"), ("set-cookie", "sid=1")], true, true),
            (&[("surrogate-control", "max-age=60"), ("set-cookie", "sid=1")], true, true),
            (&[("surrogate-control", "max-age=60"), ("cache-control", "private")], false, true),
            (&[("surrogate-control", "no-store"), ("cache-control", "max-age=60")], false, false),
            (&[("surrogate-control", "max-age=60"), ("cache-control", "no-store")], true, true),
        ];
        let surrogate = |shared| Options {
            surrogate: Some("edge".into()),
            shared,
            ..Options::default()
        };
        let anyone = request(&[]);
        for (fields, in_shared, in_private) in table {
            let head = head(200, fields);
            assert_eq!(
                storable(&anyone, &head, &surrogate(true)),
                in_shared,
                "shared: {fields:?}"
            );
            assert_eq!(
                storable(&anyone, &head, &surrogate(false)),
                in_private,
                "private: {fields:?}"
            );
        }
        let authorized = request(&[("authorization", "x")]);
        let lifetime = head(200, &[("surrogate-control", "max-age=60")]);
        assert!(
            !storable(&authorized, &lifetime, &surrogate(true)),
            "a surrogate's lifetime is no permission"
        );
        let refused = request(&[("cache-control", "no-store")]);
        assert!(
            !storable(&refused, &lifetime, &surrogate(true)),
            "nor does it outrank the request's no-store"
        );
        let lenient = Options {
            store_unmarked: true,
            private_set_cookie: false,
            ..Options::default()
        };
        assert!(storable(&anyone, &head(200, &[]), &lenient));
        let cookie = head(
            200,
            &[("set-cookie", "a=1"), ("cache-control", "max-age=1")],
        );
        assert!(storable(&anyone, &cookie, &lenient));
    }
}
