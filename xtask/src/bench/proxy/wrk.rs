//! The load: `wrk` with fixed threads and connections, its output parsed
//! into requests per second and latency percentiles.

use std::path::Path;
use std::process::Stdio;

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Completed requests per second.
    pub requests_per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Requests completed.
    pub requests: u64,
    /// Responses that were not 2xx or 3xx, plus connect, read, write and
    /// timeout errors.
    pub errors: u64,
}

/// How wrk is run: the same for every subject.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// wrk's `-t`.
    pub threads: u32,
    /// wrk's `-c`.
    pub connections: u32,
    /// wrk's `-d`, seconds.
    pub seconds: u32,
}

/// Runs `wrk --latency` against `url` (with the Lua `script`, if any).
pub async fn run(url: &str, shape: Shape, script: Option<&Path>) -> Result<Load, String> {
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{}", shape.threads))
        .arg(format!("-c{}", shape.connections))
        .arg(format!("-d{}s", shape.seconds))
        .args(["--latency", "--timeout", "10s"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("could not run wrk: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk {url} failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    parse(&stdout).map_err(|e| format!("wrk {url}: {e} in:\n{stdout}"))
}

/// Reads wrk's report (`--latency`).
pub fn parse(output: &str) -> Result<Load, String> {
    let field = |prefix: &str| {
        output
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_sec = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or("no Requests/sec")?;
    let percentile = |p: &str| {
        field(p)
            .and_then(milliseconds)
            .ok_or_else(|| format!("no {p} latency"))
    };
    let p50_ms = percentile("50%")?;
    let p99_ms = percentile("99%")?;
    let requests = output
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .ok_or("no request count")?;
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket: u64 = field("Socket errors:").map_or(0, |errors| {
        errors
            .split(',')
            .filter_map(|e| e.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    });
    let status: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(Load {
        requests_per_sec,
        p50_ms,
        p99_ms,
        requests,
        errors: socket + status,
    })
}

/// A wrk duration (`612.00us`, `1.43ms`, `1.02s`, `1.50m`) in milliseconds.
fn milliseconds(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        _ => return None,
    };
    Some(number * scale)
}

/// A wrk script that asks each request for `/u/N`, `N` drawn uniformly
/// from 1 to `urls`, each thread from its own seed: early requests are
/// misses that get stored, later ones more and more hits.
pub fn many_urls_script(urls: u32) -> String {
    format!(
        r#"-- Written by `cargo xtask bench proxy`.
local threads = 0
function setup(thread)
  thread:set("seed", threads * 7919 + 17)
  threads = threads + 1
end
function init(args)
  math.randomseed(seed)
end
function request()
  return wrk.format("GET", "/u/" .. math.random(1, {urls}))
end
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 8s test @ http://127.0.0.1:8080/1k
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms  562.13us  12.38ms   85.21%
    Req/Sec    21.47k     1.37k   24.76k    72.50%
  Latency Distribution
     50%  612.00us
     75%    1.71ms
     90%    2.09ms
     99%    1.02s
  341804 requests in 8.00s, 400.86MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 12
Requests/sec:  42725.68
Transfer/sec:     50.11MB
";

    #[test]
    fn reads_rate_percentiles_count_and_errors() {
        let load = parse(OUTPUT).unwrap();
        assert_eq!(load.requests_per_sec, 42725.68);
        assert!((load.p50_ms - 0.612).abs() < 1e-9);
        assert_eq!(load.p99_ms, 1020.0);
        assert_eq!(load.requests, 341804);
        assert_eq!(load.errors, 17);
    }

    #[test]
    fn a_clean_run_has_no_errors_and_a_truncated_one_is_refused() {
        let clean: String = OUTPUT
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse(&clean).unwrap().errors, 0);
        let truncated = OUTPUT.replace("     99%    1.02s\n", "");
        assert!(parse(&truncated).unwrap_err().contains("99%"));
        assert!(parse("").is_err());
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(milliseconds("2.50ms"), Some(2.5));
        assert_eq!(milliseconds("1.50m"), Some(90e3));
        assert_eq!(milliseconds("3"), None);
        assert_eq!(milliseconds("3parsecs"), None);
    }
}
