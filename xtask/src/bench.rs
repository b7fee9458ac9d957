//! `cargo xtask bench [--quick]`: runs the benchmarks and writes
//! `target/bench/report.md`: medians per operation, the ratios ours/peer and
//! ours/floor from the same run, and each target met or missed; Redis on
//! one server beside a Redis Cluster, with small-hit latency under large
//! streams; and a reqwest client's hits beside http-cache-reqwest (see
//! [`reqwest`], also run alone as `cargo xtask bench reqwest`).
//!
//! `cargo xtask bench proxy`: respcache-proxy beside nginx and Varnish
//! (see [`proxy`]), and `cargo xtask bench engine`: the engine's hit path
//! beside `http-cache`'s tower middleware (see [`engine`]), each added to
//! the same report.

mod engine;
mod proxy;
mod reqwest;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{TaskResult, cargo, run_step, workspace_root};

const GROUPS: &[&str] = &["put", "get_hit", "get_miss", "delete", "concurrent_hits"];
const SUBJECTS: &[&str] = &[
    "cacache",
    "peer-cacache",
    "fs",
    "fs-stream",
    "peer-streaming",
    "redis",
    "redis-cluster",
    "memory",
    "tiered",
    "floor",
];

pub fn run(args: &[String]) -> TaskResult {
    match args.first().map(String::as_str) {
        Some("proxy") => return proxy::run(&args[1..]),
        Some("engine") => return engine::run(&args[1..]),
        Some("reqwest") => return reqwest::run(&args[1..]),
        _ => {}
    }
    crate::tools::require_redis_server("bench")?;
    let quick = args.iter().any(|a| a == "--quick");
    let criterion = workspace_root().join("target").join("criterion");
    for group in GROUPS {
        let _ = std::fs::remove_dir_all(criterion.join(group));
    }
    let bench = |name: &str| {
        let mut command = cargo(&["bench", "-p", "respcache-benches", "--bench", name]);
        if quick {
            command.env("RESPCACHE_BENCH_QUICK", "1");
        }
        command
    };
    run_step(
        "criterion: every backend (Redis on one server and on a cluster), the peer and the floor",
        &mut bench("backends"),
    )?;
    run_step(
        "streaming: time to first byte, frames, peak memory",
        &mut bench("streaming"),
    )?;
    run_step(
        "redis_small_hits: 1 KiB hit latency while 16 MiB entries stream, one server and a cluster",
        &mut bench("redis_small_hits"),
    )?;

    let medians = read_medians(&criterion)?;
    let out = workspace_root().join("target").join("bench");
    let read_json = |name: &str| -> Result<Value, String> {
        let text = std::fs::read_to_string(out.join(name))
            .map_err(|e| format!("target/bench/{name}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))
    };
    let streaming = read_json("streaming.json")?;
    let small_hits = read_json("redis_small_hits.json")?;
    let mut report = report(&medians, &streaming, quick);
    report.push('\n');
    report.push_str(&redis_report(&medians, &small_hits));
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    write_section(&out.join("report.md"), "backends", &report)?;
    println!("\n{report}\nwritten to target/bench/report.md");
    reqwest::measure(quick)
}

/// Redis on one server beside the test cluster: put and hit medians at
/// each size (from the criterion run), and 1 KiB hit latency while 16 MiB
/// entries stream (from `redis_small_hits.json`).
fn redis_report(medians: &Medians, small_hits: &Value) -> String {
    let get = |g: &str, s: &str, p: &str| medians.get(&(g.into(), s.into(), p.into())).copied();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Redis: one server and a cluster\n\n`redis` is RedisManager on one `redis-server`; \
         `redis-cluster` is RedisManager on the test kit's Redis Cluster (six `redis-server` \
         processes on this machine, three masters with a replica each, through a \
         `redis+cluster://` URL), both through the buffered API, medians of the run above. \
         cluster/one: the cluster's time over one server's.\n"
    );
    let _ = writeln!(
        out,
        "| size | put, one server | put, cluster | put cluster/one | hit, one server | hit, cluster | hit cluster/one |\n\
         |---|---|---|---|---|---|---|"
    );
    for p in parameters(medians, "get_hit") {
        let cell = |g: &str, s: &str| get(g, s, &p).map_or("-".into(), time);
        let _ = writeln!(
            out,
            "| {p} | {} | {} | {} | {} | {} | {} |",
            cell("put", "redis"),
            cell("put", "redis-cluster"),
            ratio(get("put", "redis-cluster", &p), get("put", "redis", &p)),
            cell("get_hit", "redis"),
            cell("get_hit", "redis-cluster"),
            ratio(
                get("get_hit", "redis-cluster", &p),
                get("get_hit", "redis", &p)
            ),
        );
    }
    let ms = |row: &Value, field: &str| {
        row[field]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.2}"))
    };
    let _ = writeln!(
        out,
        "\n### 1 KiB hits while 16 MiB entries stream\n\n`redis_small_hits`: {} hits of one {} KiB \
         entry, one after another, alone (quiet) and while one task puts {} MiB entries and \
         another streams one out through the same manager (busy); latency in ms.\n",
        small_hits["hits"].as_u64().unwrap_or(0),
        small_hits["small"].as_u64().unwrap_or(0) >> 10,
        small_hits["large"].as_u64().unwrap_or(0) >> 20,
    );
    let _ = writeln!(
        out,
        "| redis | quiet p50 | quiet p99 | busy p50 | busy p99 | busy max |\n|---|---|---|---|---|---|"
    );
    for row in small_hits["rows"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row["name"].as_str().unwrap_or("?"),
            ms(row, "quiet_p50_ms"),
            ms(row, "quiet_p99_ms"),
            ms(row, "busy_p50_ms"),
            ms(row, "busy_p99_ms"),
            ms(row, "busy_max_ms"),
        );
    }
    out
}

/// Puts `text` in `report` as its section `name`, in place of what an
/// earlier run wrote there, keeping the other sections: each part of the
/// bench (`cargo xtask bench`, `bench proxy`) rewrites only its own.
/// Runs one of `benches/`'s benches that writes `target/bench/NAME.json`,
/// quick or full, and returns that file's JSON.
fn run_json_bench(name: &str, quick: bool, step: &str) -> Result<Value, String> {
    let mut bench = cargo(&["bench", "-p", "respcache-benches", "--bench", name]);
    if quick {
        bench.env("RESPCACHE_BENCH_QUICK", "1");
    }
    run_step(step, &mut bench)?;
    let path = workspace_root()
        .join("target")
        .join("bench")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `section` as the report's section `name` and shows it.
fn publish(name: &str, section: &str) -> TaskResult {
    let report = workspace_root()
        .join("target")
        .join("bench")
        .join("report.md");
    write_section(&report, name, section)?;
    println!("\n{section}\nadded to target/bench/report.md");
    Ok(())
}

/// The body sizes of `rows`, in the order they first appear.
fn sizes(rows: &[Value]) -> Vec<String> {
    let mut sizes: Vec<String> = Vec::new();
    for row in rows {
        if let Some(size) = row["size"].as_str()
            && !sizes.iter().any(|s| s == size)
        {
            sizes.push(size.to_owned());
        }
    }
    sizes
}

/// A "Targets" table: each measured ratio against `target`, met or not.
fn targets_table(out: &mut String, heading: &str, target: f64, targets: &[(String, Option<f64>)]) {
    let _ = writeln!(
        out,
        "\n### Targets ({heading})\n\n| target: at least {target}x | measured | met |\n|---|---|---|"
    );
    for (what, ratio) in targets {
        let met = match ratio {
            Some(r) if *r >= target => "yes",
            Some(_) => "**no**",
            None => "not measured",
        };
        let shown = ratio.map_or("-".into(), |r| format!("{r:.2}"));
        let _ = writeln!(out, "| {what} | {shown} | {met} |");
    }
}

pub fn write_section(report: &Path, name: &str, text: &str) -> TaskResult {
    let old = match std::fs::read_to_string(report) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", report.display())),
    };
    let new = replace_section(&old, name, text);
    std::fs::write(report, new).map_err(|e| format!("writing {}: {e}", report.display()))
}

fn replace_section(old: &str, name: &str, text: &str) -> String {
    let start = format!("<!-- {name}: start -->");
    let end = format!("<!-- {name}: end -->");
    let section = format!("{start}\n{}\n{end}\n", text.trim_end());
    match (old.find(&start), old.find(&end)) {
        (Some(from), Some(to)) if from < to => {
            let after = old[to + end.len()..].trim_start_matches('\n');
            format!("{}{section}{after}", &old[..from])
        }
        _ if old.trim().is_empty() => section,
        _ => format!("{}\n\n{section}", old.trim_end()),
    }
}

/// (group, subject, parameter) → median nanoseconds.
type Medians = BTreeMap<(String, String, String), f64>;

fn read_medians(criterion: &Path) -> Result<Medians, String> {
    let mut medians = Medians::new();
    for group in GROUPS {
        for subject in dirs(&criterion.join(group)) {
            for parameter in dirs(&subject) {
                let estimates = parameter.join("new").join("estimates.json");
                let Ok(text) = std::fs::read_to_string(&estimates) else {
                    continue;
                };
                let json: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: {e}", estimates.display()))?;
                if let Some(ns) = json["median"]["point_estimate"].as_f64() {
                    medians.insert((group.to_string(), name(&subject), name(&parameter)), ns);
                }
            }
        }
    }
    if medians.is_empty() {
        return Err("criterion wrote no estimates".into());
    }
    Ok(medians)
}

fn dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "report"))
        .collect();
    found.sort();
    found
}

fn name(path: &Path) -> String {
    path.file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned())
}

fn time(ns: f64) -> String {
    match ns {
        ns if ns >= 1e9 => format!("{:.2} s", ns / 1e9),
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.1} µs", ns / 1e3),
        ns => format!("{ns:.0} ns"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

fn parameters(medians: &Medians, group: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (g, _, p) in medians.keys() {
        if g == group && !found.contains(p) {
            found.push(p.clone());
        }
    }
    let size = |p: &String| -> u64 {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        let n: u64 = digits.parse().unwrap_or(0);
        if p.contains("MiB") {
            n << 20
        } else if p.contains("KiB") {
            n << 10
        } else {
            n
        }
    };
    found.sort_by_key(size);
    found
}

struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

fn report(medians: &Medians, streaming: &Value, quick: bool) -> String {
    let get = |g: &str, s: &str, p: &str| medians.get(&(g.into(), s.into(), p.into())).copied();
    let mut out = String::new();
    let _ = writeln!(out, "# respcache benchmark report\n");
    let _ = writeln!(
        out,
        "{} run on {} cores. Medians of one run: only ratios within this run are comparable. \
         `fs` is StreamingManager through the buffered API, `fs-stream` through the streaming API; \
         `peer-*` are `http-cache` 1.0.0-alpha.9's managers; `floor` is plain std::fs (write a temp \
         file and rename it; read a file whole) through spawn_blocking.\n",
        if quick { "Quick" } else { "Full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for group in ["put", "get_hit", "get_miss", "delete"] {
        let _ = writeln!(out, "## {group}\n");
        let _ = writeln!(
            out,
            "| size | {} | cacache/peer | fs/peer | fs/floor | cacache/floor | redis/floor |",
            SUBJECTS.join(" | ")
        );
        let _ = writeln!(out, "|{}", "---|".repeat(SUBJECTS.len() + 6));
        for p in parameters(medians, group) {
            let cells: Vec<String> = SUBJECTS
                .iter()
                .map(|s| get(group, s, &p).map_or("-".into(), time))
                .collect();
            let _ = writeln!(
                out,
                "| {p} | {} | {} | {} | {} | {} | {} |",
                cells.join(" | "),
                ratio(get(group, "cacache", &p), get(group, "peer-cacache", &p)),
                ratio(get(group, "fs", &p), get(group, "peer-streaming", &p)),
                ratio(get(group, "fs", &p), get(group, "floor", &p)),
                ratio(get(group, "cacache", &p), get(group, "floor", &p)),
                ratio(get(group, "redis", &p), get(group, "floor", &p)),
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "## memory and tiered\n\n`memory` is MemoryManager through the buffered API; `tiered` is memory \
         in front of fs through the streaming API, so its hit is a memory hit to set beside `fs-stream`'s.\n"
    );
    let _ = writeln!(
        out,
        "| size | memory put | memory hit | fs hit | memory/fs hit | tiered hit | fs-stream hit | tiered/fs-stream hit |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for p in parameters(medians, "get_hit") {
        let cell = |g: &str, s: &str| get(g, s, &p).map_or("-".into(), time);
        let _ = writeln!(
            out,
            "| {p} | {} | {} | {} | {} | {} | {} | {} |",
            cell("put", "memory"),
            cell("get_hit", "memory"),
            cell("get_hit", "fs"),
            ratio(get("get_hit", "memory", &p), get("get_hit", "fs", &p)),
            cell("get_hit", "tiered"),
            cell("get_hit", "fs-stream"),
            ratio(
                get("get_hit", "tiered", &p),
                get("get_hit", "fs-stream", &p)
            ),
        );
    }
    let _ = writeln!(out);
    let ops = |s: &str, p: &str| get("concurrent_hits", s, p).map(|ns| 256.0 / (ns / 1e9));
    let _ = writeln!(
        out,
        "## concurrent_hits (1 KiB, 256 keys), operations per second\n"
    );
    let _ = writeln!(out, "| tasks | {} | fs/floor |", SUBJECTS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(SUBJECTS.len() + 2));
    for p in parameters(medians, "concurrent_hits") {
        let cells: Vec<String> = SUBJECTS
            .iter()
            .map(|s| ops(s, &p).map_or("-".into(), |o| format!("{o:.0}")))
            .collect();
        let _ = writeln!(
            out,
            "| {p} | {} | {} |",
            cells.join(" | "),
            ratio(ops("fs", &p), ops("floor", &p))
        );
    }

    let size = streaming["size"].as_u64().unwrap_or(0);
    let rss_bytes = streaming["rss_bytes"].as_u64().unwrap_or(0);
    let floor_get = streaming["floor"]["get_ns"].as_f64();
    let _ = writeln!(
        out,
        "\n## streaming ({} MiB in {} KiB frames; peak RSS for {} MiB in and out)\n",
        size >> 20,
        streaming["frame"].as_u64().unwrap_or(0) >> 10,
        rss_bytes >> 20
    );
    let _ = writeln!(
        out,
        "floor: write+rename {}, read {}, SHA-256 {}\n",
        streaming["floor"]["put_ns"]
            .as_f64()
            .map_or("-".into(), time),
        floor_get.map_or("-".into(), time),
        streaming["floor"]["sha256_ns"]
            .as_f64()
            .map_or("-".into(), time)
    );
    let _ = writeln!(
        out,
        "| subject | time to first byte | put, frames | put, one frame | frames/one frame | get | get/floor | peak RSS growth |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let subjects = streaming["subjects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let find = |name: &str| subjects.iter().find(|s| s["name"] == name).cloned();
    for s in &subjects {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s["name"].as_str().unwrap_or("?"),
            s["ttfb_ns"].as_f64().map_or("-".into(), time),
            s["framed_put_ns"].as_f64().map_or("-".into(), time),
            s["one_frame_put_ns"].as_f64().map_or("-".into(), time),
            ratio(s["framed_put_ns"].as_f64(), s["one_frame_put_ns"].as_f64()),
            s["get_ns"].as_f64().map_or("-".into(), time),
            ratio(s["get_ns"].as_f64(), floor_get),
            s["rss_growth_bytes"]
                .as_u64()
                .map_or("-".into(), |b| format!("{} KiB", b >> 10)),
        );
    }

    let mut targets = Vec::new();
    let at_most = |what: &str, value: Option<f64>, limit: f64| Target {
        what: what.into(),
        measured: value.map_or("-".into(), |v| format!("{v:.2}")),
        met: value.map(|v| v <= limit),
    };
    let at_least = |what: &str, value: Option<f64>, limit: f64| Target {
        what: what.into(),
        measured: value.map_or("-".into(), |v| format!("{v:.2}")),
        met: value.map(|v| v >= limit),
    };
    let div = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    targets.push(at_most(
        "fs get hit 1 KiB: at most 3x the floor",
        div(
            get("get_hit", "fs", "1KiB"),
            get("get_hit", "floor", "1KiB"),
        ),
        3.0,
    ));
    for p in ["1MiB", "16MiB"] {
        targets.push(at_most(
            &format!("fs get hit {p}: at most 2x the floor"),
            div(get("get_hit", "fs", p), get("get_hit", "floor", p)),
            2.0,
        ));
        targets.push(at_most(
            &format!("fs put {p}: at most 2x the floor"),
            div(get("put", "fs", p), get("put", "floor", p)),
            2.0,
        ));
        targets.push(at_least(
            &format!("fs put {p}: at least 1.5x faster than the peer"),
            div(get("put", "peer-streaming", p), get("put", "fs", p)),
            1.5,
        ));
    }
    targets.push(at_least(
        "fs small hits, 64 tasks: at least the floor's ops/s (ratio)",
        div(ops("fs", "64tasks"), ops("floor", "64tasks")),
        1.0,
    ));
    for group in ["get_hit", "put"] {
        for p in parameters(medians, group) {
            targets.push(at_least(
                &format!("cacache {group} {p}: at least 1.5x faster than the peer"),
                div(get(group, "peer-cacache", &p), get(group, "cacache", &p)),
                1.5,
            ));
        }
    }
    if let Some(fs) = find("fs") {
        let ttfb_ms = fs["ttfb_ns"].as_f64().map(|ns| ns / 1e6);
        targets.push(at_most(
            &format!(
                "fs streaming time to first byte, {} MiB: under 5 ms (ms)",
                size >> 20
            ),
            ttfb_ms,
            5.0,
        ));
        targets.push(at_most(
            "fs put in 64 KiB frames: within 1.5x of one frame",
            div(
                fs["framed_put_ns"].as_f64(),
                fs["one_frame_put_ns"].as_f64(),
            ),
            1.5,
        ));
        let peer_rss = find("peer-streaming").and_then(|p| p["rss_growth_bytes"].as_f64());
        let ours_rss = fs["rss_growth_bytes"].as_f64();
        targets.push(Target {
            what: "fs peak RSS growth: at most the peer's plus 4 MiB (MiB, ours vs peer)".into(),
            measured: format!(
                "{} vs {}",
                ours_rss.map_or("-".into(), |b| format!("{:.2}", b / 1048576.0)),
                peer_rss.map_or("-".into(), |b| format!("{:.2}", b / 1048576.0))
            ),
            met: ours_rss
                .zip(peer_rss)
                .map(|(o, p)| o <= p + 4.0 * 1048576.0),
        });
    }
    let _ = writeln!(
        out,
        "\n## Targets\n\n| target | measured | met |\n|---|---|---|"
    );
    for t in &targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {met} |", t.what, t.measured);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Medians, redis_report, replace_section};

    #[test]
    fn the_redis_section_sets_the_cluster_beside_one_server() {
        let mut medians = Medians::new();
        for (group, subject, size, ns) in [
            ("put", "redis", "1KiB", 100_000.0),
            ("put", "redis-cluster", "1KiB", 150_000.0),
            ("get_hit", "redis", "1KiB", 50_000.0),
            ("get_hit", "redis-cluster", "1KiB", 60_000.0),
            ("get_hit", "redis", "1MiB", 1_000_000.0),
        ] {
            medians.insert((group.into(), subject.into(), size.into()), ns);
        }
        let small_hits = serde_json::json!({"hits": 300, "small": 1024, "large": 16777216, "rows": [
            {"name": "one server", "quiet_p50_ms": 0.1, "quiet_p99_ms": 0.5, "busy_p50_ms": 0.2, "busy_p99_ms": 90.0, "busy_max_ms": 120.5},
            {"name": "cluster (3 masters)", "quiet_p50_ms": 0.2}
        ]});
        let text = redis_report(&medians, &small_hits);
        assert!(
            text.contains("| 1KiB | 100.0 µs | 150.0 µs | 1.50 | 50.0 µs | 60.0 µs | 1.20 |"),
            "{text}"
        );
        assert!(
            text.contains("| 1MiB | - | - | - | 1.00 ms | - | - |"),
            "{text}"
        );
        assert!(text.contains("300 hits of one 1 KiB entry"), "{text}");
        assert!(
            text.contains("while one task puts 16 MiB entries"),
            "{text}"
        );
        assert!(text.contains("| one server | 0.10 | 0.50 | 0.20 | 90.00 | 120.50 |"));
        assert!(text.contains("| cluster (3 masters) | 0.20 | - | - | - | - |"));
    }

    #[test]
    fn a_section_replaces_its_old_self_and_keeps_the_others() {
        let first = replace_section("", "backends", "# report\n\nold");
        assert_eq!(
            first,
            "<!-- backends: start -->\n# report\n\nold\n<!-- backends: end -->\n"
        );
        let both = replace_section(&first, "proxy", "## proxy\n1");
        assert!(both.starts_with(&first.trim_end().to_string()));
        assert!(both.ends_with("<!-- proxy: start -->\n## proxy\n1\n<!-- proxy: end -->\n"));
        let again = replace_section(&both, "backends", "# report\n\nnew");
        assert!(again.contains("new") && !again.contains("old"), "{again}");
        assert!(again.contains("## proxy\n1"), "{again}");
        let proxy_again = replace_section(&again, "proxy", "## proxy\n2");
        assert_eq!(proxy_again.matches("<!-- proxy: start -->").count(), 1);
        assert!(proxy_again.contains("## proxy\n2") && !proxy_again.contains("## proxy\n1"));
        // A report written before sections existed is kept above them.
        let legacy = replace_section("# report\nplain", "proxy", "p");
        assert!(legacy.starts_with("# report\nplain\n\n<!-- proxy: start -->"));
    }
}
