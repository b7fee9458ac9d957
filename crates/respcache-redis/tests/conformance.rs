//! The whole conformance suite, buffered and streaming, against
//! `RedisManager` on a real redis-server (one per check, persistence off).

mod support;

use support::RedisHarness;

respcache_conformance::buffered_suite!(RedisHarness);
respcache_conformance::streaming_suite!(RedisHarness);
