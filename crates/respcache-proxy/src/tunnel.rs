//! Protocol switches (WebSocket): the handshake goes to the origin with
//! its `Upgrade` and `Connection` intact, and once the origin agrees
//! (`101`) the two connections are joined byte for byte. Nothing of it is
//! cached.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use respcache_core::BoxError;
use respcache_http::{CacheBody, remove_hop_by_hop};

use crate::upstream::Upstream;

/// Forwards an upgrade request; on `101`, joins the client's connection
/// to the origin's in a task of its own.
pub async fn tunnel(
    mut request: Request<Incoming>,
    upstream: &Upstream,
) -> Result<Response<CacheBody>, BoxError> {
    let client_upgrade = hyper::upgrade::on(&mut request);
    let (mut parts, body) = request.into_parts();
    let protocol = parts.headers.get(header::UPGRADE).cloned();
    remove_hop_by_hop(&mut parts.headers);
    if let Some(protocol) = protocol {
        parts.headers.insert(header::UPGRADE, protocol);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let request = Request::from_parts(parts, respcache_http::boxed(body));
    let mut response = upstream.send_raw(request).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut head, body) = response.into_parts();
        remove_hop_by_hop(&mut head.headers);
        return Ok(Response::from_parts(head, respcache_http::boxed(body)));
    }
    let origin_upgrade = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        let (client, origin) = match tokio::try_join!(client_upgrade, origin_upgrade) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "a protocol switch did not complete");
                return;
            }
        };
        let (mut client, mut origin) = (TokioIo::new(client), TokioIo::new(origin));
        match tokio::io::copy_bidirectional(&mut client, &mut origin).await {
            Ok((up, down)) => tracing::debug!(up, down, "tunnel closed"),
            Err(error) => tracing::debug!(%error, "tunnel ended with an error"),
        }
    });
    // The 101 keeps the origin's Upgrade and Connection: they are what
    // the switch is.
    let (head, _) = response.into_parts();
    Ok(Response::from_parts(
        head,
        respcache_http::full(Bytes::new()),
    ))
}
