//! `respcache-proxy`: a caching reverse proxy. Requests go to one origin;
//! responses are stored and served by respcache's RFC 9111 engine, with an
//! RFC 9211 `Cache-Status` on each. What the cache does not answer passes
//! through untouched: any method and body, any status, request fields.
//!
//! ```text
//! respcache-proxy --upstream http://127.0.0.1:8000 --listen 127.0.0.1:8080 \
//!                 --backend fs --dir /var/cache/respcache --admin 127.0.0.1:9090
//! ```

mod admin;
mod args;
mod forwarding;
mod metrics;
mod purge;
mod server;
mod tunnel;
mod upstream;

use std::process::ExitCode;

use args::{Args, Backend};
use clap::Parser;
use respcache_http::{Buffered, HttpCache, Options, Streaming};

fn main() -> ExitCode {
    // clap prints usage and exits 2 on a bad command line.
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("respcache-proxy: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "respcache-proxy stopped");
            ExitCode::FAILURE
        }
    }
}

/// The engine's options for a shared cache in front of one origin, with
/// the command line's choices on the safety defaults.
fn options(args: &Args) -> Options {
    Options {
        // A reverse proxy is the surrogate the origin addresses: it obeys
        // Surrogate-Control meant for it and keeps the field from clients.
        surrogate: Some("respcache".to_owned()),
        store_unmarked: args.store_unmarked,
        stale_only_if_explicit: !args.serve_stale_unmarked,
        private_set_cookie: !args.share_set_cookie,
        hit_for_pass: args.hit_for_pass,
        targeted_fields: args
            .targeted_field
            .iter()
            .cloned()
            .chain([http::header::CDN_CACHE_CONTROL])
            .collect(),
        ..Options::default()
    }
}

async fn run(args: Args) -> Result<(), respcache_core::BoxError> {
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        format!(
            "cannot create the cache directory {}: {e}",
            args.dir.display()
        )
    })?;
    let options = options(&args);
    match args.backend {
        Backend::Fs => {
            let manager = respcache_fs::StreamingManager::builder(args.dir.clone())
                .max_size(args.max_size)
                .max_body_size(args.max_body_size)
                .build();
            let cache = HttpCache::new(Streaming::new(manager), options);
            server::serve(args, cache).await
        }
        Backend::Cacache => {
            tracing::info!(
                "the cacache backend never evicts: --max-size does not bound it (use --backend fs for a disk budget)"
            );
            let manager = respcache_cacache::CACacheManager::new(args.dir.clone(), true);
            let max_body = usize::try_from(args.max_body_size).unwrap_or(usize::MAX);
            let cache = HttpCache::new(Buffered::with_max_body(manager, max_body), options);
            server::serve(args, cache).await
        }
    }
}
