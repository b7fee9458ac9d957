//! `respcache`: a command line for a respcache cache on disk (fs or
//! cacache) or in Redis.
//!
//! ```text
//! respcache --fs /var/cache/respcache ls 'GET:https://example.com/'
//! respcache --fs /var/cache/respcache show 'GET:https://example.com/page'
//! respcache --cacache ./http-cache verify          # exit status 1 if any entry is damaged
//! respcache --fs /var/cache/respcache gc
//! respcache --redis redis://127.0.0.1/ purge --tag product-42
//! respcache --redis redis://127.0.0.1/ --json stats
//! ```

#![deny(rustdoc::broken_intra_doc_links)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use respcache_core::{BoxError, CacheManager};
use serde_json::json;

/// List, inspect, verify, collect and purge a respcache cache.
#[derive(Debug, Parser)]
#[command(name = "respcache", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    store: Store,
    /// Print JSON (one document) instead of text for a person.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where the cache is: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Store {
    /// A `respcache-fs` cache directory (the proxy's `--dir`).
    #[arg(long, value_name = "DIR")]
    fs: Option<PathBuf>,
    /// A `respcache-cacache` cache directory.
    #[arg(long, value_name = "DIR")]
    cacache: Option<PathBuf>,
    /// A Redis server holding a `respcache-redis` cache, `redis://HOST:PORT/`.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the stored keys, or those starting with PREFIX.
    Ls {
        /// Only keys starting with this.
        prefix: Option<String>,
    },
    /// Show the stored response of KEY: status, fields, body size.
    Show {
        /// The cache key (the proxy's are `GET:` and the URL).
        key: String,
    },
    /// Read every entry whole and check it; exit status 1 if any is
    /// damaged (a damaged entry is dropped by the read, as a lookup would).
    Verify,
    /// Reclaim storage: files of dead writers, bodies no entry uses,
    /// entries past their lifetime (fs; the other backends reclaim as
    /// they go).
    Gc,
    /// Remove entries: one key, every key under a prefix, or every entry
    /// carrying a tag.
    Purge {
        /// One key.
        #[arg(long, group = "what", required_unless_present_any = ["prefix", "tag"])]
        key: Option<String>,
        /// Every key starting with this.
        #[arg(long, group = "what")]
        prefix: Option<String>,
        /// Every entry whose response carried this tag (`Surrogate-Key`,
        /// `Cache-Tag`).
        #[arg(long, group = "what")]
        tag: Option<String>,
    },
    /// Count entries and the bytes of their bodies (reads every entry).
    Stats,
}

/// An opened cache.
enum Opened {
    Fs(respcache_fs::StreamingManager),
    Cacache(respcache_cacache::CACacheManager),
    Redis(respcache_redis::RedisManager),
}

impl Opened {
    fn open(store: &Store) -> Result<Self, BoxError> {
        if let Some(dir) = &store.fs {
            if !dir.is_dir() {
                return Err(format!("no cache directory at {}", dir.display()).into());
            }
            // A tool that only looks must not change what it looks at.
            let manager = respcache_fs::StreamingManager::builder(dir.clone())
                .gc_at_start(false)
                .build();
            return Ok(Self::Fs(manager));
        }
        if let Some(dir) = &store.cacache {
            if !dir.is_dir() {
                return Err(format!("no cache directory at {}", dir.display()).into());
            }
            return Ok(Self::Cacache(respcache_cacache::CACacheManager::new(
                dir.clone(),
                true,
            )));
        }
        let url = store
            .redis
            .clone()
            .ok_or("name a cache: --fs, --cacache or --redis")?;
        Ok(Self::Redis(respcache_redis::RedisManager::new(url)?))
    }

    fn manager(&self) -> &dyn CacheManager {
        match self {
            Self::Fs(manager) => manager,
            Self::Cacache(manager) => manager,
            Self::Redis(manager) => manager,
        }
    }
}

/// The fields whose values tag an entry, as the engine reads them by default.
const TAG_FIELDS: [&str; 2] = ["surrogate-key", "cache-tag"];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("respcache: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(error) => {
            if cli.json {
                println!("{}", json!({ "error": error.to_string() }));
            } else {
                eprintln!("respcache: {error}");
            }
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> Result<ExitCode, BoxError> {
    let opened = Opened::open(&cli.store)?;
    let cache = opened.manager();
    match &cli.command {
        Command::Ls { prefix } => {
            let mut keys = list(cache, prefix.as_deref().unwrap_or("")).await?;
            keys.sort();
            if cli.json {
                println!("{}", json!({ "keys": keys }));
            } else {
                for key in &keys {
                    println!("{}", printable(key));
                }
            }
        }
        Command::Show { key } => {
            let Some((response, _policy)) = cache.get(key).await? else {
                return Err(format!("no entry for {}", printable(key)).into());
            };
            let headers: Vec<(String, String)> = response
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            if cli.json {
                println!(
                    "{}",
                    json!({
                        "key": key,
                        "url": response.url.as_str(),
                        "status": response.status,
                        "version": format!("{:?}", response.version),
                        "headers": headers,
                        "body_bytes": response.body.len(),
                    })
                );
            } else {
                println!("key:     {}", printable(key));
                println!("url:     {}", response.url);
                println!("status:  {} ({:?})", response.status, response.version);
                println!("body:    {} bytes", response.body.len());
                for (name, value) in headers {
                    println!("  {name}: {value}");
                }
            }
        }
        Command::Verify => {
            let keys = list(cache, "").await?;
            let bar = progress(keys.len(), "verifying");
            let mut damaged = Vec::new();
            for key in &keys {
                match cache.get(key).await {
                    Ok(Some(_)) => {}
                    // Listed but unreadable: the read found it damaged
                    // (and dropped it), or it vanished meanwhile.
                    Ok(None) => damaged.push((key.clone(), "damaged or unreadable".to_owned())),
                    Err(error) => damaged.push((key.clone(), error.to_string())),
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            if cli.json {
                let list: Vec<_> = damaged
                    .iter()
                    .map(|(key, why)| json!({ "key": key, "error": why }))
                    .collect();
                println!(
                    "{}",
                    json!({ "checked": keys.len(), "damaged": damaged.len(), "entries": list })
                );
            } else {
                for (key, why) in &damaged {
                    println!("damaged: {}: {why}", printable(key));
                }
                println!("{} entries checked, {} damaged", keys.len(), damaged.len());
            }
            if !damaged.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Gc => match &opened {
            Opened::Fs(manager) => {
                let report = manager.gc().await?;
                if cli.json {
                    println!(
                        "{}",
                        json!({
                            "expired": report.expired,
                            "temp_files": report.temp_files,
                            "links": report.links,
                            "contents": report.contents,
                            "metadata": report.metadata,
                        })
                    );
                } else {
                    println!(
                        "removed {} expired entries, {} temporary files, {} unused links, {} unused bodies, {} undecodable records",
                        report.expired,
                        report.temp_files,
                        report.links,
                        report.contents,
                        report.metadata
                    );
                }
            }
            _ => {
                let note = "this backend reclaims storage as it goes (cacache removes content on delete; Redis expires keys): nothing to collect";
                if cli.json {
                    println!("{}", json!({ "note": note }));
                } else {
                    println!("{note}");
                }
            }
        },
        Command::Purge { key, prefix, tag } => {
            let keys = match (key, prefix, tag) {
                (Some(key), _, _) => {
                    let found = cache.get(key).await?.is_some();
                    if found { vec![key.clone()] } else { Vec::new() }
                }
                (_, Some(prefix), _) => list(cache, prefix).await?,
                (_, _, Some(tag)) => tagged(cache, tag).await?,
                _ => return Err("name what to purge: --key, --prefix or --tag".into()),
            };
            let bar = progress(keys.len(), "purging");
            for key in &keys {
                cache.delete(key).await?;
                bar.inc(1);
            }
            bar.finish_and_clear();
            if cli.json {
                println!("{}", json!({ "purged": keys.len() }));
            } else {
                println!("purged {} entries", keys.len());
            }
        }
        Command::Stats => {
            let keys = list(cache, "").await?;
            let bar = progress(keys.len(), "reading");
            let (mut entries, mut bytes) = (0u64, 0u64);
            for key in &keys {
                if let Ok(Some((response, _))) = cache.get(key).await {
                    entries += 1;
                    bytes += response.body.len() as u64;
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            if cli.json {
                println!("{}", json!({ "entries": entries, "body_bytes": bytes }));
            } else {
                println!("{entries} entries, {bytes} bytes of bodies");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The stored keys starting with `prefix`.
async fn list(cache: &dyn CacheManager, prefix: &str) -> Result<Vec<String>, BoxError> {
    cache
        .keys(prefix)
        .await?
        .ok_or_else(|| "this backend cannot list its keys".into())
}

/// The keys of entries carrying `tag`: from the backend's tag index, or
/// by reading every entry where it keeps none.
async fn tagged(cache: &dyn CacheManager, tag: &str) -> Result<Vec<String>, BoxError> {
    if let Some(keys) = cache.tagged(tag).await? {
        return Ok(keys);
    }
    let keys = list(cache, "").await?;
    let bar = progress(keys.len(), "reading tags");
    let mut found = Vec::new();
    for key in keys {
        if let Some((response, _)) = cache.get(&key).await? {
            let carries = TAG_FIELDS.iter().any(|field| {
                response.headers.get_all(*field).iter().any(|value| {
                    value
                        .to_str()
                        .is_ok_and(|value| value.split([' ', '\t', ',']).any(|t| t == tag))
                })
            });
            if carries {
                found.push(key);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(found)
}

/// A key as one line: newlines and other control characters escaped.
fn printable(key: &str) -> String {
    key.escape_debug().to_string()
}

/// A progress bar on stderr for a walk of `len` entries, drawn only when
/// stderr is a terminal.
fn progress(len: usize, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({eta})") {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar
}
