//! A clock the test moves, for verifiers and guards whose time a test controls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign::{Clock, SystemClock, Timestamp};

/// A clock the test sets ([`Moving::new`], [`Moving::set`]), or the system clock
/// ([`Moving::system`]). Clones read the same time; [`Moving::skewed`] gives a view of it
/// shifted, as another instance of a fleet whose clock is off reads it.
#[derive(Clone, Debug)]
pub struct Moving {
    /// The time the test set; `None`: the system clock.
    base: Option<Arc<Mutex<Timestamp>>>,
    /// How far this view reads ahead of the base, in ms (negative: behind).
    ahead_ms: i64,
}

impl Moving {
    /// A clock that reads `at` until it is [set](Moving::set) to another time.
    pub fn new(at: Timestamp) -> Self {
        Moving {
            base: Some(Arc::new(Mutex::new(at))),
            ahead_ms: 0,
        }
    }

    /// The system clock (real time), which can be skewed but not set.
    pub fn system() -> Self {
        Moving {
            base: None,
            ahead_ms: 0,
        }
    }

    /// The same time, read `ahead_ms` ahead (negative: behind). Setting either moves both.
    pub fn skewed(&self, ahead_ms: i64) -> Self {
        Moving {
            base: self.base.clone(),
            ahead_ms,
        }
    }

    /// Sets the time every clone reads (before its skew).
    ///
    /// # Panics
    ///
    /// On the system clock.
    pub fn set(&self, at: Timestamp) {
        let base = self.base.as_ref().expect("the system clock cannot be set");
        *base.lock().unwrap() = at;
    }

    /// The time before the skew: what [`Moving::set`] set, or the system clock.
    pub fn base(&self) -> Timestamp {
        match &self.base {
            Some(base) => *base.lock().unwrap(),
            None => SystemClock.now(),
        }
    }

    /// Whether this is the system clock.
    pub fn is_system(&self) -> bool {
        self.base.is_none()
    }
}

impl Clock for Moving {
    /// The base time shifted by the skew, saturating at the epoch and at [`Timestamp::MAX`].
    fn now(&self) -> Timestamp {
        let base = self.base().since_epoch();
        let shifted = if self.ahead_ms >= 0 {
            base.saturating_add(Duration::from_millis(self.ahead_ms.unsigned_abs()))
        } else {
            base.saturating_sub(Duration::from_millis(self.ahead_ms.unsigned_abs()))
        };
        Timestamp::from_duration(shifted).unwrap_or(Timestamp::MAX)
    }
}
