//! `cargo xtask demo`: starts an HTTP origin on 127.0.0.1, fetches real
//! responses from it, and stores and reads each through every backend.
//! Then it runs `respcache-proxy` in front of a second origin and shows,
//! through the RFC 9211 `Cache-Status` field, a miss, a hit, a revalidation
//! and a stale response served while the proxy revalidates; it fails when
//! any of them is not what the proxy should have done.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use respcache_cacache::CACacheManager;
use respcache_core::{CacheManager, CachePolicy, HttpResponse};
use respcache_fs::StreamingManager;
use respcache_redis::RedisManager;
use respcache_testkit::{Body, Origin, RedisServer, RedisServerError, Seen, full};

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
    let origin = Origin::start(|seen, _| origin(seen)).await;
    println!("origin listening on {}", origin.base_url());
    if !crate::OPTIMISED {
        println!(
            "timings: left out, as this xtask is a debug build and they would mislead \
             (`cargo xtask demo` builds it optimised)"
        );
    }
    // Kept after the demo so the stored files can be looked at; a fresh
    // start each run.
    let dir = crate::target_dir().join("demo");
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::fs::create_dir_all(dir.join("redis"))?;
    // The main job needs nothing installed; Redis rows where it is.
    let redis = match RedisServer::try_start(&dir.join("redis")) {
        Ok(server) => Some(server),
        Err(RedisServerError::NotInstalled) => None,
        Err(error) => return Err(error.into()),
    };
    let mut backends = vec![
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
    ];
    if let Some(redis) = &redis {
        backends.push(Backend {
            title: "redis",
            location: redis.url(),
            dir: None,
            manager: Arc::new(RedisManager::builder(redis.url()).prefix("demo").build()?),
        });
    }

    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let mut rows = Vec::new();
    for path in PATHS {
        let url = url::Url::parse(&origin.url(path))?;
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

    let timings = if crate::OPTIMISED {
        format!(" {:>10} {:>10}", "put", "get")
    } else {
        String::new()
    };
    println!(
        "\n{:8} {:12} {:>6} {:>9}{timings}  {:9}  stored in",
        "backend", "url", "status", "bytes", "identical"
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
    if redis.is_none() {
        println!(
            "redis: not shown, as redis-server is not installed; \
             to add its rows, install it (Debian/Ubuntu: `sudo apt-get install redis-server`) \
             and run `cargo xtask demo` again"
        );
    }
    if rows.iter().any(|row| row.identical == Some(false)) {
        return Err("a backend returned a response that differs from the one stored".into());
    }
    proxy_demo(&client, &dir).await
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
            "{:8} {:12} {:>6} {:>9}",
            self.backend, self.path, self.status, self.bytes
        )?;
        if crate::OPTIMISED {
            write!(f, " {:>10} {:>10}", time(self.put), time(self.get))?;
        }
        write!(f, "  {identical:9}  {}", self.note)
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

/// The demo's origin: each path shows one thing a cache must keep.
fn origin(request: &Seen) -> Response<Body> {
    let mut response = Response::builder().header(
        "date",
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    let body: Bytes = match request.path.as_str() {
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
                .headers
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
    response
        .body(full(body))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

// ---- The caching reverse proxy ----

/// Fresh for a second, then revalidated with its ETag.
const REVALIDATED_PATH: &str = "/etag";
/// Fresh for a second, then served stale for up to a minute while the
/// proxy revalidates it in the background.
const STALE_PATH: &str = "/swr";
/// The one version of each proxy-origin response.
const ETAG: &str = "\"v1\"";
/// The MISS step's full `Cache-Status`: nothing was stored, the origin
/// answered 200, and the response was stored.
const MISS_STATUS: &str = "respcache; fwd=uri-miss; fwd-status=200; stored";
/// How long the proxy gets to start accepting connections.
const PROXY_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a background revalidation gets to reach the origin.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(5);

type DemoClient = Client<HttpConnector, Empty<Bytes>>;

/// Runs `respcache-proxy` in front of an origin that counts its requests,
/// and checks the `Cache-Status` of a miss, a hit, a revalidation and a
/// stale-while-revalidate response.
async fn proxy_demo(client: &DemoClient, demo_dir: &Path) -> Result<(), DemoError> {
    let binary = tokio::task::spawn_blocking(crate::build_proxy).await??;
    let origin = Origin::start(|seen, _| proxy_origin(seen)).await;
    let dir = demo_dir.join("proxy");
    let proxy = ProxyProcess::start(&binary, origin.addr, &dir).await?;
    println!(
        "\nrespcache-proxy (fs backend, cache in {}) listening on http://{}, in front of the origin {}",
        dir.join("cache").display(),
        proxy.listen,
        origin.base_url()
    );
    let fail = |step: &Step, expected: &str| -> DemoError {
        format!(
            "proxy step {} (GET {}): expected {expected}; got status {}, Cache-Status {:?}, \
             {} origin request(s) so far (the proxy's log: {})",
            step.name,
            step.path,
            step.status,
            step.cache_status,
            step.origin,
            proxy.log.display()
        )
        .into()
    };

    let time = if crate::OPTIMISED {
        format!(" {:>10}", "time")
    } else {
        String::new()
    };
    println!(
        "\n{:12} {:8} {:>6} {:>6}{time}  cache-status",
        "step", "url", "status", "origin"
    );
    // `Date` has whole seconds, so a response can reach the proxy up to a
    // second old already, and with `max-age=1` be stale at once. Starting
    // just after a second begins leaves the HIT step most of its second.
    tokio::time::sleep(until_next_second()).await;

    let miss = Step::get(client, &proxy, &origin, "MISS", REVALIDATED_PATH).await?;
    println!("{miss}");
    if miss.status != 200 || miss.cache_status != MISS_STATUS || miss.origin != 1 {
        return Err(fail(
            &miss,
            &format!("200, {MISS_STATUS:?}, 1 origin request"),
        ));
    }

    let hit = Step::get(client, &proxy, &origin, "HIT", REVALIDATED_PATH).await?;
    println!("{hit}");
    if hit.status != 200 || !hit.has("hit") || hit.origin != miss.origin {
        return Err(fail(
            &hit,
            "200 and a Cache-Status with `hit`, from the cache alone",
        ));
    }

    let stale_miss = Step::get(client, &proxy, &origin, "MISS", STALE_PATH).await?;
    println!("{stale_miss}");
    if stale_miss.status != 200
        || stale_miss.cache_status != MISS_STATUS
        || stale_miss.origin != hit.origin + 1
    {
        return Err(fail(&stale_miss, &format!("200 and {MISS_STATUS:?}")));
    }

    // Both URLs: stale a tenth of a second after their lifetime of one
    // second.
    let stale_at = miss.date()?.max(stale_miss.date()?) + Duration::from_millis(1100);
    tokio::time::sleep(until(stale_at)).await;
    let revalidated = Step::get(client, &proxy, &origin, "REVALIDATED", REVALIDATED_PATH).await?;
    println!("{revalidated}");
    let answered_304 = origin
        .seen()
        .last()
        .is_some_and(|r| r.path == REVALIDATED_PATH && conditional(r) && not_modified(r));
    if revalidated.status != 200
        || !(revalidated.has("fwd=stale") && revalidated.has("fwd-status=304"))
        || revalidated.origin != stale_miss.origin + 1
        || !answered_304
    {
        return Err(fail(
            &revalidated,
            "200 and a Cache-Status with `fwd=stale; fwd-status=304`, after one \
             If-None-Match request the origin answered 304",
        ));
    }

    let before = origin.requests();
    let stale = Step::get(client, &proxy, &origin, "STALE", STALE_PATH).await?;
    println!("{stale}");
    let stale_ttl = stale.ttl().is_some_and(|ttl| ttl < 0);
    if stale.status != 200 || !stale.has("hit") || !stale_ttl {
        return Err(fail(
            &stale,
            "200 and a Cache-Status with `hit` and a negative `ttl`",
        ));
    }
    println!("origin: requests the origin had seen when the step's response arrived.");
    let background = wait_for(&origin, before, STALE_PATH, BACKGROUND_TIMEOUT)
        .await
        .ok_or_else(|| {
            fail(
                &stale,
                &format!(
                    "a background revalidation of {STALE_PATH} to reach the origin within {BACKGROUND_TIMEOUT:?}"
                ),
            )
        })?;
    println!(
        "\nThe STALE response came from the cache; the proxy then revalidated {STALE_PATH} in the background: \
         the origin saw a {} request and answered {} ({} requests in all).",
        if conditional(&background) {
            "conditional (If-None-Match)"
        } else {
            "plain, unconditional"
        },
        proxy_origin(&background).status().as_u16(),
        origin.requests()
    );

    let metrics = proxy.metrics(client).await?;
    println!(
        "\nrespcache-proxy /metrics (http://{}/metrics):",
        proxy.admin
    );
    for line in metrics.lines().filter(|line| {
        !line.starts_with('#')
            && [
                "respcache_hits_total",
                "respcache_misses_total",
                "respcache_stale_served_total",
                "respcache_revalidations_total",
                "respcache_not_modified_total",
            ]
            .iter()
            .any(|name| line.split_whitespace().next() == Some(name))
    }) {
        println!("  {line}");
    }
    Ok(())
}

/// One request through the proxy, as the table shows it.
struct Step {
    name: &'static str,
    path: &'static str,
    status: u16,
    /// The proxy's `Cache-Status` member (the last in the list).
    cache_status: String,
    /// The response's `Date`, as the origin sent it.
    date: Option<String>,
    /// Requests the origin had seen when the response arrived.
    origin: usize,
    elapsed: Duration,
}

impl Step {
    async fn get(
        client: &DemoClient,
        proxy: &ProxyProcess,
        origin: &Origin,
        name: &'static str,
        path: &'static str,
    ) -> Result<Self, DemoError> {
        let url = format!("http://{}{path}", proxy.listen);
        let started = Instant::now();
        let response = client
            .request(Request::get(&url).body(Empty::new())?)
            .await
            .map_err(|e| format!("proxy step {name}: GET {url}: {e}"))?;
        let (parts, body) = response.into_parts();
        // The whole body: the fs backend commits an entry when it ends.
        body.collect()
            .await
            .map_err(|e| format!("proxy step {name}: GET {url}: reading the body: {e}"))?;
        let elapsed = started.elapsed();
        let text = |name| {
            parts
                .headers
                .get_all(name)
                .iter()
                .next_back()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Ok(Self {
            name,
            path,
            status: parts.status.as_u16(),
            cache_status: text(http::header::HeaderName::from_static("cache-status"))
                .and_then(|list| list.rsplit(',').next().map(|m| m.trim().to_owned()))
                .unwrap_or_default(),
            date: text(http::header::DATE),
            origin: origin.requests(),
            elapsed,
        })
    }

    /// Whether the `Cache-Status` member has this parameter (`hit`,
    /// `fwd=stale`).
    fn has(&self, parameter: &str) -> bool {
        self.parameters().any(|p| p == parameter)
    }

    fn ttl(&self) -> Option<i64> {
        self.parameters()
            .find_map(|p| p.strip_prefix("ttl="))
            .and_then(|ttl| ttl.parse().ok())
    }

    fn parameters(&self) -> impl Iterator<Item = &str> {
        self.cache_status.split(';').skip(1).map(str::trim)
    }

    fn date(&self) -> Result<SystemTime, DemoError> {
        let date = self
            .date
            .as_deref()
            .ok_or_else(|| format!("proxy step {} (GET {}): no Date", self.name, self.path))?;
        httpdate::parse_http_date(date).map_err(|e| {
            format!(
                "proxy step {} (GET {}): Date {date:?}: {e}",
                self.name, self.path
            )
            .into()
        })
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:12} {:8} {:>6} {:>6}",
            self.name, self.path, self.status, self.origin
        )?;
        if crate::OPTIMISED {
            let time = format!("{:.2} ms", self.elapsed.as_secs_f64() * 1e3);
            write!(f, " {time:>10}")?;
        }
        write!(f, "  {}", self.cache_status)
    }
}

/// How long until just after the next whole second.
fn until_next_second() -> Duration {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    Duration::from_nanos(u64::from(1_000_000_000 - into)) + Duration::from_millis(20)
}

/// How long until `moment` (zero once it has passed).
fn until(moment: SystemTime) -> Duration {
    moment.duration_since(SystemTime::now()).unwrap_or_default()
}

/// The origin behind the proxy: each URL is fresh for one second and has
/// one version, so a request that names its ETag is answered 304.
fn proxy_origin(request: &Seen) -> Response<Body> {
    let cache_control = match request.path.as_str() {
        REVALIDATED_PATH => Some("max-age=1"),
        STALE_PATH => Some("max-age=1, stale-while-revalidate=60"),
        _ => None,
    };
    let mut response = Response::builder().header(
        "date",
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    let body = match cache_control {
        None => {
            response = response.status(404);
            Bytes::from_static(b"not found\n")
        }
        Some(cache_control) => {
            response = response
                .header("cache-control", cache_control)
                .header("etag", ETAG);
            if not_modified(request) {
                response = response.status(304);
                Bytes::new()
            } else {
                Bytes::from(format!(
                    "{}: one version, fresh for a second\n",
                    request.path
                ))
            }
        }
    };
    response
        .body(full(body))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// Whether `request` carries `If-None-Match`.
fn conditional(request: &Seen) -> bool {
    request.headers.contains_key(http::header::IF_NONE_MATCH)
}

/// Whether `request`'s `If-None-Match` names the one version there is.
fn not_modified(request: &Seen) -> bool {
    request
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == ETAG || tag == "*")
        })
}

/// The first request for `path` after the first `after` the origin saw,
/// once it comes.
async fn wait_for(origin: &Origin, after: usize, path: &str, timeout: Duration) -> Option<Seen> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = origin
            .seen()
            .into_iter()
            .skip(after)
            .find(|r| r.path == path);
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A running `respcache-proxy`, killed when dropped, so that no exit
/// path of the demo leaves it behind.
struct ProxyProcess {
    child: Child,
    listen: SocketAddr,
    admin: SocketAddr,
    /// Where its stdout and stderr go.
    log: PathBuf,
}

impl ProxyProcess {
    /// Starts the proxy in front of `origin`, its cache and log in `dir`,
    /// and waits until it accepts connections.
    async fn start(binary: &Path, origin: SocketAddr, dir: &Path) -> Result<Self, DemoError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("creating the proxy's directory {}: {e}", dir.display()))?;
        let [listen, admin] = respcache_testkit::free_ports();
        let log = dir.join("proxy.log");
        let output = std::fs::File::create(&log)
            .map_err(|e| format!("creating the proxy's log {}: {e}", log.display()))?;
        let child = Command::new(binary)
            .args(["--upstream", &format!("http://{origin}")])
            .args(["--listen", &listen.to_string()])
            .args(["--admin", &admin.to_string()])
            .args(["--backend", "fs"])
            .arg("--dir")
            .arg(dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let mut proxy = Self {
            child,
            listen,
            admin,
            log,
        };
        proxy.wait_until_accepting().await?;
        Ok(proxy)
    }

    async fn wait_until_accepting(&mut self) -> Result<(), DemoError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "respcache-proxy exited before accepting connections ({status}); its log: {}",
                    self.log.display()
                )
                .into());
            }
            let accepting = [self.listen, self.admin]
                .iter()
                .all(|addr| TcpStream::connect_timeout(addr, Duration::from_millis(100)).is_ok());
            if accepting {
                return Ok(());
            }
            if started.elapsed() > PROXY_START_TIMEOUT {
                return Err(format!(
                    "respcache-proxy did not accept connections on {} and {} within {PROXY_START_TIMEOUT:?}; its log: {}",
                    self.listen,
                    self.admin,
                    self.log.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The admin endpoint's `/metrics` text.
    async fn metrics(&self, client: &DemoClient) -> Result<String, DemoError> {
        let url = format!("http://{}/metrics", self.admin);
        let response = client
            .request(Request::get(&url).body(Empty::new())?)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()).into());
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
        Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
