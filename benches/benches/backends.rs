//! Put and get of one entry per body size, for each backend and for the
//! raw-disk floor (write a temp file and rename it; read a file whole).

#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use respcache_cacache::CACacheManager;
use respcache_core::{CacheManager, CachePolicy, HttpResponse};

const SIZES: &[(&str, usize)] = &[("1KiB", 1024), ("64KiB", 64 * 1024), ("1MiB", 1024 * 1024)];

fn entry(size: usize) -> (HttpResponse, CachePolicy) {
    let url = url::Url::parse("https://bench.example/item").expect("a valid URL");
    let request = http::Request::get(url.as_str())
        .body(())
        .expect("a request");
    let response = http::Response::builder()
        .header("cache-control", "max-age=3600")
        .body(Bytes::from(vec![7u8; size]))
        .expect("a response");
    let policy = CachePolicy::new(&request, &response);
    (HttpResponse::from_http(response, url), policy)
}

fn backends(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let cacache = CACacheManager::new(dir.path().join("cacache"), true);
    let floor = dir.path().join("floor");
    std::fs::create_dir_all(&floor).expect("the floor dir");

    for op in ["put", "get"] {
        let mut group = c.benchmark_group(op);
        for &(label, size) in SIZES {
            let (response, policy) = entry(size);
            group.throughput(Throughput::Bytes(size as u64));
            let key = format!("GET:https://bench.example/{label}");
            runtime
                .block_on(cacache.put(key.clone(), response.clone(), policy.clone()))
                .expect("a first put");
            group.bench_function(BenchmarkId::new("cacache", label), |b| {
                b.to_async(&runtime).iter(|| async {
                    if op == "put" {
                        let put = cacache.put(key.clone(), response.clone(), policy.clone());
                        black_box(put.await.expect("put"));
                    } else {
                        black_box(cacache.get(&key).await.expect("get"));
                    }
                });
            });
            let path = floor.join(label);
            std::fs::write(&path, &response.body).expect("a first write");
            group.bench_function(BenchmarkId::new("floor", label), |b| {
                b.iter(|| {
                    if op == "put" {
                        let temp = floor.join(format!("{label}.tmp"));
                        std::fs::write(&temp, &response.body).expect("write");
                        std::fs::rename(&temp, &path).expect("rename");
                    } else {
                        black_box(std::fs::read(&path).expect("read"));
                    }
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, backends);
criterion_main!(benches);
