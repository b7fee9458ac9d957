//! Freshness and age, computed from the stored head as RFC 9111 §4.2 says
//! (the policy crate's reading is laxer: it takes the first of several
//! `Age` values, reads directives case-sensitively, and refuses freshness
//! to `Set-Cookie` responses in shared caches).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::{HeaderMap, response};

use crate::directives::{Delta, Directives};
use crate::options::Options;
use crate::surrogate::SurrogateControl;

/// When the cache received the response, as milliseconds since the epoch;
/// kept in the stored head and never sent to clients.
pub(crate) const RECEIVED_FIELD: &str = "respcache-received";
const RECEIVED: header::HeaderName = header::HeaderName::from_static(RECEIVED_FIELD);

/// The largest delta-seconds a cache needs to count (RFC 9111 §1.2.2).
const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// Statuses a cache may give heuristic freshness (RFC 9110 §15.1).
pub(crate) const HEURISTIC_STATUSES: &[u16] =
    &[200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// The freshness of a stored response at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Freshness {
    pub(crate) lifetime: Duration,
    pub(crate) age: Duration,
}

impl Freshness {
    /// Computes freshness of `head` at `now`.
    pub(crate) fn of(head: &response::Parts, options: &Options, now: SystemTime) -> Self {
        let headers = &head.headers;
        let received = received_at(headers).unwrap_or(now);
        let date = single_date(headers, header::DATE)
            .flatten()
            .unwrap_or(received);
        let cc = crate::targeted::response_directives(headers, options);
        let surrogate = options
            .surrogate
            .as_deref()
            .and_then(|token| SurrogateControl::of(headers, token))
            .and_then(|control| control.max_age);
        let lifetime = match surrogate {
            Some(max_age) => max_age.map_or(Duration::ZERO, Duration::from_secs),
            None => lifetime(head, &cc, options.shared, options.heuristic_fraction, date),
        };
        // RFC 9111 §4.2.3, taking the response delay as nil.
        let apparent = received.duration_since(date).unwrap_or_default();
        let initial = apparent.max(age_value(headers));
        let resident = now.duration_since(received).unwrap_or_default();
        Self {
            lifetime,
            age: initial.saturating_add(resident),
        }
    }

    pub(crate) fn is_fresh(&self) -> bool {
        self.lifetime > self.age
    }

    /// Seconds of freshness left, negative when stale.
    pub(crate) fn ttl_seconds(&self) -> i64 {
        let millis = self.lifetime.as_millis() as i128 - self.age.as_millis() as i128;
        // Rounded down, so that a response stale by a moment reads -1.
        let seconds = millis.div_euclid(1000);
        seconds.clamp(i64::MIN.into(), i64::MAX.into()) as i64
    }

    /// How far past its lifetime the response is.
    pub(crate) fn staleness(&self) -> Duration {
        self.age.saturating_sub(self.lifetime)
    }
}

/// Records in a head about to be stored when it was received.
pub(crate) fn mark_received(headers: &mut HeaderMap, now: SystemTime) {
    let millis = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    headers.insert(RECEIVED, HeaderValue::from(millis as u64));
}

/// When the stored head says the cache received it.
pub(crate) fn received_at(headers: &HeaderMap) -> Option<SystemTime> {
    let millis: u64 = headers.get(RECEIVED)?.to_str().ok()?.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

/// The freshness lifetime (RFC 9111 §4.2.1): `s-maxage` in a shared
/// cache, then `max-age`, then `Expires` − `Date`, then a heuristic.
fn lifetime(
    head: &response::Parts,
    cc: &Directives,
    shared: bool,
    heuristic: f32,
    date: SystemTime,
) -> Duration {
    if cc.has("no-cache") && cc.fields("no-cache").is_empty() {
        return Duration::ZERO;
    }
    for directive in [shared.then_some("s-maxage"), Some("max-age")]
        .into_iter()
        .flatten()
    {
        match cc.delta(directive) {
            Delta::Absent => {}
            // An invalid value means already expired (RFC 9111 §4.2.1).
            Delta::Invalid => return Duration::ZERO,
            Delta::Seconds(seconds) => return Duration::from_secs(seconds),
        }
    }
    match single_date(&head.headers, header::EXPIRES) {
        Some(Some(expires)) => return expires.duration_since(date).unwrap_or_default(),
        // An invalid Expires, or several, means already expired.
        Some(None) => return Duration::ZERO,
        None => {}
    }
    let may_guess = HEURISTIC_STATUSES.contains(&head.status.as_u16()) || cc.has("public");
    match single_date(&head.headers, header::LAST_MODIFIED) {
        Some(Some(modified)) if may_guess && heuristic.is_finite() => {
            let since = date.duration_since(modified).unwrap_or_default();
            since.mul_f32(heuristic.clamp(0.0, 1.0))
        }
        _ => Duration::ZERO,
    }
}

/// `age_value` of RFC 9111 §4.2.3: "the value of the Age header field
/// ... or 0, if not available". The value is the first of the first
/// `Age` line; one that is not a non-negative integer (a word, a sign, a
/// fraction, a parameter) is not available. Values from 2^31 on count as
/// 2^31 (§1.2.2).
fn age_value(headers: &HeaderMap) -> Duration {
    let Some(line) = headers.get(header::AGE) else {
        return Duration::ZERO;
    };
    let first = line
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if first.is_empty() || !first.iter().all(u8::is_ascii_digit) {
        return Duration::ZERO;
    }
    let seconds = std::str::from_utf8(first)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok())
        .unwrap_or(MAX_DELTA_SECONDS);
    Duration::from_secs(seconds.min(MAX_DELTA_SECONDS))
}

/// A date field: `None` when absent, `Some(None)` when present but not one
/// valid HTTP-date.
fn single_date(headers: &HeaderMap, name: header::HeaderName) -> Option<Option<SystemTime>> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some(None);
    }
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v.trim()).ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&'static str, &str)]) -> response::Parts {
        let mut head = http::Response::new(()).into_parts().0;
        for (name, value) in pairs {
            head.headers.append(*name, value.parse().unwrap());
        }
        head
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn fresh_at(pairs: &[(&'static str, &str)], now: u64) -> Freshness {
        let mut head = head(pairs);
        mark_received(&mut head.headers, at(1_000_000));
        Freshness::of(&head, &Options::default(), at(now))
    }

    #[test]
    fn huge_ages_and_lifetimes_neither_overflow_nor_panic() {
        let age = fresh_at(
            &[
                ("cache-control", "max-age=60"),
                ("age", "18446744073709551615"),
            ],
            1_000_000 + 10,
        );
        assert!(!age.is_fresh());
        assert_eq!(age.age, Duration::from_secs((1 << 31) + 10));
        let lifetime = fresh_at(
            &[("cache-control", "max-age=18446744073709551615")],
            u64::MAX / 4,
        );
        assert!(lifetime.ttl_seconds() > 0, "{lifetime:?}");
        let stale = fresh_at(
            &[("cache-control", "max-age=0"), ("age", "9223372036854776")],
            1_000_001,
        );
        assert!(stale.ttl_seconds() < 0);
        let guessed = Freshness::of(
            &head(&[("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT")]),
            &Options {
                heuristic_fraction: f32::NAN,
                ..Options::default()
            },
            at(1_000_000),
        );
        assert_eq!(guessed.lifetime, Duration::ZERO);
    }

    #[test]
    fn max_age_counts_from_receipt_plus_age() {
        let f = fresh_at(&[("cache-control", "max-age=60"), ("age", "20")], 1_000_030);
        assert_eq!((f.lifetime.as_secs(), f.age.as_secs()), (60, 50));
        assert!(f.is_fresh());
        assert_eq!(f.ttl_seconds(), 10);
        assert!(!fresh_at(&[("cache-control", "max-age=60"), ("age", "20")], 1_000_041).is_fresh());
    }

    #[test]
    fn age_is_the_first_value_of_the_first_line_or_zero() {
        let age = |lines: &[&'static str]| {
            let mut pairs = vec![("cache-control", "max-age=3600")];
            pairs.extend(lines.iter().map(|line| ("age", *line)));
            fresh_at(&pairs, 1_000_000).age.as_secs()
        };
        assert_eq!(age(&[]), 0);
        assert_eq!(age(&["7200"]), 7200);
        assert_eq!(age(&["7200,0"]), 7200, "the first value");
        assert_eq!(age(&["0, 7200"]), 0);
        assert_eq!(age(&["7200", "0"]), 7200, "of the first line");
        assert_eq!(age(&["0", "7200"]), 0);
        for unavailable in ["abc", "-7200", "7200.0", "7200;foo=bar", "", " ,5"] {
            assert_eq!(
                age(&[unavailable]),
                0,
                "Age: {unavailable:?} is not available"
            );
        }
        assert_eq!(age(&["99999999999999999999999"]), 1 << 31);
    }

    #[test]
    fn s_maxage_wins_in_shared_caches_and_directives_ignore_case() {
        let f = fresh_at(&[("cache-control", "MAX-AGE=10, S-MAXAGE=100")], 1_000_050);
        assert_eq!(f.lifetime.as_secs(), 100);
        assert!(!fresh_at(&[("cache-control", "max-age=100, No-Cache")], 1_000_001).is_fresh());
    }

    #[test]
    fn expires_counts_from_date_and_invalid_expires_is_stale() {
        let date = httpdate::fmt_http_date(at(1_000_000));
        let expires = httpdate::fmt_http_date(at(1_000_100));
        let f = fresh_at(&[("date", &date), ("expires", &expires)], 1_000_050);
        assert_eq!(f.lifetime.as_secs(), 100);
        assert!(!fresh_at(&[("date", &date), ("expires", "0")], 1_000_000).is_fresh());
    }

    #[test]
    fn heuristic_freshness_is_a_fraction_of_the_time_since_modification() {
        let date = httpdate::fmt_http_date(at(1_000_000));
        let modified = httpdate::fmt_http_date(at(999_000));
        let f = fresh_at(&[("date", &date), ("last-modified", &modified)], 1_000_000);
        assert_eq!(f.lifetime.as_secs(), 100);
    }
}
