//! A reqwest client answered from its cache: respcache-reqwest (fs backend,
//! whose small bodies are served from memory) beside http-cache-reqwest
//! with its moka manager, on 1 KiB and 64 KiB hits from a loopback origin.
//! Criterion times a hit (send, read the whole body); a counting allocator
//! gives the allocations per hit, printed after the run.
//!
//! `cargo bench -p respcache-benches --bench reqwest`

#![allow(missing_docs)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

const KIB: usize = 1024;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Hits counted for the allocations per hit.
const COUNTED_HITS: u64 = 500;

fn respcache(dir: &std::path::Path) -> ClientWithMiddleware {
    let backend = respcache_fs::StreamingManager::new(dir.to_path_buf());
    ClientBuilder::new(reqwest::Client::new())
        .with(respcache_reqwest::Cache::streaming(backend))
        .build()
}

fn http_cache_moka() -> ClientWithMiddleware {
    use http_cache_reqwest::{Cache, CacheMode, HttpCache, HttpCacheOptions, MokaManager};
    ClientBuilder::new(reqwest::Client::new())
        .with(Cache(HttpCache {
            mode: CacheMode::Default,
            manager: MokaManager::default(),
            options: HttpCacheOptions::default(),
        }))
        .build()
}

/// One request, its whole body read; the body's length.
async fn fetch(client: &ClientWithMiddleware, url: &str) -> usize {
    let response = client.get(url).send().await.expect("a response");
    response.bytes().await.expect("a body").len()
}

fn reqwest_hits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let origin = runtime.block_on(respcache_testkit::Origin::start(|seen, _| {
        let len = if seen.path.contains("64k") {
            64 * KIB
        } else {
            KIB
        };
        http::Response::builder()
            .header("cache-control", "max-age=3600")
            .body(respcache_testkit::full(respcache_testkit::pattern(len, 1)))
            .expect("a response")
    }));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let subjects = [
        ("respcache-reqwest(fs)", respcache(dir.path())),
        ("http-cache-reqwest(moka)", http_cache_moka()),
    ];
    let mut allocations = Vec::new();
    let mut group = c.benchmark_group("reqwest_hit");
    group.throughput(Throughput::Elements(1));
    for (size, len, path) in [("1KiB", KIB, "/1k"), ("64KiB", 64 * KIB, "/64k")] {
        let url = origin.url(path);
        for (name, client) in &subjects {
            // The first request stores the entry; every later one is a hit.
            runtime.block_on(async {
                assert_eq!(fetch(client, &url).await, len);
                assert_eq!(fetch(client, &url).await, len);
            });
            let before = origin.requests();
            group.bench_function(BenchmarkId::new(*name, size), |b| {
                b.to_async(&runtime).iter(|| async {
                    assert_eq!(fetch(client, &url).await, len);
                });
            });
            let region = Region::new(GLOBAL);
            runtime.block_on(async {
                for _ in 0..COUNTED_HITS {
                    fetch(client, &url).await;
                }
            });
            let counted = region.change().allocations as u64;
            assert_eq!(
                origin.requests(),
                before,
                "{name}: a hit reached the origin"
            );
            allocations.push(format!(
                "reqwest_hit/{name}/{size}: {} allocations per hit",
                counted / COUNTED_HITS
            ));
        }
    }
    group.finish();
    for line in allocations {
        println!("{line}");
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = reqwest_hits
}
criterion_main!(benches);
