//! [`ClaimState`]: where a held claim stands. A leaf: the error kinds name it, and nothing
//! here names them back.

use core::fmt;

/// Where a held claim stands; carried by [`ErrorKind::Replayed`](crate::ErrorKind::Replayed).
///
/// # Examples
///
/// ```
/// use countersign::{ClaimState, ErrorKind};
///
/// let duplicate = ErrorKind::Replayed(ClaimState::Done);
/// assert!(duplicate.to_string().contains("already processed"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimState {
    /// Claimed and being processed: a duplicate should be retried later (`409`).
    InFlight,
    /// Processed successfully: a duplicate should be acknowledged (`200`), not processed.
    Done,
}

impl ClaimState {
    /// `in_flight` or `done`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::ClaimState;
    ///
    /// assert_eq!(ClaimState::InFlight.as_str(), "in_flight");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::InFlight => "in_flight",
            ClaimState::Done => "done",
        }
    }
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
