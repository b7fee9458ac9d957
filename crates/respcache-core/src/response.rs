//! [`HttpResponse`]: a whole response as a cache stores it, and its
//! lossless conversions to and from `http` types.

use bytes::Bytes;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::CacheError;

/// The HTTP version a response was received with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HttpVersion {
    /// HTTP/0.9
    Http09,
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
    /// HTTP/2
    H2,
    /// HTTP/3
    H3,
}

impl HttpVersion {
    /// Every version, oldest first.
    pub const ALL: [HttpVersion; 5] = [
        HttpVersion::Http09,
        HttpVersion::Http10,
        HttpVersion::Http11,
        HttpVersion::H2,
        HttpVersion::H3,
    ];
}

impl From<HttpVersion> for http::Version {
    fn from(version: HttpVersion) -> Self {
        match version {
            HttpVersion::Http09 => http::Version::HTTP_09,
            HttpVersion::Http10 => http::Version::HTTP_10,
            HttpVersion::Http11 => http::Version::HTTP_11,
            HttpVersion::H2 => http::Version::HTTP_2,
            HttpVersion::H3 => http::Version::HTTP_3,
        }
    }
}

impl From<http::Version> for HttpVersion {
    fn from(version: http::Version) -> Self {
        match version {
            http::Version::HTTP_09 => HttpVersion::Http09,
            http::Version::HTTP_10 => HttpVersion::Http10,
            http::Version::HTTP_2 => HttpVersion::H2,
            http::Version::HTTP_3 => HttpVersion::H3,
            // `http::Version` is an opaque struct with exactly these five
            // values; anything else can only be a future version, and
            // HTTP/1.1 semantics are the safe reading of it.
            _ => HttpVersion::Http11,
        }
    }
}

/// A complete HTTP response as a cache stores it.
///
/// Headers are an [`http::HeaderMap`], so every value of a repeated field
/// (`Set-Cookie`, `Vary`, `Link`) is kept in order, and values that are not
/// UTF-8 are kept byte for byte; the serde form keeps all of that too.
///
/// ```
/// use bytes::Bytes;
/// use respcache_core::{HttpResponse, HttpVersion};
///
/// let origin = http::Response::builder()
///     .status(200)
///     .header("set-cookie", "a=1")
///     .header("set-cookie", "b=2")
///     .body(Bytes::from_static(b"hello"))?;
/// let url = url::Url::parse("https://example.com/")?;
///
/// let stored = HttpResponse::from_http(origin, url.clone());
/// assert_eq!(stored.version, HttpVersion::Http11);
/// assert_eq!(stored.headers.get_all("set-cookie").iter().count(), 2);
///
/// let back = stored.into_http()?;
/// assert_eq!(back.extensions().get::<url::Url>(), Some(&url));
/// assert_eq!(back.body(), &Bytes::from_static(b"hello"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// The status code. Any value is kept; [`HttpResponse::into_http`]
    /// accepts 100..=999, as `http::StatusCode` does.
    pub status: u16,
    /// The HTTP version.
    pub version: HttpVersion,
    /// Every header field, in order, with raw values.
    #[serde(with = "crate::headers::serde_header_map")]
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The URL the response answers.
    pub url: Url,
}

impl HttpResponse {
    /// Builds a response from the parts of an `http` response, its body and
    /// the URL it answers.
    pub fn from_parts(parts: http::response::Parts, body: Bytes, url: Url) -> Self {
        Self {
            status: parts.status.as_u16(),
            version: parts.version.into(),
            headers: parts.headers,
            body,
            url,
        }
    }

    /// Builds a response from an `http::Response` and the URL it answers.
    pub fn from_http(response: http::Response<Bytes>, url: Url) -> Self {
        let (parts, body) = response.into_parts();
        Self::from_parts(parts, body, url)
    }

    /// The status, version and headers as `http::response::Parts`, with the
    /// URL in the extensions.
    pub fn parts(&self) -> std::result::Result<http::response::Parts, CacheError> {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = http::StatusCode::from_u16(self.status).map_err(|_| {
            CacheError::InvalidResponse(format!("status {} is outside 100..=999", self.status))
        })?;
        parts.version = self.version.into();
        parts.headers = self.headers.clone();
        parts.extensions.insert(self.url.clone());
        Ok(parts)
    }

    /// Converts into an `http::Response`, with the URL in its extensions,
    /// so that [`HttpResponse::try_from`] gets back the same value.
    pub fn into_http(self) -> std::result::Result<http::Response<Bytes>, CacheError> {
        let status = http::StatusCode::from_u16(self.status).map_err(|_| {
            CacheError::InvalidResponse(format!("status {} is outside 100..=999", self.status))
        })?;
        let mut response = http::Response::new(self.body);
        *response.status_mut() = status;
        *response.version_mut() = self.version.into();
        *response.headers_mut() = self.headers;
        response.extensions_mut().insert(self.url);
        Ok(response)
    }
}

/// A copy of a response head: status, version and headers. Extensions are
/// not `Clone`, so they stay behind; a streaming put keeps the original
/// head for the caller and stores this copy.
pub fn clone_head(parts: &http::response::Parts) -> http::response::Parts {
    let (mut copy, ()) = http::Response::new(()).into_parts();
    copy.status = parts.status;
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

/// Converts a response made by [`HttpResponse::into_http`] (or any response
/// carrying its `Url` in the extensions) back, losslessly.
impl TryFrom<http::Response<Bytes>> for HttpResponse {
    type Error = CacheError;

    fn try_from(response: http::Response<Bytes>) -> std::result::Result<Self, CacheError> {
        let (mut parts, body) = response.into_parts();
        let url = parts.extensions.remove::<Url>().ok_or_else(|| {
            CacheError::InvalidResponse("the response carries no Url in its extensions".into())
        })?;
        Ok(Self::from_parts(parts, body, url))
    }
}

impl TryFrom<HttpResponse> for http::Response<Bytes> {
    type Error = CacheError;

    fn try_from(response: HttpResponse) -> std::result::Result<Self, CacheError> {
        response.into_http()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn sample() -> HttpResponse {
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("vary", HeaderValue::from_static("accept"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        headers.append("x-raw", HeaderValue::from_bytes(b"caf\xe9 \xff").unwrap());
        HttpResponse {
            status: 299,
            version: HttpVersion::H2,
            headers,
            body: Bytes::from((0..=255u8).collect::<Vec<_>>()),
            url: Url::parse("https://example.com/a?b=c").unwrap(),
        }
    }

    #[test]
    fn http_round_trip_is_lossless() {
        let original = sample();
        let back = HttpResponse::try_from(original.clone().into_http().unwrap()).unwrap();
        assert_eq!(back, original);
        let cookies: Vec<_> = back.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn every_version_converts_both_ways() {
        for version in HttpVersion::ALL {
            assert_eq!(HttpVersion::from(http::Version::from(version)), version);
        }
    }

    #[test]
    fn status_outside_http_range_is_an_error_not_a_panic() {
        let mut response = sample();
        response.status = 1000;
        assert!(matches!(
            response.clone().into_http(),
            Err(CacheError::InvalidResponse(_))
        ));
        assert!(response.parts().is_err());
    }

    #[test]
    fn serde_round_trip_keeps_raw_headers_in_json_and_bincode() {
        let original = sample();
        let json = serde_json::to_vec(&original).unwrap();
        assert_eq!(
            serde_json::from_slice::<HttpResponse>(&json).unwrap(),
            original
        );
        let binary = bincode::serialize(&original).unwrap();
        assert_eq!(
            bincode::deserialize::<HttpResponse>(&binary).unwrap(),
            original
        );
    }
}
