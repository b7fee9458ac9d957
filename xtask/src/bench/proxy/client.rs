//! One GET at a time, on a connection of its own: to warm a URL, and for
//! the coalescing case's clients.

use std::net::SocketAddr;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What came back.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body's length, read whole.
    pub len: usize,
}

/// `GET path` from `addr`, on a new connection that is not kept.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Reply, String> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {path} from {addr}: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("GET {path} from {addr}: the body: {e}"))?;
    Ok(Reply {
        status: parts.status,
        len: body.to_bytes().len(),
    })
}

/// `GET path` that must answer 200 with a body of `len` bytes.
pub async fn get_ok(addr: SocketAddr, path: &str, len: usize) -> Result<Reply, String> {
    let reply = get(addr, path).await?;
    if reply.status != StatusCode::OK || reply.len != len {
        return Err(format!(
            "GET {path} from {addr}: {} with {} bytes, expected 200 with {len}",
            reply.status, reply.len
        ));
    }
    Ok(reply)
}
