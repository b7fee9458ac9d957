//! Responses, policies and self-checking bodies the checks store.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use respcache_core::{CachePolicy, HttpResponse, HttpVersion};
use url::Url;

/// The URL fixtures answer.
pub fn url() -> Url {
    Url::parse("https://origin.example/resource?q=1").expect("a valid URL")
}

/// A policy for `response` as a shared cache would build it for a GET.
pub fn policy_for(response: &HttpResponse) -> CachePolicy {
    let request = http::Request::get(response.url.as_str())
        .header("accept", "text/plain")
        .body(())
        .expect("a valid request");
    let mut head = http::Response::new(());
    *head.status_mut() =
        http::StatusCode::from_u16(response.status).unwrap_or(http::StatusCode::OK);
    *head.headers_mut() = response.headers.clone();
    CachePolicy::new(&request, &head)
}

/// A 200 response with a few headers and `body`.
pub fn response(body: impl Into<Bytes>) -> HttpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("cache-control", HeaderValue::from_static("max-age=3600"));
    HttpResponse {
        status: 200,
        version: HttpVersion::Http11,
        headers,
        body: body.into(),
        url: url(),
    }
}

/// Header carrying the generation of a [`generated`] entry, so a reader can
/// tell a head of one write joined to the body of another.
pub const GENERATION_HEADER: &str = "x-conformance-generation";

/// A response whose body encodes `(key_index, generation, len)` and can be
/// checked byte for byte by [`verify_generated`], without remembering what
/// was written.
pub fn generated(key_index: u32, generation: u64, len: usize) -> HttpResponse {
    let mut body = format!("rc-body:{key_index}:{generation}:{len}\n").into_bytes();
    body.extend((0..len).map(|i| pattern_byte(key_index, generation, i)));
    let mut response = response(body);
    response.headers.insert(
        GENERATION_HEADER,
        HeaderValue::from_str(&generation.to_string()).expect("digits are a valid value"),
    );
    response
}

fn pattern_byte(key_index: u32, generation: u64, i: usize) -> u8 {
    let x = (i as u64)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(generation.wrapping_mul(31))
        .wrapping_add(u64::from(key_index) * 7);
    (x ^ (x >> 13)) as u8
}

/// Checks that `response` is exactly what [`generated`] made for
/// `key_index`; returns its generation.
pub fn verify_generated(key_index: u32, response: &HttpResponse) -> Result<u64, String> {
    let body = &response.body;
    let newline = body
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| format!("body of {} bytes has no header line", body.len()))?;
    let header = std::str::from_utf8(&body[..newline]).map_err(|_| "header is not UTF-8")?;
    let fields: Vec<&str> = header.split(':').collect();
    let [tag, key, generation, len] = fields.as_slice() else {
        return Err(format!("malformed body header {header:?}"));
    };
    let parse = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("bad number in {header:?}"))
    };
    let (key, generation, len) = (parse(key)?, parse(generation)?, parse(len)?);
    if *tag != "rc-body" || key != u64::from(key_index) {
        return Err(format!("body of key {key} read back under key {key_index}"));
    }
    let expected = generated(key_index, generation, len as usize);
    if response.body != expected.body {
        return Err(format!(
            "body of generation {generation} is damaged or mixed: {} bytes, expected {}",
            response.body.len(),
            expected.body.len()
        ));
    }
    let head_generation = response
        .headers
        .get(GENERATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if head_generation != Some(generation) {
        return Err(format!(
            "head of generation {head_generation:?} joined to body of generation {generation}"
        ));
    }
    Ok(generation)
}

/// An origin body that yields `frames` in order; an `Err` item makes the
/// body fail at that point, as a dropped origin connection would.
pub fn scripted_body(frames: Vec<Result<Bytes, respcache_core::StreamingError>>) -> ScriptedBody {
    ScriptedBody {
        frames: frames.into(),
    }
}

/// Splits `bytes` into frames of irregular sizes (1 byte to 300 KiB).
pub fn irregular_frames(bytes: &Bytes) -> Vec<Result<Bytes, respcache_core::StreamingError>> {
    const SIZES: [usize; 5] = [1, 7 * 1024, 64 * 1024, 300 * 1024, 333];
    let mut frames = Vec::new();
    let mut at = 0;
    for size in SIZES.iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size).min(bytes.len());
        frames.push(Ok(bytes.slice(at..end)));
        at = end;
    }
    frames
}

/// See [`scripted_body`].
#[derive(Debug)]
pub struct ScriptedBody {
    frames: std::collections::VecDeque<Result<Bytes, respcache_core::StreamingError>>,
}

impl http_body::Body for ScriptedBody {
    type Data = Bytes;
    type Error = respcache_core::StreamingError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.frames
                .pop_front()
                .map(|f| f.map(http_body::Frame::data)),
        )
    }
}

/// An origin body fed by hand, one frame at a time: the sender's frames,
/// then the end when the sender is dropped.
pub fn channel_body() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, respcache_core::StreamingError>>,
    ChannelBody,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, ChannelBody { rx })
}

/// See [`channel_body`].
#[derive(Debug)]
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, respcache_core::StreamingError>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = respcache_core::StreamingError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|f| f.map(http_body::Frame::data)))
    }
}
