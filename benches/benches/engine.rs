//! The engine's hit path: respcache's `HttpCache` through its tower layer,
//! with the fs and the cacache backend, beside `http-cache`'s tower
//! middleware (`http-cache-tower`, with its cacache and its streaming
//! manager), all four around the same in-process service. Measures hits
//! per second, one at a time and from 64 tasks at once, and allocations
//! per hit, counted by the global allocator of this binary.
//!
//! Writes `target/bench/engine.json` for `cargo xtask bench engine`.

#![allow(missing_docs)]

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower_layer::Layer;
use tower_service::Service;

use common::{KIB, body, quick};
use origin::Origin;

/// Counts every allocation of every thread (the blocking pool's too).
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Concurrent tasks in the concurrent measure, as the proxy bench's
/// connections.
const TASKS: usize = 64;
/// Hits whose allocations are counted.
const COUNTED: usize = 1000;

/// One hit (or, while warming, one request): the response read whole;
/// returns the body's length.
async fn hit<S, B>(service: &mut S, uri: &Uri) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::builder()
        .uri(uri.clone())
        .body(Full::default())
        .expect("a request");
    let response = service.call(request).await.expect("a response");
    let mut body = std::pin::pin!(response.into_body());
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("a body frame").into_data() {
            len += data.remaining();
        }
    }
    len
}

struct Row {
    name: &'static str,
    size: &'static str,
    hits_per_sec: f64,
    concurrent_hits_per_sec: f64,
    allocations_per_hit: f64,
    bytes_per_hit: f64,
}

/// Warms `uri` on `service`, proves it is then served without the origin,
/// and measures it.
fn measure<S, B>(
    name: &'static str,
    size: &'static str,
    len: usize,
    service: S,
    origin: &Origin,
    uri: &Uri,
) -> Row
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Send,
    B::Error: std::fmt::Debug,
    B::Data: Send,
{
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut one = service.clone();
    single.block_on(async {
        // Stores may finish after the body is read: ask until the
        // origin stops being asked.
        for _ in 0..50 {
            let before = origin.calls();
            assert_eq!(hit(&mut one, uri).await, len, "{name}: body length");
            if origin.calls() == before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let calls = origin.calls();

    // One at a time: a hit's own cost, with no other task to hide it.
    let rounds = if quick() { 3 } else { 7 };
    let per_round = single.block_on(async {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(200) {
            hit(&mut one, uri).await;
            n += 1;
        }
        n * 2 // about 400 ms a round
    });
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            single.block_on(async {
                let started = Instant::now();
                for _ in 0..per_round {
                    hit(&mut one, uri).await;
                }
                per_round as f64 / started.elapsed().as_secs_f64()
            })
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let hits_per_sec = rates[rates.len() / 2];

    let region = Region::new(GLOBAL);
    single.block_on(async {
        for _ in 0..COUNTED {
            hit(&mut one, uri).await;
        }
    });
    let change = region.change();
    drop(single);

    // Many at once, on two workers (the machine's cores).
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let each = (per_round / TASKS).max(10) * 4;
    let mut concurrent: Vec<f64> = (0..rounds.min(5))
        .map(|_| {
            multi.block_on(async {
                let started = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let (mut service, uri) = (service.clone(), uri.clone());
                        tokio::spawn(async move {
                            for _ in 0..each {
                                hit(&mut service, &uri).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("a task");
                }
                (each * TASKS) as f64 / started.elapsed().as_secs_f64()
            })
        })
        .collect();
    concurrent.sort_by(f64::total_cmp);
    assert_eq!(origin.calls(), calls, "{name}: hits reached the origin");
    let row = Row {
        name,
        size,
        hits_per_sec,
        concurrent_hits_per_sec: concurrent[concurrent.len() / 2],
        allocations_per_hit: change.allocations as f64 / COUNTED as f64,
        bytes_per_hit: change.bytes_allocated as f64 / COUNTED as f64,
    };
    eprintln!(
        "{name} {size}: {:.0} hits/s one at a time, {:.0} hits/s from {TASKS} tasks, {:.1} allocations and {:.0} bytes allocated per hit",
        row.hits_per_sec, row.concurrent_hits_per_sec, row.allocations_per_hit, row.bytes_per_hit
    );
    row
}

fn mkdir(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("a directory");
    path
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and the like: nothing to list.
    }
    let sizes: &[(&str, usize)] = if quick() {
        &[("1KiB", KIB)]
    } else {
        &[("1KiB", KIB), ("64KiB", 64 * KIB)]
    };
    let dir = tempfile::Builder::new()
        .prefix("respcache-engine-")
        .tempdir()
        .expect("a temp dir");
    let setup = tokio::runtime::Runtime::new().expect("a runtime");
    let mut rows = Vec::new();
    for &(size, len) in sizes {
        let uri: Uri = format!("http://bench.example/item-{size}")
            .parse()
            .expect("a URI");
        let origin = || Origin::new(body(len));

        let o = origin();
        let manager = respcache_fs::StreamingManager::new(mkdir(dir.path(), &format!("fs-{size}")));
        let cache = respcache_http::HttpCache::new(
            respcache_http::Streaming::new(manager),
            respcache_http::Options::default(),
        );
        let service = respcache_http::CacheLayer::new(cache).layer(o.clone());
        rows.push(measure("respcache-fs", size, len, service, &o, &uri));

        let o = origin();
        let manager = respcache_cacache::CACacheManager::new(
            mkdir(dir.path(), &format!("cacache-{size}")),
            true,
        );
        let cache = respcache_http::HttpCache::new(
            respcache_http::Buffered::new(manager),
            respcache_http::Options::default(),
        );
        let service = respcache_http::CacheLayer::new(cache).layer(o.clone());
        rows.push(measure("respcache-cacache", size, len, service, &o, &uri));

        let o = origin();
        let manager = http_cache::CACacheManager::new(
            mkdir(dir.path(), &format!("peer-cacache-{size}")),
            true,
        );
        let service = http_cache_tower::HttpCacheLayer::new(manager).layer(o.clone());
        rows.push(measure("http-cache-cacache", size, len, service, &o, &uri));

        let o = origin();
        let manager = setup
            .block_on(http_cache::StreamingManager::with_max_body_size(
                mkdir(dir.path(), &format!("peer-streaming-{size}")),
                10_000,
                2 << 30,
            ))
            .expect("the peer's streaming manager");
        let service = http_cache_tower::HttpCacheStreamingLayer::new(manager).layer(o.clone());
        rows.push(measure(
            "http-cache-streaming",
            size,
            len,
            service,
            &o,
            &uri,
        ));
    }
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"name\": \"{}\", \"size\": \"{}\", \"hits_per_sec\": {:.1}, \"concurrent_hits_per_sec\": {:.1}, \"allocations_per_hit\": {:.2}, \"bytes_per_hit\": {:.0}}}",
                r.name, r.size, r.hits_per_sec, r.concurrent_hits_per_sec, r.allocations_per_hit, r.bytes_per_hit
            )
        })
        .collect();
    let json = format!(
        "{{\"tasks\": {TASKS}, \"rows\": [\n  {}\n]}}\n",
        rows.join(",\n  ")
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("engine.json"), json).expect("engine.json");
}
