//! The RFC 9211 `Cache-Status` field: what the cache did for a response.

use std::fmt::Write;

use http::HeaderValue;

/// Why a request went to the origin (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// The cache does not handle this request (mode `NoStore`).
    Bypass,
    /// The method is not one the cache answers from storage.
    Method,
    /// Nothing is stored for the URL.
    UriMiss,
    /// Something is stored for the URL, but not for this request's `Vary`
    /// field values.
    VaryMiss,
    /// The request asked for the origin (`no-cache`, `Reload`).
    Request,
    /// The stored response was stale.
    Stale,
}

impl Forward {
    fn token(self) -> &'static str {
        match self {
            Forward::Bypass => "bypass",
            Forward::Method => "method",
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Request => "request",
            Forward::Stale => "stale",
        }
    }
}

/// Where the bytes of a response's body come from, in the response's
/// extensions: for counting what the cache saved the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySource {
    /// Read from storage: a hit, or a stored body served after a `304` or
    /// in place of an error.
    Storage,
    /// The origin's answer to this request.
    Origin,
    /// The origin's answer to another request, read as it arrived
    /// (request coalescing).
    Coalesced,
}

/// One cache's member of the `Cache-Status` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Served from storage without going to the origin.
    pub hit: bool,
    /// Why the origin was asked.
    pub fwd: Option<Forward>,
    /// The origin's status, when it was asked.
    pub fwd_status: Option<u16>,
    /// The response was stored.
    pub stored: bool,
    /// The request waited for another request's origin response.
    pub collapsed: bool,
    /// Seconds of freshness left (negative when stale).
    pub ttl: Option<i64>,
}

impl CacheStatus {
    /// A hit with `ttl` seconds of freshness left.
    pub fn hit(ttl: i64) -> Self {
        Self {
            hit: true,
            ttl: Some(ttl),
            ..Self::default()
        }
    }

    /// A forward for `why`.
    pub fn forward(why: Forward) -> Self {
        Self {
            fwd: Some(why),
            ..Self::default()
        }
    }

    /// `x-cache` and `x-cache-lookup` as `http-cache` sets them, for
    /// [`Options::x_cache_headers`](crate::Options::x_cache_headers).
    /// `x-cache` is `HIT` when the body is read from storage: `served`
    /// says the response took the storage path (a fresh hit, a stored
    /// response revalidated by a `304`, or one served stale), except for
    /// a follower reading another request's origin answer as it arrives
    /// (`collapsed` without `hit`). `x-cache-lookup` is `HIT` when a
    /// stored response for the request was found, used or revalidated.
    pub fn x_cache(&self, served: bool) -> (&'static str, &'static str) {
        let from_storage = served && (self.hit || !self.collapsed);
        let found = from_storage || self.hit || self.fwd == Some(Forward::Stale);
        let hit_or_miss = |yes: bool| if yes { "HIT" } else { "MISS" };
        (hit_or_miss(from_storage), hit_or_miss(found))
    }

    /// The field value for a cache called `name`.
    pub fn to_header(&self, name: &str) -> HeaderValue {
        let mut value = name.to_owned();
        if self.hit {
            value.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            let _ = write!(value, "; fwd={}", fwd.token());
        }
        if let Some(status) = self.fwd_status {
            let _ = write!(value, "; fwd-status={status}");
        }
        if self.stored {
            value.push_str("; stored");
        }
        if self.collapsed {
            value.push_str("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(value, "; ttl={ttl}");
        }
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("respcache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_written_in_rfc_9211_syntax() {
        let mut status = CacheStatus::forward(Forward::Stale);
        status.fwd_status = Some(304);
        status.stored = true;
        status.ttl = Some(60);
        assert_eq!(
            status.to_header("respcache"),
            "respcache; fwd=stale; fwd-status=304; stored; ttl=60"
        );
        assert_eq!(CacheStatus::hit(-3).to_header("edge"), "edge; hit; ttl=-3");
    }

    #[test]
    fn x_cache_reads_storage_and_lookup_as_http_cache_does() {
        let waited_then_read = CacheStatus {
            collapsed: true,
            ..CacheStatus::hit(60)
        };
        let mut followed = CacheStatus::forward(Forward::UriMiss);
        followed.collapsed = true;
        let mut revalidated = CacheStatus::forward(Forward::Stale);
        revalidated.fwd_status = Some(304);
        let mut replaced = CacheStatus::forward(Forward::Stale);
        replaced.fwd_status = Some(200);
        let cases = [
            (CacheStatus::hit(5), true, ("HIT", "HIT")),
            (waited_then_read, true, ("HIT", "HIT")),
            (followed, true, ("MISS", "MISS")),
            (revalidated, true, ("HIT", "HIT")),
            (replaced, false, ("MISS", "HIT")),
            (
                CacheStatus::forward(Forward::UriMiss),
                false,
                ("MISS", "MISS"),
            ),
            (
                CacheStatus::forward(Forward::VaryMiss),
                false,
                ("MISS", "MISS"),
            ),
        ];
        for (status, served, expected) in cases {
            assert_eq!(status.x_cache(served), expected, "{status:?}");
        }
    }
}
