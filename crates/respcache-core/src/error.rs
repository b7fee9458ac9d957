//! Errors: the boxed kind that is only reported, and the typed kind a caller
//! branches on.

use std::fmt;
use std::path::PathBuf;

/// Any error, boxed. What backends return when the caller only has to report it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every [`CacheManager`](crate::CacheManager) method.
pub type Result<T> = std::result::Result<T, BoxError>;

/// Keys may be 64 KiB long; messages show at most this many characters of one.
const KEY_SHOWN: usize = 80;

/// Shortens a cache key for an error message, keeping its start and its length.
pub fn abbreviate_key(key: &str) -> String {
    match key.char_indices().nth(KEY_SHOWN) {
        None => format!("{key:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &key[..cut], key.len()),
    }
}

/// The failures a caller of a backend must be able to tell apart.
///
/// Backends return these boxed in a [`BoxError`]; find them again with
/// `err.downcast_ref::<CacheError>()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The file system refused an operation on a path.
    #[error("cache I/O failed: could not {op} {}", path.display())]
    Io {
        /// What was attempted, as a verb: "read", "write", "rename", ...
        op: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A stored entry exists but cannot be decoded (unknown format version,
    /// truncated or garbled metadata).
    #[error("cache entry for key {} could not be decoded", abbreviate_key(key))]
    Undecodable {
        /// The key whose entry is undecodable.
        key: String,
        /// Why decoding failed.
        #[source]
        source: BoxError,
    },
    /// Stored content does not match its recorded digest or length.
    #[error("cache content for key {} is corrupt: {detail}", abbreviate_key(key))]
    Corrupt {
        /// The key whose content is damaged.
        key: String,
        /// What did not match.
        detail: String,
    },
    /// The entry is larger than the backend accepts.
    #[error(
        "cache entry for key {} is too large: {size} bytes, limit {limit}",
        abbreviate_key(key)
    )]
    TooLarge {
        /// The key that was being stored.
        key: String,
        /// The size of the entry in bytes (as far as it was seen).
        size: u64,
        /// The backend's limit in bytes.
        limit: u64,
    },
    /// A response cannot be represented as an `http::Response`
    /// (for example a status code outside 100..=999).
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}

impl CacheError {
    /// Builds [`CacheError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The error of a streaming body: a body from the origin that failed midway,
/// or a cached body that turned out to be damaged while it was read.
///
/// It is deliberately a thin wrapper over [`BoxError`], so that body errors
/// of any origin (`std::io::Error`, [`CacheError`], a client library's error
/// through [`StreamingError::new`]) fit in one type.
pub struct StreamingError(BoxError);

impl StreamingError {
    /// Wraps any error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self(error.into())
    }

    /// The wrapped error.
    pub fn into_inner(self) -> BoxError {
        self.0
    }

    /// The wrapped error, by reference; use it to downcast.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for StreamingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StreamingError").field(&self.0).finish()
    }
}

impl fmt::Display for StreamingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StreamingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl From<BoxError> for StreamingError {
    fn from(error: BoxError) -> Self {
        Self(error)
    }
}

impl From<std::io::Error> for StreamingError {
    fn from(error: std::io::Error) -> Self {
        Self(Box::new(error))
    }
}

impl From<CacheError> for StreamingError {
    fn from(error: CacheError) -> Self {
        Self(Box::new(error))
    }
}

impl From<http::Error> for StreamingError {
    fn from(error: http::Error) -> Self {
        Self(Box::new(error))
    }
}

impl From<std::convert::Infallible> for StreamingError {
    fn from(error: std::convert::Infallible) -> Self {
        match error {}
    }
}

impl From<String> for StreamingError {
    fn from(message: String) -> Self {
        Self(message.into())
    }
}

impl From<&str> for StreamingError {
    fn from(message: &str) -> Self {
        Self(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_abbreviated_in_messages() {
        let key = "k".repeat(65_536);
        let err = CacheError::Corrupt {
            key,
            detail: "digest mismatch".into(),
        };
        let message = err.to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("65536 bytes"), "{message}");
    }

    #[test]
    fn streaming_error_keeps_its_source_for_downcasting() {
        let err = StreamingError::from(CacheError::InvalidResponse("x".into()));
        assert!(err.get_ref().downcast_ref::<CacheError>().is_some());
        let boxed: BoxError = Box::new(err);
        assert!(boxed.to_string().contains("invalid response"));
    }
}
