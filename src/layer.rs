//! Verifying incoming requests in a tower stack (feature `tower`).
//!
//! [`VerifyLayer`] reads the body within a size limit and a deadline, verifies it with a
//! [`Verifier`] (freshness, constant-time MAC, key rotation), claims the delivery with a
//! replay guard, and then either passes the request on, body intact, with a
//! [`VerifiedDelivery`] in its extensions, or answers for it:
//!
//! | what happened | answer | handler called |
//! |---|---|---|
//! | verified, first delivery (or a retry of a released one) | the handler's | yes |
//! | duplicate of a delivery the handler answered 2xx | `200`, `duplicate delivery: already processed` | no |
//! | duplicate of a delivery still being processed | `409` with `Retry-After` | no |
//! | replay guard cannot decide (store down, timeout, full) | `503` with `Retry-After` | no |
//! | signature, timestamp, headers or URL refused | `401`, generic body | no |
//! | body larger than the limit (declared or read) | `413` | no |
//! | body not complete within the deadline | `408` | no |
//!
//! A delivery's claim is **done** when the handler answers 2xx, and **released** on every
//! other path: a non-2xx answer, an inner service error or a panic, so the provider's retry
//! is processed as new. A client that hangs up does not cancel the handler: it runs to its
//! end in a task of its own (a Tokio runtime is needed) and its answer settles the claim,
//! so a delivery is never released halfway through its side effects and processed again.
//! Before stopping the runtime, await [`WebhookAuth::background_finished`]. The precise
//! reason for every decision is one `tracing` event (target `countersign`), never sent to
//! the client; see [`VerifyLayer`].
//!
//! For Kitopay webhooks the verifier is built with the public URL the webhook was registered
//! with; the `Host` header is only used if you opt in with [`WebhookAuth::with_url_from_host`].
//!
//! ```
//! use countersign::layer::{VerifyLayer, WebhookAuth};
//! use countersign::{InMemoryReplayGuard, SecretKey, Verifier};
//! use std::sync::Arc;
//!
//! let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
//!     .with_replay_guard(Arc::new(InMemoryReplayGuard::new(100_000)));
//! let layer = VerifyLayer::new(auth);
//! // axum: Router::new().route("/webhooks/kamiokash", post(handler).layer(layer))
//! # Ok::<(), countersign::Error>(())
//! ```

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use crate::error::{Error, ErrorKind, UrlRule, err};
use crate::replay::{AsyncReplayGuard, Claim, ClaimState, ReplayKey};
use crate::scheme::Scheme;
use crate::signature::Signature;
use crate::time::Timestamp;
use crate::url::CanonicalUrl;
use crate::verify::{ReceivedRequest, Verified, Verifier};

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// The default deadline for reading the whole body: 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The default `Retry-After` on `409` and `503`: 5 s.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What a successful verification leaves in the request's extensions.
///
/// # Examples
///
/// ```
/// use axum::Extension;
/// use countersign::layer::VerifiedDelivery;
///
/// // A handler behind `VerifyLayer` reads which key matched, and when the sender signed.
/// async fn handler(Extension(delivery): Extension<VerifiedDelivery>) -> String {
///     let signed_at = delivery.timestamp.map(|t| t.unix_secs());
///     format!("{} delivery, key {}, signed at {signed_at:?}", delivery.scheme, delivery.key_id)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedDelivery {
    /// The scheme verified.
    pub scheme: &'static Scheme,
    /// The id of the key that matched.
    pub key_id: String,
    /// The sender's timestamp (`None` for a scheme without one).
    pub timestamp: Option<Timestamp>,
    /// The verified signature.
    pub signature: Signature,
    /// Whether only the other trailing-slash form of the URL matched (tolerance on).
    pub trailing_slash_toggled: bool,
    /// How long the delivery's replay claim is held (see [`Verified::expires_at`]).
    pub expires_at: Timestamp,
}

impl VerifiedDelivery {
    /// A delivery as the layer would describe it, for tests of handlers that read
    /// `Extension<VerifiedDelivery>` without a signed request; the claim lifetime is computed
    /// with the default window.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::VerifiedDelivery;
    /// use countersign::{kamiokash, Signature, Timestamp};
    /// use std::time::Duration;
    ///
    /// let delivery = VerifiedDelivery::new(&kamiokash::WEBHOOK, "primary", Some(Timestamp::UNIX_EPOCH), Signature::from_bytes([1; 32]));
    /// assert_eq!(delivery.key_id, "primary");
    /// assert!(!delivery.trailing_slash_toggled);
    /// // Held for the 60 s window, one step of RFC 3339 time (1 ns) and 60 s of allowed skew.
    /// assert_eq!(delivery.expires_at.since_epoch(), Duration::new(120, 1));
    /// ```
    #[must_use]
    pub fn new(
        scheme: &'static Scheme,
        key_id: impl Into<String>,
        timestamp: Option<Timestamp>,
        signature: Signature,
    ) -> Self {
        let expires_at = match (timestamp, scheme.time_format()) {
            (Some(timestamp), Some(format)) => scheme
                .freshness()
                .claim_expiry(timestamp, format.resolution()),
            _ => Timestamp::MAX,
        };
        VerifiedDelivery {
            scheme,
            key_id: key_id.into(),
            timestamp,
            signature,
            trailing_slash_toggled: false,
            expires_at,
        }
    }

    /// The delivery's identity for replay protection.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::layer::VerifiedDelivery;
    /// fn key(d: &VerifiedDelivery) -> String { d.replay_key().to_string() }
    /// ```
    #[must_use]
    pub fn replay_key(&self) -> ReplayKey {
        ReplayKey::new(self.scheme, self.signature)
    }

    fn from_verified(verified: &Verified) -> Self {
        VerifiedDelivery {
            scheme: verified.scheme(),
            key_id: verified.key_id().to_owned(),
            timestamp: verified.timestamp(),
            signature: *verified.signature(),
            trailing_slash_toggled: verified.trailing_slash_toggled(),
            expires_at: verified.expires_at(),
        }
    }
}

/// The layer's own answer to a request it does not pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Unauthorized,
    TooLarge,
    BadBody,
    Timeout,
    Duplicate,
    InFlight,
    Unavailable,
}

impl Answer {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Answer::Unauthorized => StatusCode::UNAUTHORIZED,
            Answer::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Answer::BadBody => StatusCode::BAD_REQUEST,
            Answer::Timeout => StatusCode::REQUEST_TIMEOUT,
            Answer::Duplicate => StatusCode::OK,
            Answer::InFlight => StatusCode::CONFLICT,
            Answer::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn body(self) -> &'static str {
        match self {
            Answer::Unauthorized => "unauthorized\n",
            Answer::TooLarge => "payload too large\n",
            Answer::BadBody => "bad request\n",
            Answer::Timeout => "request body timeout\n",
            Answer::Duplicate => "duplicate delivery: already processed\n",
            Answer::InFlight => "duplicate delivery: still being processed, retry later\n",
            Answer::Unavailable => "replay protection unavailable, retry later\n",
        }
    }

    /// The outcome as logged and counted.
    pub(crate) fn outcome(self) -> &'static str {
        match self {
            Answer::Unauthorized => "refused",
            Answer::TooLarge => "too_large",
            Answer::BadBody => "bad_body",
            Answer::Timeout => "timeout",
            Answer::Duplicate => "duplicate",
            Answer::InFlight => "in_flight",
            Answer::Unavailable => "unavailable",
        }
    }

    fn response<B: From<&'static str>>(self, retry_after: Duration) -> Response<B> {
        let mut response = Response::new(B::from(self.body()));
        *response.status_mut() = self.status();
        if matches!(self, Answer::InFlight | Answer::Unavailable) {
            let secs = retry_after
                .as_secs()
                .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// A verifier with everything a server needs around it: body limit and deadline, replay
/// guard, and how to learn the request URL. Cheap to clone (shared).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use countersign::layer::{VerifyLayer, WebhookAuth};
/// use countersign::{InMemoryReplayGuard, Signer, SecretKey, SignableRequest, SystemClock, Timestamp, Verifier};
/// use http_body_util::{BodyExt, Full};
/// use std::{sync::Arc, time::Duration};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
///     .with_replay_guard(Arc::new(InMemoryReplayGuard::new(100_000)))
///     .with_body_limit(256 * 1024)
///     .with_body_timeout(Duration::from_secs(5));
/// let service = VerifyLayer::new(auth).layer(service_fn(|_: http::Request<Full<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from("processed")))
/// }));
///
/// // A delivery as KamioKash sends it, twice: processed, then acknowledged as a duplicate.
/// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
/// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::now(&SystemClock))?;
/// for expected in ["processed", "duplicate delivery: already processed\n"] {
///     let mut request = http::Request::post("/webhooks/kamiokash");
///     for (name, value) in signed.headers() {
///         request = request.header(name, value);
///     }
///     let response = service.clone().oneshot(request.body(Full::<Bytes>::from("{}"))?).await?;
///     assert_eq!(response.status(), 200);
///     assert_eq!(response.into_body().collect().await?.to_bytes(), expected);
/// }
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct WebhookAuth {
    verifier: Arc<Verifier>,
    guard: Option<Arc<dyn AsyncReplayGuard>>,
    limit: usize,
    body_timeout: Duration,
    retry_after: Duration,
    url_from_host: Option<&'static str>,
    background: Arc<Background>,
}

/// What the layer runs in the background, shared by every clone of a [`WebhookAuth`].
#[derive(Default)]
struct Background {
    /// Handlers being finished after their client hung up.
    handlers: core::sync::atomic::AtomicUsize,
    /// Set once a timer could not be made (a runtime without timers), so the probe, which
    /// panics inside Tokio, is not repeated.
    timerless: core::sync::atomic::AtomicBool,
}

impl WebhookAuth {
    /// Wraps a verifier, with a 1 MiB body limit, a 10 s body deadline, and the verifier's
    /// replay guard if it has one.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self::from_arc(Arc::new(verifier))
    }

    /// Wraps a shared verifier (see [`WebhookAuth::new`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{SecretKey, Verifier};
    /// use std::sync::Arc;
    ///
    /// let verifier = Arc::new(Verifier::kamiokash_webhook(SecretKey::new("w")?));
    /// let auth = WebhookAuth::from_arc(verifier);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn from_arc(verifier: Arc<Verifier>) -> Self {
        let guard = verifier
            .replay_guard()
            .map(|guard| Arc::new(Arc::clone(guard)) as Arc<dyn AsyncReplayGuard>);
        WebhookAuth {
            verifier,
            guard,
            limit: DEFAULT_BODY_LIMIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            url_from_host: None,
            background: Arc::default(),
        }
    }

    /// The replay guard deliveries are claimed with (for example the Redis guard). It
    /// replaces the verifier's own guard, if it had one: a delivery is only ever claimed
    /// once, by the layer. Defaults to the verifier's guard, or none.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub fn with_replay_guard(mut self, guard: Arc<dyn AsyncReplayGuard>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// The largest body accepted, in bytes. Defaults to 1 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("w")?)).with_body_limit(64 * 1024);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// How long reading the whole body may take before the request is answered `408`
    /// (a stalled chunked body, a `Content-Length` longer than what is sent). Defaults to
    /// 10 s. Needs a Tokio runtime with timers (axum's); without one the body is read
    /// without a deadline and a warning is logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{SecretKey, Verifier};
    /// use std::time::Duration;
    ///
    /// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("w")?))
    ///     .with_body_timeout(Duration::from_secs(2));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The `Retry-After` sent with `409` (a duplicate still in flight) and `503` (replay
    /// guard unavailable), rounded up to whole seconds. Defaults to 5 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{SecretKey, Verifier};
    /// use std::time::Duration;
    ///
    /// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("w")?))
    ///     .with_retry_after(Duration::from_secs(1));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Opt-in: for verifiers without a configured URL (Kitopay requests), rebuild the URL
    /// from `scheme` (`"https"`), the request's authority (the `Host` header, or the
    /// authority of an absolute request URI as HTTP/2 sends it) and its path and query (the
    /// original ones under axum's `Router::nest`). Only do this when no proxy between the
    /// sender and you changes host, port or path.
    ///
    /// The authority must be a plain `host[:port]` (no `/ ? # @`), and the rebuilt URL must
    /// already be canonical (no `..` or `%2e` segments, no default port, lower-case host):
    /// anything else is refused, so the URL verified is exactly the URL received.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let verifier = Verifier::kitopay_request("merchant-1", SecretKey::new("s")?)?;
    /// let auth = WebhookAuth::new(verifier).with_url_from_host("https");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_url_from_host(mut self, scheme: &'static str) -> Self {
        self.url_from_host = Some(scheme);
        self
    }

    /// The verifier.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{kamiokash, SecretKey, Verifier};
    ///
    /// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("w")?));
    /// assert_eq!(auth.verifier().scheme(), &kamiokash::WEBHOOK);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// How many handlers the layer is finishing in the background because their client
    /// hung up before the answer.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("w")?));
    /// assert_eq!(auth.in_background(), 0);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn in_background(&self) -> usize {
        self.background.handlers.load(Ordering::Acquire)
    }

    /// Waits until no handler is being finished in the background. Await it after the
    /// server's graceful shutdown and before the runtime stops: a stopping runtime drops
    /// the tasks it still has, and a handler cut short there is released (or, if the
    /// release cannot run any more, its claim stays in flight until it expires).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(auth: countersign::layer::WebhookAuth, listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    /// let shutdown = async { /* your shutdown signal, e.g. tokio::signal::ctrl_c() */ };
    /// axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    /// auth.background_finished().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn background_finished(&self) {
        while self.in_background() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Reads the body within the limit and the deadline.
    async fn read_body<B>(
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

    /// Verifies a buffered request and claims it. Every decision is logged once.
    async fn admit(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        started: Instant,
    ) -> Result<(VerifiedDelivery, Option<Pending>), Answer> {
        let now = self.verifier.clock().now();
        let scheme = self.verifier.scheme();
        let verified = match self.verify(parts, body, now) {
            Ok(verified) => verified,
            Err(e) => {
                let age_ms = header_age(parts, scheme, now);
                tracing::warn!(target: "countersign", %scheme, outcome = "refused", reason = e.code(), age_ms, error = %e, "webhook refused");
                self.count(Answer::Unauthorized.outcome(), started);
                return Err(Answer::Unauthorized);
            }
        };
        let delivery = VerifiedDelivery::from_verified(&verified);
        let age_ms = delivery.timestamp.map(|timestamp| age_ms(now, timestamp));
        let pending = match &self.guard {
            None => None,
            Some(guard) => {
                match guard
                    .claim_async(delivery.replay_key(), delivery.expires_at, now)
                    .await
                {
                    Ok(claim) => Some(Pending {
                        guard: Arc::clone(guard),
                        claim: Some(claim),
                    }),
                    Err(e) => {
                        let answer = match e.kind() {
                            ErrorKind::Replayed(ClaimState::Done) => Answer::Duplicate,
                            ErrorKind::Replayed(_) => Answer::InFlight,
                            _ => Answer::Unavailable,
                        };
                        tracing::warn!(target: "countersign", %scheme, outcome = answer.outcome(), reason = e.code(), key_id = %delivery.key_id, age_ms, error = %e, "webhook not passed on");
                        self.count(answer.outcome(), started);
                        return Err(answer);
                    }
                }
            }
        };
        tracing::info!(target: "countersign", %scheme, outcome = "accepted", key_id = %delivery.key_id, age_ms, trailing_slash_toggled = delivery.trailing_slash_toggled, "webhook verified");
        self.count("accepted", started);
        Ok((delivery, pending))
    }

    /// Counts one decision and how long it took since the request arrived (feature
    /// `metrics`): `countersign_verifications_total{scheme, outcome}` and
    /// `countersign_verification_duration_seconds{scheme, outcome}`.
    fn count(&self, outcome: &'static str, started: Instant) {
        #[cfg(feature = "metrics")]
        {
            let scheme = self.verifier.scheme().as_str();
            metrics::counter!("countersign_verifications_total", "scheme" => scheme, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("countersign_verification_duration_seconds", "scheme" => scheme, "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (outcome, started);
    }

    fn verify(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Verified, Error> {
        let received =
            ReceivedRequest::new(&parts.headers, body).with_method(parts.method.as_str());
        match self.url_from_host {
            Some(scheme) => {
                let url = request_url(parts, scheme)?;
                self.verifier.verify_at(&received.with_url(&url), now)
            }
            None => self.verifier.verify_at(&received, now),
        }
    }
}

/// The URL a request arrived at: `scheme://authority` + the original path and query,
/// refused unless it is exactly its own canonical form.
fn request_url(parts: &http::request::Parts, scheme: &str) -> Result<CanonicalUrl, Error> {
    #[cfg(feature = "axum")]
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    #[cfg(not(feature = "axum"))]
    let uri = &parts.uri;
    let authority = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => {
            let mut hosts = parts.headers.get_all(http::header::HOST).iter();
            match (hosts.next(), hosts.next()) {
                (Some(host), None) => host
                    .to_str()
                    .map_err(|_| Error::from(ErrorKind::InvalidUrl(UrlRule::Host)))?,
                (None, _) => return err(ErrorKind::MissingHeader("host")),
                (Some(_), Some(_)) => return err(ErrorKind::DuplicateHeader("host")),
            }
        }
    };
    if !is_plain_authority(authority) {
        return err(ErrorKind::InvalidUrl(UrlRule::Host));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let text = format!("{scheme}://{authority}{path}");
    let url = CanonicalUrl::parse(&text)?;
    if url.as_str() != text {
        return err(ErrorKind::InvalidUrl(UrlRule::NotCanonical));
    }
    Ok(url)
}

/// A timer for the body deadline, if the current Tokio runtime has one. Tokio panics when a
/// timer is made on a runtime built without `enable_time`; that is caught here (once per
/// request) and the body is then read without a deadline.
fn deadline(at: Instant) -> Option<tokio::time::Sleep> {
    tokio::runtime::Handle::try_current().ok()?;
    std::panic::catch_unwind(|| tokio::time::sleep_until(tokio::time::Instant::from_std(at))).ok()
}

/// `host[:port]`: an authority as `http` parses it, which refuses `/ ? #`, backslashes,
/// spaces and the empty string. (Userinfo, `user@`, parses; the canonical-URL rule against
/// credentials refuses it next.)
fn is_plain_authority(authority: &str) -> bool {
    authority.parse::<http::uri::Authority>().is_ok()
}

/// How old the timestamp is at `now`, in milliseconds (negative: ahead of the clock).
fn age_ms(now: Timestamp, timestamp: Timestamp) -> i64 {
    let (now, at) = (now.since_epoch(), timestamp.since_epoch());
    if now >= at {
        i64::try_from((now - at).as_millis()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((at - now).as_millis()).unwrap_or(i64::MAX)
    }
}

/// The age of the request's timestamp header, if there is exactly one and it parses.
fn header_age(parts: &http::request::Parts, scheme: &Scheme, now: Timestamp) -> Option<i64> {
    let mut values = parts.headers.get_all(scheme.timestamp_header()?).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => {
            let at = scheme.parse_timestamp(value.to_str().ok()?).ok()?;
            Some(age_ms(now, at))
        }
        _ => None,
    }
}

/// A claim waiting for the handler's outcome. Settled explicitly (done on 2xx, released
/// otherwise); if it is dropped unsettled (a panic, the request future dropped), the claim
/// is released in the background.
struct Pending {
    guard: Arc<dyn AsyncReplayGuard>,
    claim: Option<Claim>,
}

impl Pending {
    async fn settle(mut self, success: bool) {
        let Some(claim) = self.claim else { return };
        if success {
            // Not waited on: the answer is ready, and a completion cut short leaves the claim
            // in flight (duplicates get 409 until it expires), never released (which would let
            // the delivery be processed twice).
            self.claim = None;
            self.guard.complete_detached(claim);
        } else {
            // Taken after: if this release is cut short, the drop guard releases again.
            let released = self.guard.release_async(claim).await;
            self.claim = None;
            match released {
                Ok(()) => {
                    tracing::debug!(target: "countersign", "replay claim released: the provider's retry will be processed")
                }
                Err(e) => {
                    tracing::warn!(target: "countersign", error = %e, "could not release a replay claim; the retry is refused until it expires")
                }
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            tracing::warn!(target: "countersign", "request ended without an answer (handler panic, or the runtime stopped): releasing its replay claim");
            self.guard.release_detached(claim);
        }
    }
}

/// A handler's future, with its claim's settlement, that must run to its end.
type Handled<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// Holds the handler's future while it is polled where the request is served; dropped
/// before the future finished (the client hung up), it finishes it in a task of its own.
struct Unfinished<R: Send + 'static, E: Send + 'static>(Option<Handled<R, E>>, Arc<Background>);

impl<R: Send + 'static, E: Send + 'static> Drop for Unfinished<R, E> {
    fn drop(&mut self) {
        let Some(future) = self.0.take() else { return };
        if std::thread::panicking() {
            // The handler panicked: the future cannot be resumed; dropping it drops the
            // pending claim, which releases it.
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                tracing::debug!(target: "countersign", "client gone before the handler answered: finishing it in the background");
                let background = Arc::clone(&self.1);
                background.handlers.fetch_add(1, Ordering::AcqRel);
                drop(runtime.spawn(async move {
                    // Counted down even if the handler panics (the guard drops on unwind).
                    let _done = Finished(background);
                    drop(future.await);
                }));
            }
            // No runtime to finish it on: dropping it releases the claim.
            Err(_) => {
                tracing::warn!(target: "countersign", "client gone before the handler answered and no Tokio runtime to finish it on: releasing its claim")
            }
        }
    }
}

/// Counts a background handler as finished when dropped.
struct Finished(Arc<Background>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<R: Send + 'static, E: Send + 'static> Future for Unfinished<R, E> {
    type Output = Result<R, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(future) = self.0.as_mut() else {
            // Finished already; not polled again by `call`.
            return Poll::Pending;
        };
        let outcome = core::task::ready!(future.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(outcome)
    }
}

impl core::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("verifier", &self.verifier)
            .field("replay_guard", &self.guard.is_some())
            .field("limit", &self.limit)
            .field("body_timeout", &self.body_timeout)
            .field("retry_after", &self.retry_after)
            .field("url_from_host", &self.url_from_host)
            .finish()
    }
}

/// The tower layer; see the [module documentation](self).
///
/// # Tracing and metrics
///
/// Every request gets one event with target `countersign`: `outcome` (`accepted`,
/// `duplicate`, `in_flight`, `unavailable`, `refused`, `too_large`, `timeout`,
/// `bad_body`), `scheme`, `reason` (the [`Error::code`] of a refusal), `key_id` (which key
/// matched) and `age_ms` (how old the timestamp was; negative if ahead). Secrets and
/// signatures are never logged. Refusals are `WARN`, acceptances `INFO`:
/// `RUST_LOG=countersign=info` shows why each delivery was refused.
///
/// With the `metrics` feature, each decision also increments
/// `countersign_verifications_total{scheme, outcome}` and records the time from the
/// request's arrival to the decision (body read, verification, replay claim) in the
/// histogram `countersign_verification_duration_seconds{scheme, outcome}`, through the
/// [`metrics`](https://docs.rs/metrics) facade: install any recorder (Prometheus, StatsD).
///
/// # Examples
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use countersign::layer::{VerifiedDelivery, VerifyLayer, WebhookAuth};
/// use countersign::{InMemoryReplayGuard, SecretKey, Verifier};
/// use std::sync::Arc;
///
/// async fn handler(Extension(delivery): Extension<VerifiedDelivery>) -> String {
///     format!("{} delivery verified with key {}", delivery.scheme, delivery.key_id)
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use countersign::{Signer, SignableRequest, SystemClock, Timestamp};
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
///
/// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
///     .with_replay_guard(Arc::new(InMemoryReplayGuard::new(100_000)));
/// let app: Router = Router::new().route("/webhooks/kamiokash", post(handler).layer(VerifyLayer::new(auth)));
///
/// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
/// let body = br#"{"type":"wallet.new","data":{}}"#;
/// let signed = signer.sign(&SignableRequest::body(body), Timestamp::now(&SystemClock))?;
/// let mut request = http::Request::post("/webhooks/kamiokash");
/// for (name, value) in signed.headers() {
///     request = request.header(name, value);
/// }
/// let response = app.oneshot(request.body(axum::body::Body::from(&body[..]))?).await?;
/// assert_eq!(response.status(), 200);
/// let text = response.into_body().collect().await?.to_bytes();
/// assert_eq!(text, "kamiokash-webhook delivery verified with key primary");
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    auth: WebhookAuth,
}

impl VerifyLayer {
    /// A layer verifying with `auth`.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub fn new(auth: WebhookAuth) -> Self {
        VerifyLayer { auth }
    }
}

impl<S> tower_layer::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around yours. The inner service receives the verified
/// body as `Full<Bytes>`.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use countersign::layer::{VerifyLayer, WebhookAuth};
/// use countersign::{SecretKey, Verifier};
/// use http_body_util::Full;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?));
/// let service = VerifyLayer::new(auth).layer(service_fn(|_request: http::Request<Full<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from("ok")))
/// }));
/// let unsigned = http::Request::post("/webhooks/kamiokash").body(Full::<Bytes>::from("{}"))?;
/// let response = service.oneshot(unsigned).await?;
/// assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    auth: WebhookAuth,
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for VerifyService<S>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = core::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let started = Instant::now();
            let retry_after = auth.retry_after;
            let (mut parts, body) = request.into_parts();
            let bytes = match auth.read_body(&parts.headers, body, started).await {
                Ok(bytes) => bytes,
                Err(answer) => return Ok(answer.response(retry_after)),
            };
            let (delivery, pending) = match auth.admit(&parts, &bytes, started).await {
                Ok(admitted) => admitted,
                Err(answer) => return Ok(answer.response(retry_after)),
            };
            parts.extensions.insert(delivery);
            let request = Request::from_parts(parts, Full::new(bytes));
            let Some(pending) = pending else {
                return inner.call(request).await;
            };
            // The claim is settled by the handler's own outcome: done on 2xx, released
            // otherwise (a panic unwinds through `pending`, which releases). A client hanging
            // up must not cancel the handler halfway through its side effects (releasing then
            // would let the delivery be processed twice): if this future is dropped before
            // the handler answered, the handler is finished in a task of its own, and its
            // answer settles the claim. While the client waits, it runs right here.
            Unfinished(
                Some(Box::pin(async move {
                    let outcome = inner.call(request).await;
                    let success =
                        matches!(&outcome, Ok(response) if response.status().is_success());
                    pending.settle(success).await;
                    outcome
                })),
                Arc::clone(&auth.background),
            )
            .await
        })
    }
}
