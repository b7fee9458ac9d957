//! Criterion: put, get of a hit (the whole body read), get of a miss and
//! delete, for every subject and body size; then small hits under
//! concurrency. `cargo xtask bench` runs it and writes the report.

#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use common::{KIB, MIB, Subject, body, distinct, quick, subjects};

fn sizes() -> Vec<(&'static str, usize)> {
    if quick() {
        vec![("1KiB", KIB), ("1MiB", MIB)]
    } else {
        vec![
            ("1KiB", KIB),
            ("64KiB", 64 * KIB),
            ("1MiB", MIB),
            ("16MiB", 16 * MIB),
        ]
    }
}

/// A key no other benchmark uses: puts insert, they never replace, so no
/// delete hides inside a put's time.
fn fresh_key(prefix: &str) -> String {
    format!("{prefix}-{}", unique_stamp())
}

/// A number no earlier call returned.
fn unique_stamp() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn backends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::Builder::new()
        .prefix("respcache-bench-")
        .tempdir()
        .expect("a temp dir");
    let subjects = runtime.block_on(subjects(dir.path()));
    common::settle_disk(dir.path());

    for (label, size) in sizes() {
        let data = body(size);
        let mut group = c.benchmark_group("put");
        group.throughput(Throughput::Bytes(size as u64));
        for subject in &subjects.all {
            group.bench_function(BenchmarkId::new(subject.name(), label), |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let (subject, data) = (subject.clone(), data.clone());
                    async move {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            let key = fresh_key("put");
                            let unique = distinct(&data, unique_stamp());
                            let started = Instant::now();
                            subject.put(&key, unique).await;
                            spent += started.elapsed();
                        }
                        spent
                    }
                });
            });
        }
        group.finish();

        let mut group = c.benchmark_group("get_hit");
        group.throughput(Throughput::Bytes(size as u64));
        for subject in &subjects.all {
            let key = format!("hit-{label}");
            runtime.block_on(subject.put(&key, data.clone()));
            group.bench_function(BenchmarkId::new(subject.name(), label), |b| {
                b.to_async(&runtime).iter(|| async {
                    assert_eq!(black_box(subject.get(&key).await), size);
                });
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("get_miss");
    for subject in &subjects.all {
        group.bench_function(BenchmarkId::new(subject.name(), "absent"), |b| {
            b.to_async(&runtime).iter(|| async {
                assert_eq!(black_box(subject.get("never-stored").await), 0);
            });
        });
    }
    group.finish();

    concurrent_hits(c, &runtime, &subjects.all);

    // Deletes last: many unlinks slow the disk down for a while after.
    for (label, size) in sizes().into_iter().filter(|(_, size)| *size <= MIB) {
        let data = body(size);
        let mut group = c.benchmark_group("delete");
        for subject in &subjects.all {
            group.bench_function(BenchmarkId::new(subject.name(), label), |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let (subject, data) = (subject.clone(), data.clone());
                    async move {
                        let mut keys = Vec::new();
                        for _ in 0..iters {
                            let key = fresh_key("delete");
                            subject.put(&key, distinct(&data, unique_stamp())).await;
                            keys.push(key);
                        }
                        let started = Instant::now();
                        for key in &keys {
                            subject.delete(key).await;
                        }
                        started.elapsed()
                    }
                });
            });
        }
        group.finish();
    }
}

/// 1 KiB hits on 256 keys from 1, 8 and 64 tasks at once, in operations
/// per second (criterion's elements per second).
fn concurrent_hits(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    subjects: &[Arc<dyn Subject>],
) {
    const KEYS: usize = 256;
    let data = body(KIB);
    for subject in subjects {
        runtime.block_on(async {
            for k in 0..KEYS {
                subject.put(&format!("small-{k}"), data.clone()).await;
            }
        });
    }
    let mut group = c.benchmark_group("concurrent_hits");
    group.throughput(Throughput::Elements(KEYS as u64));
    for tasks in [1usize, 8, 64] {
        for subject in subjects {
            group.bench_function(
                BenchmarkId::new(subject.name(), format!("{tasks}tasks")),
                |b| {
                    b.to_async(runtime).iter(|| {
                        let subject = subject.clone();
                        async move {
                            let handles: Vec<_> = (0..tasks)
                                .map(|t| {
                                    let subject = subject.clone();
                                    tokio::spawn(async move {
                                        for k in (t..KEYS).step_by(tasks) {
                                            assert_eq!(
                                                subject.get(&format!("small-{k}")).await,
                                                KIB
                                            );
                                        }
                                    })
                                })
                                .collect();
                            for handle in handles {
                                handle.await.expect("a reader task");
                            }
                        }
                    });
                },
            );
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = backends
}
criterion_main!(benches);
