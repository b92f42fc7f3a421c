//! Configuration: [`WebhookAuth`], the verifier and everything a server needs around it.

use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::claim::ReplayGuard;
use crate::verify::Verifier;

use super::answer::DEFAULT_RETRY_AFTER;
use super::body::BodyLimit;
use super::mistake::{Budget, DEFAULT_DIAGNOSIS_RATE};

/// A verifier with everything a server needs around it: body limit and deadline, replay
/// guard, and how to learn the request URL. Cheap to clone (shared).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use countersign::layer::{VerifyLayer, WebhookAuth};
/// use countersign::claim::ReplayGuard;
/// use countersign::{Signer, SecretKey, SignableRequest, SystemClock, Timestamp, Verifier};
/// use http_body_util::{BodyExt, Full};
/// use std::{sync::Arc, time::Duration};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
///     .with_replay_guard(ReplayGuard::in_memory(100_000))
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
    pub(super) verifier: Arc<Verifier>,
    pub(super) guard: Option<ReplayGuard>,
    pub(super) body: BodyLimit,
    pub(super) retry_after: Duration,
    pub(super) url_from_host: Option<&'static str>,
    pub(super) route: Option<Arc<str>>,
    pub(super) background: Arc<Background>,
    /// How many refused signatures may be searched for the likely mistake.
    pub(super) mistakes: Arc<Budget>,
}

/// What the layer runs in the background, shared by every clone of a [`WebhookAuth`].
#[derive(Default)]
pub(super) struct Background {
    /// Handlers being finished after their client hung up.
    pub(super) handlers: core::sync::atomic::AtomicUsize,
}

impl WebhookAuth {
    /// Wraps a verifier, with a 1 MiB body limit, a 10 s body deadline, and the verifier's
    /// replay guard if it has one.
    ///
    /// # Examples
    ///
    /// See the [module documentation](super).
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
        let guard = verifier.replay_guard().cloned();
        WebhookAuth {
            verifier,
            guard,
            body: BodyLimit::default(),
            retry_after: DEFAULT_RETRY_AFTER,
            url_from_host: None,
            route: None,
            background: Arc::default(),
            mistakes: Arc::new(Budget::per_second(DEFAULT_DIAGNOSIS_RATE)),
        }
    }

    /// The replay guard deliveries are claimed with (over any store: in memory, Redis,
    /// PostgreSQL), under this endpoint's route ([`WebhookAuth::with_route`]). It replaces
    /// the verifier's own guard, if it had one: a delivery is only ever claimed once, by the
    /// layer. Defaults to the verifier's guard, or none.
    ///
    /// # Examples
    ///
    /// See the [module documentation](super).
    #[must_use]
    pub fn with_replay_guard(mut self, guard: ReplayGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// The route this endpoint's claims are kept under, within the guard's namespace, for
    /// webhook schemes (a request scheme's claims are shared by every route: the same
    /// signed request sent to another endpoint is a replay). Two webhook routes never share
    /// claims: the same event sent to `/hooks/orders` and `/hooks/analytics` is processed by
    /// each. Defaults to the path of the URL the verifier is configured with (a Kitopay
    /// webhook's: the URL signed, so every path that reaches the verifier is one route),
    /// else the router's matched route (axum's `MatchedPath`, `/webhooks/{provider}`,
    /// normalised: both trailing-slash forms are one route; available to a layer on the
    /// route, `post(handler).layer(…)`, `route_layer` or [`webhook_router`]), else none:
    /// never the path received, which behind a service that answers every path (a fallback,
    /// a plain tower service) the sender chooses. Name it when several endpoints sharing a
    /// guard have no matched route (without one they share claims), or to keep claims across
    /// a change of path.
    ///
    /// [`webhook_router`]: super::webhook_router
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("w")?)).with_route("orders");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_route(mut self, route: &str) -> Self {
        self.route = Some(route.into());
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
        self.body = BodyLimit::new(bytes, self.body.timeout());
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
        self.body = BodyLimit::new(self.body.limit(), timeout);
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

    /// How many refused signatures per second (and in one burst) the layer searches for the
    /// likely mistake it names in its refusal event (`hypothesis`: a trailing slash, a body
    /// newline, pretty or minified JSON). Defaults to [`DEFAULT_DIAGNOSIS_RATE`] (10); `0`
    /// turns the search off. Shared by every clone of this `WebhookAuth`.
    ///
    /// Each search costs at most 16 MACs of a body of at most 16 KiB; refusals over the
    /// rate log `hypothesis="not_searched"`, so a flood of forged requests costs no more
    /// than the rate allows. See the [module documentation](super#why-was-a-delivery-refused).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::WebhookAuth;
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("w")?)).with_diagnosis_rate(2);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_diagnosis_rate(mut self, per_second: u32) -> Self {
        self.mistakes = Arc::new(Budget::per_second(per_second));
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
}

impl core::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("verifier", &self.verifier)
            .field("replay_guard", &self.guard.is_some())
            .field("limit", &self.body.limit())
            .field("body_timeout", &self.body.timeout())
            .field("retry_after", &self.retry_after)
            .field("url_from_host", &self.url_from_host)
            .field("route", &self.route)
            .field("diagnosis_rate", &self.mistakes.rate())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::key::SecretKey;

    #[test]
    fn webhook_auth_debug_shows_its_settings_and_no_secret() {
        const SECRET: &str = "whsec_kk_5e2a91c07d3b4f68";
        let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap()))
            .with_body_limit(1234)
            .with_body_timeout(Duration::from_millis(1500))
            .with_retry_after(Duration::from_secs(7))
            .with_url_from_host("https");
        let text = format!("{auth:?}");
        for part in [
            "WebhookAuth",
            "limit: 1234",
            "body_timeout: 1.5s",
            "retry_after: 7s",
            "url_from_host: Some(\"https\")",
            "replay_guard: false",
            "[redacted]",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(!text.contains(SECRET));
    }
}
