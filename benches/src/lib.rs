//! Benchmarks of every respcache backend beside the leading peer crate
//! (`http-cache`) and the raw-disk floor. Run them with `cargo xtask bench`,
//! which writes `target/bench/report.md`; the code is in `benches/`.
