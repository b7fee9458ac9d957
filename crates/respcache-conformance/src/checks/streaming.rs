//! Checks for [`StreamingCacheManager`]s: bodies that stream both ways,
//! commit only when complete, and never hand out damaged bytes.

use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use respcache_core::{BoxError, HttpResponse, StreamingCacheManager, StreamingError};

use crate::checks::{fetch, round_trip::missing, store};
use crate::failure::Context;
use crate::{CheckResult, Damage, Failure, Harness, ensure, ensure_eq, fixtures};

/// Generous bound on waiting for a background writer to finish its work.
const SETTLE: Duration = Duration::from_secs(10);

fn origin_response<B>(like: &HttpResponse, body: B) -> Result<http::Response<B>, Failure> {
    let parts = like.parts().context("building the origin head")?;
    Ok(http::Response::from_parts(parts, body))
}

/// Reads a whole body; the body's error, if any, as text.
async fn collect<B>(body: B) -> Result<Bytes, String>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.into().to_string())
}

/// A streamed put hands the caller every byte of an irregularly framed
/// 3 MiB body and commits it: buffered and streamed reads return it whole,
/// with its head.
pub async fn streamed_put_hands_over_every_byte_and_commits<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let manager = h.manager();
    let mut original = fixtures::generated(5, 1, 3 * 1024 * 1024);
    original
        .headers
        .append("set-cookie", http::HeaderValue::from_static("a=1"));
    original
        .headers
        .append("set-cookie", http::HeaderValue::from_static("b=2"));
    let origin = fixtures::scripted_body(fixtures::irregular_frames(&original.body));
    let policy = fixtures::policy_for(&original);
    let response = manager
        .put_stream(
            "s".into(),
            origin_response(&original, origin)?,
            policy,
            original.url.clone(),
        )
        .await
        .context("put_stream")?;
    let seen = collect(response.into_body()).await.map_err(Failure)?;
    ensure!(
        seen == original.body,
        "the caller got {} bytes, not the origin's body",
        seen.len()
    );

    let buffered = fetch(&*manager, "s").await?.ok_or_else(|| missing("s"))?;
    ensure_eq!(buffered, original, "buffered read of a streamed put");
    let (streamed, _) = manager
        .get_stream("s")
        .await
        .context("get_stream")?
        .ok_or_else(|| missing("s"))?;
    let body = collect(streamed.into_body()).await.map_err(Failure)?;
    ensure!(body == original.body, "streamed read returned other bytes");
    Ok(())
}

/// What a buffered put stored reads back as a stream, small and large.
pub async fn buffered_put_reads_back_as_a_stream<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let manager = h.manager();
    for (key, len) in [("small", 100), ("empty", 0), ("large", 2 * 1024 * 1024)] {
        let original = fixtures::generated(1, 1, len);
        store(&*manager, key, original.clone()).await?;
        let (streamed, _) = manager
            .get_stream(key)
            .await
            .context("get_stream")?
            .ok_or_else(|| missing(key))?;
        ensure_eq!(
            streamed.status().as_u16(),
            original.status,
            "status of {key}"
        );
        ensure_eq!(streamed.headers(), &original.headers, "headers of {key}");
        let body = collect(streamed.into_body()).await.map_err(Failure)?;
        ensure!(
            body == original.body,
            "streamed read of {key} returned other bytes"
        );
    }
    Ok(())
}

/// `stream_response` turns a buffered response into the manager's
/// streaming type without changing it.
pub async fn stream_response_keeps_head_and_body<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let original = fixtures::generated(2, 3, 50_000);
    let response = h
        .manager()
        .stream_response(original.clone())
        .context("stream_response")?;
    ensure_eq!(response.status().as_u16(), original.status, "status");
    ensure_eq!(response.headers(), &original.headers, "headers");
    let body = collect(response.into_body()).await.map_err(Failure)?;
    ensure!(body == original.body, "stream_response changed the body");
    Ok(())
}

/// An origin body that fails halfway: the caller sees the error, nothing
/// is committed (the previous entry stays whole), and no temporary file
/// survives reclamation.
pub async fn body_error_midway_commits_nothing<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let manager = h.manager();
    let old = fixtures::generated(6, 1, 100_000);
    store(&*manager, "k", old.clone()).await?;
    let baseline = h.stored_bytes().await.context("measuring storage")?;

    let new = fixtures::generated(6, 2, 2 * 1024 * 1024);
    let mut frames = fixtures::irregular_frames(&new.body);
    frames.truncate(frames.len() / 2);
    frames.push(Err(StreamingError::from("origin connection reset")));
    let origin = fixtures::scripted_body(frames);
    let policy = fixtures::policy_for(&new);
    let response = manager
        .put_stream(
            "k".into(),
            origin_response(&new, origin)?,
            policy,
            new.url.clone(),
        )
        .await
        .context("put_stream")?;
    ensure!(
        collect(response.into_body()).await.is_err(),
        "the origin's error did not reach the caller"
    );
    let back = fetch(&*manager, "k").await?.ok_or_else(|| missing("k"))?;
    ensure_eq!(
        fixtures::verify_generated(6, &back),
        Ok(1),
        "a failed body replaced the entry"
    );
    storage_settles_at(h, baseline).await
}

/// A caller that drops the body after the first frame commits nothing.
pub async fn dropped_body_commits_nothing<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let manager = h.manager();
    let old = fixtures::generated(7, 1, 10_000);
    store(&*manager, "k", old).await?;
    let baseline = h.stored_bytes().await.context("measuring storage")?;

    let new = fixtures::generated(7, 2, 2 * 1024 * 1024);
    let origin = fixtures::scripted_body(fixtures::irregular_frames(&new.body));
    let policy = fixtures::policy_for(&new);
    let response = manager
        .put_stream(
            "k".into(),
            origin_response(&new, origin)?,
            policy,
            new.url.clone(),
        )
        .await
        .context("put_stream")?;
    let mut body = Box::pin(response.into_body());
    let first = body.frame().await;
    ensure!(matches!(first, Some(Ok(_))), "no first frame");
    drop(body);
    let back = fetch(&*manager, "k").await?.ok_or_else(|| missing("k"))?;
    ensure_eq!(
        fixtures::verify_generated(7, &back),
        Ok(1),
        "a dropped body replaced the entry"
    );
    storage_settles_at(h, baseline).await
}

/// Waits (bounded) for abandoned writes to clean up after themselves and
/// for reclamation to bring storage back to `baseline`.
async fn storage_settles_at<H: Harness>(h: &H, baseline: u64) -> CheckResult {
    let started = std::time::Instant::now();
    loop {
        h.reclaim().await.context("reclaiming storage")?;
        let held = h.stored_bytes().await.context("measuring storage")?;
        if held <= baseline {
            return Ok(());
        }
        if started.elapsed() > SETTLE {
            return Err(Failure(format!(
                "an abandoned write left {} bytes behind after reclamation",
                held - baseline
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The caller receives the first frame before the origin has sent the
/// second: time to first byte does not depend on the body's size.
pub async fn first_frame_reaches_the_caller_before_the_origin_sends_the_second<H>(
    h: &H,
) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let original = fixtures::generated(8, 1, 1024 * 1024);
    let (origin_tx, origin) = fixtures::channel_body();
    let first = original.body.slice(..64 * 1024);
    origin_tx
        .send(Ok(first.clone()))
        .await
        .context("sending the first frame")?;
    let policy = fixtures::policy_for(&original);
    let manager = h.manager();
    let put = manager.put_stream(
        "ttfb".into(),
        origin_response(&original, origin)?,
        policy,
        original.url.clone(),
    );
    let response = tokio::time::timeout(SETTLE, put)
        .await
        .map_err(|_| Failure("put_stream waited for the whole body before returning".into()))?
        .context("put_stream")?;
    let mut body = Box::pin(response.into_body());
    let frame = tokio::time::timeout(SETTLE, body.frame())
        .await
        .map_err(|_| Failure("the first frame was held back until the origin sent more".into()))?;
    let frame = frame
        .ok_or_else(|| Failure("the body ended before its first frame".into()))?
        .map_err(|e| Failure(format!("the first frame failed: {}", e.into())))?;
    ensure!(
        frame.data_ref() == Some(&first),
        "the first frame is not the origin's first frame"
    );

    let original_len = original.body.len();
    let feed = tokio::spawn(async move {
        let rest = original.body.slice(64 * 1024..);
        for chunk in rest.chunks(64 * 1024) {
            if origin_tx.send(Ok(rest.slice_ref(chunk))).await.is_err() {
                break;
            }
        }
    });
    let rest = collect(body).await.map_err(Failure)?;
    feed.await.context("feeding the origin")?;
    let total = original_len;
    ensure_eq!(first.len() + rest.len(), total, "bytes the caller received");
    let back = fetch(&*h.manager(), "ttfb")
        .await?
        .ok_or_else(|| missing("ttfb"))?;
    fixtures::verify_generated(8, &back).map_err(Failure)?;
    Ok(())
}

/// A streamed read of a damaged body ends in an error (or finds no entry),
/// never in a complete body; the entry is dropped.
pub async fn streamed_read_of_a_damaged_body_ends_in_an_error<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let manager = h.manager();
    for how in [
        Damage::FlipBodyByte,
        Damage::TruncateBody,
        Damage::ExtendBody,
    ] {
        for len in [1000, 3 * 1024 * 1024] {
            let key = format!("{how:?}-{len}");
            let original = fixtures::generated(9, 1, len);
            store(&*manager, &key, original.clone()).await?;
            h.damage(&key, how).await.context("damaging the entry")?;
            let found = manager.get_stream(&key).await.context("get_stream")?;
            if let Some((response, _)) = found
                && let Ok(body) = collect(response.into_body()).await
            {
                let verdict = if body == original.body {
                    "the undamaged body"
                } else {
                    "damaged bytes"
                };
                return Err(Failure(format!(
                    "{how:?} of {len} bytes: the stream completed with {verdict}"
                )));
            }
            ensure!(
                fetch(&*manager, &key).await?.is_none(),
                "{how:?} of {len} bytes: the damaged entry was not dropped"
            );
        }
    }
    Ok(())
}

/// Eight streamed puts of one key at once: afterwards the key holds one of
/// them, whole.
pub async fn concurrent_streamed_puts_of_one_key_leave_one_whole_entry<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let mut tasks = Vec::new();
    for generation in 1..=8u64 {
        let manager = h.manager();
        tasks.push(tokio::spawn(async move {
            let original = fixtures::generated(11, generation, 256 * 1024 + generation as usize);
            let origin = fixtures::scripted_body(fixtures::irregular_frames(&original.body));
            let policy = fixtures::policy_for(&original);
            let head = original.parts().map_err(|e| e.to_string())?;
            let response = manager
                .put_stream(
                    "same".into(),
                    http::Response::from_parts(head, origin),
                    policy,
                    original.url.clone(),
                )
                .await
                .map_err(|e| e.to_string())?;
            let got = collect(response.into_body()).await?;
            if got != original.body {
                return Err("a caller got other bytes".to_owned());
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.context("a put task")?.map_err(Failure)?;
    }
    let back = fetch(&*h.manager(), "same")
        .await?
        .ok_or_else(|| missing("same"))?;
    fixtures::verify_generated(11, &back).map_err(Failure)?;
    Ok(())
}
