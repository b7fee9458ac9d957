//! A real origin (the test kit's), the real proxy binary in front of it and
//! a real client, all on loopback, for the proxy's integration tests.

// Each test binary uses its own part of the support.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod proxy;

pub use client::Client;
pub use proxy::Proxy;
pub use respcache_testkit::{Body, Origin, channel, full, pattern, trickle};

/// An origin's response: `status`, `headers` in order, and `body`.
pub fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<bytes::Bytes>,
) -> http::Response<Body> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(full(body)).expect("a valid response")
}

/// A `200` response of the origin: [`response`] with status 200.
pub fn ok(headers: &[(&str, &str)], body: impl Into<bytes::Bytes>) -> http::Response<Body> {
    response(200, headers, body)
}
