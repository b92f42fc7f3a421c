//! The crates countersign's public API is written against, re-exported, so your code names
//! exactly the versions countersign was built with (no second copy of `http` or
//! `reqwest-middleware` in your dependency tree, no trait implemented for the wrong one).
//!
//! Each is here only with the feature that puts it in the API. `countersign::http` is
//! countersign's own module (signing and verifying `http::Request`s); the `http` crate
//! itself is `countersign::deps::http`. The compatible versions are listed in the README
//! ("Dependency versions").
//!
//! # Examples
//!
//! The error the signing middleware returns, and the countersign [`ErrorKind`] inside it
//! (feature `reqwest`; see also `countersign::middleware::signing_error`):
//!
//! ```
//! # #[cfg(feature = "reqwest")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use countersign::deps::{reqwest, reqwest_middleware};
//! use countersign::middleware::SigningMiddleware;
//! use countersign::{ErrorKind, SecretKey, Signer};
//!
//! let signer = Signer::kitopay_simplified("merchant-1", SecretKey::new("s3cret")?)?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(SigningMiddleware::new(signer))
//!     .build();
//! // The simplified scheme signs a transaction id; without one nothing is sent.
//! let error: reqwest_middleware::Error =
//!     client.get("https://api.example.com/v1/payins/tx-1").send().await.unwrap_err();
//! let kind = match &error {
//!     reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<countersign::Error>().map(|e| e.kind()),
//!     _ => None, // a transport error from reqwest
//! };
//! assert_eq!(kind, Some(&ErrorKind::MissingField("transaction_id")));
//! # Ok(())
//! # }
//! # #[cfg(feature = "reqwest")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! [`ErrorKind`]: crate::ErrorKind

/// `Timestamp` converts from and to `time::OffsetDateTime`.
pub use ::time;

/// `countersign::http` signs and verifies `http::Request`s; the layer reads `http` requests.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use ::http;

/// `VerifyLayer` implements `tower_layer::Layer`.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use ::tower_layer;

/// `VerifyService` implements `tower_service::Service`.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use ::tower_service;

/// The layer and `BodyLimit` read any `http_body::Body`.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use ::http_body;

/// The service behind the layer receives the verified body as `http_body_util::Full<Bytes>`.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use ::http_body_util;

/// Bodies are `bytes::Bytes`.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use ::bytes;

/// The extractors implement axum's `FromRequest`; `webhook_router` returns an `axum::Router`.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use ::axum;

/// `SigningMiddleware` signs `reqwest::Request`s.
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use ::reqwest;

/// `SigningMiddleware` implements `reqwest_middleware::Middleware`; its errors are
/// `reqwest_middleware::Error`s.
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use ::reqwest_middleware;

/// The typed webhook events implement `serde`'s traits and carry `serde_json` values.
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use ::serde;

/// The typed webhook events carry `serde_json::Value`s.
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use ::serde_json;

/// The PostgreSQL claim stores run on your `sqlx::PgPool`, and hand the handler a
/// `sqlx::Transaction`.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use ::sqlx;

/// The layer's counters and histogram go through this `metrics` facade: install a recorder
/// built for it.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use ::metrics;
