//! The access log: one line per request on stdout, written when its
//! response body has been sent (or the client went away), in the common
//! log format with the cache's fields added, or as JSON.

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use respcache_core::BoxError;

/// The access log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The common log format, then `cache=`, `origin_ms=` and `ms=`.
    Common,
    /// One JSON object per line.
    Json,
    /// No access log.
    Off,
}

/// What is known of a request when its response head is ready.
#[derive(Debug)]
pub struct Entry {
    format: Format,
    client: SocketAddr,
    method: Method,
    uri: Uri,
    version: Version,
    host: Option<String>,
    user_agent: Option<String>,
    referer: Option<String>,
    started: Instant,
    received: SystemTime,
    status: u16,
    cache: String,
    origin: Option<Duration>,
}

impl Entry {
    /// An entry for a request, or `None` when the log is off.
    pub fn start(
        format: Format,
        client: SocketAddr,
        parts: &http::request::Parts,
        started: Instant,
    ) -> Option<Self> {
        if format == Format::Off {
            return None;
        }
        let text = |name: http::HeaderName| {
            parts
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Some(Self {
            format,
            client,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            host: text(http::header::HOST),
            user_agent: text(http::header::USER_AGENT),
            referer: text(http::header::REFERER),
            started,
            received: SystemTime::now(),
            status: 0,
            cache: "-".to_owned(),
            origin: None,
        })
    }

    /// Notes the response's status and cache status; `to_head` is how
    /// long its head took, counted as origin time when the origin was
    /// asked.
    pub fn answered(&mut self, status: u16, headers: &HeaderMap, to_head: Duration) {
        self.status = status;
        self.cache = cache_status(headers);
        if self.cache != "hit" && self.cache != "-" {
            self.origin = Some(to_head);
        }
    }

    fn line(&self, bytes: u64) -> String {
        let ms = self.started.elapsed().as_millis();
        let origin_ms = self.origin.map(|d| d.as_millis());
        match self.format {
            Format::Json => serde_json::json!({
                "time": rfc3339(self.received),
                "client": self.client.ip().to_string(),
                "method": self.method.as_str(),
                "uri": self.uri.to_string(),
                "host": self.host,
                "protocol": format!("{:?}", self.version),
                "status": self.status,
                "bytes": bytes,
                "cache": self.cache,
                "origin_ms": origin_ms,
                "ms": ms,
                "referer": self.referer,
                "user_agent": self.user_agent,
            })
            .to_string(),
            _ => format!(
                "{} - - [{}] \"{} {} {:?}\" {} {} \"{}\" \"{}\" cache={} origin_ms={} ms={ms}",
                self.client.ip(),
                common_time(self.received),
                self.method,
                escaped(&self.uri.to_string()),
                self.version,
                self.status,
                bytes,
                quoted(self.referer.as_deref()),
                quoted(self.user_agent.as_deref()),
                self.cache,
                origin_ms.map_or_else(|| "-".to_owned(), |ms| ms.to_string()),
            ),
        }
    }
}

/// A request target inside the quoted request line: `"`, `\` and control
/// bytes escaped (`\"`, `\\`, `\xNN`), so that a target cannot end the
/// quotes and forge the fields after them; everything else as sent.
fn escaped(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A field's value inside a quoted log field: quotes and control bytes
/// escaped, so that a client cannot forge a line.
fn quoted(value: Option<&str>) -> String {
    match value {
        None => "-".to_owned(),
        Some(value) => value.escape_default().to_string(),
    }
}

/// What the cache did, in one word: `hit`, the reason it went to the
/// origin (`uri-miss`, `stale`, `bypass`, `method`, ...), or `-` for the
/// proxy's own answers.
fn cache_status(headers: &HeaderMap) -> String {
    let Some(value) = headers
        .get_all("cache-status")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
    else {
        return "-".to_owned();
    };
    for parameter in value.split(';').skip(1).map(str::trim) {
        if parameter == "hit" {
            return "hit".to_owned();
        }
        if let Some(reason) = parameter.strip_prefix("fwd=") {
            return reason.to_owned();
        }
    }
    "-".to_owned()
}

/// A response body that writes its request's log line once it has been
/// sent, or dropped unfinished.
pub struct Logged<B> {
    inner: B,
    entry: Option<Entry>,
    bytes: u64,
    /// Marks its connection busy until the body is sent or dropped.
    _active: Option<crate::connection::Active>,
}

impl<B> Logged<B> {
    /// Wraps `response`'s body; with no entry, nothing is logged. The
    /// connection counts as busy while `active` is held.
    pub fn wrap(
        response: Response<B>,
        entry: Option<Entry>,
        active: Option<crate::connection::Active>,
    ) -> Response<Self> {
        response.map(|inner| Self {
            inner,
            entry,
            bytes: 0,
            _active: active,
        })
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            let line = entry.line(self.bytes);
            let mut out = std::io::stdout().lock();
            if let Err(error) = writeln!(out, "{line}") {
                tracing::debug!(%error, "the access log could not be written");
            }
        }
    }
}

impl<B: Body<Data = Bytes, Error = BoxError> + Unpin> Body for Logged<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let len = data.len() as u64;
            self.bytes += len;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Days since the epoch as a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn split(time: SystemTime) -> (i64, u32, u32, u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil((seconds / 86_400) as i64);
    (year, month, day, seconds % 86_400, since.subsec_millis())
}

/// `02/Dec/2026:13:40:00 +0000`.
fn common_time(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, s, _) = split(time);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month as usize - 1) % 12],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-12-02T13:40:00.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let (year, month, day, s, ms) = split(time);
    format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_calendars_do() {
        // 2026-12-02T13:40:05.250Z
        let time = UNIX_EPOCH + Duration::from_millis(1_796_218_805_250);
        assert_eq!(rfc3339(time), "2026-12-02T13:40:05.250Z");
        assert_eq!(common_time(time), "02/Dec/2026:13:40:05 +0000");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn the_cache_status_is_one_word() {
        let mut headers = HeaderMap::new();
        assert_eq!(cache_status(&headers), "-");
        headers.insert("cache-status", "respcache; hit; ttl=5".parse().unwrap());
        assert_eq!(cache_status(&headers), "hit");
        headers.insert(
            "cache-status",
            "respcache; fwd=uri-miss; fwd-status=200; stored"
                .parse()
                .unwrap(),
        );
        assert_eq!(cache_status(&headers), "uri-miss");
    }

    #[test]
    fn a_client_cannot_forge_a_line() {
        assert_eq!(quoted(Some("a\"\nb")), "a\\\"\\nb");
    }
}
