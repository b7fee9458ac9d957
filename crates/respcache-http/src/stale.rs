//! Stale responses, as pure functions: when one may stand in for the
//! origin's answer, and so how long an entry is worth keeping.

use std::time::Duration;

use http::HeaderMap;

use crate::directives::Directives;
use crate::freshness::Freshness;
use crate::options::{CacheMode, Options};
use crate::targeted::response_directives;

/// Whether a stale response may be served at all: `must-revalidate`
/// (and, in a shared cache, `proxy-revalidate` and `s-maxage`) forbid it.
pub(crate) fn may_serve_stale(stored: &HeaderMap, options: &Options) -> bool {
    let shared = options.shared;
    let cc = response_directives(stored, options);
    !cc.has("must-revalidate")
        && !cc.has("no-cache")
        && !(shared && (cc.has("proxy-revalidate") || cc.has("s-maxage")))
}

/// Whether a stale response may stand in for the origin's answer when
/// nothing but the cache's own rule says so (`max-stale`,
/// `stale-if-error`, a disconnected origin): as [`may_serve_stale`], and
/// in a shared cache with [`Options::stale_only_if_explicit`], only when
/// the response stated its own freshness.
pub(crate) fn may_stand_in(stored: &HeaderMap, options: &Options) -> bool {
    may_serve_stale(stored, options)
        && (!options.shared
            || !options.stale_only_if_explicit
            || crate::rules::explicitly_fresh(stored, options))
}

/// RFC 9111 §4.2.4: a cache that cannot reach the origin may serve a
/// stale response unless the response forbids it.
pub(crate) fn may_serve_disconnected(stored: &HeaderMap, options: &Options) -> bool {
    options.serve_stale_when_disconnected && may_stand_in(stored, options)
}

/// RFC 5861 `stale-if-error`, from the response or the request: whether
/// a stored response this stale may stand in for an error.
pub(crate) fn within_stale_if_error(
    request: &HeaderMap,
    stored: &HeaderMap,
    freshness: &Freshness,
    options: &Options,
) -> bool {
    let window = [
        response_directives(stored, options),
        Directives::of(request),
    ]
    .iter()
    .filter_map(|cc| cc.delta("stale-if-error").seconds())
    .max();
    window.is_some_and(|window| {
        may_stand_in(stored, options) && freshness.staleness() <= Duration::from_secs(window)
    })
}

/// How long an entry just stored (or refreshed) is worth keeping, as
/// the backend is told: the freshness it has left, plus the stale
/// windows it may be served in, plus [`Options::keep_stale`] when it can
/// still be of use once stale (it has a validator to revalidate with, it
/// may be served while the origin is down, or `mode` serves entries
/// whatever their age). At least a second.
pub(crate) fn keep_for(
    stored: &HeaderMap,
    freshness: &Freshness,
    mode: CacheMode,
    options: &Options,
) -> Duration {
    let forcing = matches!(
        mode,
        CacheMode::ForceCache | CacheMode::OnlyIfCached | CacheMode::IgnoreRules
    ) || matches!(
        options.mode,
        CacheMode::ForceCache | CacheMode::OnlyIfCached | CacheMode::IgnoreRules
    );
    let fresh_left = freshness.lifetime.saturating_sub(freshness.age);
    let cc = response_directives(stored, options);
    let windows = if may_serve_stale(stored, options) {
        ["stale-while-revalidate", "stale-if-error"]
            .iter()
            .filter_map(|name| cc.delta(name).seconds())
            .max()
            .map_or(Duration::ZERO, Duration::from_secs)
    } else {
        Duration::ZERO
    };
    let mut keep = fresh_left.saturating_add(windows);
    if forcing {
        keep = keep.max(options.max_ttl.unwrap_or(Duration::ZERO));
    }
    let useful_stale =
        crate::rules::has_validator(stored) || forcing || may_serve_disconnected(stored, options);
    if useful_stale {
        keep = keep.saturating_add(options.keep_stale);
    }
    keep.max(Duration::from_secs(1))
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

    /// Freshness of a response with `lifetime` seconds at `age` seconds.
    fn freshness(lifetime: u64, age: u64) -> Freshness {
        Freshness {
            lifetime: Duration::from_secs(lifetime),
            age: Duration::from_secs(age),
        }
    }

    #[test]
    fn stale_if_error_takes_the_wider_of_the_two_windows() {
        let shared = Options::default();
        let stored = headers(&[("cache-control", "max-age=1, stale-if-error=10")]);
        let asks = headers(&[("cache-control", "stale-if-error=100")]);
        let none = HeaderMap::new();
        assert!(within_stale_if_error(
            &none,
            &stored,
            &freshness(1, 9),
            &shared
        ));
        assert!(!within_stale_if_error(
            &none,
            &stored,
            &freshness(1, 50),
            &shared
        ));
        assert!(within_stale_if_error(
            &asks,
            &stored,
            &freshness(1, 50),
            &shared
        ));
        let forbids = headers(&[("cache-control", "max-age=1, must-revalidate")]);
        assert!(!within_stale_if_error(
            &asks,
            &forbids,
            &freshness(1, 2),
            &shared
        ));
    }

    #[test]
    fn in_a_shared_cache_only_a_response_that_stated_its_freshness_stands_in() {
        let shared = Options::default();
        let unmarked = headers(&[("etag", "\"a\""), ("cache-control", "stale-if-error=100")]);
        let explicit = headers(&[
            ("etag", "\"a\""),
            ("cache-control", "max-age=0, stale-if-error=100"),
        ]);
        let expires = headers(&[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")]);
        assert!(!may_stand_in(&unmarked, &shared));
        assert!(!may_serve_disconnected(&unmarked, &shared));
        assert!(!within_stale_if_error(
            &HeaderMap::new(),
            &unmarked,
            &freshness(0, 5),
            &shared
        ));
        assert!(may_stand_in(&explicit, &shared));
        assert!(may_serve_disconnected(&expires, &shared));
        let lenient = Options {
            stale_only_if_explicit: false,
            ..Options::default()
        };
        assert!(may_stand_in(&unmarked, &lenient));
        let private = Options {
            shared: false,
            ..Options::default()
        };
        assert!(
            may_stand_in(&unmarked, &private),
            "a private cache serves its own user"
        );
    }

    #[test]
    fn an_entry_is_kept_while_it_can_still_be_served_or_revalidated() {
        let options = Options {
            keep_stale: Duration::from_secs(1000),
            serve_stale_when_disconnected: false,
            ..Options::default()
        };
        let keep = |fields: &[(&'static str, &'static str)], mode, options: &Options| {
            keep_for(&headers(fields), &freshness(60, 10), mode, options).as_secs()
        };
        let default = CacheMode::Default;
        let explicit = ("cache-control", "max-age=60");
        assert_eq!(keep(&[explicit], default, &options), 50, "fresh time only");
        assert_eq!(
            keep(&[explicit, ("etag", "\"a\"")], default, &options),
            1050,
            "a validator earns the allowance"
        );
        let windows = (
            "cache-control",
            "max-age=60, stale-while-revalidate=30, stale-if-error=300",
        );
        assert_eq!(
            keep(&[windows], default, &options),
            350,
            "the wider stale window"
        );
        let strict = (
            "cache-control",
            "max-age=60, must-revalidate, stale-if-error=300",
        );
        assert_eq!(
            keep(&[strict], default, &options),
            50,
            "no stale window where stale is forbidden"
        );
        assert_eq!(keep(&[explicit], CacheMode::ForceCache, &options), 1050);
        let disconnected = Options {
            serve_stale_when_disconnected: true,
            ..options.clone()
        };
        assert_eq!(
            keep(&[explicit], default, &disconnected),
            1050,
            "served while the origin is down"
        );
        assert_eq!(
            keep(&[], default, &disconnected),
            50,
            "but not an unmarked one, shared"
        );
        let at_least_a_second = keep_for(&HeaderMap::new(), &freshness(0, 10), default, &options);
        assert_eq!(at_least_a_second, Duration::from_secs(1));
    }
}
