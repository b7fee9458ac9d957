//! `respcache-proxy`: a caching reverse proxy. Requests go to one origin;
//! responses are stored and served by respcache's RFC 9111 engine, with an
//! RFC 9211 `Cache-Status` on each. What the cache does not answer passes
//! through untouched: any method and body, any status, request fields.
//!
//! ```text
//! respcache-proxy --upstream http://127.0.0.1:8000 --listen 127.0.0.1:8080 \
//!                 --backend fs --dir /var/cache/respcache --admin 127.0.0.1:9090
//! ```

mod args;
mod metrics;
mod server;
mod upstream;

use std::process::ExitCode;

use args::{Args, Backend, USAGE};
use respcache_http::{Buffered, HttpCache, Options, Streaming};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("respcache-proxy: {message}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
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

async fn run(args: Args) -> Result<(), respcache_core::BoxError> {
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        format!(
            "cannot create the cache directory {}: {e}",
            args.dir.display()
        )
    })?;
    // A reverse proxy is the surrogate the origin addresses: it obeys
    // Surrogate-Control meant for it and keeps the field from clients.
    let options = Options {
        surrogate: Some("respcache".to_owned()),
        ..Options::default()
    };
    match args.backend {
        Backend::Fs => {
            let mut builder = respcache_fs::StreamingManager::builder(args.dir.clone());
            if let Some(max_size) = args.max_size {
                builder = builder.max_size(max_size);
            }
            let cache = HttpCache::new(Streaming::new(builder.build()), options);
            server::serve(args, cache).await
        }
        Backend::Cacache => {
            if args.max_size.is_some() {
                tracing::warn!(
                    "--max-size applies to the fs backend only; cacache keeps everything"
                );
            }
            let manager = respcache_cacache::CACacheManager::new(args.dir.clone(), true);
            let cache = HttpCache::new(Buffered::new(manager), options);
            server::serve(args, cache).await
        }
    }
}
