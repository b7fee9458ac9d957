//! `cargo xtask bench proxy`: respcache-proxy, with the fs and the cacache
//! backend, beside nginx `proxy_cache` and Varnish, all four in front of
//! one nginx static origin on loopback and under the same wrk load:
//!
//! - cached hits of 1 KiB, 64 KiB and 1 MiB bodies: requests per second,
//!   p50 and p99 latency, peak resident memory of the cache's processes,
//!   and the ratios to nginx and Varnish (the origin alone is measured
//!   too: the ceiling on this machine);
//! - coalescing: [`coalesce::CLIENTS`] clients at once on a cold URL whose
//!   origin takes a second; how many requests reach the origin, and when
//!   the last client is answered;
//! - many URLs: wrk asking for `/u/N`, N drawn from about 75k, for a fixed
//!   time; resident memory before, at its peak and after.
//!
//! Prints one table and adds it to `target/bench/report.md`, with a chart
//! of requests per second by body size (`target/bench/proxy.svg`).
//! nginx, Varnish and wrk are installed with apt-get when missing. Every
//! server binds 127.0.0.1 on a free port, and every process and file the
//! run made is gone when it ends, Ctrl-C included.

mod chart;
mod client;
mod coalesce;
mod report;
mod rss;
mod servers;
mod wrk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::TaskResult;
use report::{Many, Results, Throughput};
use servers::{SIZES, Servers, Subject};

const USAGE: &str = "usage: cargo xtask bench proxy [--quick] [--duration SECS] [--urls-duration SECS] [--urls N] [--only SUBJECT,...]
  --duration SECS       each hit load (default 8)
  --urls-duration SECS  the many-URLs load (default 30)
  --urls N              how many distinct /u/N URLs it draws from (default 75000)
  --quick               2 s and 5 s loads, for a first look
  --only SUBJECTS       some of origin,nginx,varnish,fs,cacache";

/// How long nginx may keep access-log lines in its buffer (`flush=1s`),
/// with a margin.
const LOG_FLUSH: Duration = Duration::from_millis(1200);
/// How long after the many-URLs load its "after" memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// The command line.
#[derive(Debug, Clone)]
struct Options {
    hits: wrk::Shape,
    urls: wrk::Shape,
    url_count: u32,
    subjects: Vec<Subject>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let shape = |seconds| wrk::Shape {
            threads: 2,
            connections: 64,
            seconds,
        };
        let mut options = Options {
            hits: shape(8),
            urls: shape(30),
            url_count: 75_000,
            subjects: Subject::ALL.to_vec(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> Result<u32, String> {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{name} takes a positive whole number\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => {
                    options.hits.seconds = 2;
                    options.urls.seconds = 5;
                }
                "--duration" => options.hits.seconds = number("--duration")?,
                "--urls-duration" => options.urls.seconds = number("--urls-duration")?,
                "--urls" => options.url_count = number("--urls")?,
                "--only" => {
                    let list = args.next().ok_or(USAGE)?;
                    options.subjects = list
                        .split(',')
                        .map(|name| {
                            Subject::ALL
                                .into_iter()
                                .find(|s| s.slug().trim_start_matches("respcache-") == name)
                                .ok_or_else(|| format!("unknown subject {name:?}\n{USAGE}"))
                        })
                        .collect::<Result<_, _>>()?;
                }
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(options)
    }
}

pub fn run(args: &[String]) -> TaskResult {
    let options = Options::parse(args)?;
    if !cfg!(target_os = "linux") {
        return Err("`cargo xtask bench proxy` reads memory from /proc: Linux only".into());
    }
    println!("\n== programs the proxy bench runs");
    let mut versions = Vec::new();
    for (name, found) in crate::tools::proxy_bench_programs()? {
        let version = program_version(name);
        let how = found
            .installed_with
            .map_or("already installed".to_owned(), |c| {
                format!("INSTALLED with `{c}`")
            });
        println!("{name}: {version} ({how})");
        versions.push(version);
    }
    if !crate::OPTIMISED {
        println!(
            "warning: this xtask is a debug build, so respcache-proxy is too: run `cargo xtask bench proxy`"
        );
    }
    let proxy = crate::build_proxy()?;
    let out = crate::target_dir().join("bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let results = runtime.block_on(async {
        let dir = RunDir::new(&out)?;
        let mut servers = Servers::new(dir.0.clone());
        // Listening for Ctrl-C also keeps it from killing this process
        // outright, so every server and file is cleaned up below
        // whichever way the run ends.
        let outcome = tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
            outcome = measure(&options, &proxy, &mut servers) => outcome,
        };
        servers.stop_all().await;
        drop(dir);
        outcome
    })?;
    let results = Results {
        versions,
        ..results
    };
    let svg = out.join("proxy.svg");
    chart::draw(&svg, &results.throughput)?;
    let section = report::render(&results, "proxy.svg");
    super::write_section(&out.join("report.md"), "proxy", &section)?;
    println!(
        "\n{section}\nadded to {}, chart in {}",
        out.join("report.md").display(),
        svg.display()
    );
    Ok(())
}

/// The run's directory, removed when dropped.
struct RunDir(PathBuf);

impl RunDir {
    fn new(out: &Path) -> Result<RunDir, String> {
        let dir = out.join(format!("proxy-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(RunDir(dir))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("warning: could not remove {}: {e}", self.0.display());
        }
    }
}

async fn measure(
    options: &Options,
    proxy: &Path,
    servers: &mut Servers,
) -> Result<Results, String> {
    let mut results = Results {
        date: httpdate::fmt_http_date(std::time::SystemTime::now()),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before: load_average(),
        load_after: String::new(),
        hits: options.hits,
        urls: options.urls,
        url_count: options.url_count,
        versions: Vec::new(),
        throughput: Vec::new(),
        coalescing: Vec::new(),
        many: Vec::new(),
    };
    let slow = coalesce::slow_origin().await;
    let (origin, log) = servers.start_origin(slow.addr).await?;
    println!(
        "\n== cached hits: wrk -t{} -c{} -d{}s --latency",
        options.hits.threads, options.hits.connections, options.hits.seconds
    );
    for &subject in &options.subjects {
        let server = match subject {
            Subject::Origin => origin,
            cache => servers.start_cache(cache, origin.addr, proxy).await?,
        };
        for (size, len) in SIZES {
            let path = format!("/{size}");
            // The first is stored, the second should be a hit.
            client::get_ok(server.addr, &path, len).await?;
            client::get_ok(server.addr, &path, len).await?;
            tokio::time::sleep(LOG_FLUSH).await;
            let logged = lines(&log)?;
            let sampler = rss::Sampler::start(server.pid);
            let load = wrk::run(&format!("http://{}{path}", server.addr), options.hits, None).await;
            let peak_rss = sampler.peak();
            let load = load?;
            tokio::time::sleep(LOG_FLUSH).await;
            let origin_requests = lines(&log)? - logged;
            println!(
                "{:<18} {size:>6}: {:>9.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, peak RSS {:.1} MiB, {origin_requests} origin requests, {} errors",
                subject.name(),
                load.requests_per_sec,
                load.p50_ms,
                load.p99_ms,
                mib(peak_rss),
                load.errors
            );
            results.throughput.push(Throughput {
                subject,
                size,
                load,
                peak_rss,
                origin_requests,
            });
        }
        if subject != Subject::Origin {
            let path = format!("/slow/{}", subject.slug());
            let coalesced = coalesce::run(server.addr, &path, &slow).await;
            println!(
                "{:<18} coalescing: {} clients, {} origin requests, all answered in {:.2} s, {} failed",
                subject.name(),
                coalesce::CLIENTS,
                coalesced.origin_requests,
                coalesced.seconds,
                coalesced.failed
            );
            results.coalescing.push((subject, coalesced));
            servers.stop(server).await;
        }
    }

    println!(
        "\n== many URLs: /u/1 to /u/{} at random, wrk -t{} -c{} -d{}s",
        options.url_count, options.urls.threads, options.urls.connections, options.urls.seconds
    );
    let script = log.with_file_name("many-urls.lua");
    std::fs::write(&script, wrk::many_urls_script(options.url_count))
        .map_err(|e| format!("writing {}: {e}", script.display()))?;
    for &subject in options.subjects.iter().filter(|&&s| s != Subject::Origin) {
        let server = servers.start_cache(subject, origin.addr, proxy).await?;
        tokio::time::sleep(SETTLE).await;
        let before = rss::tree_rss(server.pid);
        let logged = lines(&log)?;
        let sampler = rss::Sampler::start(server.pid);
        let load = wrk::run(
            &format!("http://{}/", server.addr),
            options.urls,
            Some(&script),
        )
        .await;
        let peak = sampler.peak();
        let load = load?;
        tokio::time::sleep(SETTLE).await;
        let after = rss::tree_rss(server.pid);
        let stored = lines(&log)? - logged;
        println!(
            "{:<18} {:>9.0} requests/s, {stored} URLs fetched from the origin, RSS {:.1} MiB before, {:.1} MiB peak, {:.1} MiB after, {} errors",
            subject.name(),
            load.requests_per_sec,
            mib(before),
            mib(peak),
            mib(after),
            load.errors
        );
        results.many.push(Many {
            subject,
            load,
            origin_requests: stored,
            before,
            peak,
            after,
        });
        servers.stop(server).await;
    }
    results.load_after = load_average();
    Ok(results)
}

/// Lines in the origin's access log so far.
fn lines(log: &Path) -> Result<u64, String> {
    let text = std::fs::read(log).map_err(|e| format!("reading {}: {e}", log.display()))?;
    Ok(text.iter().filter(|&&b| b == b'\n').count() as u64)
}

/// `/proc/loadavg`'s first three fields.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// What `name` says its version is (each says it its own way).
fn program_version(name: &str) -> String {
    let flag = match name {
        "varnishd" => "-V",
        _ => "-v",
    };
    std::process::Command::new(name)
        .arg(flag)
        .output()
        .ok()
        .map(|output| {
            let text = [output.stdout, output.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| name.to_owned())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_default_to_the_issue_load_and_take_overrides() {
        let default = parse(&[]).unwrap();
        assert_eq!(
            (
                default.hits.threads,
                default.hits.connections,
                default.hits.seconds
            ),
            (2, 64, 8)
        );
        assert_eq!(default.subjects, Subject::ALL);
        let options = parse(&["--quick", "--duration", "3", "--only", "nginx,fs"]).unwrap();
        assert_eq!((options.hits.seconds, options.urls.seconds), (3, 5));
        assert_eq!(options.subjects, [Subject::Nginx, Subject::Fs]);
        assert!(
            parse(&["--duration", "0"])
                .unwrap_err()
                .contains("positive")
        );
        assert!(parse(&["--only", "squid"]).unwrap_err().contains("squid"));
        assert!(parse(&["--fast"]).unwrap_err().contains("--fast"));
    }
}
