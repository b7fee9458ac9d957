//! The measurement behind respcache-memory's store: moka against
//! quick_cache on that crate's workload (10,000 keys of `Arc`'d entries,
//! a byte weigher, an expiry time checked on every hit). Prints time per
//! put, per overwrite and per hit, from one and two threads.
//!
//! `cargo run --release -p respcache-benches --example choose_memory_store`

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

struct Entry {
    body: Bytes,
    expires: Instant,
}

const KEYS: usize = 10_000;
const GETS: usize = 2_000_000;
const OVERWRITES: usize = 200_000;
/// What the weigher adds for a head, as respcache-memory roughly does.
const HEAD: usize = 200;

#[derive(Clone)]
struct Weigher;

impl quick_cache::Weighter<String, Arc<Entry>> for Weigher {
    fn weight(&self, key: &String, entry: &Arc<Entry>) -> u64 {
        (key.len() + entry.body.len() + HEAD) as u64
    }
}

fn entry(body: &Bytes) -> Arc<Entry> {
    Arc::new(Entry {
        body: body.clone(),
        expires: Instant::now() + Duration::from_secs(60),
    })
}

fn measure(
    name: &str,
    threads: usize,
    body: usize,
    get: impl Fn(&str) -> bool + Sync,
    put: impl Fn(String, Arc<Entry>),
) {
    let keys: Vec<String> = (0..KEYS)
        .map(|i| format!("GET:https://example.com/item/{i}"))
        .collect();
    let bytes = Bytes::from(vec![7u8; body]);
    let started = Instant::now();
    for key in &keys {
        put(key.clone(), entry(&bytes));
    }
    let first = started.elapsed().as_nanos() as f64 / KEYS as f64;
    let started = Instant::now();
    for i in 0..OVERWRITES {
        put(keys[i % KEYS].clone(), entry(&bytes));
    }
    let overwrite = started.elapsed().as_nanos() as f64 / OVERWRITES as f64;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (keys, get) = (&keys, &get);
            scope.spawn(move || {
                let hits = (0..GETS / threads)
                    .filter(|i| get(&keys[(i * 7919 + thread) % KEYS]))
                    .count();
                assert!(hits > 0, "no hit at all");
            });
        }
    });
    let elapsed = started.elapsed();
    println!(
        "{name:12} body {body:6} threads {threads}: first put {first:6.0} ns, overwrite {overwrite:6.0} ns, hit {:6.0} ns, {:.2} M hits/s",
        elapsed.as_nanos() as f64 / GETS as f64 * threads as f64,
        GETS as f64 / elapsed.as_secs_f64() / 1e6
    );
}

fn main() {
    for body in [1024, 64 * 1024] {
        for threads in [1, 2] {
            let capacity = (KEYS * (body + 300)) as u64 * 2;
            let live = |e: Arc<Entry>| e.expires > Instant::now() && !e.body.is_empty();
            let moka: moka::sync::Cache<String, Arc<Entry>> = moka::sync::Cache::builder()
                .max_capacity(capacity)
                .weigher(|k: &String, v: &Arc<Entry>| (k.len() + v.body.len() + HEAD) as u32)
                .build();
            measure(
                "moka",
                threads,
                body,
                |k| moka.get(k).is_some_and(live),
                |k, v| moka.insert(k, v),
            );
            let quick: quick_cache::sync::Cache<String, Arc<Entry>, Weigher> =
                quick_cache::sync::Cache::with_weighter(KEYS, capacity, Weigher);
            measure(
                "quick_cache",
                threads,
                body,
                |k| quick.get(k).is_some_and(live),
                |k, v| quick.insert(k, v),
            );
        }
    }
}
