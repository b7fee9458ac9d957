//! Settings that must not reach a log: the purge token, and a Redis URL
//! that may hold a password.

use std::fmt;

/// A string whose debug print is `<redacted>`, so that printing a config
/// or the command line (`{:?}`) never shows it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn debug_prints_of_the_command_line_and_config_hide_secrets() {
        let args = crate::args::Args::try_parse_from([
            "respcache-proxy",
            "--upstream",
            "http://127.0.0.1:9",
            "--backend",
            "redis",
            "--redis-url",
            "redis://user:hunter2@127.0.0.1:6379/",
            "--purge-token",
            "sesame-token",
        ])
        .unwrap();
        let config = crate::config::Config::load(&args).unwrap();
        for printed in [format!("{args:?}"), format!("{config:?}")] {
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(!printed.contains("sesame-token"), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
        assert_eq!(
            config.fixed.purge_token.as_ref().map(Secret::expose),
            Some("sesame-token")
        );
    }
}
