//! Typed access to verified deliveries in axum handlers (feature `axum`).
//!
//! Verification, replay claims and their release live in one place, [`VerifyLayer`], which
//! sees the handler's answer: attach it to the route with [`webhook_router`] (one
//! [`WebhookAuth`] per provider, so one router serves several providers; a wrong method is
//! `405`, both trailing-slash forms reach the verifier). The extractors then give the
//! handler what the layer verified:
//!
//! - [`VerifiedJson<T>`]: the exact bytes verified, deserialised as JSON into `T`; a body
//!   that verifies but is not the expected JSON is answered `400`, and since that is not a
//!   success the layer releases the claim (the event is not burnt);
//! - [`VerifiedBody`]: the verified bytes.
//!
//! Both carry the [`Verified`] delivery (scheme, key, timestamp, claim, event id). On a route without the layer they answer `500` and
//! log the configuration mistake: they never deserialise an unverified body.
//!
//! ```
//! use axum::{routing::post, Router};
//! use countersign::extract::VerifiedJson;
//! use countersign::claim::ReplayGuard;
//! use countersign::layer::{WebhookAuth, webhook_router};
//! use countersign::{kamiokash, kitopay, CanonicalUrl, SecretKey, Verifier};
//!
//! async fn on_kamiokash(VerifiedJson(event, _): VerifiedJson<kamiokash::WebhookEvent>) -> String {
//!     event.event_type().to_owned()
//! }
//! async fn on_kitopay(VerifiedJson(event, delivery): VerifiedJson<kitopay::WebhookEvent>) -> String {
//!     format!("{} is {} (key {})", event.reference_id, event.status, delivery.key_id())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // One guard for both routes: claims are kept apart by route.
//! let guard = ReplayGuard::in_memory(100_000);
//! let kamiokash = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
//!     .with_replay_guard(guard.clone());
//! let kitopay = WebhookAuth::new(Verifier::kitopay_webhook(
//!     "merchant-1",
//!     SecretKey::new("s3cret")?,
//!     CanonicalUrl::parse("https://shop.example.com/webhooks/kitopay")?,
//! )?)
//! .with_replay_guard(guard);
//! let app: Router = Router::new()
//!     .merge(webhook_router("/webhooks/kamiokash", post(on_kamiokash), kamiokash))
//!     .merge(webhook_router("/webhooks/kitopay", post(on_kitopay), kitopay));
//!
//! // One of each provider's deliveries through the one router.
//! use countersign::{Signer, SignableRequest, SystemClock, Timestamp};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! let now = Timestamp::now(&SystemClock);
//! let kamio_body = br#"{"type":"transaction.successful","data":{"walletId":"w_1","amount":500}}"#;
//! let kamio_signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
//! let kamio = kamio_signer.sign(&SignableRequest::body(kamio_body), now)?;
//! let kito_body = br#"{"id":"6956d4fc","reference_id":"order-485","status":"success"}"#;
//! let kito_url = CanonicalUrl::parse("https://shop.example.com/webhooks/kitopay")?;
//! let kito_signer = Signer::kitopay_webhook("merchant-1", SecretKey::new("s3cret")?)?;
//! let kito = kito_signer.sign(&SignableRequest::new("POST", &kito_url, kito_body)?, now)?;
//! for (path, signed, body, expected) in [
//!     ("/webhooks/kamiokash", kamio, &kamio_body[..], "transaction.successful"),
//!     ("/webhooks/kitopay", kito, &kito_body[..], "order-485 is success (key primary)"),
//! ] {
//!     let mut request = http::Request::post(path);
//!     for (name, value) in signed.headers() {
//!         request = request.header(name, value);
//!     }
//!     let response = app.clone().oneshot(request.body(axum::body::Body::from(body.to_vec()))?).await?;
//!     assert_eq!(response.into_body().collect().await?.to_bytes(), expected);
//! }
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! [`VerifyLayer`]: crate::layer::VerifyLayer
//! [`WebhookAuth`]: crate::layer::WebhookAuth
//! [`webhook_router`]: crate::layer::webhook_router

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::layer::Answer;
use crate::verify::Verified;

/// The verified body deserialised as JSON into `T`, and what was verified. Needs
/// [`VerifyLayer`](crate::layer::VerifyLayer) on the route.
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Debug)]
pub struct VerifiedJson<T>(pub T, pub Verified);

/// The verified body bytes, and what was verified. Needs
/// [`VerifyLayer`](crate::layer::VerifyLayer) on the route.
///
/// # Examples
///
/// ```
/// use countersign::extract::VerifiedBody;
///
/// async fn handler(VerifiedBody(bytes, delivery): VerifiedBody) -> String {
///     format!("{} bytes, key {}", bytes.len(), delivery.key_id())
/// }
/// ```
#[derive(Debug)]
pub struct VerifiedBody(pub Bytes, pub Verified);

fn answer(answer: Answer) -> Response {
    (answer.status(), answer.body()).into_response()
}

async fn verified(request: Request) -> Result<(Bytes, Verified), Response> {
    let (mut parts, body) = request.into_parts();
    let Some(delivery) = parts.extensions.remove::<Verified>() else {
        tracing::error!(target: "countersign", "VerifiedJson/VerifiedBody used on a route without VerifyLayer: mount it with countersign::layer::webhook_router(path, route, auth)");
        return Err((
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error\n",
        )
            .into_response());
    };
    // The layer hands on the verified bytes in memory, in one frame.
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => Ok((bytes, delivery)),
        Err(_) => Err(answer(Answer::BadBody)),
    }
}

impl<S: Send + Sync> FromRequest<S> for VerifiedBody {
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (bytes, delivery) = verified(request).await?;
        Ok(VerifiedBody(bytes, delivery))
    }
}

impl<S, T> FromRequest<S> for VerifiedJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (bytes, delivery) = verified(request).await?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(VerifiedJson(value, delivery)),
            Err(e) => {
                tracing::warn!(target: "countersign", scheme = %delivery.scheme(), outcome = "bad_body", error = %e, "verified webhook body is not the expected JSON; answering 400 (its claim is released)");
                Err(answer(Answer::BadBody))
            }
        }
    }
}
