//! What criterion's medians do not show for streaming stores: time to
//! first byte of a streamed put, a 256 MiB put in 64 KiB frames beside the
//! same body in one frame, a streamed 256 MiB read, and the peak resident
//! memory of a 1 GiB put and get (each in a child process of its own).
//! Writes `target/bench/streaming.json` for `cargo xtask bench`.

#![allow(missing_docs)]

mod common;

use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use respcache_core::StreamingCacheManager;

use common::{KIB, MIB, head, policy, quick, url};

const FRAME: usize = 64 * KIB;
const CHILD_ENV: &str = "RESPCACHE_BENCH_RSS_CHILD";

type Drained = Pin<Box<dyn Body<Data = Bytes, Error = respcache_core::BoxError> + Send>>;

/// An origin that has its whole body ready: `left` bytes, in frames of
/// `frame` bytes, all slices of one buffer (it allocates nothing itself).
struct Origin {
    block: Bytes,
    frame: usize,
    left: u64,
}

impl Origin {
    fn new(len: u64, frame: usize) -> Self {
        let block = common::body(frame.min(len as usize).max(1));
        Self {
            block,
            frame,
            left: len,
        }
    }
}

impl Body for Origin {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let take = self.left.min(self.frame as u64) as usize;
        self.left -= take as u64;
        std::task::Poll::Ready(Some(Ok(Frame::data(self.block.slice(..take)))))
    }
}

#[async_trait::async_trait]
trait Streamer: Send + Sync {
    fn name(&self) -> &'static str;
    async fn put(&self, key: &str, origin: Origin) -> Drained;
    async fn get(&self, key: &str) -> Drained;
}

struct Ours<M>(&'static str, M);

#[async_trait::async_trait]
impl<M> Streamer for Ours<M>
where
    M: StreamingCacheManager,
{
    fn name(&self) -> &'static str {
        self.0
    }
    async fn put(&self, key: &str, origin: Origin) -> Drained {
        let response = http::Response::from_parts(head(), origin);
        let response = self
            .1
            .put_stream(key.into(), response, policy(), url())
            .await
            .expect("put_stream");
        Box::pin(response.into_body().map_err(Into::into))
    }
    async fn get(&self, key: &str) -> Drained {
        let (response, _) = self
            .1
            .get_stream(key)
            .await
            .expect("get_stream")
            .expect("stored");
        Box::pin(response.into_body().map_err(Into::into))
    }
}

struct Peer(http_cache::StreamingManager);

#[async_trait::async_trait]
impl Streamer for Peer {
    fn name(&self) -> &'static str {
        "peer-streaming"
    }
    async fn put(&self, key: &str, origin: Origin) -> Drained {
        use http_cache::StreamingCacheManager as _;
        let response = http::Response::from_parts(head(), origin);
        let response = self
            .0
            .put(key.into(), response, policy(), url(), None)
            .await
            .expect("peer put");
        Box::pin(response.into_body().map_err(|e| e.to_string().into()))
    }
    async fn get(&self, key: &str) -> Drained {
        use http_cache::StreamingCacheManager as _;
        let (response, _) = self.0.get(key).await.expect("peer get").expect("stored");
        Box::pin(response.into_body().map_err(|e| e.to_string().into()))
    }
}

/// The streaming subjects, on fresh storage under `dir`.
async fn streamers(dir: &Path) -> (Vec<Box<dyn Streamer>>, respcache_testkit::RedisServer) {
    let redis = respcache_testkit::RedisServer::start(&mkdir(dir, "redis-server"));
    let peer =
        http_cache::StreamingManager::with_max_body_size(mkdir(dir, "peer"), 10_000, 2 << 30)
            .await
            .expect("the peer's streaming manager");
    let redis_manager = respcache_redis::RedisManager::builder(redis.url())
        .max_body_size(2 << 30)
        .build()
        .expect("a redis manager");
    let all: Vec<Box<dyn Streamer>> = vec![
        Box::new(Ours(
            "fs",
            respcache_fs::StreamingManager::new(mkdir(dir, "fs")),
        )),
        Box::new(Peer(peer)),
        Box::new(Ours("redis", redis_manager)),
    ];
    (all, redis)
}

fn mkdir(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("a dir");
    path
}

async fn drain(mut body: Drained) -> u64 {
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("a frame").into_data() {
            len += data.len() as u64;
        }
    }
    len
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

struct Timings {
    ttfb: Duration,
    framed_put: Duration,
    one_frame_put: Duration,
    get: Duration,
}

async fn time(streamer: &dyn Streamer, size: u64, runs: usize) -> Timings {
    let (mut ttfb, mut framed, mut whole, mut get) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let key = format!("framed-{run}");
        let started = Instant::now();
        let mut body = streamer.put(&key, Origin::new(size, FRAME)).await;
        let first = body
            .frame()
            .await
            .expect("a first frame")
            .expect("no error");
        ttfb.push(started.elapsed());
        let rest = drain(body).await;
        framed.push(started.elapsed());
        assert_eq!(first.into_data().map_or(0, |d| d.len() as u64) + rest, size);

        let key = format!("whole-{run}");
        let started = Instant::now();
        assert_eq!(
            drain(streamer.put(&key, Origin::new(size, size as usize)).await).await,
            size
        );
        whole.push(started.elapsed());

        let started = Instant::now();
        assert_eq!(drain(streamer.get(&key).await).await, size);
        get.push(started.elapsed());
    }
    Timings {
        ttfb: median(ttfb),
        framed_put: median(framed),
        one_frame_put: median(whole),
        get: median(get),
    }
}

/// The floor for 256 MiB: write a temporary file and rename it, read a
/// file whole, and SHA-256 of the bytes.
fn floor(dir: &Path, size: usize, runs: usize) -> (Duration, Duration, Duration) {
    use sha2::Digest;
    let data = common::body(size);
    let (mut put, mut get, mut hash) = (vec![], vec![], vec![]);
    for run in 0..runs {
        let path = dir.join(format!("floor-{run}"));
        let tmp = dir.join(format!("floor-{run}.tmp"));
        let started = Instant::now();
        std::fs::write(&tmp, &data).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        put.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(std::fs::read(&path).expect("read").len(), size);
        get.push(started.elapsed());
        let started = Instant::now();
        std::hint::black_box(sha2::Sha256::digest(&data));
        hash.push(started.elapsed());
    }
    (median(put), median(get), median(hash))
}

/// In a child: 1 GiB in 64 KiB frames through `put_stream`, then out
/// through `get_stream`, after a warm-up; prints the peak RSS growth.
async fn rss_child(name: &str, bytes: u64) {
    let dir = tempfile::Builder::new()
        .prefix("respcache-rss-")
        .tempdir()
        .expect("a dir");
    let (all, _redis) = streamers(dir.path()).await;
    let streamer = all
        .into_iter()
        .find(|s| s.name() == name)
        .expect("a known streamer");
    drain(
        streamer
            .put("warm-up", Origin::new(8 * MIB as u64, FRAME))
            .await,
    )
    .await;
    drain(streamer.get("warm-up").await).await;
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    let baseline = vm("VmHWM:");
    assert_eq!(
        drain(streamer.put("big", Origin::new(bytes, FRAME)).await).await,
        bytes
    );
    assert_eq!(drain(streamer.get("big").await).await, bytes);
    println!("rss-growth-bytes={}", vm("VmHWM:").saturating_sub(baseline));
}

fn vm(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn rss_of(name: &str, bytes: u64) -> Option<u64> {
    let output = std::process::Command::new(std::env::current_exe().ok()?)
        .env(CHILD_ENV, format!("{name}:{bytes}"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("rss-growth-bytes="))
        .and_then(|v| v.trim().parse().ok())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (name, bytes) = spec.split_once(':').expect("name:bytes");
        runtime.block_on(rss_child(name, bytes.parse().expect("bytes")));
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and the like: nothing to list.
    }
    let (size, runs, rss_bytes) = if quick() {
        (64 * MIB, 1, 256 * MIB as u64)
    } else {
        (256 * MIB, 3, 1 << 30)
    };
    let dir = tempfile::Builder::new()
        .prefix("respcache-stream-")
        .tempdir()
        .expect("a dir");
    let mut rows = Vec::new();
    let (all, redis) = runtime.block_on(streamers(dir.path()));
    common::settle_disk(dir.path());
    for streamer in &all {
        let t = runtime.block_on(time(streamer.as_ref(), size as u64, runs));
        eprintln!(
            "{}: ttfb {:?}, framed put {:?}, one-frame put {:?}, get {:?}",
            streamer.name(),
            t.ttfb,
            t.framed_put,
            t.one_frame_put,
            t.get
        );
        rows.push((streamer.name(), t));
    }
    drop(all);
    drop(redis);
    let (floor_put, floor_get, floor_sha) = floor(&mkdir(dir.path(), "floor"), size, runs);
    let mut json = format!(
        "{{\"size\": {size}, \"frame\": {FRAME}, \"rss_bytes\": {rss_bytes}, \"floor\": {{\"put_ns\": {}, \"get_ns\": {}, \"sha256_ns\": {}}}, \"subjects\": [",
        floor_put.as_nanos(),
        floor_get.as_nanos(),
        floor_sha.as_nanos()
    );
    for (i, (name, t)) in rows.iter().enumerate() {
        let rss = rss_of(name, rss_bytes).map_or("null".into(), |b| b.to_string());
        eprintln!("{name}: peak RSS growth {rss} bytes for {rss_bytes} bytes in and out");
        json.push_str(&format!(
            "{}{{\"name\": \"{name}\", \"ttfb_ns\": {}, \"framed_put_ns\": {}, \"one_frame_put_ns\": {}, \"get_ns\": {}, \"rss_growth_bytes\": {rss}}}",
            if i > 0 { ", " } else { "" },
            t.ttfb.as_nanos(),
            t.framed_put.as_nanos(),
            t.one_frame_put.as_nanos(),
            t.get.as_nanos()
        ));
    }
    json.push_str("]}\n");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("streaming.json"), json).expect("streaming.json");
}
