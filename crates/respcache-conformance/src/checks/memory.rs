//! Flat memory: a 1 GiB body streamed in and out of the cache grows the
//! peak resident memory of the process that does it by a bounded amount.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use respcache_core::{CacheManager, StreamingCacheManager, StreamingError};

use crate::checks::process::{CHILD_LOCATION_ENV, ChildTest};
use crate::checks::require;
use crate::failure::{Context, FailureKind};
use crate::{CheckResult, Failure, Harness, ensure, fixtures};

/// Bytes streamed through the cache by the memory check.
pub const STREAMED_BYTES: u64 = 1 << 30;
/// How much the peak resident memory may grow while they stream.
pub const PEAK_GROWTH_BOUND: u64 = 16 << 20;
/// Frame size of the origin body in the memory check.
const FRAME: usize = 64 * 1024;
const STREAM_BYTES_ENV: &str = "RESPCACHE_CONFORMANCE_STREAM_BYTES";
const REPORT_PREFIX: &str = "respcache-conformance-peak-growth=";
const DEADLINE: Duration = Duration::from_secs(600);

/// A child process puts a 1 GiB body through `put_stream` (reading what
/// the caller gets) and reads it back through `get_stream`, checking every
/// byte; its peak resident memory grows by less than 16 MiB.
pub async fn streaming_memory_stays_flat<H>(h: &H, child: &ChildTest) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    streaming_memory_stays_flat_with(h, child, STREAMED_BYTES).await
}

/// [`streaming_memory_stays_flat`] with `bytes` streamed instead of
/// 1 GiB, and the same bound: for the suite's own proof, whose broken
/// manager holds every byte it streams.
#[doc(hidden)]
pub async fn streaming_memory_stays_flat_with<H>(
    h: &H,
    child: &ChildTest,
    bytes: u64,
) -> CheckResult
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    require::<H>(
        |c| c.bodies_outside_memory,
        "it keeps bodies outside the process's memory (bodies_outside_memory)",
    )?;
    let mut command = child.command(&h.location())?;
    command
        .env(STREAM_BYTES_ENV, bytes.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .map_err(|_| {
            Failure::new(
                FailureKind::Operation,
                format!("the streaming child took over {DEADLINE:?}"),
            )
        })?
        .context("running the streaming child")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = stdout
        .lines()
        .find_map(|line| line.split_once(REPORT_PREFIX).map(|(_, value)| value))
        .ok_or_else(|| {
            Failure::new(
                FailureKind::Operation,
                format!(
                    "the streaming child reported nothing ({}): {}{}",
                    output.status,
                    stdout.trim(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            )
        })?;
    let growth: u64 = report.trim().parse().map_err(|_| {
        Failure::new(
            FailureKind::Operation,
            format!("the streaming child reported {report:?}"),
        )
    })?;
    ensure!(
        Operation,
        output.status.success(),
        "the streaming child failed ({}): {}",
        output.status,
        stdout.trim()
    );
    println!(
        "peak resident memory grew by {} KiB while streaming {bytes} bytes in and out",
        growth / 1024
    );
    ensure!(
        Memory,
        growth < PEAK_GROWTH_BOUND,
        "peak resident memory grew by {growth} bytes while streaming {bytes} bytes (bound {PEAK_GROWTH_BOUND})"
    );
    Ok(())
}

/// The body of the ignored test `conformance_child_streamer`: with the
/// location set, runs the streaming measured by
/// [`streaming_memory_stays_flat`] and prints its peak growth.
pub fn child_streamer_main<H>()
where
    H: Harness,
    H::Manager: StreamingCacheManager,
{
    let (Ok(location), Ok(bytes)) = (
        std::env::var(CHILD_LOCATION_ENV),
        std::env::var(STREAM_BYTES_ENV),
    ) else {
        eprintln!(
            "conformance_child_streamer is started by streaming_memory_stays_flat; nothing to do"
        );
        return;
    };
    let bytes: u64 = bytes.parse().expect("a byte count");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the streaming child");
    let outcome = runtime.block_on(async {
        let manager = H::open_location(&location).await;
        // Warm up: threads, pools and allocator arenas exist before the
        // measurement starts.
        stream_through(&manager, "warm-up", 4 * 1024 * 1024).await?;
        let baseline = reset_peak()?;
        stream_through(&manager, "large", bytes).await?;
        let peak = read_status("VmHWM:")?;
        manager.delete("large").await.map_err(|e| e.to_string())?;
        Ok::<u64, String>(peak.saturating_sub(baseline))
    });
    match outcome {
        Ok(growth) => println!("{REPORT_PREFIX}{growth}"),
        Err(err) => panic!("streaming child: {err}"),
    }
}

async fn stream_through<M: StreamingCacheManager>(
    manager: &M,
    key: &str,
    bytes: u64,
) -> Result<(), String> {
    let block = pattern_block();
    let like = fixtures::response(Bytes::new());
    let policy = fixtures::policy_for(&like);
    let head = like.parts().map_err(|e| e.to_string())?;
    let origin = RepeatBody {
        block: block.clone(),
        left: bytes,
    };
    let response = manager
        .put_stream(
            key.into(),
            http::Response::from_parts(head, origin),
            policy,
            like.url.clone(),
        )
        .await
        .map_err(|e| format!("put_stream: {e}"))?;
    check_pattern(response.into_body(), &block, bytes, "put_stream").await?;
    let (response, _) = manager
        .get_stream(key)
        .await
        .map_err(|e| format!("get_stream: {e}"))?
        .ok_or("the streamed put was not committed")?;
    check_pattern(response.into_body(), &block, bytes, "get_stream").await
}

async fn check_pattern<B>(body: B, block: &Bytes, expected: u64, what: &str) -> Result<(), String>
where
    B: Body<Data = Bytes>,
    B::Error: Into<respcache_core::BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut at = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("{what} body failed at {at}: {}", e.into()))?;
        if let Some(data) = frame.data_ref() {
            for (i, byte) in data.iter().enumerate() {
                if *byte != block[((at + i as u64) % FRAME as u64) as usize] {
                    return Err(format!("{what} body differs at byte {}", at + i as u64));
                }
            }
            at += data.len() as u64;
        }
    }
    if at == expected {
        Ok(())
    } else {
        Err(format!("{what} body has {at} bytes, expected {expected}"))
    }
}

fn pattern_block() -> Bytes {
    Bytes::from(
        (0..FRAME)
            .map(|i| (i * 131 % 251) as u8)
            .collect::<Vec<_>>(),
    )
}

/// Resets the peak to the current resident set (Linux `clear_refs`, value
/// 5) and returns it.
fn reset_peak() -> Result<u64, String> {
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| format!("cannot reset the peak RSS: {e}"))?;
    read_status("VmHWM:")
}

/// A `/proc/self/status` field in bytes.
fn read_status(field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("no {field} in /proc/self/status"))
}

/// An origin body of `left` bytes: the same block again and again, so the
/// origin itself allocates nothing while it streams.
struct RepeatBody {
    block: Bytes,
    left: u64,
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = StreamingError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, StreamingError>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let take = self.left.min(self.block.len() as u64) as usize;
        self.left -= take as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(self.block.slice(..take)))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}
