//! The tower [`VerifyLayer`] and the [`VerifyService`] it wraps around yours.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use super::auth::WebhookAuth;

/// The tower layer; see the [module documentation](super).
///
/// # Tracing and metrics
///
/// Every request gets one event with target `countersign`: `outcome` (`accepted`,
/// `duplicate`, `in_flight`, `unavailable`, `refused`, `too_large`, `timeout`,
/// `bad_body`), `scheme`, `reason` (the [`Error::code`](crate::Error::code) of a refusal), `key_id` (which key
/// matched), `age_ms` (how old the timestamp was; negative if ahead) and, for a signature
/// mismatch, `hypothesis`, the likely mistake (see [why was a delivery
/// refused](super#why-was-a-delivery-refused)). Secrets, signatures and bodies are never
/// logged. Acceptances and acknowledged duplicates (normal
/// at-least-once delivery) are `INFO`; refusals, deliveries still in flight (`409`) and an
/// undecided replay guard (`503`) are `WARN`: `RUST_LOG=countersign=info` shows why each
/// delivery was refused.
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
/// use countersign::claim::ReplayGuard;
/// use countersign::layer::{WebhookAuth, webhook_router};
/// use countersign::{SecretKey, Verified, Verifier};
///
/// async fn handler(Extension(delivery): Extension<Verified>) -> String {
///     format!("{} delivery verified with key {}", delivery.scheme(), delivery.key_id())
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use countersign::{Signer, SignableRequest, SystemClock, Timestamp};
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
///
/// let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
///     .with_replay_guard(ReplayGuard::in_memory(100_000));
/// // The documented set-up: the layer on the method route, at both trailing-slash forms.
/// let app: Router = Router::new().merge(webhook_router("/webhooks/kamiokash", post(handler), auth));
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
    /// See the [module documentation](super).
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
            let (verified, pending) = match auth.admit(&parts, &bytes, started).await {
                Ok(admitted) => admitted,
                Err(answer) => return Ok(answer.response(retry_after)),
            };
            parts.extensions.insert(verified);
            if let Some(attachment) = pending.as_ref().and_then(|p| p.attachment()) {
                parts.extensions.insert(attachment);
            }
            let request = Request::from_parts(parts, Full::new(bytes));
            match pending {
                Some(pending) => pending.run(move || inner.call(request)).await,
                None => inner.call(request).await,
            }
        })
    }
}
