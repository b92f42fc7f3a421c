#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod headers;
mod key;
mod mac;
mod message;
mod signature;
mod signer;
mod time;
mod url;
mod verify;

pub mod claim;
pub mod kamiokash;
pub mod kitopay;
pub mod scheme;
#[cfg(feature = "standard-webhooks")]
#[cfg_attr(docsrs, doc(cfg(feature = "standard-webhooks")))]
pub mod standard_webhooks;

pub mod deps;
#[cfg(feature = "diagnose")]
#[cfg_attr(docsrs, doc(cfg(feature = "diagnose")))]
pub mod diagnose;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod layer;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod middleware;

pub use crate::claim::{ClaimState, ReplayGuard};
pub use crate::error::{Error, ErrorKind, UrlRule};
pub use crate::headers::{DuplicateHeader, HeaderLookup};
pub use crate::key::{KeyRing, SecretKey, SharedKeys};
pub use crate::message::StringToSign;
pub use crate::scheme::{
    Domain, Encoding, EventId, KeyForm, MAX_PARTS, MAX_SIGNATURES, MAX_VALUES, Part,
    STANDARD_METHODS, Scheme, SecretSpec, SignatureFormat, Value, built_in,
};
pub use crate::signature::{Base64Signature, HexSignature, Signature};
pub use crate::signer::{BodySigner, SignableRequest, SignedRequest, Signer};
pub use crate::time::{
    Clock, FixedClock, Freshness, SystemClock, TimeFormat, Timestamp, TimestampText,
};
pub use crate::url::{CanonicalUrl, TrailingSlash};
pub use crate::verify::{ReceivedRequest, Verified, Verifier};
