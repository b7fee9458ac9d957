//! The real `respcache` binary on a real fs cache directory, written by
//! the fs backend: listing, verifying (a body with a flipped byte is
//! reported and the exit status says so), purging by tag, stats.

use std::path::Path;
use std::process::{Command, Output};

use respcache_core::{CacheManager, CachePolicy, HttpResponse, StoreHints};
use respcache_fs::StreamingManager;

const BINARY: &str = env!("CARGO_BIN_EXE_respcache");

fn respcache(dir: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .arg("--fs")
        .arg(dir)
        .args(args)
        .output()
        .expect("running respcache")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn store(cache: &StreamingManager, key: &str, body: &str, tags: &[&str]) {
    let url = url::Url::parse("https://example.com/").unwrap();
    let request = http::Request::get(url.as_str()).body(()).unwrap();
    let response = http::Response::builder()
        .header("cache-control", "max-age=60")
        .body(bytes::Bytes::from(body.to_owned()))
        .unwrap();
    let policy = CachePolicy::new(&request, &response);
    let hints = StoreHints::default().with_tags(tags.iter().map(|t| t.to_string()).collect());
    cache
        .put_with(
            key.into(),
            HttpResponse::from_http(response, url),
            policy,
            hints,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_body_with_a_flipped_byte_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cache = StreamingManager::new(dir.path().to_path_buf());
    store(
        &cache,
        "GET:https://example.com/a",
        &"a".repeat(5000),
        &["red"],
    )
    .await;
    store(
        &cache,
        "GET:https://example.com/b",
        &"b".repeat(5000),
        &["red"],
    )
    .await;
    store(
        &cache,
        "GET:https://example.com/c\nvary:x",
        &"c".repeat(5000),
        &[],
    )
    .await;

    let clean = respcache(dir.path(), &["verify"]);
    assert!(clean.status.success(), "{}", stdout(&clean));
    assert!(
        stdout(&clean).contains("3 entries checked, 0 damaged"),
        "{}",
        stdout(&clean)
    );

    let body = cache
        .body_path("GET:https://example.com/b")
        .await
        .unwrap()
        .expect("a body file");
    let mut bytes = std::fs::read(&body).unwrap();
    bytes[2500] ^= 0xff;
    std::fs::write(&body, bytes).unwrap();

    let damaged = respcache(dir.path(), &["--json", "verify"]);
    assert_eq!(damaged.status.code(), Some(1), "{}", stdout(&damaged));
    let report: serde_json::Value = serde_json::from_slice(&damaged.stdout).unwrap();
    assert_eq!(report["checked"], 3, "{report}");
    assert_eq!(report["damaged"], 1, "{report}");
    assert_eq!(report["entries"][0]["key"], "GET:https://example.com/b");

    // The read dropped it, as a lookup would: the cache is whole again.
    let after = respcache(dir.path(), &["verify"]);
    assert!(after.status.success(), "{}", stdout(&after));
    assert!(stdout(&after).contains("2 entries checked, 0 damaged"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_show_purge_by_tag_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let cache = StreamingManager::new(dir.path().to_path_buf());
    store(&cache, "GET:https://example.com/a", "alpha", &["red"]).await;
    store(
        &cache,
        "GET:https://example.com/b",
        "beta",
        &["red", "blue"],
    )
    .await;
    store(&cache, "GET:https://other.com/c", "gamma", &[]).await;

    let ls = respcache(dir.path(), &["ls", "GET:https://example.com/"]);
    assert!(ls.status.success());
    assert_eq!(
        stdout(&ls),
        "GET:https://example.com/a\nGET:https://example.com/b\n"
    );
    let show = respcache(dir.path(), &["--json", "show", "GET:https://other.com/c"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["status"], 200);
    assert_eq!(shown["body_bytes"], 5);
    let missing = respcache(dir.path(), &["show", "GET:nothing"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no entry"));

    let purged = respcache(dir.path(), &["--json", "purge", "--tag", "red"]);
    assert!(purged.status.success());
    let purged: serde_json::Value = serde_json::from_slice(&purged.stdout).unwrap();
    assert_eq!(purged["purged"], 2);
    assert!(
        cache
            .get("GET:https://example.com/a")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        cache
            .get("GET:https://other.com/c")
            .await
            .unwrap()
            .is_some()
    );

    let stats = respcache(dir.path(), &["--json", "stats"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats, serde_json::json!({"entries": 1, "body_bytes": 5}));

    let gc = respcache(dir.path(), &["gc"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );

    let nowhere = Command::new(BINARY)
        .args(["--fs", "/nonexistent/respcache", "ls"])
        .output()
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(2));
}
