//! Reading the body: a size limit and a deadline ([`BodyLimit`]), the rule the layer and
//! `countersign serve` share.

use core::future::Future;
use core::pin::Pin;
use core::task::Poll;
use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::error::{Error, ErrorKind};

use super::answer::Answer;
use super::auth::WebhookAuth;

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// The default deadline for reading the whole body: 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How a request body is read whole before it is verified: at most `limit` bytes, all of
/// them within `timeout` of the request's arrival. [`VerifyLayer`](super::VerifyLayer)
/// reads with it; use it in a handler of your own that verifies (as `countersign serve`
/// does), so both refuse the same bodies. Cheap to clone (clones share what they learnt
/// about the runtime).
///
/// A declared `Content-Length` over the limit is refused before a byte is read; a body
/// without one is refused as soon as the bytes read pass the limit. The deadline needs a
/// Tokio runtime with timers (axum's); without one the body is read without a deadline,
/// and a warning is logged once.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use countersign::layer::BodyLimit;
/// use countersign::ErrorKind;
/// use http_body_util::Full;
/// use std::time::{Duration, Instant};
///
/// # async fn run() -> Result<(), countersign::Error> {
/// let limit = BodyLimit::new(16, Duration::from_secs(5));
/// let headers = http::HeaderMap::new();
/// let body = limit.read(&headers, Full::new(Bytes::from("{}")), Instant::now()).await?;
/// assert_eq!(body, "{}");
///
/// let large = Full::new(Bytes::from(vec![b' '; 17]));
/// let refused = limit.read(&headers, large, Instant::now()).await.unwrap_err();
/// assert_eq!(refused.kind(), &ErrorKind::BodyTooLarge { limit: 16, declared: None });
/// assert_eq!(refused.code(), "body_too_large"); // answer 413
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct BodyLimit {
    limit: usize,
    timeout: Duration,
    /// Set once a timer could not be made (a runtime without timers), so the probe, which
    /// panics inside Tokio, is not repeated.
    timerless: Arc<AtomicBool>,
}

impl Default for BodyLimit {
    /// [`DEFAULT_BODY_LIMIT`] (1 MiB) within [`DEFAULT_BODY_TIMEOUT`] (10 s).
    fn default() -> Self {
        BodyLimit::new(DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT)
    }
}

impl BodyLimit {
    /// At most `limit` bytes, all of them within `timeout` of the request's arrival.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::BodyLimit;
    /// use std::time::Duration;
    ///
    /// let limit = BodyLimit::new(64 * 1024, Duration::from_secs(5));
    /// assert_eq!((limit.limit(), limit.timeout()), (65_536, Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn new(limit: usize, timeout: Duration) -> Self {
        BodyLimit {
            limit,
            timeout,
            timerless: Arc::default(),
        }
    }

    /// The largest body read, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::{BodyLimit, DEFAULT_BODY_LIMIT};
    ///
    /// assert_eq!(BodyLimit::default().limit(), DEFAULT_BODY_LIMIT);
    /// ```
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How long, from the request's arrival, the whole body may take.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::{BodyLimit, DEFAULT_BODY_TIMEOUT};
    ///
    /// assert_eq!(BodyLimit::default().timeout(), DEFAULT_BODY_TIMEOUT);
    /// ```
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Reads `body` whole. `headers` are the request's (for its `Content-Length`);
    /// `arrived` is when the request arrived, from which the deadline counts
    /// (`Instant::now()` at the top of a handler).
    ///
    /// Its timer is only made once the body is not all there at the first poll (the usual
    /// small webhook is), so a complete request pays nothing for it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BodyTooLarge`] (answer `413`), [`ErrorKind::BodyTimeout`] (`408`),
    /// [`ErrorKind::BodyUnreadable`] (`400`).
    ///
    /// # Examples
    ///
    /// See [`BodyLimit`].
    pub async fn read<B>(
        &self,
        headers: &http::HeaderMap,
        body: B,
        arrived: Instant,
    ) -> Result<Bytes, Error>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            return Err(ErrorKind::BodyTooLarge {
                limit: self.limit,
                declared,
            }
            .into());
        }
        let mut collect = core::pin::pin!(Limited::new(body, self.limit).collect());
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut timerless = self.timerless.load(Ordering::Relaxed);
        let raced = core::future::poll_fn(|cx| {
            if let Poll::Ready(collected) = collect.as_mut().poll(cx) {
                return Poll::Ready(Some(collected));
            }
            if timer.is_none() && !timerless {
                match arrived.checked_add(self.timeout).and_then(deadline) {
                    Some(sleep) => timer = Some(Box::pin(sleep)),
                    None => {
                        tracing::warn!(target: "countersign", "no Tokio runtime with timers: reading bodies without a deadline");
                        self.timerless.store(true, Ordering::Relaxed);
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
            return Err(ErrorKind::BodyTimeout {
                timeout: self.timeout,
            }
            .into());
        };
        match collected {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(ErrorKind::BodyTooLarge {
                    limit: self.limit,
                    declared: None,
                }
                .into())
            }
            Err(e) => Err(ErrorKind::BodyUnreadable(e.to_string()).into()),
        }
    }
}

impl core::fmt::Debug for BodyLimit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BodyLimit")
            .field("limit", &self.limit)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookAuth {
    /// Reads the body with the auth's [`BodyLimit`]; a refusal is logged, counted and
    /// answered.
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
        let e = match self.body.read(headers, body, started).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) => e,
        };
        let scheme = self.verifier.scheme();
        let answer = match e.kind() {
            ErrorKind::BodyTooLarge { limit, declared } => {
                tracing::warn!(target: "countersign", %scheme, outcome = "too_large", declared, limit, "webhook refused: body larger than the limit");
                Answer::TooLarge
            }
            ErrorKind::BodyTimeout { timeout } => {
                tracing::warn!(target: "countersign", %scheme, outcome = "timeout", timeout_ms = timeout.as_millis() as u64, "webhook refused: body not received within the deadline");
                Answer::Timeout
            }
            _ => {
                tracing::warn!(target: "countersign", %scheme, outcome = "bad_body", error = %e, "webhook refused: body could not be read");
                Answer::BadBody
            }
        };
        self.count(answer.outcome(), started);
        Err(answer)
    }
}

/// A timer for the body deadline, if the current Tokio runtime has one. Tokio panics when a
/// timer is made on a runtime built without `enable_time`; that is caught here (once per
/// request) and the body is then read without a deadline.
fn deadline(at: Instant) -> Option<tokio::time::Sleep> {
    tokio::runtime::Handle::try_current().ok()?;
    std::panic::catch_unwind(|| tokio::time::sleep_until(tokio::time::Instant::from_std(at))).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http_body_util::{Full, StreamBody};

    fn stream(
        chunks: &[&'static [u8]],
    ) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> {
        let frames: Vec<_> = chunks
            .iter()
            .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    // The default deadline is 10 s and the default limit 1 MiB: what the docs promise.
    #[test]
    fn the_defaults_are_one_mebibyte_within_ten_seconds() {
        assert_eq!(DEFAULT_BODY_LIMIT, 1 << 20);
        assert_eq!(DEFAULT_BODY_TIMEOUT, Duration::from_secs(10));
        let limit = BodyLimit::default();
        assert_eq!(
            (limit.limit(), limit.timeout()),
            (1 << 20, Duration::from_secs(10))
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, "5".parse().unwrap());
        // A body that would stall forever if it were read.
        let never = StreamBody::new(futures_util::stream::pending::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >());
        let refused = BodyLimit::new(4, Duration::from_secs(60))
            .read(&headers, never, Instant::now())
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            &ErrorKind::BodyTooLarge {
                limit: 4,
                declared: Some(5)
            }
        );
    }

    #[tokio::test]
    async fn the_limit_is_exact_for_streamed_bytes() {
        let limit = BodyLimit::new(4, Duration::from_secs(60));
        let headers = http::HeaderMap::new();
        let read = limit
            .read(&headers, stream(&[b"ab", b"cd"]), Instant::now())
            .await
            .unwrap();
        assert_eq!(read, "abcd");
        let refused = limit
            .read(&headers, stream(&[b"ab", b"cde"]), Instant::now())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "body_too_large");
        assert!(
            limit
                .read(&headers, Full::new(Bytes::new()), Instant::now())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_counting_from_arrival() {
        let stalled = StreamBody::new(futures_util::stream::pending::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >());
        let arrived = Instant::now() - Duration::from_millis(150);
        let refused = BodyLimit::new(4, Duration::from_millis(200))
            .read(&http::HeaderMap::new(), stalled, arrived)
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            &ErrorKind::BodyTimeout {
                timeout: Duration::from_millis(200)
            }
        );
        assert!(arrived.elapsed() >= Duration::from_millis(200));
        assert!(arrived.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_body_that_fails_midway_is_unreadable_not_too_large() {
        // A connection reset after the first bytes: 400 body_unreadable, never 413.
        let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("connection reset")),
        ];
        let failing = StreamBody::new(futures_util::stream::iter(frames));
        let refused = BodyLimit::new(4, Duration::from_secs(60))
            .read(&http::HeaderMap::new(), failing, Instant::now())
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            &ErrorKind::BodyUnreadable("connection reset".into())
        );
        assert_eq!(refused.code(), "body_unreadable");
    }

    #[test]
    fn the_limit_prints_its_size_and_deadline() {
        let text = format!("{:?}", BodyLimit::new(4, Duration::from_secs(3)));
        assert_eq!(text, "BodyLimit { limit: 4, timeout: 3s }");
    }

    /// A body that is not there at the first poll: `ok` arrives at the second.
    struct Later(u8);

    impl http_body::Body for Later {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut core::task::Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            self.0 += 1;
            match self.0 {
                1 => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                2 => Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from("ok"))))),
                _ => Poll::Ready(None),
            }
        }
    }

    #[test]
    fn without_timers_the_body_is_read_without_a_deadline() {
        // Tokio panics when a timer is made without `enable_time`: the probe catches it
        // (its message goes to stderr once) and is not repeated.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let limit = BodyLimit::new(4, Duration::from_millis(1));
        for _ in 0..2 {
            let read =
                runtime.block_on(limit.read(&http::HeaderMap::new(), Later(0), Instant::now()));
            assert_eq!(read.unwrap(), "ok");
        }
        assert!(
            limit.timerless.load(Ordering::Relaxed),
            "probed once, remembered"
        );
    }
}
