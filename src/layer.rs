//! Verifying incoming requests in a tower stack (feature `tower`).
//!
//! [`VerifyLayer`] buffers the body up to a limit (default 1 MiB; a larger declared or
//! actual body is answered `413` without reading further), verifies it with a configured
//! [`Verifier`] (freshness, constant-time MAC, key rotation) and an optional
//! [`AsyncReplayGuard`], and then either passes the request on, body intact, with a
//! [`VerifiedDelivery`] in its extensions, or answers `401` with a generic body. The precise
//! reason goes to `tracing` (target `countersign`), never to the client.
//!
//! If the inner service answers with a server error (5xx), the delivery's replay claim is
//! released, so the provider's retry of the same delivery is accepted.
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
//! // axum: Router::new().route("/webhooks/kamiokash", post(handler)).layer(layer)
//! # Ok::<(), countersign::Error>(())
//! ```

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use crate::error::Error;
use crate::replay::{AsyncReplayGuard, ReplayKey};
use crate::scheme::Scheme;
use crate::signature::Signature;
use crate::time::Timestamp;
use crate::url::CanonicalUrl;
use crate::verify::{ReceivedRequest, Verifier};

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// What a successful verification leaves in the request's extensions.
///
/// # Examples
///
/// ```
/// use countersign::layer::VerifiedDelivery;
///
/// fn handler(extensions: &http::Extensions) -> Option<&str> {
///     extensions.get::<VerifiedDelivery>().map(|d| d.key_id.as_str())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedDelivery {
    /// The scheme verified.
    pub scheme: Scheme,
    /// The id of the key that matched.
    pub key_id: String,
    /// The sender's timestamp.
    pub timestamp: Timestamp,
    /// The verified signature.
    pub signature: Signature,
    /// Whether only the other trailing-slash form of the URL matched (tolerance on).
    pub trailing_slash_toggled: bool,
    /// When the timestamp stops passing the freshness check (how long a replay claim lasts).
    pub expires_at: Timestamp,
}

impl VerifiedDelivery {
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
}

/// Why a request was refused, as the client sees it (the reason itself is logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unauthorized,
    TooLarge,
    BadBody,
}

impl Refusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BadBody => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn body(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized\n",
            Refusal::TooLarge => "payload too large\n",
            Refusal::BadBody => "bad request\n",
        }
    }

    pub(crate) fn response<B: From<&'static str>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body()));
        *response.status_mut() = self.status();
        response
    }
}

/// A verifier with everything a server needs around it: body limit, replay guard, and how
/// to learn the request URL. Cheap to clone (shared).
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct WebhookAuth {
    verifier: Arc<Verifier>,
    guard: Option<Arc<dyn AsyncReplayGuard>>,
    limit: usize,
    url_from_host: Option<&'static str>,
}

impl WebhookAuth {
    /// Wraps a verifier, with a 1 MiB body limit and no replay guard.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self::from_arc(Arc::new(verifier))
    }

    /// Wraps a shared verifier.
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
        WebhookAuth {
            verifier,
            guard: None,
            limit: DEFAULT_BODY_LIMIT,
            url_from_host: None,
        }
    }

    /// Rejects replays (and, through the layer, releases the claim when the handler fails).
    /// Defaults to none.
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

    /// Opt-in: for verifiers without a configured URL (Kitopay requests), rebuild the URL
    /// from `scheme` (`"https"`), the `Host` header and the request path. Only do this when
    /// no proxy between the sender and you changes host, port or path.
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
    /// use countersign::{Scheme, SecretKey, Verifier};
    ///
    /// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("w")?));
    /// assert_eq!(auth.verifier().scheme(), Scheme::KamioKashWebhook);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Reads the body within the limit: `413` if the declared length or the bytes read
    /// exceed it (reading stops there).
    pub(crate) async fn read_body<B>(
        &self,
        headers: &http::HeaderMap,
        body: B,
    ) -> Result<Bytes, Refusal>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            tracing::warn!(target: "countersign", declared, limit = self.limit, "webhook refused: body too large");
            return Err(Refusal::TooLarge);
        }
        match Limited::new(body, self.limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    tracing::warn!(target: "countersign", limit = self.limit, "webhook refused: body too large");
                    Err(Refusal::TooLarge)
                } else {
                    tracing::warn!(target: "countersign", error = %e, "webhook refused: body could not be read");
                    Err(Refusal::BadBody)
                }
            }
        }
    }

    /// Verifies and claims a buffered request. The reason for a refusal is logged.
    pub(crate) async fn check(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<VerifiedDelivery, Refusal> {
        let outcome = self.verify(parts, body);
        let delivery = match outcome {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(target: "countersign", reason = e.code(), error = %e, "webhook refused");
                return Err(Refusal::Unauthorized);
            }
        };
        if let Some(guard) = &self.guard
            && let Err(e) = guard
                .claim_async(
                    delivery.replay_key(),
                    delivery.expires_at,
                    self.verifier.now(),
                )
                .await
        {
            tracing::warn!(target: "countersign", reason = e.code(), error = %e, "webhook refused");
            return Err(Refusal::Unauthorized);
        }
        Ok(delivery)
    }

    fn verify(&self, parts: &http::request::Parts, body: &[u8]) -> Result<VerifiedDelivery, Error> {
        let mut received =
            ReceivedRequest::new(&parts.headers, body).with_method(parts.method.as_str());
        let rebuilt;
        if let Some(scheme) = self.url_from_host
            && let Some(host) = parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        {
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            rebuilt = CanonicalUrl::parse(&format!("{scheme}://{host}{path}"))?;
            received = received.with_url(&rebuilt);
        }
        let verified = self.verifier.verify(&received)?;
        Ok(VerifiedDelivery {
            scheme: verified.scheme(),
            key_id: verified.key_id().to_owned(),
            timestamp: verified.timestamp(),
            signature: *verified.signature(),
            trailing_slash_toggled: verified.trailing_slash_toggled(),
            expires_at: verified.expires_at(),
        })
    }

    /// Releases a delivery's replay claim (the handler failed; let the retry in).
    pub(crate) async fn release(&self, delivery: &VerifiedDelivery) {
        if let Some(guard) = &self.guard
            && let Err(e) = guard.release_async(delivery.replay_key()).await
        {
            tracing::warn!(target: "countersign", error = %e, "could not release a replay claim");
        }
    }
}

impl core::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("verifier", &self.verifier)
            .field("replay_guard", &self.guard.is_some())
            .field("limit", &self.limit)
            .field("url_from_host", &self.url_from_host)
            .finish()
    }
}

/// The tower layer; see the [module documentation](self).
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
            let (mut parts, body) = request.into_parts();
            let bytes = match auth.read_body(&parts.headers, body).await {
                Ok(bytes) => bytes,
                Err(refusal) => return Ok(refusal.response()),
            };
            let delivery = match auth.check(&parts, &bytes).await {
                Ok(delivery) => delivery,
                Err(refusal) => return Ok(refusal.response()),
            };
            parts.extensions.insert(delivery.clone());
            let response = inner
                .call(Request::from_parts(parts, Full::new(bytes)))
                .await?;
            if response.status().is_server_error() {
                auth.release(&delivery).await;
            }
            Ok(response)
        })
    }
}
