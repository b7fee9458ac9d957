//! Where the manager's commands go: one server through a
//! `ConnectionManager`, or a Redis Cluster through the `redis` crate's
//! cluster client, which follows MOVED and ASK redirections and topology
//! changes by itself.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};
use respcache_core::BoxError;

/// The connection every operation goes through; cheap to clone, and every
/// clone shares one multiplexed connection (per node, on a cluster).
#[derive(Clone)]
pub(crate) enum Con {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// What a manager connects to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One server: `redis://` or `rediss://`.
    Single(String),
    /// The seed nodes of a cluster, each `redis://` or `rediss://`.
    Cluster(Vec<String>),
}

impl Target {
    /// `redis+cluster://` and `rediss+cluster://` URLs name seed nodes, comma
    /// separated (`redis+cluster://user:pass@host1:7000,host2:7001/`); any
    /// other URL names one server.
    pub(crate) fn parse(url: &str) -> Result<Self, BoxError> {
        let (scheme, rest) = match url.split_once("://") {
            Some(("redis+cluster", rest)) => ("redis", rest),
            Some(("rediss+cluster", rest)) => ("rediss", rest),
            _ => return Ok(Target::Single(url.to_owned())),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        let seeds: Vec<String> = hosts
            .split(',')
            .filter(|host| !host.is_empty())
            .map(|host| format!("{scheme}://{user}{host}/"))
            .collect();
        if seeds.is_empty() {
            return Err(format!("the cluster URL {scheme}+cluster://… names no node").into());
        }
        Ok(Target::Cluster(seeds))
    }
}

/// How to connect.
pub(crate) struct Settings<'a> {
    pub(crate) timeout: Duration,
    pub(crate) root_certificate: Option<&'a [u8]>,
}

impl Con {
    /// A connection that connects on first use and reconnects by itself.
    pub(crate) fn open(target: &Target, settings: Settings<'_>) -> Result<Self, BoxError> {
        let certificates = settings.root_certificate.map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        });
        match target {
            Target::Single(url) => {
                let client = match certificates {
                    Some(certificates) => {
                        redis::Client::build_with_tls(url.as_str(), certificates)?
                    }
                    None => redis::Client::open(url.as_str())?,
                };
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.timeout))
                    .set_response_timeout(Some(settings.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                Ok(Con::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Target::Cluster(seeds) => {
                let mut builder = ClusterClient::builder(seeds.iter().map(String::as_str))
                    .connection_timeout(settings.timeout)
                    .response_timeout(settings.timeout)
                    // A few quick retries cover a redirection or a reconnect;
                    // during a failover an operation fails within the
                    // timeout and the caller goes to the origin.
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(500);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                let client = builder.build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(settings.timeout)
                    .set_response_timeout(settings.timeout);
                Ok(Con::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(con) => con.req_packed_command(cmd),
            Con::Cluster(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Single(con) => con.req_packed_commands(pipeline, offset, count),
            Con::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(con) => con.get_db(),
            Con::Cluster(con) => con.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seed_nodes() {
        let Target::Cluster(seeds) =
            Target::parse("rediss+cluster://u:p@10.0.0.1:7000,10.0.0.2:7001/").unwrap()
        else {
            panic!("not a cluster");
        };
        assert_eq!(
            seeds,
            ["rediss://u:p@10.0.0.1:7000/", "rediss://u:p@10.0.0.2:7001/"]
        );
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/2").unwrap(),
            Target::Single(url) if url == "redis://127.0.0.1:6379/2"
        ));
        assert!(Target::parse("redis+cluster:///").is_err());
    }
}
