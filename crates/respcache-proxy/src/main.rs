//! `respcache-proxy`: a caching reverse proxy. Requests go to an origin
//! (one, or one per virtual host from a config file); responses are
//! stored and served by respcache's RFC 9111 engine, with an RFC 9211
//! `Cache-Status` on each. What the cache does not answer passes through
//! untouched: any method and body, any status, request fields. Clients
//! speak HTTP/1.1 or HTTP/2, in the clear or over TLS (rustls); origins
//! are `http://` or `https://`.
//!
//! ```text
//! respcache-proxy --upstream http://127.0.0.1:8000 --listen 127.0.0.1:8080 \
//!                 --backend fs --dir /var/cache/respcache --admin 127.0.0.1:9090
//! respcache-proxy --config /etc/respcache/proxy.toml
//! respcache-proxy --upstream https://origin.internal --tls-listen 0.0.0.0:8443 \
//!                 --tls-cert fullchain.pem --tls-key privkey.pem
//! ```

#![deny(rustdoc::broken_intra_doc_links)]

mod access;
mod admin;
mod args;
mod config;
mod connection;
mod forwarding;
mod health;
mod metrics;
mod purge;
mod routes;
mod secret;
mod server;
mod tls;
mod tunnel;
mod upstream;

use std::process::ExitCode;

use args::{Args, Backend};
use clap::Parser;
use config::{CacheConfig, Config};
use respcache_http::{Buffered, HttpCache, Options, Streaming};

fn main() -> ExitCode {
    // clap prints usage and exits 2 on a bad command line.
    let args = Args::parse();
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("respcache-proxy: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!(
            "respcache-proxy: {} is valid ({} virtual host(s))",
            args.config
                .as_deref()
                .map_or_else(|| "the command line".into(), |p| p.display().to_string()),
            config.sites.len()
        );
        return ExitCode::SUCCESS;
    }
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
    match runtime.block_on(run(args, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "respcache-proxy stopped");
            ExitCode::FAILURE
        }
    }
}

/// The engine's options for a shared cache in front of its origins, with
/// the config's choices on the safety defaults.
fn options(cache: &CacheConfig) -> Options {
    Options {
        // A reverse proxy is the surrogate the origin addresses: it obeys
        // Surrogate-Control meant for it and keeps the field from clients.
        surrogate: Some("respcache".to_owned()),
        store_unmarked: cache.store_unmarked,
        stale_only_if_explicit: !cache.serve_stale_unmarked,
        private_set_cookie: !cache.share_set_cookie,
        hit_for_pass: cache.hit_for_pass,
        // The routes' field first: only this proxy writes it, and only
        // on a response that carries none of the others.
        targeted_fields: std::iter::once(routes::ROUTE_FIELD)
            .chain(cache.targeted_fields())
            .collect(),
        key: std::sync::Arc::new(routes::key),
        ..Options::default()
    }
}

async fn run(args: Args, config: Config) -> Result<(), respcache_core::BoxError> {
    let cache = config.fixed.cache.clone();
    let options = options(&cache);
    if cache.backend != Backend::Redis {
        std::fs::create_dir_all(&cache.dir).map_err(|e| {
            format!(
                "cannot create the cache directory {}: {e}",
                cache.dir.display()
            )
        })?;
    }
    match cache.backend {
        Backend::Fs => {
            let manager = respcache_fs::StreamingManager::builder(cache.dir.clone())
                .max_size(cache.max_size)
                .max_body_size(cache.max_body_size)
                .build();
            let http = HttpCache::new(Streaming::new(manager), options);
            server::serve(args, config, http).await
        }
        Backend::Cacache => {
            tracing::info!(
                "the cacache backend never evicts: max_size does not bound it (use the fs backend for a disk budget)"
            );
            let manager = respcache_cacache::CACacheManager::new(cache.dir.clone(), true);
            let max_body = usize::try_from(cache.max_body_size).unwrap_or(usize::MAX);
            let http = HttpCache::new(Buffered::with_max_body(manager, max_body), options);
            server::serve(args, config, http).await
        }
        Backend::Redis => {
            let url = cache
                .redis_url
                .as_ref()
                .map(|url| url.expose().to_owned())
                .unwrap_or_default();
            let manager = respcache_redis::RedisManager::builder(url)
                .prefix(cache.redis_prefix.clone())
                .max_body_size(cache.max_body_size)
                .build()
                .map_err(|e| format!("the redis backend: {e}"))?;
            let http = HttpCache::new(Streaming::new(manager), options);
            server::serve(args, config, http).await
        }
    }
}
