//! Reading the body: a size limit and a deadline.

use core::future::Future;
use core::pin::Pin;
use core::task::Poll;
use core::time::Duration;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use super::answer::Answer;
use super::auth::WebhookAuth;

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// The default deadline for reading the whole body: 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

impl WebhookAuth {
    /// Reads the body within the limit and the deadline.
    pub(super) async fn read_body<B>(
        &self,
        headers: &http::HeaderMap,
        body: B,
        started: Instant,
    ) -> Result<Bytes, Answer>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            tracing::warn!(target: "countersign", scheme = %self.verifier.scheme(), outcome = "too_large", declared, limit = self.limit, "webhook refused: body larger than the limit");
            self.count(Answer::TooLarge.outcome(), started);
            return Err(Answer::TooLarge);
        }
        let mut collect = core::pin::pin!(Limited::new(body, self.limit).collect());
        // The deadline counts from the request's arrival. Its timer is only made once the
        // body is not all there at the first poll (the usual small webhook is), so a
        // complete request pays nothing for it.
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut timerless = self.background.timerless.load(Ordering::Relaxed);
        let raced = core::future::poll_fn(|cx| {
            if let Poll::Ready(collected) = collect.as_mut().poll(cx) {
                return Poll::Ready(Some(collected));
            }
            if timer.is_none() && !timerless {
                match started.checked_add(self.body_timeout).and_then(deadline) {
                    Some(sleep) => timer = Some(Box::pin(sleep)),
                    None => {
                        tracing::warn!(target: "countersign", "no Tokio runtime with timers: reading bodies without a deadline");
                        self.background.timerless.store(true, Ordering::Relaxed);
                        timerless = true;
                    }
                }
            }
            match timer.as_mut() {
                Some(sleep) => sleep.as_mut().poll(cx).map(|()| None),
                None => Poll::Pending,
            }
        })
        .await;
        let Some(collected) = raced else {
            tracing::warn!(target: "countersign", scheme = %self.verifier.scheme(), outcome = "timeout", timeout_ms = self.body_timeout.as_millis() as u64, "webhook refused: body not received within the deadline");
            self.count(Answer::Timeout.outcome(), started);
            return Err(Answer::Timeout);
        };
        match collected {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    tracing::warn!(target: "countersign", scheme = %self.verifier.scheme(), outcome = "too_large", limit = self.limit, "webhook refused: body larger than the limit");
                    self.count(Answer::TooLarge.outcome(), started);
                    Err(Answer::TooLarge)
                } else {
                    tracing::warn!(target: "countersign", scheme = %self.verifier.scheme(), outcome = "bad_body", error = %e, "webhook refused: body could not be read");
                    self.count(Answer::BadBody.outcome(), started);
                    Err(Answer::BadBody)
                }
            }
        }
    }
}

/// A timer for the body deadline, if the current Tokio runtime has one. Tokio panics when a
/// timer is made on a runtime built without `enable_time`; that is caught here (once per
/// request) and the body is then read without a deadline.
fn deadline(at: Instant) -> Option<tokio::time::Sleep> {
    tokio::runtime::Handle::try_current().ok()?;
    std::panic::catch_unwind(|| tokio::time::sleep_until(tokio::time::Instant::from_std(at))).ok()
}
