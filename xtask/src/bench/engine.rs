//! `cargo xtask bench engine [--quick]`: the engine's hit path (the
//! `engine` bench in `benches/`), respcache's `HttpCache` beside
//! `http-cache`'s tower middleware on the same in-process service, as a
//! section of `target/bench/report.md`.

use std::fmt::Write as _;

use serde_json::Value;

use crate::TaskResult;

/// Issue 12's target: the engine's hit path at least this many times
/// `http-cache`'s.
const TARGET: f64 = 2.0;

pub fn run(args: &[String]) -> TaskResult {
    let quick = match args {
        [] => false,
        [flag] if flag == "--quick" => true,
        _ => return Err("usage: cargo xtask bench engine [--quick]".into()),
    };
    let json = super::run_json_bench(
        "engine",
        quick,
        "engine: hits through each cache's tower layer",
    )?;
    super::publish("engine", &render(&json, quick))
}

fn render(json: &Value, quick: bool) -> String {
    let rows = json["rows"].as_array().cloned().unwrap_or_default();
    let tasks = json["tasks"].as_u64().unwrap_or(0);
    let number = |row: &Value, field: &str| row[field].as_f64();
    let find = |name: &str, size: &str| {
        rows.iter()
            .find(|r| r["name"] == name && r["size"] == size)
            .cloned()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Engine hit path\n\n`cargo xtask bench engine` ({}), on {} cores: respcache's \
         `HttpCache` through its tower layer, and `http-cache-tower` 1.0.0-alpha.9, around the \
         same in-process service, on a URL already cached; each response read whole. Hits per \
         second one at a time (median of rounds) and from {tasks} tasks on 2 workers; \
         allocations and bytes allocated per hit, counted by the bench's global allocator. \
         ×peer: ours over the faster `http-cache` manager at that size.\n",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        out,
        "| body | subject | hits/s | hits/s, {tasks} tasks | allocations/hit | bytes/hit | ×peer | ×peer, {tasks} tasks |\n\
         |---|---|---|---|---|---|---|---|"
    );
    let sizes = super::sizes(&rows);
    let mut targets = Vec::new();
    for size in &sizes {
        let best_peer = |field: &str| {
            ["http-cache-cacache", "http-cache-streaming"]
                .iter()
                .filter_map(|peer| find(peer, size).and_then(|r| number(&r, field)))
                .reduce(f64::max)
        };
        let peer = best_peer("hits_per_sec");
        let peer_concurrent = best_peer("concurrent_hits_per_sec");
        for row in rows.iter().filter(|r| r["size"] == size.as_str()) {
            let name = row["name"].as_str().unwrap_or("?");
            let ratio = |field: &str, peer: Option<f64>| {
                number(row, field)
                    .zip(peer)
                    .filter(|_| name.starts_with("respcache"))
                    .map(|(ours, peer)| ours / peer)
            };
            let single = ratio("hits_per_sec", peer);
            let concurrent = ratio("concurrent_hits_per_sec", peer_concurrent);
            let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                out,
                "| {size} | {name} | {} | {} | {} | {} | {} | {} |",
                number(row, "hits_per_sec").map_or("-".into(), |v| format!("{v:.0}")),
                number(row, "concurrent_hits_per_sec").map_or("-".into(), |v| format!("{v:.0}")),
                number(row, "allocations_per_hit").map_or("-".into(), |v| format!("{v:.1}")),
                number(row, "bytes_per_hit").map_or("-".into(), |v| format!("{v:.0}")),
                show(single),
                show(concurrent),
            );
            if name.starts_with("respcache") {
                targets.push((format!("{name} {size}, one at a time"), single));
                targets.push((format!("{name} {size}, {tasks} tasks"), concurrent));
            }
        }
    }
    super::targets_table(
        &mut out,
        "issue 12: hits/s over http-cache's",
        TARGET,
        &targets,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_to_the_faster_peer_and_targets_follow() {
        let json: Value = serde_json::from_str(
            r#"{"tasks": 64, "rows": [
              {"name": "respcache-fs", "size": "1KiB", "hits_per_sec": 90000, "concurrent_hits_per_sec": 100000, "allocations_per_hit": 40, "bytes_per_hit": 5000},
              {"name": "http-cache-cacache", "size": "1KiB", "hits_per_sec": 30000, "concurrent_hits_per_sec": 60000, "allocations_per_hit": 300, "bytes_per_hit": 90000},
              {"name": "http-cache-streaming", "size": "1KiB", "hits_per_sec": 40000, "concurrent_hits_per_sec": 20000, "allocations_per_hit": 200, "bytes_per_hit": 9000}
            ]}"#,
        )
        .unwrap();
        let text = render(&json, false);
        assert!(
            text.contains("| 1KiB | respcache-fs | 90000 | 100000 | 40.0 | 5000 | 2.25 | 1.67 |"),
            "{text}"
        );
        assert!(
            text.contains("| 1KiB | http-cache-cacache | 30000 | 60000 | 300.0 | 90000 | - | - |")
        );
        assert!(text.contains("| respcache-fs 1KiB, one at a time | 2.25 | yes |"));
        assert!(text.contains("| respcache-fs 1KiB, 64 tasks | 1.67 | **no** |"));
    }
}
