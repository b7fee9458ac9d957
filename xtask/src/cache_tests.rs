//! `cargo xtask cache-tests`: runs the HTTP caching tests behind
//! <https://cache-tests.fyi> (the npm package `http-cache-tests`) against
//! `respcache-proxy`, and scores the result beside the reverse proxies and
//! CDNs whose results the package ships.
//!
//! - `--no-cache`: the suite against its origin directly, no proxy: what no
//!   cache at all scores.
//! - `--id TEST_ID`: one test, with the suite's dump of every request and
//!   response, for debugging. No score.
//! - `--backend fs|cacache`: the proxy's backend (fs by default).
//! - `--config FILE`: the proxy reads FILE too (`xtask/cache-tests.toml`
//!   is one); the task's own flags override what they name.
//!
//! Everything lives in `target/cache-tests/`: the package (`node_modules/`),
//! the results (`results/`), the origin's and the proxy's output (`logs/`)
//! and, while a run lasts, the proxy's cache (`run/`).

mod score;
mod services;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::{TaskResult, workspace_root};
use services::Services;

/// The suite, pinned: its tests and the shipped results change between
/// releases, and the scores are only comparable within one.
const PACKAGE: &str = "http-cache-tests";
const VERSION: &str = "0.4.5";

/// The whole suite takes under half a minute against a local origin; a
/// proxy that hangs a request must not hang the task.
const SUITE_TIMEOUT: Duration = Duration::from_secs(600);

const USAGE: &str = "usage: cargo xtask cache-tests [--no-cache | --backend fs|cacache] [--config FILE] [--proxy-arg FLAG]... [--id TEST_ID]";

pub fn run(args: &[String]) -> TaskResult {
    let options = Options::parse(args)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let dirs = Dirs::new();
        let mut services = Services::new(dirs.run.join(std::process::id().to_string()))?;
        // Listening for Ctrl-C also keeps it from killing this process
        // outright, so the origin, the proxy and the cache directory are
        // cleaned up below whichever way the run ends.
        let outcome = tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
            outcome = cache_tests(&options, &dirs, &mut services) => outcome,
        };
        services.stop().await;
        outcome
    })
}

/// What to run the suite against, and how.
#[derive(Debug)]
struct Options {
    /// `None`: the origin itself (`--no-cache`).
    backend: Option<Backend>,
    /// One test with the suite's dump output, instead of the whole suite.
    id: Option<String>,
    /// More flags for the proxy (`--proxy-arg`, repeatable).
    proxy_args: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Fs,
    Cacache,
}

impl Backend {
    fn as_str(self) -> &'static str {
        match self {
            Backend::Fs => "fs",
            Backend::Cacache => "cacache",
        }
    }
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut no_cache = false;
        let mut backend = None;
        let mut id = None;
        let mut proxy_args = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--no-cache" => no_cache = true,
                "--id" => id = Some(value("--id")?),
                "--proxy-arg" => proxy_args.push(value("--proxy-arg")?),
                "--config" => {
                    let file = PathBuf::from(value("--config")?);
                    let file = file
                        .canonicalize()
                        .map_err(|e| format!("--config {}: {e}", file.display()))?;
                    proxy_args.push("--config".into());
                    proxy_args.push(file.display().to_string());
                }
                "--backend" => {
                    backend = Some(match value("--backend")?.as_str() {
                        "fs" => Backend::Fs,
                        "cacache" => Backend::Cacache,
                        other => return Err(format!("unknown backend `{other}`\n{USAGE}")),
                    })
                }
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        match (no_cache, backend) {
            (true, Some(_)) => Err(format!("--backend means nothing with --no-cache\n{USAGE}")),
            (true, None) if !proxy_args.is_empty() => Err(format!(
                "--proxy-arg means nothing with --no-cache\n{USAGE}"
            )),
            (true, None) => Ok(Options {
                backend: None,
                id,
                proxy_args,
            }),
            (false, backend) => Ok(Options {
                backend: Some(backend.unwrap_or(Backend::Fs)),
                id,
                proxy_args,
            }),
        }
    }

    /// The name of the tested cache in the table and in `results/`.
    fn name(&self) -> String {
        match self.backend {
            Some(backend) if self.proxy_args.is_empty() => {
                format!("respcache ({})", backend.as_str())
            }
            Some(backend) => format!(
                "respcache ({}, {})",
                backend.as_str(),
                self.proxy_args.join(" ")
            ),
            None => "no cache".into(),
        }
    }

    fn results_file(&self) -> &'static str {
        match self.backend {
            Some(_) => "respcache.json",
            None => "no-cache.json",
        }
    }
}

/// The places under `target/cache-tests/`.
#[derive(Debug)]
struct Dirs {
    /// npm's prefix: `package.json` and `node_modules/`.
    root: PathBuf,
    /// The installed package, from where its scripts run.
    package: PathBuf,
    results: PathBuf,
    logs: PathBuf,
    /// Per-run directories, removed when the run ends.
    run: PathBuf,
    /// `origin.mjs` and `score.mjs`, kept beside this crate.
    scripts: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let root = workspace_root().join("target").join("cache-tests");
        Dirs {
            package: root.join("node_modules").join(PACKAGE),
            results: root.join("results"),
            logs: root.join("logs"),
            run: root.join("run"),
            scripts: workspace_root().join("xtask").join("cache-tests"),
            root,
        }
    }
}

async fn cache_tests(options: &Options, dirs: &Dirs, services: &mut Services) -> TaskResult {
    install(dirs).await?;
    std::fs::create_dir_all(&dirs.logs)
        .map_err(|e| format!("creating {}: {e}", dirs.logs.display()))?;
    let origin = services
        .start_origin(
            &dirs.scripts.join("origin.mjs"),
            &dirs.package,
            &dirs.logs.join("origin.log"),
        )
        .await?;
    println!("origin listening on http://{origin}");
    let tested = match options.backend {
        None => origin,
        Some(backend) => {
            let proxy = build_proxy().await?;
            let address = services
                .start_proxy(
                    &proxy,
                    origin,
                    backend.as_str(),
                    &options.proxy_args,
                    &dirs.logs.join("proxy.log"),
                )
                .await?;
            println!(
                "respcache-proxy ({}) listening on http://{address}",
                backend.as_str()
            );
            address
        }
    };
    // No trailing slash: the client appends `/config/…`, and a `//` there
    // would make every test a setup failure.
    let base = format!("http://{tested}");

    if let Some(id) = &options.id {
        return run_one(dirs, &base, id).await;
    }
    println!(
        "\n== {PACKAGE} {VERSION} against {} at {base}",
        options.name()
    );
    let results = run_suite(&dirs.package, &base).await?;
    std::fs::create_dir_all(&dirs.results)
        .map_err(|e| format!("creating {}: {e}", dirs.results.display()))?;
    let file = dirs.results.join(options.results_file());
    std::fs::write(&file, &results).map_err(|e| format!("writing {}: {e}", file.display()))?;
    println!("results written to {}", file.display());
    score::print(
        &dirs.scripts.join("score.mjs"),
        &dirs.package,
        &options.name(),
        &file,
    )
    .await
}

/// `npm install`s the pinned package into `target/cache-tests/`, unless it
/// is there already, at that version and with all its dependencies.
async fn install(dirs: &Dirs) -> TaskResult {
    let spec = format!("{PACKAGE}@{VERSION}");
    // `npm ls --all` fails if anything in the tree is missing or invalid (an
    // install cut short); naming the package instead would check only it.
    let listed = npm()
        .arg("ls")
        .arg("--prefix")
        .arg(&dirs.root)
        .args(["--all", "--json"])
        .stderr(Stdio::null())
        .output()
        .await
        .map_err(|e| not_installed("npm", e))?;
    let tree: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_default();
    if listed.status.success() && tree["dependencies"][PACKAGE]["version"] == VERSION {
        println!("{spec} is installed in {}", dirs.root.display());
        return Ok(());
    }
    println!("\n== npm install {spec}");
    let status = npm()
        .arg("install")
        .arg("--prefix")
        .arg(&dirs.root)
        .args(["--no-audit", "--no-fund", "--save-exact", &spec])
        .status()
        .await
        .map_err(|e| not_installed("npm", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("npm install {spec} failed ({status})"))
    }
}

fn npm() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" });
    command.kill_on_drop(true);
    command
}

/// `node`, with Node's own warnings off as the package's `npm run cli`
/// has them.
fn node() -> tokio::process::Command {
    let mut command = tokio::process::Command::new("node");
    command.arg("--no-warnings").kill_on_drop(true);
    command
}

fn not_installed(program: &str, error: std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::NotFound {
        format!(
            "`{program}` is not installed; the caching tests run on Node.js \
             (14.8 or newer, with npm). Install it and run again."
        )
    } else {
        format!("could not start `{program}`: {error}")
    }
}

/// Builds `respcache-proxy` (as the demo does: optimised under `cargo
/// xtask`, so one build serves both) and returns the binary.
async fn build_proxy() -> Result<PathBuf, String> {
    tokio::task::spawn_blocking(crate::build_proxy)
        .await
        .map_err(|e| format!("building respcache-proxy: {e}"))?
        .map_err(|e| {
            format!("{e}. `cargo xtask cache-tests --no-cache` runs the suite without the proxy.")
        })
}

/// The suite's command-line client in `package`, testing `base`. cli.mjs
/// reads `base` and `id` as npm passes them; `id` falls back to the
/// `npm_package_config_id` npm also sets, so both are set here, or an
/// empty id would read as no id at all.
fn client(package: &Path, base: &str, id: &str) -> tokio::process::Command {
    let mut command = node();
    command
        .arg("cli.mjs")
        .current_dir(package)
        .env("npm_config_base", base)
        .env("npm_config_id", id)
        .env("npm_package_config_id", id);
    command
}

/// Runs every test; returns the client's results JSON as it printed it.
async fn run_suite(package: &Path, base: &str) -> Result<Vec<u8>, String> {
    let output = client(package, base, "")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output();
    let output = tokio::time::timeout(SUITE_TIMEOUT, output)
        .await
        .map_err(|_| format!("the suite did not finish within {SUITE_TIMEOUT:?}"))?
        .map_err(|e| not_installed("node", e))?;
    if !output.status.success() {
        return Err(format!("the suite's client failed ({})", output.status));
    }
    // cli.mjs reports its own errors on stderr and still exits 0, with no
    // results.
    match serde_json::from_slice::<serde_json::Value>(&output.stdout) {
        Ok(serde_json::Value::Object(results)) if !results.is_empty() => Ok(output.stdout),
        _ => Err(format!(
            "the suite's client printed no results (its errors are above); it printed:\n{}",
            String::from_utf8_lossy(&output.stdout)
        )),
    }
}

/// Runs one test with the suite's dump: the client's side as it runs, then
/// the origin's side from its log.
async fn run_one(dirs: &Dirs, base: &str, id: &str) -> TaskResult {
    println!("\n== {PACKAGE} {VERSION}: {id} at {base}");
    let status = client(&dirs.package, base, id)
        .status()
        .await
        .map_err(|e| not_installed("node", e))?;
    let log = dirs.logs.join("origin.log");
    println!("\n== the origin's side ({})", log.display());
    print!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the suite's client failed ({status}); is `{id}` a test id? The ids are \
             the keys of any results file, such as {}",
            dirs.package.join("results").join("squid.json").display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_proxy_with_fs_is_the_default() {
        let options = parse(&[]).unwrap();
        assert!(matches!(options.backend, Some(Backend::Fs)));
        assert!(options.id.is_none());
    }

    #[test]
    fn flags_are_read_and_bad_ones_refused() {
        let options = parse(&["--backend", "cacache", "--id", "freshness-none"]).unwrap();
        assert!(matches!(options.backend, Some(Backend::Cacache)));
        assert_eq!(options.id.as_deref(), Some("freshness-none"));
        assert!(parse(&["--no-cache"]).unwrap().backend.is_none());
        assert!(parse(&["--no-cache", "--backend", "fs"]).is_err());
        assert!(parse(&["--backend", "redis"]).is_err());
        assert!(parse(&["--id"]).is_err());
        assert!(parse(&["--quick"]).is_err());
    }
}
