//! KamioKash: request signing and webhook signatures.
//!
//! Requests: `body || ":" || timestamp`, timestamp as JavaScript's `toISOString()` writes it;
//! headers `X-API-Key`, `X-Timestamp`, `X-Signature`. **The scheme covers neither the method
//! nor the URL**: a captured signed body can be replayed to another endpoint within the
//! freshness window by anyone who can see it, so rely on TLS and keep the window short.
//! The API key is sent, not signed.
//!
//! Webhooks: `timestamp || body`, no delimiter; headers `X-Timestamp`, `X-Kamio-Signature`.
//! Event types: `member.new`, `wallet.new`, `transaction.successful`, `order.successful`,
//! `voucher_code.used`.
//!
//! The two use different secrets (the API secret key and the webhook secret).

use crate::error::Error;
use crate::key::{SecretKey, SharedKeys};
use crate::scheme::{Part, Scheme, SecretSpec, SignatureFormat};
use crate::signer::Signer;
use crate::time::TimeFormat;
use crate::verify::Verifier;

const TIMESTAMP: &str = "X-Timestamp";

/// The webhook event types KamioKash documents.
pub const WEBHOOK_EVENT_TYPES: [&str; 5] = [
    "member.new",
    "wallet.new",
    "transaction.successful",
    "order.successful",
    "voucher_code.used",
];

/// Requests to KamioKash: `body || ":" || timestamp`; `X-API-Key` is sent, not signed.
///
/// # Examples
///
/// ```
/// use countersign::{kamiokash, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = Signer::new(&kamiokash::REQUEST, SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d")?)?
///     .with_identity("kk_test_pk_8c1f0b2e")?;
/// let at = Timestamp::from_unix_millis(1_769_505_786_658)?; // 2026-01-27T09:23:06.658Z
/// let signed = signer.sign(&SignableRequest::body(br#"{"wallet_id":"w_123"}"#), at)?;
/// assert_eq!(signed.signature_hex(), "6307031171ff7ce2a46a2535b8b062115c57a045714434b0ec3d047cb5e2f325");
/// # Ok::<(), countersign::Error>(())
/// ```
pub static REQUEST: Scheme = Scheme::new(
    "kamiokash",
    "KamioKash request signature (body, ':', timestamp; covers neither method nor URL)",
    &[Part::Body, Part::Literal(":"), Part::Timestamp],
    SignatureFormat::hex("X-Signature"),
)
.with_identity("X-API-Key", "api_key")
.with_timestamp(TIMESTAMP, TimeFormat::Rfc3339)
.with_secret(SecretSpec::utf8("KAMIOKASH_SECRET"));

/// KamioKash webhooks: `timestamp || body`.
///
/// # Examples
///
/// ```
/// use countersign::{kamiokash, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = Signer::new(&kamiokash::WEBHOOK, SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?)?;
/// let body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
/// let at = Timestamp::from_unix_millis(1_769_505_787_001)?;
/// let signed = signer.sign(&SignableRequest::body(body), at)?;
/// assert_eq!(signed.signature_hex(), "f9a037d0ae66988e198d1bc661bef45514c008ab6cad1d439d2f664515a65942");
/// # Ok::<(), countersign::Error>(())
/// ```
pub static WEBHOOK: Scheme = Scheme::new(
    "kamiokash-webhook",
    "KamioKash webhook (timestamp, body)",
    &[Part::Timestamp, Part::Body],
    SignatureFormat::hex("X-Kamio-Signature"),
)
.with_timestamp(TIMESTAMP, TimeFormat::Rfc3339)
.with_secret(SecretSpec::utf8("KAMIOKASH_WEBHOOK_SECRET"))
.webhook();

impl Signer {
    /// Signs requests to KamioKash ([`REQUEST`]), sending `api_key` in `X-API-Key`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`](crate::ErrorKind::InvalidHeaderValue) if the API
    /// key cannot be sent as a header value.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, Signer};
    ///
    /// assert!(Signer::kamiokash(" kk_test_pk", SecretKey::new("s")?).is_err());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn kamiokash(api_key: &str, key: SecretKey) -> Result<Self, Error> {
        Signer::new(&REQUEST, key)?.with_identity(api_key)
    }

    /// Signs webhook deliveries KamioKash-style ([`WEBHOOK`]): for testing a receiver, and
    /// for mocks.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SecretKey, Signer};
    ///
    /// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
    /// assert_eq!(signer.scheme(), &kamiokash::WEBHOOK);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn kamiokash_webhook(key: SecretKey) -> Self {
        Signer::unchecked(&WEBHOOK, key)
    }
}

impl Verifier {
    /// Verifies KamioKash webhooks ([`WEBHOOK`]: `X-Timestamp`, `X-Kamio-Signature`).
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn kamiokash_webhook(keys: impl Into<SharedKeys>) -> Self {
        Verifier::unchecked(&WEBHOOK, keys.into())
    }

    /// Verifies KamioKash-signed requests ([`REQUEST`]: what KamioKash, or a mock of it,
    /// checks). Use [`Verifier::with_api_key`] to also require a particular `X-API-Key`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let verifier = Verifier::kamiokash_request(SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d")?)
    ///     .with_api_key("kk_test_pk_8c1f0b2e")?;
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn kamiokash_request(keys: impl Into<SharedKeys>) -> Self {
        Verifier::unchecked(&REQUEST, keys.into())
    }

    /// KamioKash requests: also require this `X-API-Key` (as [`Verifier::with_identity`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`](crate::ErrorKind::InvalidHeaderValue) if it cannot
    /// be a header value.
    ///
    /// # Examples
    ///
    /// See [`Verifier::kamiokash_request`].
    pub fn with_api_key(self, api_key: &str) -> Result<Self, Error> {
        self.with_identity(api_key)
    }
}

/// A KamioKash webhook event, `{"type": ..., "data": ...}` (feature `serde`).
///
/// The five documented types are variants; any other type is kept, with its data, in
/// [`WebhookEvent::Unknown`], so a new event type never breaks a receiver. Parse only after
/// verification, from the exact bytes verified: [`WebhookEvent::from_verified`] asks for the
/// proof.
///
/// # Examples
///
/// ```
/// use countersign::kamiokash::WebhookEvent;
///
/// let event: WebhookEvent = serde_json::from_str(r#"{"type":"wallet.new","data":{"id":"w_1"}}"#)?;
/// assert_eq!(event.event_type(), "wallet.new");
/// assert!(matches!(event, WebhookEvent::WalletNew(_)));
/// let future: WebhookEvent = serde_json::from_str(r#"{"type":"coupon.expired","data":{"id":"c_1"}}"#)?;
/// assert_eq!(future.event_type(), "coupon.expired");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// `member.new`
    MemberNew(serde_json::Value),
    /// `wallet.new`
    WalletNew(serde_json::Value),
    /// `transaction.successful`
    TransactionSuccessful(serde_json::Value),
    /// `order.successful`
    OrderSuccessful(serde_json::Value),
    /// `voucher_code.used`
    VoucherCodeUsed(serde_json::Value),
    /// A type this version does not know, kept as received.
    Unknown {
        /// The `type` field.
        event_type: String,
        /// The `data` field (`null` if absent).
        data: serde_json::Value,
    },
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[derive(serde::Deserialize, serde::Serialize)]
struct RawEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: serde_json::Value,
}

#[cfg(feature = "serde")]
impl WebhookEvent {
    /// Parses the body of a delivery that `verified` vouches for.
    ///
    /// # Errors
    ///
    /// The JSON error if the body is not a `{type, data}` object.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::kamiokash::WebhookEvent;
    /// use countersign::{FixedClock, ReceivedRequest, SecretKey, Timestamp, Verifier};
    ///
    /// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?)
    ///     .with_clock(FixedClock::new(Timestamp::parse_rfc3339("2026-01-27T09:23:30Z")?));
    /// let body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
    /// let headers = [
    ///     ("X-Timestamp", "2026-01-27T09:23:07.001Z"),
    ///     ("X-Kamio-Signature", "f9a037d0ae66988e198d1bc661bef45514c008ab6cad1d439d2f664515a65942"),
    /// ];
    /// let verified = verifier.verify(&ReceivedRequest::new(&headers, body))?;
    /// let event = WebhookEvent::from_verified(&verified, body).map_err(|_| countersign::ErrorKind::SignatureMismatch)?;
    /// assert_eq!(event.data()["amount"], 500);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn from_verified(_proof: &crate::Verified, body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The event's `type`.
    ///
    /// # Examples
    ///
    /// See [`WebhookEvent`].
    #[must_use]
    pub fn event_type(&self) -> &str {
        match self {
            WebhookEvent::MemberNew(_) => "member.new",
            WebhookEvent::WalletNew(_) => "wallet.new",
            WebhookEvent::TransactionSuccessful(_) => "transaction.successful",
            WebhookEvent::OrderSuccessful(_) => "order.successful",
            WebhookEvent::VoucherCodeUsed(_) => "voucher_code.used",
            WebhookEvent::Unknown { event_type, .. } => event_type,
        }
    }

    /// The event's `data`.
    ///
    /// # Examples
    ///
    /// See [`WebhookEvent::from_verified`].
    #[must_use]
    pub fn data(&self) -> &serde_json::Value {
        match self {
            WebhookEvent::MemberNew(d)
            | WebhookEvent::WalletNew(d)
            | WebhookEvent::TransactionSuccessful(d)
            | WebhookEvent::OrderSuccessful(d)
            | WebhookEvent::VoucherCodeUsed(d)
            | WebhookEvent::Unknown { data: d, .. } => d,
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for WebhookEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawEvent::deserialize(deserializer)?;
        Ok(match raw.event_type.as_str() {
            "member.new" => WebhookEvent::MemberNew(raw.data),
            "wallet.new" => WebhookEvent::WalletNew(raw.data),
            "transaction.successful" => WebhookEvent::TransactionSuccessful(raw.data),
            "order.successful" => WebhookEvent::OrderSuccessful(raw.data),
            "voucher_code.used" => WebhookEvent::VoucherCodeUsed(raw.data),
            _ => WebhookEvent::Unknown {
                event_type: raw.event_type,
                data: raw.data,
            },
        })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for WebhookEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawEvent {
            event_type: self.event_type().to_owned(),
            data: self.data().clone(),
        }
        .serialize(serializer)
    }
}
