//! The whole conformance suite, buffered and streaming, against
//! `RedisManager` on a real Redis Cluster: six redis-server processes
//! started once for this test binary, each check under its own prefix.

mod support;

use support::ClusterHarness;

respcache_conformance::buffered_suite!(ClusterHarness);
respcache_conformance::streaming_suite!(ClusterHarness);
