//! Verifying incoming requests in a tower stack (feature `tower`).
//!
//! [`VerifyLayer`] reads the body within a size limit and a deadline, verifies it with a
//! [`Verifier`](crate::Verifier) (freshness, constant-time MAC, key rotation), claims the delivery with a
//! [`ReplayGuard`](crate::claim::ReplayGuard) (under the path it was received at), and then
//! either passes the request on, body intact, with the [`Verified`](crate::Verified)
//! delivery in its extensions, or answers for it:
//!
//! | what happened | answer | handler called |
//! |---|---|---|
//! | verified, first delivery (or a retry of a released one) | the handler's | yes |
//! | duplicate of a delivery the handler answered 2xx | `200`, `duplicate delivery: already processed` | no |
//! | duplicate of a delivery still being processed | `409` with `Retry-After` | no |
//! | duplicate of an event (claimed by event id) in either state | as above | no |
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
//! use countersign::claim::ReplayGuard;
//! use countersign::layer::{VerifyLayer, WebhookAuth};
//! use countersign::{SecretKey, Verifier};
//!
//! let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
//!     .with_replay_guard(ReplayGuard::in_memory(100_000));
//! let layer = VerifyLayer::new(auth);
//! // axum: Router::new().route("/webhooks/kamiokash", post(handler).layer(layer))
//! # Ok::<(), countersign::Error>(())
//! ```

mod admit;
mod answer;
mod auth;
mod body;
mod check;
mod delivery;
mod metrics;
mod service;
mod url;

#[cfg(feature = "axum")]
pub(crate) use answer::Answer;
pub use answer::DEFAULT_RETRY_AFTER;
pub use auth::WebhookAuth;
pub use body::{BodyLimit, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT};
pub use service::{VerifyLayer, VerifyService};
pub use url::{received_url, received_url_at};
