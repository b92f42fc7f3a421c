//! Verifying per route in axum (feature `axum`).
//!
//! [`VerifiedJson<T>`] verifies the request with the [`WebhookAuth`] in your router state
//! (body limit, signature, freshness, replay guard) and only then deserialises the exact
//! bytes verified into `T`. [`VerifiedBody`] gives the verified bytes. Refusals are `401`
//! with a generic body (the reason goes to `tracing`), `413` for an oversized body, and `400`
//! for a verified body that is not the expected JSON.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use countersign::extract::VerifiedJson;
//! use countersign::kamiokash::WebhookEvent;
//! use countersign::layer::WebhookAuth;
//! use countersign::{InMemoryReplayGuard, SecretKey, Verifier};
//! use std::sync::Arc;
//!
//! async fn kamiokash(VerifiedJson(event, delivery): VerifiedJson<WebhookEvent>) -> &'static str {
//!     let _ = (event.event_type(), delivery.key_id);
//!     "ok"
//! }
//!
//! # fn build() -> Result<Router, countersign::Error> {
//! let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
//!     .with_replay_guard(Arc::new(InMemoryReplayGuard::new(100_000)));
//! let app: Router = Router::new().route("/webhooks/kamiokash", post(kamiokash)).with_state(auth);
//! # Ok(app)
//! # }
//! ```

use axum::extract::{FromRef, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::layer::{Refusal, VerifiedDelivery, WebhookAuth};

/// The verified body deserialised as JSON into `T`, and what was verified.
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Debug)]
pub struct VerifiedJson<T>(pub T, pub VerifiedDelivery);

/// The verified body bytes, and what was verified.
///
/// # Examples
///
/// ```
/// use countersign::extract::VerifiedBody;
///
/// async fn handler(VerifiedBody(bytes, delivery): VerifiedBody) -> String {
///     format!("{} bytes, key {}", bytes.len(), delivery.key_id)
/// }
/// ```
#[derive(Debug)]
pub struct VerifiedBody(pub Bytes, pub VerifiedDelivery);

async fn verified<S>(request: Request, state: &S) -> Result<(Bytes, VerifiedDelivery), Response>
where
    S: Send + Sync,
    WebhookAuth: FromRef<S>,
{
    let auth = WebhookAuth::from_ref(state);
    let (parts, body) = request.into_parts();
    let bytes = auth
        .read_body(&parts.headers, body)
        .await
        .map_err(Refusal::into_response)?;
    let delivery = auth
        .check(&parts, &bytes)
        .await
        .map_err(Refusal::into_response)?;
    Ok((bytes, delivery))
}

impl Refusal {
    fn into_response(self) -> Response {
        (self.status(), self.body()).into_response()
    }
}

impl<S> FromRequest<S> for VerifiedBody
where
    S: Send + Sync,
    WebhookAuth: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (bytes, delivery) = verified(request, state).await?;
        Ok(VerifiedBody(bytes, delivery))
    }
}

impl<S, T> FromRequest<S> for VerifiedJson<T>
where
    S: Send + Sync,
    WebhookAuth: FromRef<S>,
    T: serde::de::DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (bytes, delivery) = verified(request, state).await?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(VerifiedJson(value, delivery)),
            Err(e) => {
                tracing::warn!(target: "countersign", error = %e, "verified webhook body is not the expected JSON");
                Err(Refusal::BadBody.into_response())
            }
        }
    }
}
