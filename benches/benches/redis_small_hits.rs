//! Head-of-line blocking on Redis: the latency of 1 KiB hits while 16 MiB
//! entries stream in and out through the same manager, on one server and
//! on a six-node cluster, beside the same hits with nothing else going on.
//! A short run (a few seconds per row), printed as a Markdown table and
//! written to `target/bench/redis_small_hits.json` for `cargo xtask bench`.
//!
//! `cargo bench -p respcache-benches --bench redis_small_hits`

#![allow(missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use respcache_core::{CacheManager, CachePolicy, HttpResponse, StreamingCacheManager};
use respcache_redis::RedisManager;
use respcache_testkit::{RedisCluster, RedisServer};

const SMALL: usize = 1024;
const LARGE: usize = 16 * 1024 * 1024;
/// Hits timed per row, quiet and busy (fewer with `--quick`).
fn hits() -> usize {
    if common::quick() { 300 } else { 1000 }
}

fn response(len: usize) -> (HttpResponse, CachePolicy) {
    let url = url::Url::parse("https://example.com/").expect("a URL");
    let request = http::Request::get(url.as_str())
        .body(())
        .expect("a request");
    let body: Bytes = respcache_testkit::pattern(len, 7);
    let response = http::Response::builder()
        .header("cache-control", "max-age=3600")
        .body(body)
        .expect("a response");
    let policy = CachePolicy::new(&request, &response);
    (HttpResponse::from_http(response, url), policy)
}

async fn small_hits(manager: &RedisManager) -> Vec<Duration> {
    let mut times = Vec::with_capacity(hits());
    for _ in 0..hits() {
        let start = Instant::now();
        let hit = manager.get("small").await.expect("a get");
        times.push(start.elapsed());
        assert!(hit.is_some(), "the small entry is stored");
    }
    times.sort();
    times
}

/// Two tasks keep 16 MiB entries streaming: one puts them, one reads one.
/// The body is made once: making it is not what is measured.
fn large_traffic(
    manager: &Arc<RedisManager>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let writer = {
        let (manager, stop) = (manager.clone(), stop.clone());
        let (large, policy) = response(LARGE);
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (large, policy) = (large.clone(), policy.clone());
                let _ = manager.put(format!("large-{}", n % 4), large, policy).await;
                n += 1;
            }
        })
    };
    let reader = {
        let (manager, stop) = (manager.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some((response, _))) = manager.get_stream("large").await {
                    let _ = response.into_body().collect().await;
                }
            }
        })
    };
    vec![writer, reader]
}

fn quantile(times: &[Duration], q: f64) -> f64 {
    let at = ((times.len() as f64 * q) as usize).min(times.len() - 1);
    times[at].as_secs_f64() * 1000.0
}

/// The latencies of one row, in ms.
struct Row {
    name: &'static str,
    quiet: Vec<Duration>,
    busy: Vec<Duration>,
}

impl Row {
    fn figures(&self) -> [f64; 5] {
        [
            quantile(&self.quiet, 0.5),
            quantile(&self.quiet, 0.99),
            quantile(&self.busy, 0.5),
            quantile(&self.busy, 0.99),
            quantile(&self.busy, 1.0),
        ]
    }
}

async fn row(name: &'static str, manager: RedisManager) -> Row {
    let manager = Arc::new(manager);
    let (small, policy) = response(SMALL);
    manager
        .put("small".into(), small, policy)
        .await
        .expect("put small");
    let (large, policy) = response(LARGE);
    manager
        .put("large".into(), large, policy)
        .await
        .expect("put large");
    let quiet = small_hits(&manager).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = large_traffic(&manager, &stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = small_hits(&manager).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let row = Row { name, quiet, busy };
    let [p50, p99, busy50, busy99, max] = row.figures();
    println!("| {name} | {p50:.2} | {p99:.2} | {busy50:.2} | {busy99:.2} | {max:.2} |");
    row
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` lists; there is nothing to list.
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = RedisServer::start(dir.path());
    println!("1 KiB hits (ms), quiet and while 16 MiB entries stream in and out");
    println!();
    println!("| redis | quiet p50 | quiet p99 | busy p50 | busy p99 | busy max |");
    println!("|---|---|---|---|---|---|");
    let single = RedisManager::builder(server.url())
        .prefix("hol")
        .build()
        .expect("a manager");
    let mut rows = vec![row("one server", single).await];
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .expect("a cluster");
    let clustered = RedisManager::builder(cluster.url())
        .prefix(cluster.prefix("hol"))
        .build()
        .expect("a manager");
    rows.push(row("cluster (3 masters)", clustered).await);

    let rows: Vec<String> = rows
        .iter()
        .map(|row| {
            let [p50, p99, busy50, busy99, max] = row.figures();
            format!(
                "{{\"name\": \"{}\", \"quiet_p50_ms\": {p50:.3}, \"quiet_p99_ms\": {p99:.3}, \"busy_p50_ms\": {busy50:.3}, \"busy_p99_ms\": {busy99:.3}, \"busy_max_ms\": {max:.3}}}",
                row.name
            )
        })
        .collect();
    let json = format!(
        "{{\"hits\": {}, \"small\": {SMALL}, \"large\": {LARGE}, \"rows\": [\n  {}\n]}}\n",
        hits(),
        rows.join(",\n  ")
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("redis_small_hits.json"), json).expect("redis_small_hits.json");
}
