//! Checks for [`StreamingCacheManager`]s: bodies that stream both ways,
//! commit only when complete, and never hand out damaged bytes. Streams
//! are judged by their content, never by how they are cut into frames.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use respcache_core::{BoxError, HttpResponse, StreamingCacheManager, StreamingError};
use tokio::sync::Barrier;

use crate::checks::{fetch, missing, require, store_and_verify, verify};
use crate::failure::{Context, FailureKind};
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

/// `bytes` cut into frames of `size` bytes.
fn frames_of(bytes: &Bytes, size: usize) -> Vec<Bytes> {
    (0..bytes.len())
        .step_by(size)
        .map(|at| bytes.slice(at..(at + size).min(bytes.len())))
        .collect()
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
    let seen = collect(response.into_body()).await.map_err(|e| {
        Failure::new(
            FailureKind::StreamContent,
            format!("the caller's body failed: {e}"),
        )
    })?;
    ensure!(
        StreamContent,
        seen == original.body,
        "the caller got {} bytes, not the origin's body",
        seen.len()
    );

    let buffered = fetch(&*manager, "s").await?.ok_or_else(|| {
        Failure::new(
            FailureKind::Commit,
            "a complete streamed body was not committed",
        )
    })?;
    ensure_eq!(Commit, buffered, original, "what a streamed put committed");
    let (streamed, _) = manager
        .get_stream("s")
        .await
        .context("get_stream")?
        .ok_or_else(|| missing(FailureKind::StreamContent, "s"))?;
    let body = collect(streamed.into_body()).await.map_err(|e| {
        Failure::new(
            FailureKind::StreamContent,
            format!("a streamed read failed: {e}"),
        )
    })?;
    ensure!(
        StreamContent,
        body == original.body,
        "a streamed read returned other bytes"
    );
    Ok(())
}

/// What a buffered put stored reads back as a stream, small, empty and
/// large, through `get_stream` and through `get_stream_response`.
pub async fn buffered_put_reads_back_as_a_stream<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let manager = h.manager();
    for (key, len) in [("small", 100), ("empty", 0), ("large", 2 * 1024 * 1024)] {
        let original = fixtures::generated(1, 1, len);
        store_and_verify(&*manager, key, 1, original.clone()).await?;
        let (streamed, _) = manager
            .get_stream(key)
            .await
            .context("get_stream")?
            .ok_or_else(|| missing(FailureKind::StreamContent, key))?;
        reads_back_as(streamed, &original, key, "get_stream").await?;
        let streamed = manager
            .get_stream_response(key)
            .await
            .context("get_stream_response")?
            .ok_or_else(|| missing(FailureKind::StreamContent, key))?;
        reads_back_as(streamed, &original, key, "get_stream_response").await?;
    }
    Ok(())
}

/// `streamed`, read through `how`, has `original`'s status, headers and
/// body.
async fn reads_back_as<B>(
    streamed: http::Response<B>,
    original: &HttpResponse,
    key: &str,
    how: &str,
) -> CheckResult
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    ensure_eq!(
        StreamContent,
        streamed.status().as_u16(),
        original.status,
        "status of {key} through {how}"
    );
    ensure_eq!(
        StreamContent,
        streamed.headers(),
        &original.headers,
        "headers of {key} through {how}"
    );
    let body = collect(streamed.into_body()).await.map_err(|e| {
        Failure::new(
            FailureKind::StreamContent,
            format!("{how} of {key} failed: {e}"),
        )
    })?;
    ensure!(
        StreamContent,
        body == original.body,
        "{how} of {key} returned {} bytes, not the {} stored",
        body.len(),
        original.body.len()
    );
    Ok(())
}

/// `stream_response` turns a buffered response into the manager's
/// streaming type without changing it.
pub async fn stream_response_keeps_head_and_body<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let mut original = fixtures::generated(2, 3, 50_000);
    for value in ["a=1", "b=2"] {
        original
            .headers
            .append("set-cookie", http::HeaderValue::from_static(value));
    }
    let response = h
        .manager()
        .stream_response(original.clone())
        .context("stream_response")?;
    ensure_eq!(
        StreamContent,
        response.status().as_u16(),
        original.status,
        "status"
    );
    ensure_eq!(
        StreamContent,
        response.headers(),
        &original.headers,
        "headers"
    );
    let body = collect(response.into_body())
        .await
        .map_err(|e| Failure::new(FailureKind::StreamContent, format!("the body failed: {e}")))?;
    ensure!(
        StreamContent,
        body == original.body,
        "stream_response changed the body"
    );
    Ok(())
}

/// Stores the entry an abandoned write must leave alone, read back whole;
/// returns the location's bytes with it and what it alone takes.
async fn entry_to_keep<H: Harness>(h: &H, key_index: u32) -> Result<(u64, u64), Failure> {
    h.reclaim().await.context("reclaiming storage")?;
    let empty = h.stored_bytes().await.context("measuring storage")?;
    store_and_verify(
        &*h.manager(),
        "k",
        key_index,
        fixtures::generated(key_index, 1, 100_000),
    )
    .await?;
    let baseline = h.stored_bytes().await.context("measuring storage")?;
    Ok((baseline, baseline.saturating_sub(empty)))
}

/// An origin body that fails halfway: the caller sees the error, nothing
/// is committed (the previous entry stays whole), and after reclamation
/// the storage is back where it was, within a quarter of one entry.
pub async fn body_error_midway_commits_nothing<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let manager = h.manager();
    let (baseline, entry) = entry_to_keep(h, 6).await?;

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
        StreamContent,
        collect(response.into_body()).await.is_err(),
        "the origin's error did not reach the caller: its body ended as if complete"
    );
    let back = fetch(&*manager, "k")
        .await?
        .ok_or_else(|| missing(FailureKind::Commit, "k"))?;
    ensure_eq!(
        Commit,
        fixtures::verify_generated(6, &back),
        Ok(1),
        "a body that failed replaced the entry"
    );
    storage_settles_at(h, baseline, entry / 4).await
}

/// A caller that drops the body midway (after 512 KiB of 2 MiB) commits
/// nothing, and the storage comes back to where it was.
pub async fn dropped_body_commits_nothing<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let manager = h.manager();
    let (baseline, entry) = entry_to_keep(h, 7).await?;

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
    let mut received = 0;
    while received < 512 * 1024 {
        match body.frame().await {
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(err)) => {
                return Err(Failure::new(
                    FailureKind::StreamContent,
                    format!(
                        "the caller's body failed after {received} bytes: {}",
                        err.into()
                    ),
                ));
            }
            None => {
                return Err(Failure::new(
                    FailureKind::StreamContent,
                    format!(
                        "the caller's body ended after {received} of {} bytes",
                        new.body.len()
                    ),
                ));
            }
        }
    }
    drop(body);
    let back = fetch(&*manager, "k")
        .await?
        .ok_or_else(|| missing(FailureKind::Commit, "k"))?;
    ensure_eq!(
        Commit,
        fixtures::verify_generated(7, &back),
        Ok(1),
        "a body dropped after {received} bytes replaced the entry"
    );
    storage_settles_at(h, baseline, entry / 4).await
}

/// Waits (bounded) for abandoned writes to clean up after themselves and
/// for reclamation to bring storage back to `baseline`, give or take
/// `tolerance` for an index or journal that grows a little with every
/// write.
async fn storage_settles_at<H: Harness>(h: &H, baseline: u64, tolerance: u64) -> CheckResult {
    let started = std::time::Instant::now();
    loop {
        h.reclaim().await.context("reclaiming storage")?;
        let held = h.stored_bytes().await.context("measuring storage")?;
        if held <= baseline + tolerance {
            return Ok(());
        }
        if started.elapsed() > SETTLE {
            return Err(Failure::new(
                FailureKind::Storage,
                format!(
                    "an abandoned write left {} bytes behind after reclamation (tolerance {tolerance})",
                    held - baseline
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The caller receives the origin's first frame, in frames of any size,
/// before the origin has sent the second: time to first byte does not
/// depend on the body's size. The rest then arrives, every byte as the
/// origin sent it, and the entry is committed.
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
        .map_err(|_| {
            Failure::new(
                FailureKind::FirstByte,
                "put_stream waited for more than the first frame before returning",
            )
        })?
        .context("put_stream")?;
    let mut body = Box::pin(response.into_body());
    let mut received = bytes::BytesMut::new();
    while received.len() < first.len() {
        let frame = tokio::time::timeout(SETTLE, body.frame())
            .await
            .map_err(|_| {
                Failure::new(
                    FailureKind::FirstByte,
                    format!(
                        "the caller got {} of the first frame's {} bytes; the rest was held back until the origin sent more",
                        received.len(),
                        first.len()
                    ),
                )
            })?
            .ok_or_else(|| {
                Failure::new(FailureKind::StreamContent, "the body ended within the first frame")
            })?
            .map_err(|e| {
                Failure::new(
                    FailureKind::StreamContent,
                    format!("the body failed within the first frame: {}", e.into()),
                )
            })?;
        if let Some(data) = frame.data_ref() {
            received.extend_from_slice(data);
        }
        ensure!(
            StreamContent,
            first.starts_with(&received),
            "the caller's first {} bytes are not the origin's",
            received.len()
        );
    }

    let feed = tokio::spawn(async move {
        let rest = original.body.slice(64 * 1024..);
        for chunk in rest.chunks(64 * 1024) {
            if origin_tx.send(Ok(rest.slice_ref(chunk))).await.is_err() {
                break;
            }
        }
        original
    });
    let rest = collect(body).await.map_err(|e| {
        Failure::new(
            FailureKind::StreamContent,
            format!("the body failed after the first frame: {e}"),
        )
    })?;
    let original = feed.await.context("feeding the origin")?;
    received.extend_from_slice(&rest);
    ensure!(
        StreamContent,
        received == original.body,
        "the caller got {} bytes that are not the origin's {}",
        received.len(),
        original.body.len()
    );
    let back = fetch(&*h.manager(), "ttfb")
        .await?
        .ok_or_else(|| missing(FailureKind::Commit, "ttfb"))?;
    verify(FailureKind::Commit, 8, &back, "the committed entry")?;
    Ok(())
}

/// A streamed read of a damaged body ends in an error (or finds no entry),
/// never in a complete body; the entry is dropped.
pub async fn streamed_read_of_a_damaged_body_ends_in_an_error<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    require::<H>(
        |c| c.damageable_medium,
        "its medium can be damaged (damageable_medium)",
    )?;
    let manager = h.manager();
    for how in [
        Damage::FlipBodyByte,
        Damage::TruncateBody,
        Damage::ExtendBody,
    ] {
        for len in [1000, 3 * 1024 * 1024] {
            let key = format!("{how:?}-{len}");
            let original = fixtures::generated(9, 1, len);
            store_and_verify(&*manager, &key, 9, original.clone()).await?;
            h.damage(&key, how)
                .await
                .context_as(FailureKind::Harness, "damaging the entry")?;
            let found = manager.get_stream(&key).await.map_err(|e| {
                Failure::new(
                    FailureKind::Integrity,
                    format!("{how:?} of {len} bytes: get_stream failed instead of missing: {e}"),
                )
            })?;
            if let Some((response, _)) = found
                && let Ok(body) = collect(response.into_body()).await
            {
                return Err(if body == original.body {
                    Failure::new(
                        FailureKind::Harness,
                        format!(
                            "{how:?} of {len} bytes: the stream completed with the undamaged body: the damage did not reach what get_stream reads"
                        ),
                    )
                } else {
                    Failure::new(
                        FailureKind::Integrity,
                        format!("{how:?} of {len} bytes: the stream completed with damaged bytes"),
                    )
                });
            }
            ensure!(
                Integrity,
                fetch(&*manager, &key).await?.is_none(),
                "{how:?} of {len} bytes: the damaged entry was not dropped"
            );
        }
    }
    Ok(())
}

/// Eight streamed puts of one key at once, all in the middle of their
/// bodies together (each caller waits at a barrier once it has its first
/// frame): each caller gets its own bytes, and afterwards the key holds
/// one of them, whole. A single streamed put is first read back whole, so
/// a backend that cannot stream one body fails as such, not as a race.
pub async fn concurrent_streamed_puts_of_one_key_leave_one_whole_entry<H>(h: &H) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    const PUTS: u64 = 8;
    const FRAME: usize = 16 * 1024;
    let manager = h.manager();
    let alone = fixtures::generated(11, 0, 256 * 1024);
    let response = manager
        .put_stream(
            "same".into(),
            origin_response(
                &alone,
                fixtures::scripted_body(fixtures::irregular_frames(&alone.body)),
            )?,
            fixtures::policy_for(&alone),
            alone.url.clone(),
        )
        .await
        .context("put_stream")?;
    collect(response.into_body()).await.map_err(|e| {
        Failure::new(
            FailureKind::StreamContent,
            format!("a streamed put alone failed: {e}"),
        )
    })?;
    let back = fetch(&*manager, "same")
        .await?
        .ok_or_else(|| missing(FailureKind::Commit, "same"))?;
    verify(FailureKind::Commit, 11, &back, "a streamed put alone")?;

    // A backend may serialise puts of one key; then they cannot all be
    // in flight at once, and the barrier gives up waiting.
    let barrier = Arc::new(Barrier::new(PUTS as usize));
    let mut tasks = tokio::task::JoinSet::new();
    let mut feeders = Vec::new();
    for generation in 1..=PUTS {
        let original = fixtures::generated(11, generation, 256 * 1024 + generation as usize);
        let (tx, origin) = fixtures::channel_body();
        let frames = frames_of(&original.body, FRAME);
        feeders.push(tokio::spawn(async move {
            for frame in frames {
                if tx.send(Ok(frame)).await.is_err() {
                    break;
                }
            }
        }));
        let manager = h.manager();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            let policy = fixtures::policy_for(&original);
            let head = origin_response(&original, origin)?;
            let response = manager
                .put_stream("same".into(), head, policy, original.url.clone())
                .await
                .context("put_stream")?;
            let mut body = Box::pin(response.into_body());
            let mut got = bytes::BytesMut::new();
            let mut waited = false;
            loop {
                let data = match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
                    Some(Err(e)) => {
                        return Err(Failure::new(
                            FailureKind::Concurrency,
                            format!("a caller's body failed: {}", e.into()),
                        ));
                    }
                };
                got.extend_from_slice(&data);
                if !waited {
                    waited = true;
                    let _ = tokio::time::timeout(Duration::from_secs(2), barrier.wait()).await;
                }
            }
            ensure!(
                Concurrency,
                got == original.body,
                "a caller got {} bytes that are not its origin's",
                got.len()
            );
            Ok::<(), Failure>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context_as(FailureKind::Concurrency, "a put task")??;
    }
    for feeder in feeders {
        feeder.await.context("feeding an origin")?;
    }
    let back = fetch(&*h.manager(), "same")
        .await?
        .ok_or_else(|| missing(FailureKind::Concurrency, "same"))?;
    verify(
        FailureKind::Concurrency,
        11,
        &back,
        "after eight overlapping streamed puts",
    )?;
    Ok(())
}
