//! Stale responses, as pure functions: when one may stand in for the
//! origin's answer, and so how long an entry is worth keeping.

use std::time::Duration;

use http::{HeaderMap, header};

use crate::directives::Directives;
use crate::freshness::Freshness;
use crate::options::{CacheMode, Options};

/// Whether a stale response may be served at all: `must-revalidate`
/// (and, in a shared cache, `proxy-revalidate` and `s-maxage`) forbid it.
pub(crate) fn may_serve_stale(stored: &HeaderMap, shared: bool) -> bool {
    let cc = Directives::of(stored);
    !cc.has("must-revalidate")
        && !cc.has("no-cache")
        && !(shared && (cc.has("proxy-revalidate") || cc.has("s-maxage")))
}

/// RFC 9111 §4.2.4: a cache that cannot reach the origin may serve a
/// stale response unless the response forbids it.
pub(crate) fn may_serve_disconnected(stored: &HeaderMap, options: &Options) -> bool {
    options.serve_stale_when_disconnected && may_serve_stale(stored, options.shared)
}

/// RFC 5861 `stale-if-error`, from the response or the request: whether
/// a stored response this stale may stand in for an error.
pub(crate) fn within_stale_if_error(
    request: &HeaderMap,
    stored: &HeaderMap,
    freshness: &Freshness,
    shared: bool,
) -> bool {
    let window = [Directives::of(stored), Directives::of(request)]
        .iter()
        .filter_map(|cc| cc.delta("stale-if-error").seconds())
        .max();
    window.is_some_and(|window| {
        may_serve_stale(stored, shared) && freshness.staleness() <= Duration::from_secs(window)
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
    let stale_ok = may_serve_stale(stored, options.shared);
    let cc = Directives::of(stored);
    let windows = if stale_ok {
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
    let has_validator =
        stored.contains_key(header::ETAG) || stored.contains_key(header::LAST_MODIFIED);
    let useful_stale =
        has_validator || forcing || (stale_ok && options.serve_stale_when_disconnected);
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
        let stored = headers(&[("cache-control", "max-age=1, stale-if-error=10")]);
        let asks = headers(&[("cache-control", "stale-if-error=100")]);
        assert!(within_stale_if_error(
            &HeaderMap::new(),
            &stored,
            &freshness(1, 9),
            true
        ));
        assert!(!within_stale_if_error(
            &HeaderMap::new(),
            &stored,
            &freshness(1, 50),
            true
        ));
        assert!(within_stale_if_error(
            &asks,
            &stored,
            &freshness(1, 50),
            true
        ));
        let forbids = headers(&[("cache-control", "max-age=1, must-revalidate")]);
        assert!(!within_stale_if_error(
            &asks,
            &forbids,
            &freshness(1, 2),
            true
        ));
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
        assert_eq!(keep(&[], default, &options), 50, "fresh time only");
        assert_eq!(
            keep(&[("etag", "\"a\"")], default, &options),
            1050,
            "a validator earns the allowance"
        );
        assert_eq!(
            keep(
                &[(
                    "cache-control",
                    "stale-while-revalidate=30, stale-if-error=300"
                )],
                default,
                &options
            ),
            350,
            "the wider stale window"
        );
        assert_eq!(
            keep(
                &[("cache-control", "must-revalidate, stale-if-error=300")],
                default,
                &options
            ),
            50,
            "no stale window where stale is forbidden"
        );
        assert_eq!(keep(&[], CacheMode::ForceCache, &options), 1050);
        let disconnected = Options {
            serve_stale_when_disconnected: true,
            ..options.clone()
        };
        assert_eq!(keep(&[], default, &disconnected), 1050);
        let at_least_a_second = keep_for(&HeaderMap::new(), &freshness(0, 10), default, &options);
        assert_eq!(at_least_a_second, Duration::from_secs(1));
    }
}
