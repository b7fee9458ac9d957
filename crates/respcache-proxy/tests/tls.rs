//! TLS and HTTP/2, end to end through the real binary: HTTP/1.1 and h2
//! (by ALPN) on the TLS listener, h2c with prior knowledge on the plain
//! one, an `https://` origin checked against a test authority, and the
//! certificate read again on SIGHUP. Certificates come from rcgen, into
//! a temporary directory.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use support::client::Reply;
use support::{Client, Origin, Proxy, full};
use tokio::net::{TcpListener, TcpStream};

/// A test certificate authority and the certificates it signs.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate: its PEM files' text and its DER, to recognise
/// it when a server presents it.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Authority {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "respcache proxy test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `localhost` and 127.0.0.1, with `serial` and
    /// common name `name`.
    fn leaf(&self, serial: u64, name: &str) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    /// A client config that trusts this authority only, offering `alpn`.
    fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.issuer.der().to_vec()))
            .unwrap();
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Leaf {
    fn write(&self, dir: &Path, name: &str) {
        std::fs::write(dir.join(format!("{name}.pem")), &self.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), &self.key_pem).unwrap();
    }
}

/// An origin whose fresh responses say which request made them.
async fn origin() -> Origin {
    Origin::start(|seen, n| {
        http::Response::builder()
            .header("cache-control", "max-age=600")
            .body(full(format!("{} #{n}", seen.path)))
            .unwrap()
    })
    .await
}

/// A proxy with a TLS listener on a free port, the certificate in
/// `leaf`, and `extra` (TOML) before its vhost.
async fn tls_proxy(upstream: &str, leaf: &Leaf, extra: &str) -> (Proxy, SocketAddr) {
    let tls_addr = Arc::new(Mutex::new(None));
    let proxy = Proxy::start_config(
        {
            let (tls_addr, upstream, extra) = (tls_addr.clone(), upstream.to_owned(), extra.to_owned());
            let (cert, key) = (leaf.cert_pem.clone(), leaf.key_pem.clone());
            move |addr, admin, dir: &Path| {
                let [tls] = respcache_testkit::free_ports();
                *tls_addr.lock().unwrap() = Some(tls);
                let certs = dir.parent().unwrap();
                std::fs::write(certs.join("tls.pem"), &cert).unwrap();
                std::fs::write(certs.join("tls.key"), &key).unwrap();
                format!(
                    "listen = \"{addr}\"\nadmin = \"{admin}\"\ntls_listen = \"{tls}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{extra}\n[cache]\ndir = \"{}\"\n[[vhost]]\nupstream = \"{upstream}\"\n",
                    certs.join("tls.pem").display(),
                    certs.join("tls.key").display(),
                    dir.display()
                )
            }
        },
        &[],
    )
    .await;
    let tls = tls_addr.lock().unwrap().expect("the TLS port");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(tls).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no TLS listener:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (proxy, tls)
}

/// One connection to a TLS server: what it negotiated and presented, and
/// a sender for requests on it.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>>),
}

struct Connection {
    sender: Sender,
    /// The leaf certificate the server presented.
    presented: Vec<u8>,
    /// What ALPN chose.
    alpn: Option<Vec<u8>>,
    authority: String,
    /// The connection's task: it ends when the connection closes.
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Connects to `addr` over TLS as `localhost`, offering `alpn`.
    async fn tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("a TLS handshake with the proxy");
        let (_, session) = stream.get_ref();
        let presented = session.peer_certificates().unwrap()[0].to_vec();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let h2 = alpn.as_deref() == Some(b"h2");
        let (sender, task) = Self::handshake(TokioIo::new(stream), h2).await;
        Self {
            sender,
            presented,
            alpn,
            authority: format!("localhost:{}", addr.port()),
            task,
        }
    }

    /// Connects to `addr` in the clear, speaking HTTP/2 from the first
    /// byte (h2c with prior knowledge).
    async fn h2c(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (sender, task) = Self::handshake(TokioIo::new(tcp), true).await;
        Self {
            sender,
            presented: Vec::new(),
            alpn: None,
            authority: addr.to_string(),
            task,
        }
    }

    async fn handshake<I>(io: TokioIo<I>, h2: bool) -> (Sender, tokio::task::JoinHandle<()>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        if h2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("an HTTP/2 handshake");
            let task = tokio::spawn(async move {
                let _ = connection.await;
            });
            (Sender::H2(sender), task)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("an HTTP/1.1 handshake");
            let task = tokio::spawn(async move {
                let _ = connection.await;
            });
            (Sender::H1(sender), task)
        }
    }

    /// `GET path` on this connection, read whole; `scheme` is what an h2
    /// request claims in `:scheme`, and `host` a `Host` field to add.
    async fn get_as(&mut self, scheme: &str, path: &str, host: Option<&str>) -> (Reply, Version) {
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                let request = Request::get(path)
                    .header("host", host.unwrap_or(&self.authority))
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap();
                sender.send_request(request).await
            }
            Sender::H2(sender) => {
                let mut request = Request::get(format!("{scheme}://{}{path}", self.authority));
                if let Some(host) = host {
                    request = request.header("host", host);
                }
                let request = request
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap();
                sender.send_request(request).await
            }
        }
        .expect("a response");
        let version = response.version();
        let (head, body) = response.into_parts();
        let body = body.collect().await.expect("the body").to_bytes();
        (
            Reply {
                status: head.status,
                headers: head.headers,
                body,
            },
            version,
        )
    }

    /// `POST path` with `body` on an HTTP/2 connection: the status, and
    /// the body read whole.
    async fn post_h2(&mut self, path: &str, body: &'static str) -> (StatusCode, Bytes) {
        let Sender::H2(sender) = &mut self.sender else {
            panic!("an HTTP/2 connection");
        };
        let request = Request::post(format!("http://{}{path}", self.authority))
            .body(http_body_util::Full::new(Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap();
        let response = sender.send_request(request).await.expect("a response");
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }

    async fn get(&mut self, path: &str) -> (Reply, Version) {
        let scheme = if self.presented.is_empty() {
            "http"
        } else {
            "https"
        };
        self.get_as(scheme, path, None).await
    }
}

fn assert_miss(reply: &Reply, body: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.cache_status_has("fwd=uri-miss") && reply.cache_status_has("stored"),
        "expected a stored miss: {}",
        reply.cache_status()
    );
    assert_eq!(reply.text(), body);
}

fn assert_hit(reply: &Reply, body: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.cache_status_has("hit"),
        "expected a hit: {}",
        reply.cache_status()
    );
    assert_eq!(reply.text(), body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_h2_over_tls_share_one_entry_and_tell_the_origin_https() {
    let origin = origin().await;
    let ca = Authority::new();
    let leaf = ca.leaf(1, "first");
    let (proxy, tls) = tls_proxy(&origin.base_url(), &leaf, "").await;

    let mut h1 = Connection::tls(tls, ca.client(&[b"http/1.1"])).await;
    assert_eq!(h1.presented, leaf.der);
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (reply, version) = h1.get("/page").await;
    assert_eq!(version, Version::HTTP_11);
    assert_miss(&reply, "/page #1");

    let mut h2 = Connection::tls(tls, ca.client(&[b"h2", b"http/1.1"])).await;
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]), "h2 by ALPN");
    let (reply, version) = h2.get("/page").await;
    assert_eq!(version, Version::HTTP_2);
    assert_hit(&reply, "/page #1");
    // And a miss over h2, then a hit over HTTP/1.1.
    let (reply, _) = h2.get("/other").await;
    assert_miss(&reply, "/other #2");
    let (reply, _) = h1.get("/other").await;
    assert_hit(&reply, "/other #2");
    assert_eq!(origin.requests(), 2);

    let seen = origin.seen();
    for request in &seen {
        assert_eq!(request.headers["x-forwarded-proto"], "https");
        let forwarded = request.headers["forwarded"].to_str().unwrap();
        assert!(forwarded.contains("proto=https"), "{forwarded}");
        assert!(
            forwarded.contains(&format!("host=localhost:{}", tls.port())),
            "{forwarded}"
        );
        assert_eq!(
            request.headers["host"].to_str().unwrap(),
            format!("localhost:{}", tls.port()),
            "the origin is asked for the host the entry is keyed by"
        );
    }

    // The cleartext listener keys apart: its clients never get what was
    // stored for TLS clients (an origin may answer by the scheme).
    let plain = Client::default()
        .fetch(
            Request::get(proxy.url("/page"))
                .header("host", format!("localhost:{}", tls.port()))
                .body(full(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_miss(&plain, "/page #3");
    assert_eq!(origin.seen()[2].headers["x-forwarded-proto"], "http");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_shares_entries_with_http1_on_the_plain_listener() {
    let origin = origin().await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let mut h2c = Connection::h2c(proxy.addr).await;
    let (reply, version) = h2c.get("/h2c").await;
    assert_eq!(version, Version::HTTP_2);
    assert_miss(&reply, "/h2c #1");
    let (reply, _) = h2c.get("/h2c").await;
    assert_hit(&reply, "/h2c #1");
    let http1 = Client::default().get(&proxy.url("/h2c")).await;
    assert_hit(&http1, "/h2c #1");
    assert_eq!(origin.requests(), 1);
    let seen = &origin.seen()[0];
    assert_eq!(seen.headers["host"], proxy.addr.to_string().as_str());
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    // A request body goes through to the HTTP/1.1 origin.
    let (status, body) = h2c.post_h2("/upload", "sent over h2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "/upload #2");
    let seen = &origin.seen()[1];
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.body, "sent over h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_request_is_keyed_by_the_authority_the_origin_receives() {
    let origin = origin().await;
    let ca = Authority::new();
    let (proxy, tls) = tls_proxy(&origin.base_url(), &ca.leaf(1, "first"), "").await;
    let mut h2c = Connection::h2c(proxy.addr).await;
    // A Host naming another site than :authority is malformed (RFC 9113
    // §8.3.1): refused before the cache or the origin sees it.
    let (reply, _) = h2c.get_as("http", "/page", Some("other.example")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(origin.requests(), 0);
    // A cleartext client claiming `:scheme: https` stores under http: a
    // TLS client of the same authority does not get it.
    let (reply, _) = h2c.get_as("https", "/claimed", None).await;
    assert_miss(&reply, "/claimed #1");
    let mut tls = Connection::tls(tls, ca.client(&[b"h2"])).await;
    tls.authority = proxy.addr.to_string();
    let (reply, _) = tls.get("/claimed").await;
    assert_miss(&reply, "/claimed #2");
    assert_eq!(origin.seen()[0].headers["x-forwarded-proto"], "http");
    assert_eq!(origin.seen()[1].headers["x-forwarded-proto"], "https");
}

/// What the HTTPS origin saw of a request: the SNI and the `Host`.
type SniAndHost = (Option<String>, String);

/// An HTTPS origin on 127.0.0.1 with `leaf`'s certificate: each response
/// says its request's number; it records the SNI and `Host` it was sent.
struct TlsOrigin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SniAndHost>>>,
}

async fn tls_origin(leaf: &Leaf) -> TlsOrigin {
    let chain = vec![CertificateDer::from(leaf.der.clone())];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.key_der.clone().into());
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn({
        let seen = seen.clone();
        async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = stream.get_ref().1.server_name().map(str::to_owned);
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let host = request
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push((sni.clone(), host));
                            seen.len()
                        };
                        let body = format!("secure {} #{n}", request.uri().path());
                        async move {
                            http::Response::builder()
                                .header("cache-control", "max-age=600")
                                .body(http_body_util::Full::new(Bytes::from(body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    });
    TlsOrigin { addr, seen }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_is_checked_against_the_configured_authority() {
    let ca = Authority::new();
    let origin = tls_origin(&ca.leaf(7, "origin")).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let upstream = format!("https://localhost:{}", origin.addr.port());
    let client = Client::default();

    let trusting = Proxy::start_with(
        &upstream,
        "fs",
        &["--upstream-ca", ca_file.to_str().unwrap()],
    )
    .await;
    let first = client.get(&trusting.url("/s")).await;
    assert_miss(&first, "secure /s #1");
    let second = client.get(&trusting.url("/s")).await;
    assert_hit(&second, "secure /s #1");
    let seen = origin.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0.as_deref(), Some("localhost"), "the SNI sent");
    assert_eq!(
        seen[0].1,
        trusting.addr.to_string(),
        "the client's Host goes through"
    );

    // Without the authority, the origin's certificate is not trusted.
    let doubting = Proxy::start(&upstream, "fs").await;
    let refused = client.get(&doubting.url("/s")).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        refused.text()
    );
    assert_eq!(origin.seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_for_new_connections_and_keeps_open_ones() {
    let origin = origin().await;
    let ca = Authority::new();
    let first = ca.leaf(1, "first");
    let (proxy, tls) = tls_proxy(&origin.base_url(), &first, "").await;
    let certs = proxy.config_file().parent().unwrap().to_owned();
    let client = ca.client(&[b"h2", b"http/1.1"]);

    let mut open = Connection::tls(tls, client.clone()).await;
    assert_eq!(open.presented, first.der);
    assert_miss(&open.get("/a").await.0, "/a #1");

    let second = ca.leaf(2, "second");
    second.write(&certs, "tls");
    let reloads = proxy.log().matches("reloaded the config").count();
    proxy.signal("HUP");
    wait_for_log(&proxy, "reloaded the config", reloads + 1).await;
    let new = Connection::tls(tls, client.clone()).await;
    assert_eq!(
        new.presented, second.der,
        "a new connection gets the new certificate"
    );
    // The connection opened before the reload still answers.
    assert_hit(&open.get("/a").await.0, "/a #1");

    // A certificate that is not one: the reload fails, the second stays.
    std::fs::write(certs.join("tls.pem"), "not a certificate\n").unwrap();
    let failures = proxy.log().matches("reload failed").count();
    proxy.signal("HUP");
    wait_for_log(&proxy, "reload failed", failures + 1).await;
    assert!(proxy.log().contains("tls_cert"), "{}", proxy.log());
    let after = Connection::tls(tls, client.clone()).await;
    assert_eq!(after.presented, second.der);
    // A key that is not the certificate's: refused as well.
    let third = ca.leaf(3, "third");
    std::fs::write(certs.join("tls.pem"), &third.cert_pem).unwrap();
    let failures = proxy.log().matches("reload failed").count();
    proxy.signal("HUP");
    wait_for_log(&proxy, "reload failed", failures + 1).await;
    let after = Connection::tls(tls, client).await;
    assert_eq!(after.presented, second.der);
}

async fn wait_for_log(proxy: &Proxy, text: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.log().matches(text).count() < times {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn check_config_reads_the_certificate_and_key() {
    let ca = Authority::new();
    let dir = tempfile::tempdir().unwrap();
    let good = ca.leaf(1, "good");
    good.write(dir.path(), "good");
    let other = ca.leaf(2, "other");
    other.write(dir.path(), "other");
    let config = |cert: &str, key: &str| {
        let file = dir.path().join("proxy.toml");
        std::fs::write(
            &file,
            format!(
                "tls_listen = \"127.0.0.1:8443\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[[vhost]]\nupstream = \"http://127.0.0.1:1\"\n",
                dir.path().join(cert).display(),
                dir.path().join(key).display()
            ),
        )
        .unwrap();
        let output = support::proxy::run(&["--config", file.to_str().unwrap(), "--check-config"]);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(config("good.pem", "good.key").0, Some(0));
    let (code, error) = config("missing.pem", "good.key");
    assert_eq!(code, Some(2));
    assert!(
        error.contains("tls_cert") && error.contains("missing.pem"),
        "{error}"
    );
    let (code, error) = config("good.pem", "other.key");
    assert_eq!(code, Some(2), "a key that is not the certificate's");
    assert!(error.contains("tls_key"), "{error}");
    let (code, error) = config("good.key", "good.key");
    assert_eq!(code, Some(2), "a key where the certificate should be");
    assert!(error.contains("no PEM certificate"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_handshakes_prefaces_and_idle_h2_connections_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = origin().await;
    let ca = Authority::new();
    let (proxy, tls) = tls_proxy(
        &origin.base_url(),
        &ca.leaf(1, "first"),
        "client_timeout = 1",
    )
    .await;
    let closed = |mut stream: TcpStream| async move {
        let mut buf = [0; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        read.is_ok()
    };
    // A TLS client that never says hello.
    assert!(
        closed(TcpStream::connect(tls).await.unwrap()).await,
        "a silent TLS connection stayed open"
    );
    // Half an HTTP/2 preface, then nothing.
    let mut half = TcpStream::connect(proxy.addr).await.unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(closed(half).await, "half a preface held the connection");
    // An h2c connection that asked once and then nothing.
    let mut h2c = Connection::h2c(proxy.addr).await;
    assert_miss(&h2c.get("/once").await.0, "/once #1");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), &mut h2c.task)
        .await
        .expect("an idle h2 connection closed by the proxy")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    // So does one over TLS.
    let mut h2 = Connection::tls(tls, ca.client(&[b"h2"])).await;
    assert_miss(&h2.get("/once").await.0, "/once #2");
    tokio::time::timeout(Duration::from_secs(10), &mut h2.task)
        .await
        .expect("an idle h2 connection over TLS closed by the proxy")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_s_page_is_purged_by_its_https_url() {
    let origin = origin().await;
    let ca = Authority::new();
    let (proxy, tls) = tls_proxy(
        &origin.base_url(),
        &ca.leaf(1, "first"),
        "purge_token = \"sesame\"",
    )
    .await;
    // HTTP/1.1: its target is a path, and the listener gives it https.
    let mut h1 = Connection::tls(tls, ca.client(&[b"http/1.1"])).await;
    assert_miss(&h1.get("/page").await.0, "/page #1");
    assert_hit(&h1.get("/page").await.0, "/page #1");
    let purge = |url: String| {
        let admin = proxy.admin_url(&format!(
            "/purge?url={}",
            url.replace(':', "%3A").replace('/', "%2F")
        ));
        async move {
            Client::default()
                .fetch(
                    Request::post(admin)
                        .header("authorization", "Bearer sesame")
                        .body(full(Bytes::new()))
                        .unwrap(),
                )
                .await
        }
    };
    // The http:// spelling is another URL: nothing of it is stored.
    let other = purge(format!("http://localhost:{}/page", tls.port())).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&other.body).unwrap()["purged"],
        0
    );
    let done = purge(format!("https://localhost:{}/page", tls.port())).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&done.body).unwrap()["purged"],
        1,
        "{}",
        done.text()
    );
    assert_miss(&h1.get("/page").await.0, "/page #2");
}
