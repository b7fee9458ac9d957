//! The core's types in use, as the guide's "The core traits and types"
//! page shows them: `HttpResponse` to and from `http`, a `tee` read by a
//! caller and a store at once, and a typed error found again.
//!
//! `cargo run -p respcache-core --example core_types`

// ANCHOR: http_response
use bytes::Bytes;
use respcache_core::{HttpResponse, HttpVersion};

fn http_response_round_trip() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let origin = http::Response::builder()
        .status(200)
        .header("set-cookie", "a=1")
        .header("set-cookie", "b=2")
        .body(Bytes::from_static(b"hello"))?;
    let url = url::Url::parse("https://example.com/")?;

    let stored = HttpResponse::from_http(origin, url.clone());
    assert_eq!(stored.version, HttpVersion::Http11);
    assert_eq!(stored.headers.get_all("set-cookie").iter().count(), 2);

    let back = stored.clone().into_http()?;
    assert_eq!(back.extensions().get::<url::Url>(), Some(&url));
    assert_eq!(HttpResponse::try_from(back)?, stored);
    Ok(())
}
// ANCHOR_END: http_response

// ANCHOR: tee
use http_body_util::{BodyExt, Full};
use respcache_core::{TeeEvent, tee};

async fn tee_to_a_store() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (body, mut writer) = tee(Full::new(Bytes::from_static(b"hello")), 8);
    let store = tokio::spawn(async move {
        let mut stored = Vec::new();
        while let Some(event) = writer.recv().await {
            match event {
                TeeEvent::Data(bytes) => stored.extend_from_slice(&bytes),
                TeeEvent::End => {
                    writer.committed();
                    return Some(stored);
                }
            }
        }
        None // the body failed or was dropped: store nothing
    });
    assert_eq!(body.collect().await?.to_bytes(), "hello");
    assert_eq!(store.await?.as_deref(), Some(&b"hello"[..]));
    Ok(())
}
// ANCHOR_END: tee

// ANCHOR: lookup
use respcache_core::{CacheError, CacheManager};

async fn lookup(cache: &dyn CacheManager, key: &str) {
    match cache.get(key).await {
        Ok(Some((response, _policy))) => println!("hit: {} bytes", response.body.len()),
        Ok(None) => println!("miss"),
        Err(err) => match err.downcast_ref::<CacheError>() {
            Some(CacheError::Io { op, path, .. }) => {
                eprintln!("cache unavailable: could not {op} {}", path.display());
            }
            _ => eprintln!("cache error: {err}"),
        },
    }
}
// ANCHOR_END: lookup

/// A manager that stores nothing, for `lookup` to run against.
#[derive(Debug)]
struct Empty;

#[respcache_core::async_trait]
impl CacheManager for Empty {
    async fn get(
        &self,
        _: &str,
    ) -> respcache_core::Result<Option<(HttpResponse, respcache_core::CachePolicy)>> {
        Ok(None)
    }
    async fn put(
        &self,
        _: String,
        response: HttpResponse,
        _: respcache_core::CachePolicy,
    ) -> respcache_core::Result<HttpResponse> {
        Ok(response)
    }
    async fn delete(&self, _: &str) -> respcache_core::Result<()> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    http_response_round_trip()?;
    tee_to_a_store().await?;
    lookup(&Empty, "GET:https://example.com/").await;
    Ok(())
}
