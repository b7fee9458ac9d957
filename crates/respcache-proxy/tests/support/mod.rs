//! A real origin (the test kit's), the real proxy binary in front of it and
//! a real client, all on loopback, for the proxy's integration tests.

// Each test binary uses its own part of the support.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod proxy;

pub use client::Client;
pub use proxy::Proxy;
pub use respcache_testkit::{Body, Origin, channel, full, pattern, trickle};
