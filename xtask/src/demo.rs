//! `cargo xtask demo`: starts an HTTP origin on 127.0.0.1, fetches real
//! responses from it, and stores and reads each through every backend.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use respcache_cacache::CACacheManager;
use respcache_core::{CacheManager, CachePolicy, HttpResponse};
use respcache_fs::StreamingManager;
use respcache_redis::RedisManager;
use respcache_redis::server::LocalServer;

use crate::TaskResult;

/// The paths the origin serves, each showing one thing a cache must keep.
const PATHS: &[&str] = &[
    "/fresh",
    "/no-store",
    "/vary",
    "/cookies",
    "/raw-header",
    "/large",
];
const LARGE: usize = 5 * 1024 * 1024;

pub fn run() -> TaskResult {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(demo()).map_err(|e| format!("demo: {e}"))
}

type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// One backend of the demo: a title, where it keeps its data, the manager.
struct Backend {
    title: &'static str,
    /// Where the data lives, as shown in the table.
    location: String,
    /// The directory to measure, for backends that keep files.
    dir: Option<PathBuf>,
    manager: Arc<dyn CacheManager>,
}

async fn demo() -> Result<(), DemoError> {
    let origin = start_origin().await?;
    println!("origin listening on http://{origin}");
    // Kept after the demo so the stored files can be looked at; a fresh
    // start each run.
    let dir = crate::workspace_root().join("target").join("demo");
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::fs::create_dir_all(dir.join("redis"))?;
    let redis = LocalServer::start(&dir.join("redis"))?;
    let backends = [
        Backend {
            title: "cacache",
            location: dir.join("cacache").display().to_string(),
            dir: Some(dir.join("cacache")),
            manager: Arc::new(CACacheManager::new(dir.join("cacache"), true)),
        },
        Backend {
            title: "fs",
            location: dir.join("fs").display().to_string(),
            dir: Some(dir.join("fs")),
            manager: Arc::new(StreamingManager::new(dir.join("fs"))),
        },
        Backend {
            title: "redis",
            location: redis.url(),
            dir: None,
            manager: Arc::new(RedisManager::builder(redis.url()).prefix("demo").build()?),
        },
    ];

    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let mut rows = Vec::new();
    for path in PATHS {
        let url = url::Url::parse(&format!("http://{origin}{path}"))?;
        let request = Request::get(url.as_str())
            .header("accept-language", "en")
            .body(Empty::<Bytes>::new())?;
        let (request_head, _) = clone_head(&request).into_parts();
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        let policy = CachePolicy::new(&request_head, &parts);
        let fetched = HttpResponse::from_parts(parts, body, url.clone());
        for backend in &backends {
            rows.push(through(backend, path, &fetched, &policy).await?);
        }
    }

    println!(
        "\n{:8} {:12} {:>6} {:>9} {:>10} {:>10}  {:9}  stored in",
        "backend", "url", "status", "bytes", "put", "get", "identical"
    );
    for row in &rows {
        println!("{row}");
    }
    println!();
    for backend in &backends {
        match &backend.dir {
            Some(dir) => println!(
                "{} keeps {} bytes in {}",
                backend.title,
                respcache_conformance::bytes_below(dir)?,
                backend.location
            ),
            None => println!(
                "{} keeps its entries in the redis-server at {} (started for the demo, stopped with it)",
                backend.title, backend.location
            ),
        }
    }
    if rows.iter().any(|row| row.identical == Some(false)) {
        return Err("a backend returned a response that differs from the one stored".into());
    }
    Ok(())
}

struct Row {
    backend: &'static str,
    path: &'static str,
    status: u16,
    bytes: usize,
    put: Option<Duration>,
    get: Option<Duration>,
    identical: Option<bool>,
    note: String,
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = |t: Option<Duration>| {
            t.map_or("-".into(), |t| format!("{:.2} ms", t.as_secs_f64() * 1e3))
        };
        let identical = match self.identical {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        write!(
            f,
            "{:8} {:12} {:>6} {:>9} {:>10} {:>10}  {:9}  {}",
            self.backend,
            self.path,
            self.status,
            self.bytes,
            time(self.put),
            time(self.get),
            identical,
            self.note
        )
    }
}

async fn through(
    backend: &Backend,
    path: &'static str,
    fetched: &HttpResponse,
    policy: &CachePolicy,
) -> Result<Row, DemoError> {
    let mut row = Row {
        backend: backend.title,
        path,
        status: fetched.status,
        bytes: fetched.body.len(),
        put: None,
        get: None,
        identical: None,
        note: String::new(),
    };
    if !policy.is_storable() {
        row.note = "not stored: the response forbids it".into();
        return Ok(row);
    }
    let key = format!("GET:{}", fetched.url);
    let started = Instant::now();
    backend
        .manager
        .put(key.clone(), fetched.clone(), policy.clone())
        .await?;
    row.put = Some(started.elapsed());
    let started = Instant::now();
    let back = backend.manager.get(&key).await?;
    row.get = Some(started.elapsed());
    row.identical = Some(back.as_ref().map(|(r, _)| r) == Some(fetched));
    row.note = backend.location.clone();
    Ok(row)
}

fn clone_head<B>(request: &Request<B>) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.headers_mut() = request.headers().clone();
    head
}

/// Starts the origin on a free loopback port; it serves until the demo ends.
async fn start_origin() -> Result<SocketAddr, DemoError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(origin);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn origin(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::builder().header(
        "date",
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    let body: Bytes = match request.uri().path() {
        "/fresh" => {
            response = response.header("cache-control", "max-age=60");
            "fresh for a minute\n".into()
        }
        "/no-store" => {
            response = response.header("cache-control", "no-store");
            "never stored\n".into()
        }
        "/vary" => {
            let language = request
                .headers()
                .get("accept-language")
                .cloned()
                .unwrap_or(HeaderValue::from_static("none"));
            response = response
                .header("cache-control", "max-age=60")
                .header("vary", "accept-language")
                .header("content-language", language);
            "varies by language\n".into()
        }
        "/cookies" => {
            response = response
                .header("cache-control", "max-age=60")
                .header("set-cookie", "session=1; HttpOnly")
                .header("set-cookie", "theme=dark")
                .header("set-cookie", "lang=en");
            "three cookies\n".into()
        }
        "/raw-header" => {
            let raw = HeaderValue::from_bytes(b"attachment; filename=caf\xe9.txt")
                .unwrap_or(HeaderValue::from_static("attachment"));
            response = response
                .header("cache-control", "max-age=60")
                .header("content-disposition", raw);
            "a Latin-1 header value\n".into()
        }
        "/large" => {
            response = response.header("cache-control", "max-age=60");
            Bytes::from((0..LARGE).map(|i| (i % 251) as u8).collect::<Vec<_>>())
        }
        _ => {
            response = response.status(404);
            "not found\n".into()
        }
    };
    Ok(response
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}
