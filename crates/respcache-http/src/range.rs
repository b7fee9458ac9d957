//! Single byte ranges served from a stored complete response (RFC 9110
//! §14): a client that asks for part of a stored body gets `206` with just
//! that part, without the origin.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode, response};
use http_body::{Body, Frame, SizeHint};
use respcache_core::BoxError;

use crate::body::CacheBody;

/// What to answer a `Range` request with, given the stored response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// No usable range: send the whole response.
    Whole,
    /// Send bytes `start..start + len` of `total`.
    Part { start: u64, len: u64, total: u64 },
    /// The range lies outside the body: `416`.
    Unsatisfiable { total: u64 },
}

/// Reads one `bytes=` range from the request against a stored `200`.
/// Several ranges, other units, or an `If-Range` that does not match give
/// the whole response, which RFC 9110 always allows.
pub(crate) fn answer(request: &HeaderMap, stored: &response::Parts) -> RangeAnswer {
    let total = stored
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (Some(total), StatusCode::OK) = (total, stored.status) else {
        return RangeAnswer::Whole;
    };
    if !if_range_matches(request, &stored.headers) {
        return RangeAnswer::Whole;
    }
    requested(request, total)
}

/// The one `bytes=` range a request asks for, in a representation of
/// `total` bytes; `Whole` when it asks for none, several, or another unit.
pub(crate) fn requested(request: &HeaderMap, total: u64) -> RangeAnswer {
    let Some(range) = request.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Whole;
    };
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (start, end) = match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) if suffix > 0 => {
            (total.saturating_sub(suffix), total.saturating_sub(1))
        }
        (true, _, _) => return RangeAnswer::Whole,
        (false, Some(start), None) if last.trim().is_empty() => (start, total.saturating_sub(1)),
        (false, Some(start), Some(end)) if end >= start => {
            (start, end.min(total.saturating_sub(1)))
        }
        _ => return RangeAnswer::Whole,
    };
    if start >= total {
        return RangeAnswer::Unsatisfiable { total };
    }
    RangeAnswer::Part {
        start,
        len: end - start + 1,
        total,
    }
}

/// The `Content-Range` of a `206` that carries one range of a
/// representation of known length: `bytes first-last/total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) total: u64,
}

impl ContentRange {
    /// The range in `headers`, when it is one well-formed byte range of a
    /// known total (RFC 9110 §14.4).
    pub(crate) fn of(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(header::CONTENT_RANGE).iter();
        let value = values.next()?.to_str().ok()?;
        if values.next().is_some() {
            return None;
        }
        let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        let (first, last, total) = (number(first)?, number(last)?, number(total)?);
        (first <= last && last < total).then_some(Self { first, last, total })
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// A decimal number of bytes, digits only.
fn number(text: &str) -> Option<u64> {
    let text = text.trim();
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn if_range_matches(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let Some(condition) = request.get(header::IF_RANGE) else {
        return true;
    };
    let condition = condition.as_bytes().trim_ascii();
    if condition.starts_with(b"\"") {
        // A strong comparison: weak tags never match.
        return stored
            .get(header::ETAG)
            .is_some_and(|etag| etag.as_bytes().trim_ascii() == condition);
    }
    stored
        .get(header::LAST_MODIFIED)
        .is_some_and(|modified| modified.as_bytes().trim_ascii() == condition)
}

/// Turns a stored head into the head of a `206` for `start..start+len`.
pub(crate) fn partial_head(head: &mut response::Parts, start: u64, len: u64, total: u64) {
    head.status = StatusCode::PARTIAL_CONTENT;
    head.headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let range = format!("bytes {start}-{}/{total}", start + len - 1);
    if let Ok(range) = HeaderValue::from_str(&range) {
        head.headers.insert(header::CONTENT_RANGE, range);
    }
}

/// Turns a stored head into the head of a `416`.
pub(crate) fn unsatisfiable_head(head: &mut response::Parts, total: u64) {
    head.status = StatusCode::RANGE_NOT_SATISFIABLE;
    head.headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    if let Ok(range) = HeaderValue::from_str(&format!("bytes */{total}")) {
        head.headers.insert(header::CONTENT_RANGE, range);
    }
}

/// The bytes `skip..skip + take` of a body.
pub(crate) struct Slice {
    inner: CacheBody,
    skip: u64,
    take: u64,
}

impl Slice {
    pub(crate) fn new(inner: CacheBody, skip: u64, take: u64) -> Self {
        Self { inner, skip, take }
    }
}

impl Body for Slice {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.take == 0 {
                return Poll::Ready(None);
            }
            let Some(frame) = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) else {
                return Poll::Ready(Some(Err("the stored body ended before the range".into())));
            };
            let mut data = match frame?.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            };
            let skip = self.skip.min(data.len() as u64);
            self.skip -= skip;
            data = data.slice(skip as usize..);
            let take = self.take.min(data.len() as u64);
            self.take -= take;
            data.truncate(take as usize);
            if !data.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.take == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.take)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn stored(len: u64) -> response::Parts {
        let mut head = http::Response::new(()).into_parts().0;
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        head.headers
            .insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        head
    }

    fn range(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn single_ranges_read_as_the_rfc_says() {
        let part = |start, len| RangeAnswer::Part {
            start,
            len,
            total: 10,
        };
        assert_eq!(answer(&range("bytes=0-1"), &stored(10)), part(0, 2));
        assert_eq!(answer(&range("bytes=5-"), &stored(10)), part(5, 5));
        assert_eq!(answer(&range("bytes=-3"), &stored(10)), part(7, 3));
        assert_eq!(answer(&range("bytes=8-100"), &stored(10)), part(8, 2));
        assert_eq!(
            answer(&range("bytes=10-"), &stored(10)),
            RangeAnswer::Unsatisfiable { total: 10 }
        );
        for whole in ["bytes=0-1,3-4", "items=0-1", "bytes=3-1", "bytes=a-"] {
            let mut headers = HeaderMap::new();
            headers.insert(header::RANGE, HeaderValue::from_static(whole));
            assert_eq!(answer(&headers, &stored(10)), RangeAnswer::Whole, "{whole}");
        }
        let mut stale_tag = range("bytes=0-1");
        stale_tag.insert(header::IF_RANGE, HeaderValue::from_static("\"v0\""));
        assert_eq!(answer(&stale_tag, &stored(10)), RangeAnswer::Whole);
    }

    #[test]
    fn content_ranges_are_one_known_range_or_none() {
        let of = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_RANGE, HeaderValue::from_static(value));
            ContentRange::of(&headers)
        };
        let range = of("bytes 4-9/10").unwrap();
        assert_eq!(
            (range.first, range.last, range.total, range.len()),
            (4, 9, 10, 6)
        );
        for invalid in [
            "bytes 4-9/*",
            "bytes */10",
            "bytes 9-4/10",
            "bytes 4-10/10",
            "items 1-2/3",
            "bytes a-b/c",
        ] {
            assert_eq!(of(invalid), None, "{invalid}");
        }
    }

    #[tokio::test]
    async fn a_slice_spans_frames() {
        let frames = ["012", "3456", "789"].map(|f| Ok::<_, BoxError>(Frame::data(Bytes::from(f))));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let slice = Slice::new(crate::body::boxed(body), 2, 6);
        assert_eq!(slice.collect().await.unwrap().to_bytes(), "234567");
    }
}
