//! The proxy bench's figures, as the Markdown section it adds to
//! `target/bench/report.md`.

use std::fmt::Write as _;

use super::coalesce::{self, Coalesced};
use super::servers::{SIZES, Subject};
use super::wrk::{Load, Shape};

/// One subject's cached hits of one body size.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub subject: Subject,
    /// `1KiB`, `64KiB` or `1MiB`.
    pub size: &'static str,
    pub load: Load,
    /// The highest sum of its processes' resident memory during the load.
    pub peak_rss: u64,
    /// Requests that reached the origin during the load (0 when every
    /// request was a hit).
    pub origin_requests: u64,
}

/// One cache under the many-URLs load.
#[derive(Debug, Clone)]
pub struct Many {
    pub subject: Subject,
    pub load: Load,
    /// Requests that reached the origin: the URLs fetched (and stored).
    pub origin_requests: u64,
    /// Resident memory before the load, at its peak, and after it.
    pub before: u64,
    pub peak: u64,
    pub after: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// When the run started (an HTTP date).
    pub date: String,
    pub cores: usize,
    /// `/proc/loadavg` before and after: other work on the machine.
    pub load_before: String,
    pub load_after: String,
    pub hits: Shape,
    pub urls: Shape,
    pub url_count: u32,
    /// nginx's, Varnish's and wrk's versions.
    pub versions: Vec<String>,
    pub throughput: Vec<Throughput>,
    pub coalescing: Vec<(Subject, Coalesced)>,
    pub many: Vec<Many>,
}

impl Results {
    fn hit(&self, subject: Subject, size: &str) -> Option<&Throughput> {
        self.throughput
            .iter()
            .find(|t| t.subject == subject && t.size == size)
    }

    fn many(&self, subject: Subject) -> Option<&Many> {
        self.many.iter().find(|m| m.subject == subject)
    }
}

/// The section, with `chart` (a path relative to the report) shown in it.
pub fn render(results: &Results, chart: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## respcache-proxy beside nginx and Varnish\n\n\
         `cargo xtask bench proxy`, {}, {} cores; load average {} before the run and {} after \
         (other work on the machine). One run: only ratios within it are comparable. \
         All stand in front of one nginx static origin on loopback. {}.\n",
        results.date,
        results.cores,
        results.load_before,
        results.load_after,
        results.versions.join("; ")
    );
    let _ = writeln!(
        out,
        "### Cached hits\n\n`wrk -t{} -c{} -d{}s --latency` on a URL already cached. \
         Peak RSS: the most the cache's processes (master and workers) held at once, \
         sampled every 20 ms. Origin requests: what reached the origin during the load \
         (0: every request was a hit).\n",
        results.hits.threads, results.hits.connections, results.hits.seconds
    );
    let _ = writeln!(
        out,
        "| body | subject | requests/s | p50 | p99 | peak RSS | ×nginx | ×Varnish | origin requests | errors |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    );
    for (size, _) in SIZES {
        let rate = |s| results.hit(s, size).map(|t| t.load.requests_per_sec);
        for t in results.throughput.iter().filter(|t| t.size == size) {
            let _ = writeln!(
                out,
                "| {size} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.subject.name(),
                rate_text(t.load.requests_per_sec),
                ms(t.load.p50_ms),
                ms(t.load.p99_ms),
                mib(t.peak_rss),
                ratio(Some(t.load.requests_per_sec), rate(Subject::Nginx)),
                ratio(Some(t.load.requests_per_sec), rate(Subject::Varnish)),
                t.origin_requests,
                t.load.errors
            );
        }
    }
    let _ = writeln!(out, "\n![requests per second by body size]({chart})\n");

    let _ = writeln!(
        out,
        "### Coalescing\n\n{} clients at once, each on its own connection, on a cold URL \
         whose origin takes {} s to answer.\n\n\
         | cache | origin requests | all answered in | failed |\n|---|---|---|---|",
        coalesce::CLIENTS,
        coalesce::DELAY.as_secs_f64()
    );
    for (subject, c) in &results.coalescing {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} s | {} |",
            subject.name(),
            c.origin_requests,
            c.seconds,
            c.failed
        );
    }

    let _ = writeln!(
        out,
        "\n### Many URLs\n\n`wrk -t{} -c{} -d{}s` asking for `/u/N` ({} bytes each), N drawn \
         at random from 1 to {}, on a fresh cache: misses that get stored, then more and \
         more hits. RSS before the load, at its peak, and {} s after it.\n\n\
         | cache | requests/s | URLs fetched | RSS before | peak | after | peak ×nginx | errors |\n\
         |---|---|---|---|---|---|---|---|",
        results.urls.threads,
        results.urls.connections,
        results.urls.seconds,
        super::servers::SMALL_BODY,
        results.url_count,
        super::SETTLE.as_secs()
    );
    let nginx_peak = results.many(Subject::Nginx).map(|m| m.peak as f64);
    for m in &results.many {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            m.subject.name(),
            rate_text(m.load.requests_per_sec),
            m.origin_requests,
            mib(m.before),
            mib(m.peak),
            mib(m.after),
            ratio(Some(m.peak as f64), nginx_peak),
            m.load.errors
        );
    }

    let _ = writeln!(
        out,
        "\n### Targets (issue 12)\n\n| target | measured | met |\n|---|---|---|"
    );
    for target in targets(results) {
        let met = match target.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {met} |", target.what, target.measured);
    }
    out
}

struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

fn targets(results: &Results) -> Vec<Target> {
    let mut targets = Vec::new();
    let rate = |s, size| results.hit(s, size).map(|t| t.load.requests_per_sec);
    let p99 = |s, size| results.hit(s, size).map(|t| t.load.p99_ms);
    let div = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let at_least = |what: String, value: Option<f64>, limit: f64| Target {
        what,
        measured: value.map_or("-".into(), |v| format!("{v:.2}")),
        met: value.map(|v| v >= limit),
    };
    for (size, _) in SIZES {
        for peer in [Subject::Nginx, Subject::Varnish] {
            targets.push(at_least(
                format!(
                    "fs hits {size}: at least {}'s requests/s (ratio)",
                    peer.name()
                ),
                div(rate(Subject::Fs, size), rate(peer, size)),
                1.0,
            ));
        }
        let best_peer = p99(Subject::Nginx, size)
            .into_iter()
            .chain(p99(Subject::Varnish, size))
            .reduce(f64::min);
        let fs = p99(Subject::Fs, size);
        targets.push(Target {
            what: format!(
                "fs hits {size}: p99 no worse than nginx's and Varnish's (ms, fs vs best)"
            ),
            measured: format!(
                "{} vs {}",
                fs.map_or("-".into(), |v| format!("{v:.2}")),
                best_peer.map_or("-".into(), |v| format!("{v:.2}"))
            ),
            met: fs.zip(best_peer).map(|(fs, peer)| fs <= peer),
        });
    }
    for size in ["1KiB", "64KiB"] {
        targets.push(at_least(
            format!("cacache hits {size}: at least 0.8x nginx's requests/s (ratio)"),
            div(rate(Subject::Cacache, size), rate(Subject::Nginx, size)),
            0.8,
        ));
    }
    let fs_peak = results
        .hit(Subject::Fs, "1MiB")
        .map(|t| t.peak_rss as f64 / 1048576.0);
    targets.push(Target {
        what: "fs peak RSS, 1 MiB hits: at most 24 MiB (MiB)".into(),
        measured: fs_peak.map_or("-".into(), |v| format!("{v:.1}")),
        met: fs_peak.map(|v| v <= 24.0),
    });
    let many_peak = |s| results.many(s).map(|m| m.peak as f64);
    let ratio = div(many_peak(Subject::Fs), many_peak(Subject::Nginx));
    targets.push(Target {
        what: "fs peak RSS, many URLs: at most 2x nginx's (ratio)".into(),
        measured: ratio.map_or("-".into(), |v| format!("{v:.2}")),
        met: ratio.map(|v| v <= 2.0),
    });
    let coalesced = |s| {
        results
            .coalescing
            .iter()
            .find(|(c, _)| *c == s)
            .map(|(_, c)| c)
    };
    if let Some(fs) = coalesced(Subject::Fs) {
        let fastest_peer = [Subject::Nginx, Subject::Varnish]
            .into_iter()
            .filter_map(|s| coalesced(s).map(|c| c.seconds))
            .reduce(f64::min);
        targets.push(Target {
            what: "fs coalescing: one origin request, done within 5% of the faster of nginx and Varnish (s, fs vs best)".into(),
            measured: format!(
                "{} request(s), {:.2} vs {}",
                fs.origin_requests,
                fs.seconds,
                fastest_peer.map_or("-".into(), |v| format!("{v:.2}"))
            ),
            met: Some(
                fs.origin_requests == 1
                    && fs.failed == 0
                    && fastest_peer.is_none_or(|peer| fs.seconds <= peer * 1.05),
            ),
        });
    }
    targets
}

fn rate_text(rate: f64) -> String {
    if rate >= 10_000.0 {
        format!("{:.1}k", rate / 1000.0)
    } else if rate >= 1000.0 {
        format!("{:.2}k", rate / 1000.0)
    } else {
        format!("{rate:.0}")
    }
}

fn ms(value: f64) -> String {
    if value < 1.0 {
        format!("{:.0} µs", value * 1000.0)
    } else {
        format!("{value:.2} ms")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(rate: f64, p99: f64) -> Load {
        Load {
            requests_per_sec: rate,
            p50_ms: p99 / 2.0,
            p99_ms: p99,
            requests: 1000,
            errors: 0,
        }
    }

    fn results() -> Results {
        let hit = |subject, size, rate, p99| Throughput {
            subject,
            size,
            load: load(rate, p99),
            peak_rss: 20 << 20,
            origin_requests: 0,
        };
        Results {
            date: "Wed, 02 Dec 2026 14:50:00 GMT".into(),
            cores: 2,
            load_before: "1.00 1.00 1.00".into(),
            load_after: "2.00 2.00 2.00".into(),
            hits: Shape {
                threads: 2,
                connections: 64,
                seconds: 8,
            },
            urls: Shape {
                threads: 2,
                connections: 64,
                seconds: 30,
            },
            url_count: 75_000,
            versions: vec!["nginx version: nginx/1.22.1".into()],
            throughput: vec![
                hit(Subject::Nginx, "1KiB", 40_000.0, 5.0),
                hit(Subject::Varnish, "1KiB", 30_000.0, 7.0),
                hit(Subject::Fs, "1KiB", 20_000.0, 4.0),
            ],
            coalescing: vec![(
                Subject::Fs,
                Coalesced {
                    origin_requests: 1,
                    seconds: 1.2,
                    failed: 0,
                },
            )],
            many: Vec::new(),
        }
    }

    #[test]
    fn ratios_are_to_nginx_and_varnish_of_the_same_size() {
        let text = render(&results(), "proxy.svg");
        assert!(
            text.contains("| 1KiB | respcache fs | 20.0k | 2.00 ms | 4.00 ms | 20.0 MiB | 0.50 | 0.67 | 0 | 0 |"),
            "{text}"
        );
        assert!(text.contains("![requests per second by body size](proxy.svg)"));
        assert!(text.contains("| respcache fs | 1 | 1.20 s | 0 |"));
    }

    #[test]
    fn targets_say_met_missed_or_not_measured() {
        let text = render(&results(), "proxy.svg");
        assert!(
            text.contains("| fs hits 1KiB: at least nginx's requests/s (ratio) | 0.50 | **no** |"),
            "{text}"
        );
        assert!(text.contains(
            "| fs hits 1KiB: p99 no worse than nginx's and Varnish's (ms, fs vs best) | 4.00 vs 5.00 | yes |"
        ));
        assert!(
            text.contains("| fs peak RSS, 1 MiB hits: at most 24 MiB (MiB) | - | not measured |")
        );
    }
}
