//! How a check reports that a backend misbehaved, and why.

use std::fmt;

/// Why a check failed: the behaviour that did not hold.
///
/// Each check names the kinds that are its own reason to fail
/// ([`Check::kinds`](crate::checks::Check::kinds)). A check that first
/// establishes what it builds on (an entry reads back whole before the
/// check deletes its neighbour) reports a failure there with that
/// precondition's kind, so a backend that truncates bodies fails the
/// isolation check as [`FailureKind::RoundTrip`], never as
/// [`FailureKind::Isolation`]. The suite's own tests assert the kind each
/// broken manager fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureKind {
    /// A backend call returned an error where the rules call for success.
    Operation,
    /// Rule 1: a key never stored did not read as missing, or deleting it
    /// failed or created it.
    MissingKey,
    /// `put` returned another response than the one it stored.
    PutResult,
    /// Rule 2: `get` did not return what `put` stored (status, version,
    /// headers, body, URL or policy), or lost it.
    RoundTrip,
    /// Rule 3: a second `put` did not replace the first whole.
    Replace,
    /// `update_head` dropped or changed the body, did not replace the head
    /// or the policy, or declined although the harness declares that the
    /// backend updates heads.
    UpdateHead,
    /// `delete` left the entry readable.
    Delete,
    /// Rule 4: two keys read or delete one entry.
    KeyCollision,
    /// Rule 4: a long key is not stored, read or deleted like any other.
    LongKey,
    /// Rule 4: a key made the backend write, change or remove something
    /// outside its root.
    KeyEscape,
    /// Rule 5: writing or deleting one key changed what another returns.
    Isolation,
    /// Rule 6: after a process was killed in the middle of a write, a key
    /// read as a torn or mixed entry.
    CrashAtomicity,
    /// Rule 7: damaged bytes were returned as a valid entry, or a damaged
    /// entry made a read fail instead of miss.
    Integrity,
    /// Rule 8: operations that overlapped saw a torn or mixed value,
    /// panicked, or did not finish.
    Concurrency,
    /// Rule 9: a new manager on the location did not see what the old one
    /// stored, deleted or replaced.
    Restart,
    /// Rule 9: two processes on one location lost or mixed each other's
    /// entries.
    SharedLocation,
    /// Rule 11: storage was not given back, or grew with overwrites.
    Storage,
    /// Rule 10: a stream carried another head or other bytes than the
    /// entry, or than the origin sent.
    StreamContent,
    /// Rule 10: a complete streamed body was not committed, or an
    /// incomplete one was.
    Commit,
    /// Rule 10: the caller waited for bytes the origin had already sent.
    FirstByte,
    /// Rule 10: memory grew with the size of the body.
    Memory,
    /// `keys` missed a stored key, listed one that is deleted or does not
    /// start with the prefix, or listed one twice.
    Listing,
    /// `tagged` missed an entry stored with the tag, or listed one that
    /// no longer carries it (replaced without it, deleted).
    Tags,
    /// The harness misreports: storage undercounted, a root outside its
    /// sandbox, damage that did not reach what `get` reads.
    Harness,
    /// The check could not exercise the behaviour it names (for example
    /// no kill landed in the middle of a write), so it proves nothing.
    Inconclusive,
    /// Not a failure: the harness lacks a capability the check needs
    /// (see [`Capabilities`](crate::Capabilities)), so the check does not
    /// apply. [`run_check`](crate::run_check) reports it as `n/a`.
    NotApplicable,
}

impl FailureKind {
    /// A short, stable name, as failures print it: `[isolation] ...`.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Operation => "operation",
            FailureKind::MissingKey => "missing-key",
            FailureKind::PutResult => "put-result",
            FailureKind::RoundTrip => "round-trip",
            FailureKind::Replace => "replace",
            FailureKind::UpdateHead => "update-head",
            FailureKind::Delete => "delete",
            FailureKind::KeyCollision => "key-collision",
            FailureKind::LongKey => "long-key",
            FailureKind::KeyEscape => "key-escape",
            FailureKind::Isolation => "isolation",
            FailureKind::CrashAtomicity => "crash-atomicity",
            FailureKind::Integrity => "integrity",
            FailureKind::Concurrency => "concurrency",
            FailureKind::Restart => "restart",
            FailureKind::SharedLocation => "shared-location",
            FailureKind::Storage => "storage",
            FailureKind::StreamContent => "stream-content",
            FailureKind::Commit => "commit",
            FailureKind::FirstByte => "first-byte",
            FailureKind::Memory => "memory",
            FailureKind::Listing => "listing",
            FailureKind::Tags => "tags",
            FailureKind::Harness => "harness",
            FailureKind::Inconclusive => "inconclusive",
            FailureKind::NotApplicable => "not-applicable",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A check that did not hold: why ([`FailureKind`]) and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: FailureKind,
    message: String,
}

impl Failure {
    /// A failure of `kind`, with what was seen.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The check does not apply to this harness, for `reason`.
    pub fn not_applicable(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::NotApplicable, reason)
    }

    /// Why the check failed.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// What was seen.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this is no failure at all but a check that does not apply.
    pub fn is_not_applicable(&self) -> bool {
        self.kind == FailureKind::NotApplicable
    }

    /// The same failure, reported as `kind`: a step's failure seen from
    /// the check that took it.
    pub fn with_kind(self, kind: FailureKind) -> Self {
        Self { kind, ..self }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.kind, self.message)
    }
}

impl std::error::Error for Failure {}

/// What every check returns.
pub type CheckResult = Result<(), Failure>;

/// Fails the check with a [`Failure`] of `kind` (a [`FailureKind`]
/// variant name) and a formatted message unless `cond` holds.
///
/// ```
/// use respcache_conformance::{CheckResult, FailureKind, ensure};
/// fn check(found: Option<u32>) -> CheckResult {
///     ensure!(MissingKey, found.is_none(), "a key never stored returned {found:?}");
///     Ok(())
/// }
/// assert_eq!(check(Some(1)).unwrap_err().kind(), FailureKind::MissingKey);
/// ```
#[macro_export]
macro_rules! ensure {
    ($kind:ident, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Failure::new(
                $crate::FailureKind::$kind,
                format!($($msg)+),
            ));
        }
    };
}

/// Fails the check with a [`Failure`] of `kind` unless both sides are
/// equal, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($kind:ident, $left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    return Err($crate::Failure::new(
                        $crate::FailureKind::$kind,
                        format!(
                            "{}: left {:?} != right {:?}",
                            format!($($msg)+),
                            left,
                            right
                        ),
                    ));
                }
            }
        }
    };
}

/// Turns a backend error into a failure that names the operation.
pub trait Context<T> {
    /// Fails with `what` and the error, as [`FailureKind::Operation`]: the
    /// backend failed a call the rules say must succeed.
    fn context(self, what: &str) -> Result<T, Failure>;

    /// Fails with `what` and the error, as `kind`: for the calls whose
    /// failure is the very behaviour a check is named for.
    fn context_as(self, kind: FailureKind, what: &str) -> Result<T, Failure>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Failure> {
        self.context_as(FailureKind::Operation, what)
    }

    fn context_as(self, kind: FailureKind, what: &str) -> Result<T, Failure> {
        self.map_err(|err| Failure::new(kind, format!("{what} failed: {err}")))
    }
}
