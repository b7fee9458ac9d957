use bytes::Bytes;
use http::HeaderValue;
use respcache_core::{CacheManager, HttpResponse, HttpVersion};

use crate::checks::{fetch, fetch_as, missing, store, verify};
use crate::failure::{Context, FailureKind};
use crate::{CheckResult, Failure, Harness, ensure, ensure_eq, fixtures};

/// A key never stored reads as `Ok(None)`, also beside a stored key.
pub async fn get_of_missing_key_is_none<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    store(&*manager, "stored", fixtures::response("present")).await?;
    let found = fetch_as(FailureKind::MissingKey, &*manager, "never-stored").await?;
    ensure!(
        MissingKey,
        found.is_none(),
        "a key never stored returned an entry"
    );
    Ok(())
}

/// Deleting a key never stored is `Ok(())`, and does not create it.
pub async fn delete_of_missing_key_is_ok<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    manager
        .delete("never-stored")
        .await
        .context_as(FailureKind::MissingKey, "delete of a missing key")?;
    ensure!(
        MissingKey,
        fetch(&*manager, "never-stored").await?.is_none(),
        "delete created an entry"
    );
    Ok(())
}

/// A response with everything a round trip can lose: repeated and
/// non-UTF-8 header values, a binary body, an unusual status and version.
fn rich_response() -> Result<HttpResponse, Failure> {
    let mut response = fixtures::response((0..=255u8).rev().collect::<Vec<u8>>());
    response.status = 203;
    response.version = HttpVersion::H2;
    for value in ["a=1", "b=2"] {
        response
            .headers
            .append("set-cookie", HeaderValue::from_static(value));
    }
    response.headers.append(
        "x-raw",
        HeaderValue::from_bytes(b"caf\xe9").context("value")?,
    );
    Ok(response)
}

/// `put` returns the response it stored: what `get` then reads, which is
/// the response it was given. A wrapper that returns its input but stores
/// something else fails.
pub async fn put_returns_the_stored_response<H: Harness>(h: &H) -> CheckResult {
    let response = rich_response()?;
    let policy = fixtures::policy_for(&response);
    let manager = h.manager();
    let returned = manager
        .put("k".into(), response.clone(), policy)
        .await
        .context("put")?;
    let stored = fetch(&*manager, "k")
        .await?
        .ok_or_else(|| missing(FailureKind::RoundTrip, "k"))?;
    ensure_eq!(
        PutResult,
        returned,
        stored,
        "put returned another response than the one get reads back"
    );
    ensure_eq!(
        RoundTrip,
        stored,
        response,
        "round trip changed the response"
    );
    Ok(())
}

/// Status, version, headers, body and URL come back exactly as stored.
pub async fn round_trip_keeps_status_version_headers_body_and_url<H: Harness>(
    h: &H,
) -> CheckResult {
    let mut response = fixtures::response("body");
    response.status = 203;
    response.version = HttpVersion::H2;
    response.url = url::Url::parse("https://other.example:8443/a/b?c=d#frag").context("url")?;
    response
        .headers
        .insert("etag", HeaderValue::from_static("\"v1\""));
    store(&*h.manager(), "k", response.clone()).await?;
    let back = fetch(&*h.manager(), "k").await?;
    ensure_eq!(
        RoundTrip,
        back,
        Some(response),
        "round trip changed the response"
    );
    Ok(())
}

/// Every HTTP version, 0.9 to 3, survives a round trip.
pub async fn round_trip_keeps_every_http_version<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    for version in HttpVersion::ALL {
        let mut response = fixtures::response("v");
        response.version = version;
        let key = format!("version-{version:?}");
        store(&*manager, &key, response).await?;
        let back = fetch(&*manager, &key).await?.map(|r| r.version);
        ensure_eq!(RoundTrip, back, Some(version), "version did not survive");
    }
    Ok(())
}

/// Repeated `Set-Cookie`, `Vary` and `Link` fields keep every value, in order.
pub async fn round_trip_keeps_repeated_header_values_in_order<H: Harness>(h: &H) -> CheckResult {
    let mut response = fixtures::response("repeated");
    for (name, value) in [
        ("set-cookie", "a=1; Path=/"),
        ("vary", "accept-encoding"),
        ("set-cookie", "b=2; HttpOnly"),
        ("link", "</style.css>; rel=preload"),
        ("vary", "accept-language"),
        ("set-cookie", "c=3"),
        ("link", "</app.js>; rel=preload"),
    ] {
        response
            .headers
            .append(name, HeaderValue::from_static(value));
    }
    store(&*h.manager(), "k", response.clone()).await?;
    let back = fetch(&*h.manager(), "k")
        .await?
        .ok_or_else(|| missing(FailureKind::RoundTrip, "k"))?;
    for name in ["set-cookie", "vary", "link"] {
        let want: Vec<_> = response.headers.get_all(name).iter().collect();
        let got: Vec<_> = back.headers.get_all(name).iter().collect();
        ensure_eq!(RoundTrip, got, want, "values of {name}");
    }
    ensure_eq!(RoundTrip, back.headers, response.headers, "headers");
    Ok(())
}

/// Header values that are not UTF-8 come back byte for byte.
pub async fn round_trip_keeps_non_utf8_header_values<H: Harness>(h: &H) -> CheckResult {
    let raw: &[u8] = b"caf\xe9; \xff\xfe filename=\xc3\x28";
    let mut response = fixtures::response("latin-1");
    response.headers.insert(
        "content-disposition",
        HeaderValue::from_bytes(raw).context("value")?,
    );
    response
        .headers
        .append("x-raw", HeaderValue::from_bytes(b"\x80").context("value")?);
    response
        .headers
        .append("x-raw", HeaderValue::from_bytes(b"plain").context("value")?);
    store(&*h.manager(), "k", response.clone()).await?;
    let back = fetch(&*h.manager(), "k")
        .await?
        .ok_or_else(|| missing(FailureKind::RoundTrip, "k"))?;
    ensure_eq!(
        RoundTrip,
        back.headers
            .get("content-disposition")
            .map(|v| v.as_bytes()),
        Some(raw),
        "non-UTF-8 value"
    );
    ensure_eq!(RoundTrip, back.headers, response.headers, "headers");
    Ok(())
}

/// An empty body is stored and read back as empty, not as missing.
pub async fn round_trip_keeps_an_empty_body<H: Harness>(h: &H) -> CheckResult {
    let mut response = fixtures::response(Bytes::new());
    response.status = 204;
    store(&*h.manager(), "k", response.clone()).await?;
    ensure_eq!(
        RoundTrip,
        fetch(&*h.manager(), "k").await?,
        Some(response),
        "empty body"
    );
    Ok(())
}

/// A binary body holding every byte value comes back unchanged.
pub async fn round_trip_keeps_a_binary_body_with_every_byte_value<H: Harness>(
    h: &H,
) -> CheckResult {
    let body: Vec<u8> = (0..4096u32).map(|i| (i % 256) as u8).rev().collect();
    let response = fixtures::response(body);
    store(&*h.manager(), "k", response.clone()).await?;
    let back = fetch(&*h.manager(), "k")
        .await?
        .ok_or_else(|| missing(FailureKind::RoundTrip, "k"))?;
    ensure!(
        RoundTrip,
        back.body == response.body,
        "binary body changed: {} bytes back, {} stored",
        back.body.len(),
        response.body.len()
    );
    Ok(())
}

/// A 5 MiB body comes back unchanged.
pub async fn round_trip_keeps_a_large_body<H: Harness>(h: &H) -> CheckResult {
    let response = fixtures::generated(0, 1, 5 * 1024 * 1024);
    store(&*h.manager(), "large", response).await?;
    let back = fetch(&*h.manager(), "large")
        .await?
        .ok_or_else(|| missing(FailureKind::RoundTrip, "large"))?;
    verify(FailureKind::RoundTrip, 0, &back, "the 5 MiB entry")?;
    Ok(())
}

/// Statuses of every class, 1xx to 5xx, and 999 survive.
pub async fn round_trip_keeps_every_status_class<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    for status in [
        100u16, 101, 200, 206, 299, 301, 304, 404, 451, 500, 503, 599, 999,
    ] {
        let mut response = fixtures::response(format!("status {status}"));
        response.status = status;
        let key = format!("status-{status}");
        store(&*manager, &key, response).await?;
        let back = fetch(&*manager, &key).await?.map(|r| r.status);
        ensure_eq!(RoundTrip, back, Some(status), "status");
    }
    Ok(())
}

/// The policy comes back equivalent: it gives the same answers.
pub async fn round_trip_keeps_an_equivalent_policy<H: Harness>(h: &H) -> CheckResult {
    let mut response = fixtures::response("policy");
    response.headers.insert(
        "cache-control",
        HeaderValue::from_static("max-age=600, must-revalidate"),
    );
    response
        .headers
        .insert("vary", HeaderValue::from_static("accept"));
    let policy = fixtures::policy_for(&response);
    h.manager()
        .put("k".into(), response, policy.clone())
        .await
        .context("put")?;
    let (_, back) = h
        .manager()
        .get("k")
        .await
        .context("get")?
        .ok_or_else(|| missing(FailureKind::RoundTrip, "k"))?;
    ensure_eq!(
        RoundTrip,
        policy_json(&back),
        policy_json(&policy),
        "policy changed"
    );
    let now = std::time::SystemTime::now();
    ensure_eq!(
        RoundTrip,
        back.time_to_live(now).as_secs() / 10,
        policy.time_to_live(now).as_secs() / 10,
        "ttl"
    );
    Ok(())
}

/// A policy's serialized form, maps in key order: two policies with the
/// same form give the same answers.
pub(crate) fn policy_json(
    policy: &respcache_core::CachePolicy,
) -> Result<serde_json::Value, String> {
    serde_json::to_value(policy).map_err(|e| e.to_string())
}
