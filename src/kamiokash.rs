//! KamioKash: request signing and webhook signatures.
//!
//! Requests: `body || ":" || timestamp`, timestamp as JavaScript's `toISOString()` writes it;
//! headers `X-API-Key`, `X-Timestamp`, `X-Signature`. **The scheme covers neither the method
//! nor the URL**: a captured signed body can be replayed to another endpoint within the
//! freshness window by anyone who can see it, so rely on TLS and keep the window short.
//!
//! Webhooks: `timestamp || body`, no delimiter; headers `X-Timestamp`, `X-Kamio-Signature`.
//! Event types: `member.new`, `wallet.new`, `transaction.successful`, `order.successful`,
//! `voucher_code.used`.

use core::fmt;

use crate::error::{Error, ErrorKind, err};
use crate::key::SecretKey;
use crate::message::{FieldName, StringToSign};
use crate::scheme::{Scheme, is_header_value};
use crate::signer::{BodySigner, SignableRequest, SignedRequest, Signer};
use crate::time::Timestamp;

/// The webhook event types KamioKash documents.
pub const WEBHOOK_EVENT_TYPES: [&str; 5] = [
    "member.new",
    "wallet.new",
    "transaction.successful",
    "order.successful",
    "voucher_code.used",
];

/// Signs requests to KamioKash.
///
/// # Examples
///
/// ```
/// use countersign::{KamioKashSigner, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = KamioKashSigner::new("kk_test_pk_8c1f0b2e", SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d")?)?;
/// let at = Timestamp::from_unix_millis(1_769_505_786_658)?; // 2026-01-27T09:23:06.658Z
/// let signed = signer.sign(&SignableRequest::body(br#"{"wallet_id":"w_123"}"#), at)?;
/// assert_eq!(signed.signature_hex(), "6307031171ff7ce2a46a2535b8b062115c57a045714434b0ec3d047cb5e2f325");
/// # Ok::<(), countersign::Error>(())
/// ```
pub struct KamioKashSigner {
    api_key: String,
    key: SecretKey,
}

impl KamioKashSigner {
    /// A signer sending `api_key` in `X-API-Key`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] if the API key cannot be sent as a header value.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KamioKashSigner, SecretKey};
    ///
    /// assert!(KamioKashSigner::new(" kk_test_pk", SecretKey::new("s")?).is_err());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(api_key: &str, key: SecretKey) -> Result<Self, Error> {
        if !is_header_value(api_key) {
            return err(ErrorKind::InvalidHeaderValue(
                crate::scheme::headers::KAMIOKASH_API_KEY,
            ));
        }
        Ok(KamioKashSigner {
            api_key: api_key.to_owned(),
            key,
        })
    }

    /// The API key sent in `X-API-Key`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{KamioKashSigner, SecretKey};
    /// let signer = KamioKashSigner::new("kk_test_pk_8c1f0b2e", SecretKey::new("s")?)?;
    /// assert_eq!(signer.api_key(), "kk_test_pk_8c1f0b2e");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Starts signing a body fed in chunks; `":" || timestamp` is appended by
    /// [`BodySigner::finish`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KamioKashSigner, SecretKey, SignableRequest, Signer, Timestamp};
    ///
    /// let signer = KamioKashSigner::new("pk", SecretKey::new("sk")?)?;
    /// let at = Timestamp::from_unix_secs(1_700_000_000)?;
    /// let mut stream = signer.begin(at);
    /// stream.update(b"{\"a\":");
    /// stream.update(b"1}");
    /// let whole = signer.sign(&SignableRequest::body(b"{\"a\":1}"), at)?;
    /// assert_eq!(stream.finish().signature(), whole.signature());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn begin(&self, at: Timestamp) -> BodySigner<'_> {
        BodySigner::new(
            self.key.pads().start(),
            Scheme::KamioKash,
            Some(&self.api_key),
            at.to_iso_text(),
            true,
        )
    }
}

impl Signer for KamioKashSigner {
    fn scheme(&self) -> Scheme {
        Scheme::KamioKash
    }

    fn sign(
        &self,
        request: &SignableRequest<'_>,
        at: Timestamp,
    ) -> Result<SignedRequest<'_>, Error> {
        let timestamp = at.to_iso_text();
        let signature = StringToSign::from_fields(&[
            (FieldName::Body, request.body_bytes()),
            (FieldName::Delimiter, b":"),
            (FieldName::Timestamp, timestamp.as_bytes()),
        ])
        .sign(&self.key);
        Ok(SignedRequest::new(
            Scheme::KamioKash,
            Some(&self.api_key),
            timestamp,
            signature,
        ))
    }
}

impl fmt::Debug for KamioKashSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KamioKashSigner")
            .field("api_key", &self.api_key)
            .field("key", &self.key)
            .finish()
    }
}

/// Signs webhook deliveries KamioKash-style: for testing a receiver, and for mocks.
///
/// # Examples
///
/// ```
/// use countersign::{KamioKashWebhookSigner, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?);
/// let body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
/// let at = Timestamp::from_unix_millis(1_769_505_787_001)?;
/// let signed = signer.sign(&SignableRequest::body(body), at)?;
/// assert_eq!(signed.signature_hex(), "f9a037d0ae66988e198d1bc661bef45514c008ab6cad1d439d2f664515a65942");
/// # Ok::<(), countersign::Error>(())
/// ```
pub struct KamioKashWebhookSigner {
    key: SecretKey,
}

impl KamioKashWebhookSigner {
    /// A webhook signer.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KamioKashWebhookSigner, SecretKey};
    ///
    /// let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec")?);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn new(key: SecretKey) -> Self {
        KamioKashWebhookSigner { key }
    }

    /// Starts signing a body fed in chunks (the timestamp comes first, so it streams).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KamioKashWebhookSigner, SecretKey, Timestamp};
    ///
    /// let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec")?);
    /// let mut stream = signer.begin(Timestamp::UNIX_EPOCH);
    /// stream.update(b"{}");
    /// assert_eq!(stream.finish().timestamp(), "1970-01-01T00:00:00.000Z");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn begin(&self, at: Timestamp) -> BodySigner<'_> {
        let timestamp = at.to_iso_text();
        let mut mac = self.key.pads().start();
        mac.update(timestamp.as_bytes());
        BodySigner::new(mac, Scheme::KamioKashWebhook, None, timestamp, false)
    }
}

impl Signer for KamioKashWebhookSigner {
    fn scheme(&self) -> Scheme {
        Scheme::KamioKashWebhook
    }

    fn sign(
        &self,
        request: &SignableRequest<'_>,
        at: Timestamp,
    ) -> Result<SignedRequest<'_>, Error> {
        let timestamp = at.to_iso_text();
        let signature = StringToSign::from_fields(&[
            (FieldName::Timestamp, timestamp.as_bytes()),
            (FieldName::Body, request.body_bytes()),
        ])
        .sign(&self.key);
        Ok(SignedRequest::new(
            Scheme::KamioKashWebhook,
            None,
            timestamp,
            signature,
        ))
    }
}

impl fmt::Debug for KamioKashWebhookSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KamioKashWebhookSigner")
            .field("key", &self.key)
            .finish()
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
