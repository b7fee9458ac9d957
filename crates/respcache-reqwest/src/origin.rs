//! The rest of the middleware chain as the engine's origin.
//!
//! The engine holds its origin as a `'static` value it may clone, while
//! reqwest-middleware's `Next` borrows the client for the one call of
//! `Middleware::handle`. So the origin is a channel: the engine sends
//! requests into it, and `handle` runs each through `Next` while it waits
//! for the engine's answer.

use std::fmt;

use respcache_http::{Origin, OriginFuture};
use tokio::sync::{mpsc, oneshot};

/// A request for the chain, and where its answer goes.
pub(crate) struct Sent {
    pub(crate) request: reqwest::Request,
    pub(crate) reply: oneshot::Sender<reqwest_middleware::Result<reqwest::Response>>,
}

/// The engine's end of the channel.
#[derive(Clone)]
pub(crate) struct ChainOrigin(mpsc::UnboundedSender<Sent>);

impl ChainOrigin {
    /// The origin, and the receiver `handle` serves it from.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Sent>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self(sender), receiver)
    }
}

impl Origin<reqwest::Body> for ChainOrigin {
    fn send(&mut self, request: http::Request<reqwest::Body>) -> OriginFuture {
        let chain = self.0.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let (reply, answer) = oneshot::channel();
            chain
                .send(Sent { request, reply })
                .map_err(|_| ChainEnded)?;
            let response = answer.await.map_err(|_| ChainEnded)??;
            let url = response.url().clone();
            let mut response = http::Response::from(response);
            // The URL the response came from (after any redirect), for
            // the reqwest response the caller gets.
            let mut extensions = crate::middleware::url_extension(url);
            extensions.extend(std::mem::take(response.extensions_mut()));
            *response.extensions_mut() = extensions;
            Ok(response.map(respcache_http::boxed))
        })
    }
}

/// The request that the chain belonged to has been answered: work the
/// engine does after it (a background revalidation) has no origin.
#[derive(Debug)]
struct ChainEnded;

impl fmt::Display for ChainEnded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the reqwest middleware chain ended with the request that started this work; \
             respcache-reqwest revalidates in the foreground instead",
        )
    }
}

impl std::error::Error for ChainEnded {}
