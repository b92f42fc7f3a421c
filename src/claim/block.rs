//! Waiting for a store's future on this thread, without a runtime (builds without the
//! `tokio` feature: a custom store whose futures are pending).

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use std::sync::Arc;
use std::task::Wake;
use std::thread::{self, Thread};
use std::time::Instant;

use crate::error::{Error, ErrorKind, err};

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it finishes or `timeout` has passed.
pub(crate) fn block_on<T>(
    future: impl Future<Output = Result<T, Error>>,
    timeout: Duration,
) -> Result<T, Error> {
    let deadline = Instant::now() + timeout;
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(outcome) = future.as_mut().poll(&mut context) {
            return outcome;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return err(ErrorKind::ReplayGuardUnavailable(format!(
                "the claim store did not answer within {} ms",
                timeout.as_millis()
            )));
        }
        thread::park_timeout(left);
    }
}
