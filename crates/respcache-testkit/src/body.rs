//! Bodies for test origins and clients: whole, fed by a channel, trickled,
//! and the byte patterns that make a lost or misplaced chunk show.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

/// The body type the kit's helpers make: boxed, and never failing.
pub type Body = BoxBody<Bytes, Infallible>;

/// A body of `data`, sent with a `Content-Length`.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed()
}

/// A body whose chunks are what is sent on the returned sender; it ends
/// when the sender is dropped. Sent chunked, as its length is unknown.
pub fn channel() -> (mpsc::Sender<Bytes>, Body) {
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    let frames = futures_util::StreamExt::map(stream(receiver), |chunk| {
        Ok::<_, Infallible>(Frame::data(chunk))
    });
    (sender, StreamBody::new(frames).boxed())
}

/// A chunked body that sends `chunks` one at a time, `gap` apart.
pub fn trickle(chunks: Vec<Bytes>, gap: Duration) -> Body {
    let (sender, body) = channel();
    tokio::spawn(async move {
        for chunk in chunks {
            if sender.send(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    });
    body
}

/// A receiver as a stream, for bodies made of frames (including errors) a
/// test sends when it chooses.
pub fn stream<T: Send + 'static>(
    mut receiver: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// `len` bytes of a sequence that does not repeat within any body a test
/// sends (a 64-bit linear congruential generator), different for each
/// `seed`. A reordered, dropped or repeated chunk shows in a comparison,
/// whatever its size, and `pattern(n, s)` starts with `pattern(m, s)` for
/// `m < n`.
pub fn pattern(len: usize, seed: u8) -> Bytes {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(seed).wrapping_mul(0x2545_f491_4f6c_dd1d);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // The high bits of an LCG have the longest period.
            (state >> 56) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_by_seed_and_extend_their_prefixes() {
        let long = pattern(100_000, 3);
        assert_eq!(pattern(1000, 3), long.slice(..1000));
        assert_ne!(pattern(1000, 4), long.slice(..1000));
        // No chunk of 64 bytes comes back at any other offset of the
        // first 64 KiB, so a repeated or shifted chunk shows.
        let window = long.slice(..64);
        assert!(!(1..65_536).any(|at| long[at..at + 64] == window[..]));
    }

    #[tokio::test]
    async fn a_channel_body_carries_what_is_sent_and_ends_with_the_sender() {
        let (sender, body) = channel();
        sender.send(Bytes::from_static(b"ab")).await.unwrap();
        sender.send(Bytes::from_static(b"cd")).await.unwrap();
        drop(sender);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcd");
    }
}
