//! How a check reports that a backend misbehaved.

use std::fmt;

/// A check that did not hold, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// What every check returns.
pub type CheckResult = Result<(), Failure>;

/// Fails the check with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Failure(format!($($msg)+)));
        }
    };
}

/// Fails the check unless both sides are equal, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    return Err($crate::Failure(format!(
                        "{}: left {:?} != right {:?}",
                        format!($($msg)+),
                        left,
                        right
                    )));
                }
            }
        }
    };
}

/// Turns a backend error into a failure that names the operation.
pub trait Context<T> {
    /// Fails with `what` and the error.
    fn context(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Failure> {
        self.map_err(|err| Failure(format!("{what} failed: {err}")))
    }
}
