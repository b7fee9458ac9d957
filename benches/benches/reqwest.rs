//! A reqwest client answered from its cache: respcache-reqwest over
//! respcache-memory (and over the fs backend) beside http-cache-reqwest
//! 1.0.0-alpha.10 with its moka manager, the in-memory set-up its users
//! most often pick, on 1 KiB and 64 KiB hits from a loopback origin. Each
//! hit sends the request and reads the whole body. Measures hits per
//! second one at a time (the median of rounds) and allocations and bytes
//! allocated per hit, counted by the global allocator of this binary.
//!
//! Writes `target/bench/reqwest.json` for `cargo xtask bench` (and
//! `cargo xtask bench reqwest`).

#![allow(missing_docs)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

use common::{KIB, quick};

/// Counts every allocation of every thread (the origin's runtime is idle
/// while hits are counted: a hit never reaches it).
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Hits whose allocations are counted.
const COUNTED: usize = 1000;

fn respcache_memory() -> ClientWithMiddleware {
    let backend = respcache_memory::MemoryManager::new(256 * 1024 * 1024);
    ClientBuilder::new(reqwest::Client::new())
        .with(respcache_reqwest::Cache::streaming(backend))
        .build()
}

fn respcache_fs(dir: &Path) -> ClientWithMiddleware {
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

struct Row {
    name: &'static str,
    size: &'static str,
    hits_per_sec: f64,
    allocations_per_hit: f64,
    bytes_per_hit: f64,
}

/// Warms `url` on `client` until the origin stops being asked, measures
/// its hits, and fails if a measured hit reached the origin.
fn measure(
    runtime: &tokio::runtime::Runtime,
    name: &'static str,
    size: &'static str,
    len: usize,
    client: &ClientWithMiddleware,
    origin: &respcache_testkit::Origin,
    url: &str,
) -> Row {
    runtime.block_on(async {
        for _ in 0..50 {
            let before = origin.requests();
            assert_eq!(fetch(client, url).await, len, "{name}: body length");
            if origin.requests() == before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let asked = origin.requests();

    let rounds = if quick() { 3 } else { 7 };
    let per_round = runtime.block_on(async {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(150) {
            fetch(client, url).await;
            n += 1;
        }
        n * 2 // about 300 ms a round
    });
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..per_round {
                    fetch(client, url).await;
                }
                per_round as f64 / started.elapsed().as_secs_f64()
            })
        })
        .collect();
    rates.sort_by(f64::total_cmp);

    let region = Region::new(GLOBAL);
    runtime.block_on(async {
        for _ in 0..COUNTED {
            fetch(client, url).await;
        }
    });
    let change = region.change();
    assert_eq!(origin.requests(), asked, "{name}: a hit reached the origin");
    let row = Row {
        name,
        size,
        hits_per_sec: rates[rates.len() / 2],
        allocations_per_hit: change.allocations as f64 / COUNTED as f64,
        bytes_per_hit: change.bytes_allocated as f64 / COUNTED as f64,
    };
    eprintln!(
        "{name} {size}: {:.0} hits/s, {:.1} allocations and {:.0} bytes allocated per hit",
        row.hits_per_sec, row.allocations_per_hit, row.bytes_per_hit
    );
    row
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and the like: nothing to list.
    }
    // The origin answers on a runtime of its own, alive for the whole run.
    let serving = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let origin = serving.block_on(respcache_testkit::Origin::start(|seen, _| {
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
    // The clients' runtime, for the whole run (their connection pools live
    // on it): one thread, so a hit's cost is its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let subjects = [
        ("respcache-reqwest (memory)", respcache_memory()),
        ("respcache-reqwest (fs)", respcache_fs(dir.path())),
        ("http-cache-reqwest (moka)", http_cache_moka()),
    ];
    let mut rows = Vec::new();
    for (size, len, path) in [("1KiB", KIB, "/1k"), ("64KiB", 64 * KIB, "/64k")] {
        let url = origin.url(path);
        for (name, client) in &subjects {
            rows.push(measure(&runtime, name, size, len, client, &origin, &url));
        }
    }
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"name\": \"{}\", \"size\": \"{}\", \"hits_per_sec\": {:.1}, \"allocations_per_hit\": {:.2}, \"bytes_per_hit\": {:.0}}}",
                r.name, r.size, r.hits_per_sec, r.allocations_per_hit, r.bytes_per_hit
            )
        })
        .collect();
    let json = format!("{{\"rows\": [\n  {}\n]}}\n", rows.join(",\n  "));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("reqwest.json"), json).expect("reqwest.json");
}
