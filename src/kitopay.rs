//! Kitopay: the full scheme (requests and webhooks) and the simplified scheme.
//!
//! Full: `merchant_id || timestamp || method || url || body`, no delimiters, timestamp in
//! UNIX seconds; headers `x-merchant-id`, `x-timestamp`, `x-signature`. Kitopay signs its
//! webhooks to the merchant with the same scheme over the merchant's webhook URL.
//! Simplified: `merchant_id || timestamp || method || transaction_id`, header
//! `x-simplified-signature`.
//!
//! The three share the merchant's one secret, so their messages must never coincide: a
//! transaction id is 1 to 128 unreserved characters (`A–Z a–z 0–9 - . _ ~`, as Kitopay's
//! UUID-like ids are), never a URL (which always has a `:`), enforced by signers and
//! verifiers alike (see [Cross-scheme forgeries](crate::scheme#cross-scheme-forgeries)).

use crate::error::Error;
use crate::key::{SecretKey, SharedKeys};
use crate::scheme::{Domain, EventId, Part, Scheme, SecretSpec, SignatureFormat, Value};
use crate::signer::{SignableRequest, Signer};
use crate::time::TimeFormat;
use crate::url::CanonicalUrl;
use crate::verify::{ReceivedRequest, Verifier};

const MERCHANT_ID: &str = "x-merchant-id";
const TIMESTAMP: &str = "x-timestamp";
const SECRET: SecretSpec = SecretSpec::utf8("KITOPAY_SECRET");

/// Kitopay's transaction id, in the simplified scheme's message: unreserved characters only.
pub const TRANSACTION_ID: Value = Value::param("transaction_id", Domain::UNRESERVED);

/// The full scheme, for requests to Kitopay:
/// `merchant_id || timestamp || method || url || body`.
///
/// # Examples
///
/// ```
/// use countersign::{kitopay, CanonicalUrl, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = Signer::new(&kitopay::FULL, SecretKey::new("dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9")?)?
///     .with_identity("dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148")?;
/// let url = CanonicalUrl::parse("https://api.dev.kitopay.com/api/v1/merchants/payins/")?;
/// let body = br#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"},"customer":{"id":"1","first_name":"John","last_name":"Doe"}}"#;
/// let signed = signer.sign(&SignableRequest::new("POST", &url, body)?, Timestamp::from_unix_secs(1_601_234_567)?)?;
/// assert_eq!(signed.signature_hex(), "656b4d8be9283517dd5e521f157ab52fbe187cd6cbda197a3af1e58958d41f5c");
/// # Ok::<(), countersign::Error>(())
/// ```
pub static FULL: Scheme = Scheme::new(
    "kitopay",
    "Kitopay full request signature (merchant id, timestamp, method, URL, body)",
    &[
        Part::Identity,
        Part::Timestamp,
        Part::Method,
        Part::Url,
        Part::Body,
    ],
    SignatureFormat::hex("x-signature"),
)
.with_identity(MERCHANT_ID, "merchant_id")
.with_timestamp(TIMESTAMP, TimeFormat::UnixSecs)
.with_secret(SECRET);

/// The simplified scheme (transaction status look-ups and the like):
/// `merchant_id || timestamp || method || transaction_id`.
///
/// # Examples
///
/// ```
/// use countersign::{kitopay, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = Signer::new(&kitopay::SIMPLIFIED, SecretKey::new("dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9")?)?
///     .with_identity("dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148")?;
/// let request = SignableRequest::simplified("GET", "6956d4fc-d7b7-4514-9759-c699fc029b25")?;
/// let signed = signer.sign(&request, Timestamp::from_unix_secs(1_601_234_567)?)?;
/// assert_eq!(signed.signature_hex(), "edc52401a849b0b6efb377a51c85e7be883d28f186646c209aceba2c19e84085");
/// # Ok::<(), countersign::Error>(())
/// ```
pub static SIMPLIFIED: Scheme = Scheme::new(
    "kitopay-simplified",
    "Kitopay simplified signature (merchant id, timestamp, method, transaction id)",
    &[
        Part::Identity,
        Part::Timestamp,
        Part::Method,
        Part::Value(TRANSACTION_ID),
    ],
    SignatureFormat::hex("x-simplified-signature"),
)
.with_identity(MERCHANT_ID, "merchant_id")
.with_timestamp(TIMESTAMP, TimeFormat::UnixSecs)
.with_secret(SECRET);

/// Kitopay's webhooks to a merchant: the full scheme over the URL the webhook was
/// registered with.
///
/// # Examples
///
/// ```
/// use countersign::kitopay;
///
/// assert!(kitopay::WEBHOOK.is_webhook());
/// assert_eq!(kitopay::WEBHOOK.signature_header(), kitopay::FULL.signature_header());
/// ```
pub static WEBHOOK: Scheme = Scheme::new(
    "kitopay-webhook",
    "Kitopay webhook (the full scheme over the merchant's webhook URL)",
    &[
        Part::Identity,
        Part::Timestamp,
        Part::Method,
        Part::Url,
        Part::Body,
    ],
    SignatureFormat::hex("x-signature"),
)
.with_identity(MERCHANT_ID, "merchant_id")
.with_timestamp(TIMESTAMP, TimeFormat::UnixSecs)
.with_secret(SECRET)
.with_event_id(EventId::JsonFields(&["id", "status"]))
.webhook();

impl Signer {
    /// Signs requests to Kitopay with the full scheme ([`FULL`]) as `merchant_id`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`](crate::ErrorKind::InvalidHeaderValue) if the
    /// merchant id cannot be sent as a header value.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, Signer};
    ///
    /// assert!(Signer::kitopay("merchant-1", SecretKey::new("s")?).is_ok());
    /// assert!(Signer::kitopay("merchant\n1", SecretKey::new("s")?).is_err());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn kitopay(merchant_id: &str, key: SecretKey) -> Result<Self, Error> {
        Signer::new(&FULL, key)?.with_identity(merchant_id)
    }

    /// Signs webhook deliveries Kitopay-style ([`WEBHOOK`]), to test a merchant's receiver.
    ///
    /// # Errors
    ///
    /// As [`Signer::kitopay`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, SecretKey, Signer};
    ///
    /// let signer = Signer::kitopay_webhook("merchant-1", SecretKey::new("s")?)?;
    /// assert_eq!(signer.scheme(), &kitopay::WEBHOOK);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn kitopay_webhook(merchant_id: &str, key: SecretKey) -> Result<Self, Error> {
        Signer::new(&WEBHOOK, key)?.with_identity(merchant_id)
    }

    /// Signs with the simplified scheme ([`SIMPLIFIED`]).
    ///
    /// # Errors
    ///
    /// As [`Signer::kitopay`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, Signer};
    ///
    /// assert!(Signer::kitopay_simplified("merchant-1", SecretKey::new("s")?).is_ok());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn kitopay_simplified(merchant_id: &str, key: SecretKey) -> Result<Self, Error> {
        Signer::new(&SIMPLIFIED, key)?.with_identity(merchant_id)
    }
}

impl Verifier {
    /// Verifies Kitopay webhooks to a merchant ([`WEBHOOK`]): the full scheme over
    /// `public_url`, the URL the webhook was registered with (never rebuilt from the
    /// request: proxies change scheme, host and port). The method defaults to `POST`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`](crate::ErrorKind::InvalidHeaderValue) for a
    /// merchant id that cannot be a header value.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, FixedClock, ReceivedRequest, SecretKey, Timestamp, Verifier};
    ///
    /// let verifier = Verifier::kitopay_webhook(
    ///     "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148",
    ///     // Kitopay's sample secret; its `У` is Cyrillic (UTF-8 keys: a Latin `Y` signs differently).
    ///     SecretKey::new("dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9")?,
    ///     CanonicalUrl::parse("https://merchant.example.com/webhooks/kitopay?source=kitopay")?,
    /// )?
    /// .with_clock(FixedClock::new(Timestamp::from_unix_secs(1_601_234_570)?));
    /// let headers = [
    ///     ("x-merchant-id", "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148"),
    ///     ("x-timestamp", "1601234567"),
    ///     ("x-signature", "53f1bf6d7f1621879bc20ff197390f663611ee3e78fbf701e5fc2fc088c964fd"),
    /// ];
    /// let body = br#"{"id":"6956d4fc-d7b7-4514-9759-c699fc029b25","reference_id":"id-in-merchant-system-485","status":"new"}"#;
    /// assert!(verifier.verify(&ReceivedRequest::new(&headers, body)).is_ok());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn kitopay_webhook(
        merchant_id: &str,
        keys: impl Into<SharedKeys>,
        public_url: CanonicalUrl,
    ) -> Result<Self, Error> {
        Ok(Verifier::unchecked(&WEBHOOK, keys.into())
            .with_identity(merchant_id)?
            .with_url(public_url))
    }

    /// Verifies Kitopay full-scheme requests ([`FULL`]: what Kitopay, or a mock of it,
    /// checks). The request must carry its method and canonical URL.
    ///
    /// # Errors
    ///
    /// As [`Verifier::kitopay_webhook`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let verifier = Verifier::kitopay_request("merchant-1", SecretKey::new("s3cret")?)?;
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn kitopay_request(merchant_id: &str, keys: impl Into<SharedKeys>) -> Result<Self, Error> {
        Verifier::unchecked(&FULL, keys.into()).with_identity(merchant_id)
    }

    /// Verifies Kitopay simplified-scheme requests ([`SIMPLIFIED`]). The request must carry
    /// its method and transaction id ([`ReceivedRequest::with_transaction_id`]).
    ///
    /// # Errors
    ///
    /// As [`Verifier::kitopay_webhook`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let verifier = Verifier::kitopay_simplified("merchant-1", SecretKey::new("s3cret")?)?;
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn kitopay_simplified(
        merchant_id: &str,
        keys: impl Into<SharedKeys>,
    ) -> Result<Self, Error> {
        Verifier::unchecked(&SIMPLIFIED, keys.into()).with_identity(merchant_id)
    }
}

impl<'a> SignableRequest<'a> {
    /// Method and transaction id: what the Kitopay simplified scheme signs.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidMethod`](crate::ErrorKind::InvalidMethod) unless the method is
    /// one of the standard upper-case methods. (The transaction id's domain is checked when
    /// signing.)
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// let request = SignableRequest::simplified("GET", "6956d4fc-d7b7-4514-9759-c699fc029b25")?;
    /// assert!(request.transaction_id().is_some());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn simplified(method: &'a str, transaction_id: &'a str) -> Result<Self, Error> {
        Ok(SignableRequest::body(&[])
            .with_method(method)?
            .with_transaction_id(transaction_id))
    }

    /// Adds the Kitopay transaction id (the simplified scheme's `transaction_id` value).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, SignableRequest};
    ///
    /// let url = CanonicalUrl::parse("https://api.example.com/payins/tx-1")?;
    /// let request = SignableRequest::new("GET", &url, b"")?.with_transaction_id("tx-1");
    /// assert_eq!(request.transaction_id(), Some("tx-1"));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_transaction_id(self, transaction_id: &'a str) -> Self {
        self.with_value(TRANSACTION_ID.name(), transaction_id)
    }

    /// The Kitopay transaction id, if given.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// assert_eq!(SignableRequest::body(b"").transaction_id(), None);
    /// ```
    #[must_use]
    pub fn transaction_id(&self) -> Option<&'a str> {
        self.value(TRANSACTION_ID.name())
    }
}

impl<'a> ReceivedRequest<'a> {
    /// The transaction id the request refers to (Kitopay simplified scheme).
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::ReceivedRequest;
    /// let headers = [("a", "b")];
    /// let request = ReceivedRequest::new(&headers, b"").with_transaction_id("tx-1");
    /// assert_eq!(request.value("transaction_id"), Some("tx-1"));
    /// ```
    #[must_use]
    pub fn with_transaction_id(self, transaction_id: &'a str) -> Self {
        self.with_value(TRANSACTION_ID.name(), transaction_id)
    }
}

/// A Kitopay webhook: a transaction's status changed (feature `serde`).
///
/// `{ "id", "reference_id", "status" }`; any other field is kept in `extra`, so a field added
/// by Kitopay never breaks a receiver. `status` is kept as text for the same reason. Parse
/// only after verification: [`WebhookEvent::from_verified`] asks for the proof.
///
/// # Examples
///
/// ```
/// use countersign::kitopay::WebhookEvent;
///
/// let body = r#"{"id":"6956d4fc-d7b7-4514-9759-c699fc029b25","reference_id":"id-in-merchant-system-485","status":"new","fee":0.3}"#;
/// let event: WebhookEvent = serde_json::from_str(body)?;
/// assert_eq!(event.status, "new");
/// assert_eq!(event.extra["fee"], 0.3);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// Kitopay's transaction id.
    pub id: String,
    /// The merchant's own reference for the transaction.
    pub reference_id: String,
    /// The new status (e.g. `new`).
    pub status: String,
    /// Every other field, as received.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[cfg(feature = "serde")]
impl WebhookEvent {
    /// Parses the body of a delivery that `verified` vouches for.
    ///
    /// # Errors
    ///
    /// The JSON error if the body lacks `id`, `reference_id` or `status`.
    ///
    /// # Examples
    ///
    /// See [`crate::kamiokash::WebhookEvent::from_verified`].
    pub fn from_verified(_proof: &crate::Verified, body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}
