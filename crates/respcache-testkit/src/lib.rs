//! What respcache's tests, benchmarks and `cargo xtask` share, so that each
//! is written once: a real HTTP origin on loopback that records what reaches
//! it, a throwaway `redis-server`, free ports, gates that hold a body back
//! until a test lets it go, and bodies with patterns that show a lost,
//! repeated or reordered chunk.
//!
//! Unpublished (`publish = false`): it is test code, and it fails the way a
//! test should, by panicking with a message that says what went wrong.
//!
//! ```
//! use respcache_testkit::{Origin, full};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Answers every request with its number; stops when dropped.
//! let origin = Origin::start(|_seen, n| http::Response::new(full(n.to_string()))).await;
//! let mut stream = tokio::net::TcpStream::connect(origin.addr).await.unwrap();
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! stream.write_all(b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
//! let mut reply = String::new();
//! stream.read_to_string(&mut reply).await.unwrap();
//! assert!(reply.ends_with("\r\n\r\n1"));
//! assert_eq!(origin.requests(), 1);
//! assert_eq!(origin.seen()[0].path, "/a");
//! # }
//! ```

mod body;
mod cluster;
mod gate;
mod origin;
mod ports;
mod redis;

pub use body::{Body, channel, full, pattern, stream, trickle};
pub use cluster::RedisCluster;
pub use gate::Gate;
pub use origin::{Origin, Seen};
pub use ports::{free_port, free_ports};
pub use redis::{RedisServer, RedisServerError};
