//! Kitopay: the full scheme (requests and webhooks) and the simplified scheme.
//!
//! Full: `merchant_id || timestamp || method || url || body`, no delimiters, timestamp in
//! UNIX seconds; headers `x-merchant-id`, `x-timestamp`, `x-signature`. Kitopay signs its
//! webhooks to the merchant with the same scheme over the merchant's webhook URL.
//! Simplified: `merchant_id || timestamp || method || transaction_id`, header
//! `x-simplified-signature`.

use core::fmt;

use crate::error::{Error, ErrorKind, err};
use crate::key::SecretKey;
use crate::mac::Prefix;
use crate::message::{FieldName, StringToSign};
use crate::scheme::{Scheme, is_header_value, is_standard_method};
use crate::signer::{BodySigner, SignableRequest, SignedRequest, Signer};
use crate::time::Timestamp;
use crate::url::CanonicalUrl;

/// Signs with the Kitopay full scheme: requests to Kitopay, or (built with
/// [`KitopaySigner::for_webhooks`]) test webhook deliveries to a merchant.
///
/// # Examples
///
/// ```
/// use countersign::{CanonicalUrl, KitopaySigner, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = KitopaySigner::new(
///     "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148",
///     SecretKey::new("dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9")?,
/// )?;
/// let url = CanonicalUrl::parse("https://api.dev.kitopay.com/api/v1/merchants/payins/")?;
/// let body = br#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"},"customer":{"id":"1","first_name":"John","last_name":"Doe"}}"#;
/// let signed = signer.sign(&SignableRequest::new("POST", &url, body)?, Timestamp::from_unix_secs(1_601_234_567)?)?;
/// assert_eq!(signed.signature_hex(), "656b4d8be9283517dd5e521f157ab52fbe187cd6cbda197a3af1e58958d41f5c");
/// # Ok::<(), countersign::Error>(())
/// ```
pub struct KitopaySigner {
    merchant_id: String,
    key: SecretKey,
    /// The MAC state after the merchant id, which starts every message.
    prefix: Box<Prefix>,
    scheme: Scheme,
}

impl KitopaySigner {
    /// A signer for requests to Kitopay.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] if the merchant id cannot be sent as a header value.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KitopaySigner, SecretKey};
    ///
    /// assert!(KitopaySigner::new("merchant-1", SecretKey::new("s")?).is_ok());
    /// assert!(KitopaySigner::new("merchant\n1", SecretKey::new("s")?).is_err());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(merchant_id: &str, key: SecretKey) -> Result<Self, Error> {
        Self::with_scheme(merchant_id, key, Scheme::Kitopay)
    }

    /// A signer for webhook deliveries Kitopay-style (to test a merchant's receiver).
    ///
    /// # Errors
    ///
    /// As [`KitopaySigner::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KitopaySigner, Scheme, SecretKey, Signer};
    ///
    /// let signer = KitopaySigner::for_webhooks("merchant-1", SecretKey::new("s")?)?;
    /// assert_eq!(signer.scheme(), Scheme::KitopayWebhook);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn for_webhooks(merchant_id: &str, key: SecretKey) -> Result<Self, Error> {
        Self::with_scheme(merchant_id, key, Scheme::KitopayWebhook)
    }

    fn with_scheme(merchant_id: &str, key: SecretKey, scheme: Scheme) -> Result<Self, Error> {
        if !is_header_value(merchant_id) {
            return err(ErrorKind::InvalidHeaderValue(
                crate::scheme::headers::KITOPAY_MERCHANT_ID,
            ));
        }
        Ok(KitopaySigner {
            merchant_id: merchant_id.to_owned(),
            prefix: key.prefix(merchant_id.as_bytes()),
            key,
            scheme,
        })
    }

    /// The merchant id sent in `x-merchant-id`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{KitopaySigner, SecretKey};
    /// let signer = KitopaySigner::new("merchant-1", SecretKey::new("s")?)?;
    /// assert_eq!(signer.merchant_id(), "merchant-1");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn merchant_id(&self) -> &str {
        &self.merchant_id
    }

    /// Starts signing a request whose body is fed in chunks (the body is the message's last
    /// field, so it streams naturally).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidMethod`] unless the method is an RFC 9110 token.
    ///
    /// # Examples
    ///
    /// See [`BodySigner`].
    pub fn begin<'s>(
        &'s self,
        method: &str,
        url: &CanonicalUrl,
        at: Timestamp,
    ) -> Result<BodySigner<'s>, Error> {
        if !is_standard_method(method) {
            return err(ErrorKind::InvalidMethod);
        }
        let timestamp = at.to_unix_text();
        let mut mac = self.key.pads().resume(&self.prefix);
        mac.update(timestamp.as_bytes());
        mac.update(method.as_bytes());
        mac.update(url.as_str().as_bytes());
        Ok(BodySigner::new(
            mac,
            self.scheme,
            Some(&self.merchant_id),
            timestamp,
            false,
        ))
    }
}

impl Signer for KitopaySigner {
    fn scheme(&self) -> Scheme {
        self.scheme
    }

    fn sign(
        &self,
        request: &SignableRequest<'_>,
        at: Timestamp,
    ) -> Result<SignedRequest<'_>, Error> {
        let method = request.require_method()?;
        let url = request.require_url()?;
        let timestamp = at.to_unix_text();
        let signature = StringToSign::from_fields(&[
            (FieldName::MerchantId, self.merchant_id.as_bytes()),
            (FieldName::Timestamp, timestamp.as_bytes()),
            (FieldName::Method, method.as_bytes()),
            (FieldName::Url, url.as_str().as_bytes()),
            (FieldName::Body, request.body_bytes()),
        ])
        .finish(self.key.pads().resume(&self.prefix), 1);
        Ok(SignedRequest::new(
            self.scheme,
            Some(&self.merchant_id),
            timestamp,
            signature,
        ))
    }
}

impl fmt::Debug for KitopaySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KitopaySigner")
            .field("scheme", &self.scheme)
            .field("merchant_id", &self.merchant_id)
            .field("key", &self.key)
            .finish()
    }
}

/// Signs with the Kitopay simplified scheme (transaction status look-ups and the like).
///
/// # Examples
///
/// ```
/// use countersign::{KitopaySimplifiedSigner, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = KitopaySimplifiedSigner::new(
///     "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148",
///     SecretKey::new("dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9")?,
/// )?;
/// let request = SignableRequest::simplified("GET", "6956d4fc-d7b7-4514-9759-c699fc029b25")?;
/// let signed = signer.sign(&request, Timestamp::from_unix_secs(1_601_234_567)?)?;
/// assert_eq!(signed.signature_hex(), "edc52401a849b0b6efb377a51c85e7be883d28f186646c209aceba2c19e84085");
/// # Ok::<(), countersign::Error>(())
/// ```
pub struct KitopaySimplifiedSigner {
    merchant_id: String,
    key: SecretKey,
    /// The MAC state after the merchant id, which starts every message.
    prefix: Box<Prefix>,
}

impl KitopaySimplifiedSigner {
    /// A simplified-scheme signer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] if the merchant id cannot be sent as a header value.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KitopaySimplifiedSigner, SecretKey};
    ///
    /// assert!(KitopaySimplifiedSigner::new("merchant-1", SecretKey::new("s")?).is_ok());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(merchant_id: &str, key: SecretKey) -> Result<Self, Error> {
        if !is_header_value(merchant_id) {
            return err(ErrorKind::InvalidHeaderValue(
                crate::scheme::headers::KITOPAY_MERCHANT_ID,
            ));
        }
        Ok(KitopaySimplifiedSigner {
            merchant_id: merchant_id.to_owned(),
            prefix: key.prefix(merchant_id.as_bytes()),
            key,
        })
    }
}

impl Signer for KitopaySimplifiedSigner {
    fn scheme(&self) -> Scheme {
        Scheme::KitopaySimplified
    }

    fn sign(
        &self,
        request: &SignableRequest<'_>,
        at: Timestamp,
    ) -> Result<SignedRequest<'_>, Error> {
        let method = request.require_method()?;
        let transaction_id = request.require_transaction_id()?;
        let timestamp = at.to_unix_text();
        let signature = StringToSign::from_fields(&[
            (FieldName::MerchantId, self.merchant_id.as_bytes()),
            (FieldName::Timestamp, timestamp.as_bytes()),
            (FieldName::Method, method.as_bytes()),
            (FieldName::TransactionId, transaction_id.as_bytes()),
        ])
        .finish(self.key.pads().resume(&self.prefix), 1);
        Ok(SignedRequest::new(
            Scheme::KitopaySimplified,
            Some(&self.merchant_id),
            timestamp,
            signature,
        ))
    }
}

impl fmt::Debug for KitopaySimplifiedSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KitopaySimplifiedSigner")
            .field("merchant_id", &self.merchant_id)
            .field("key", &self.key)
            .finish()
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
