//! A real origin, the real proxy binary in front of it and a real client,
//! all on loopback, for the proxy's integration tests.

pub mod body;
pub mod client;
pub mod origin;
pub mod proxy;

pub use body::{Body, channel, full, pattern, trickle};
pub use client::Client;
pub use origin::Origin;
pub use proxy::Proxy;
