//! The reqwest rows of `cargo xtask bench` (or `cargo xtask bench reqwest
//! [--quick]` alone): a reqwest client's hits through respcache-reqwest
//! over respcache-memory (and over fs) beside http-cache-reqwest with its
//! moka manager (the `reqwest` bench in `benches/`), as a section of
//! `target/bench/report.md`.

use std::fmt::Write as _;

use serde_json::Value;

use crate::TaskResult;

/// Issue 13's target: respcache-reqwest with respcache-memory at least
/// this many times http-cache-reqwest's hits per second.
const TARGET: f64 = 1.5;

/// The peer every respcache row is set beside.
const PEER: &str = "http-cache-reqwest (moka)";

/// The row the target is about.
const OURS: &str = "respcache-reqwest (memory)";

pub fn run(args: &[String]) -> TaskResult {
    let quick = match args {
        [] => false,
        [flag] if flag == "--quick" => true,
        _ => return Err("usage: cargo xtask bench reqwest [--quick]".into()),
    };
    measure(quick)
}

/// Runs the bench and writes its section.
pub fn measure(quick: bool) -> TaskResult {
    let json = super::run_json_bench(
        "reqwest",
        quick,
        "reqwest: hits through respcache-reqwest and http-cache-reqwest",
    )?;
    super::publish("reqwest", &render(&json, quick))
}

fn render(json: &Value, quick: bool) -> String {
    let rows = json["rows"].as_array().cloned().unwrap_or_default();
    let number = |row: &Value, field: &str| row[field].as_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## reqwest hits\n\n`reqwest` bench ({}), on {} cores: a reqwest client (reqwest-middleware) \
         answered from its cache, a loopback origin behind it; each hit sends the request and \
         reads the whole body, one at a time on a one-thread runtime. `{OURS}` is \
         respcache-reqwest over respcache-memory, `respcache-reqwest (fs)` over the fs backend, \
         `{PEER}` is http-cache-reqwest 1.0.0-alpha.10 with its moka manager. Hits per second: \
         the median of rounds; allocations and bytes allocated per hit: counted over 1000 hits \
         by the bench's global allocator, every thread included. ×peer: hits/s over the peer's at \
         that size.\n",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        out,
        "| body | subject | hits/s | allocations/hit | bytes/hit | ×peer |\n|---|---|---|---|---|---|"
    );
    let mut targets = Vec::new();
    for size in &super::sizes(&rows) {
        let peer = rows
            .iter()
            .find(|r| r["name"] == PEER && r["size"] == size.as_str())
            .and_then(|r| number(r, "hits_per_sec"));
        for row in rows.iter().filter(|r| r["size"] == size.as_str()) {
            let name = row["name"].as_str().unwrap_or("?");
            let ratio = number(row, "hits_per_sec")
                .zip(peer)
                .filter(|_| name != PEER)
                .map(|(ours, peer)| ours / peer);
            let _ = writeln!(
                out,
                "| {size} | {name} | {} | {} | {} | {} |",
                number(row, "hits_per_sec").map_or("-".into(), |v| format!("{v:.0}")),
                number(row, "allocations_per_hit").map_or("-".into(), |v| format!("{v:.1}")),
                number(row, "bytes_per_hit").map_or("-".into(), |v| format!("{v:.0}")),
                ratio.map_or("-".into(), |v| format!("{v:.2}")),
            );
            if name == OURS {
                targets.push((format!("{name} {size}"), ratio));
            }
        }
    }
    super::targets_table(
        &mut out,
        &format!("issue 13: hits/s over {PEER}'s"),
        TARGET,
        &targets,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_set_beside_the_peer_at_their_size_and_targets_follow() {
        let json: Value = serde_json::from_str(
            r#"{"rows": [
              {"name": "respcache-reqwest (memory)", "size": "1KiB", "hits_per_sec": 30000, "allocations_per_hit": 50, "bytes_per_hit": 9000},
              {"name": "respcache-reqwest (fs)", "size": "1KiB", "hits_per_sec": 25000, "allocations_per_hit": 52, "bytes_per_hit": 9100},
              {"name": "http-cache-reqwest (moka)", "size": "1KiB", "hits_per_sec": 15000, "allocations_per_hit": 150, "bytes_per_hit": 20000},
              {"name": "respcache-reqwest (memory)", "size": "64KiB", "hits_per_sec": 10000, "allocations_per_hit": 50, "bytes_per_hit": 9000},
              {"name": "http-cache-reqwest (moka)", "size": "64KiB", "hits_per_sec": 8000, "allocations_per_hit": 150, "bytes_per_hit": 200000}
            ]}"#,
        )
        .unwrap();
        let text = render(&json, true);
        assert!(
            text.contains("| 1KiB | respcache-reqwest (memory) | 30000 | 50.0 | 9000 | 2.00 |"),
            "{text}"
        );
        assert!(text.contains("| 1KiB | respcache-reqwest (fs) | 25000 | 52.0 | 9100 | 1.67 |"));
        assert!(text.contains("| 1KiB | http-cache-reqwest (moka) | 15000 | 150.0 | 20000 | - |"));
        assert!(text.contains("| respcache-reqwest (memory) 1KiB | 2.00 | yes |"));
        assert!(text.contains("| respcache-reqwest (memory) 64KiB | 1.25 | **no** |"));
        assert!(!text.contains("| respcache-reqwest (fs) 1KiB |"), "{text}");
    }
}
