//! A large representation fetched in ranges, stored as parts, combined
//! and served whole: memory stays flat on the fs backend. In a binary of
//! its own, so that no other test's memory is counted.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use respcache_http::{CacheBody, Options};
use support::{Origin, get};

const MIB: u64 = 1024 * 1024;
/// The representation: 256 MiB, fetched in eight ranges of 32 MiB.
const TOTAL: u64 = 256 * MIB;
const RANGE: u64 = 32 * MIB;
const CHUNK: u64 = 64 * 1024;

/// Byte `i` of the representation: each 64 KiB chunk one value.
fn byte_at(i: u64) -> u8 {
    ((i / CHUNK).wrapping_mul(7) ^ ((i / CHUNK) >> 8)) as u8
}

/// Bytes `first..=last`, made a chunk at a time as they are read.
fn lazy_bytes(first: u64, last: u64) -> CacheBody {
    let chunks = (first..=last).step_by(CHUNK as usize).map(move |start| {
        let end = (start / CHUNK + 1) * CHUNK - 1;
        let end = end.min(last);
        let chunk = vec![byte_at(start); (end - start + 1) as usize];
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(chunk)))
    });
    respcache_http::boxed(StreamBody::new(futures_util::stream::iter(chunks)))
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Reads a response's body as it comes, checking its bytes from
/// `first`, and returns how many there were.
async fn read_checked(body: CacheBody, first: u64) -> u64 {
    let mut body = body;
    let mut at = first;
    while let Some(frame) = body.frame().await {
        let data = frame.expect("a whole body").into_data().unwrap_or_default();
        for offset in (0..data.len())
            .step_by(997)
            .chain([data.len().saturating_sub(1)])
        {
            if offset < data.len() {
                assert_eq!(
                    data[offset],
                    byte_at(at + offset as u64),
                    "byte {}",
                    at + offset as u64
                );
            }
        }
        at += data.len() as u64;
    }
    at - first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_representation_fetched_in_ranges_is_stored_combined_and_served_with_flat_memory() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("no /proc: memory cannot be read here");
        return;
    }
    let origin = Origin::start(|seen, _| {
        let range = seen
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
                Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
            });
        let (first, last) = range.expect("only ranges are asked for");
        Response::builder()
            .status(206)
            .header("cache-control", "max-age=600")
            .header("etag", "\"big\"")
            .header("content-length", last - first + 1)
            .header("content-range", format!("bytes {first}-{last}/{TOTAL}"))
            .body(lazy_bytes(first, last))
            .unwrap()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), Options::default());
    let url = origin.url("/large");

    let baseline = rss();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (peak, done) = (peak.clone(), done.clone());
        move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });

    for first in (0..TOTAL).step_by(RANGE as usize) {
        let last = first + RANGE - 1;
        let spec = format!("bytes={first}-{last}");
        let response = cache
            .handle(get(&url, &[("range", &spec)]), support::client())
            .await
            .unwrap();
        assert_eq!(response.status(), 206);
        assert_eq!(read_checked(response.into_body(), first).await, RANGE);
    }
    // Combined in the background; then the whole is a hit.
    let mut whole = None;
    for _ in 0..600 {
        let response = cache
            .handle(
                get(&url, &[("cache-control", "only-if-cached")]),
                support::client(),
            )
            .await
            .unwrap();
        if response.status() == 200 {
            whole = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let whole = whole.expect("the parts were combined into the whole");
    assert_eq!(read_checked(whole.into_body(), 0).await, TOTAL);

    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let grew = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    assert!(
        grew < 16 * MIB,
        "memory grew by {} MiB moving {} MiB through parts",
        grew / MIB,
        TOTAL * 2 / MIB
    );
    assert_eq!(
        origin.requests(),
        (TOTAL / RANGE) as usize,
        "every range once"
    );
}
