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
//! # Why was a delivery refused?
//!
//! A refusal's event says its `reason` ([`Error::code`](crate::Error::code)). A signature
//! mismatch is what a slash mistake, a re-serialised body and a forgery all look like, so
//! its event also names the likely mistake, `hypothesis`, found by a bounded search of the
//! cheap, common ones (the id [`countersign::diagnose::Hypothesis::id`] gives; the search
//! needs only the `tower` feature):
//!
//! | `hypothesis` | the sender signed |
//! |---|---|
//! | `trailing_slash_added` / `trailing_slash_removed` | the URL with / without a trailing slash ours lacks / has |
//! | `body_trailing_newline_added` / `body_trailing_newline_removed` | the body with / without a trailing newline |
//! | `body_minified` / `body_pretty_printed` | the JSON body minified / pretty-printed (2-space indent) |
//! | `none` | none of these: a wrong secret, a tampered body, or a mistake only `countersign diagnose` tries |
//! | `not_searched` | not searched: over the rate, a body over 16 KiB, or a large key ring |
//!
//! ```text
//! WARN countersign: webhook refused scheme=kitopay-webhook outcome="refused" reason="signature_mismatch" age_ms=489 hypothesis="trailing_slash_added" error=signature mismatch: ...
//! ```
//!
//! Each search MACs at most 16 variants of a body of at most 16 KiB, and a token bucket
//! shared by every clone of a [`WebhookAuth`] allows [`DEFAULT_DIAGNOSIS_RATE`] searches a
//! second ([`WebhookAuth::with_diagnosis_rate`]): a flood of forged requests costs no more
//! than that. Nothing is searched when the event is not recorded. Only the id is logged,
//! never the signature, the secret or the body.
//!
//! [`countersign::diagnose::Hypothesis::id`]: https://docs.rs/countersign/latest/countersign/diagnose/enum.Hypothesis.html#method.id
//!
//! For Kitopay webhooks the verifier is built with the public URL the webhook was registered
//! with; the `Host` header is only used if you opt in with [`WebhookAuth::with_url_from_host`].
//!
//! With axum, mount each webhook with [`webhook_router`] (feature `axum`): the layer goes on
//! the method route, so a wrong method is `405`, and the route answers at both
//! trailing-slash forms of its path, so a provider posting to the other one reaches the
//! verifier (and the log says so) instead of a silent `404`.
//!
//! ```
//! use countersign::claim::ReplayGuard;
//! use countersign::layer::{VerifyLayer, WebhookAuth};
//! use countersign::{SecretKey, Verifier};
//!
//! let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
//!     .with_replay_guard(ReplayGuard::in_memory(100_000));
//! // axum: Router::new().merge(webhook_router("/webhooks/kamiokash", post(handler), auth))
//! // any tower stack: ServiceBuilder::new().layer(layer).service(your_service)
//! let layer = VerifyLayer::new(auth);
//! # Ok::<(), countersign::Error>(())
//! ```
//!
//! The pieces the layer is made of are public for a handler that verifies on its own (as
//! `countersign serve` does): [`BodyLimit`] reads a body within a limit and a deadline,
//! [`received_url`] rebuilds the URL a request was received at.

mod admit;
mod answer;
mod auth;
mod body;
mod check;
mod delivery;
mod metrics;
mod mistake;
#[cfg(feature = "axum")]
mod route;
mod service;
mod url;

#[cfg(feature = "axum")]
pub(crate) use answer::Answer;
pub use answer::DEFAULT_RETRY_AFTER;
pub use auth::WebhookAuth;
pub use body::{BodyLimit, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT};
pub use mistake::DEFAULT_DIAGNOSIS_RATE;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use route::webhook_router;
pub use service::{VerifyLayer, VerifyService};
pub use url::{received_url, received_url_at};
