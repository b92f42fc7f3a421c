//! The [`Signer`] trait, the request view it signs ([`SignableRequest`]), and what it
//! produces ([`SignedRequest`]); [`BodySigner`] streams large bodies.

use core::fmt;

use crate::error::{Error, ErrorKind, err};
use crate::mac::Mac;
use crate::scheme::{Scheme, is_standard_method};
use crate::signature::{HexSignature, Signature};
use crate::time::{Timestamp, TimestampText};
use crate::url::CanonicalUrl;

/// Signs requests for one provider scheme. Object-safe: choose a `Box<dyn Signer>` from
/// configuration and sign every request through it.
///
/// The signing time is always an input. Signing does not allocate.
///
/// # Examples
///
/// ```
/// use countersign::{CanonicalUrl, KamioKashSigner, KitopaySigner, SecretKey, SignableRequest, Signer, Timestamp};
///
/// fn from_config(provider: &str) -> Result<Box<dyn Signer>, countersign::Error> {
///     Ok(match provider {
///         "kitopay" => Box::new(KitopaySigner::new("merchant-1", SecretKey::new("s3cret")?)?),
///         _ => Box::new(KamioKashSigner::new("kk_test_pk_8c1f0b2e", SecretKey::new("s3cret")?)?),
///     })
/// }
///
/// let signer = from_config("kitopay")?;
/// let url = CanonicalUrl::parse("https://api.example.com/orders")?;
/// let request = SignableRequest::new("POST", &url, b"{}")?;
/// let signed = signer.sign(&request, Timestamp::from_unix_secs(1_601_234_567)?)?;
/// assert_eq!(signed.headers().count(), 3);
/// # Ok::<(), countersign::Error>(())
/// ```
pub trait Signer: Send + Sync + fmt::Debug {
    /// The scheme this signer implements.
    fn scheme(&self) -> Scheme;

    /// Signs `request` as of `at`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingUrl`], [`ErrorKind::InvalidMethod`] or
    /// [`ErrorKind::MissingTransactionId`] when the request lacks a part the scheme signs.
    fn sign(
        &self,
        request: &SignableRequest<'_>,
        at: Timestamp,
    ) -> Result<SignedRequest<'_>, Error>;
}

/// A borrowed view of the parts of a request a scheme may sign.
///
/// Which parts are signed depends on the scheme (see [`Scheme`]); KamioKash requests cover
/// neither method nor URL, so a KamioKash signature does not stop a man-in-the-middle from
/// replaying the body to another endpoint within the freshness window: rely on TLS for that.
///
/// # Examples
///
/// ```
/// use countersign::{CanonicalUrl, SignableRequest};
///
/// let url = CanonicalUrl::parse("https://api.example.com/v1/payins/")?;
/// let request = SignableRequest::new("POST", &url, br#"{"amount":1}"#)?;
/// assert_eq!(request.method(), Some("POST"));
/// assert!(SignableRequest::new("PO ST", &url, b"").is_err());
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    method: Option<&'a str>,
    url: Option<&'a CanonicalUrl>,
    body: &'a [u8],
    transaction_id: Option<&'a str>,
}

impl<'a> SignableRequest<'a> {
    /// A request with method, canonical URL and body (empty for none).
    ///
    /// The method is signed exactly as given (`post` and `POST` sign differently).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidMethod`] unless the method is an RFC 9110 token.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, SignableRequest};
    ///
    /// let url = CanonicalUrl::parse("https://api.example.com/x")?;
    /// let request = SignableRequest::new("GET", &url, b"")?;
    /// assert_eq!(request.url().map(|u| u.as_str()), Some("https://api.example.com/x"));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(method: &'a str, url: &'a CanonicalUrl, body: &'a [u8]) -> Result<Self, Error> {
        if !is_standard_method(method) {
            return err(ErrorKind::InvalidMethod);
        }
        Ok(SignableRequest {
            method: Some(method),
            url: Some(url),
            body,
            transaction_id: None,
        })
    }

    /// Only a body: enough for the KamioKash schemes, which sign neither method nor URL.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// let request = SignableRequest::body(br#"{"wallet_id":"w_123"}"#);
    /// assert_eq!(request.method(), None);
    /// ```
    #[must_use]
    pub fn body(body: &'a [u8]) -> Self {
        SignableRequest {
            method: None,
            url: None,
            body,
            transaction_id: None,
        }
    }

    /// Method and transaction id: what the Kitopay simplified scheme signs.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidMethod`] unless the method is an RFC 9110 token.
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
        if !is_standard_method(method) {
            return err(ErrorKind::InvalidMethod);
        }
        Ok(SignableRequest {
            method: Some(method),
            url: None,
            body: &[],
            transaction_id: Some(transaction_id),
        })
    }

    /// Adds the transaction id (for the Kitopay simplified scheme).
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
    pub fn with_transaction_id(mut self, transaction_id: &'a str) -> Self {
        self.transaction_id = Some(transaction_id);
        self
    }

    /// The method, if given.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// assert_eq!(SignableRequest::simplified("GET", "t")?.method(), Some("GET"));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn method(&self) -> Option<&'a str> {
        self.method
    }

    /// The canonical URL, if given.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// assert!(SignableRequest::body(b"").url().is_none());
    /// ```
    #[must_use]
    pub fn url(&self) -> Option<&'a CanonicalUrl> {
        self.url
    }

    /// The body bytes (empty for none).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// assert_eq!(SignableRequest::body(b"x").body_bytes(), b"x");
    /// ```
    #[must_use]
    pub fn body_bytes(&self) -> &'a [u8] {
        self.body
    }

    /// The transaction id, if given.
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
        self.transaction_id
    }

    pub(crate) fn require_method(&self) -> Result<&'a str, Error> {
        self.method.ok_or(Error::from(ErrorKind::InvalidMethod))
    }

    pub(crate) fn require_url(&self) -> Result<&'a CanonicalUrl, Error> {
        self.url.ok_or(Error::from(ErrorKind::MissingUrl))
    }

    pub(crate) fn require_transaction_id(&self) -> Result<&'a str, Error> {
        self.transaction_id
            .ok_or(Error::from(ErrorKind::MissingTransactionId))
    }
}

/// A signed request: the signature and the headers to send, all on the stack.
///
/// # Examples
///
/// ```
/// use countersign::{KamioKashSigner, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = KamioKashSigner::new("kk_test_pk_8c1f0b2e", SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d")?)?;
/// let at = Timestamp::from_unix_millis(1_769_505_786_658)?;
/// let signed = signer.sign(&SignableRequest::body(br#"{"wallet_id":"w_123"}"#), at)?;
/// let headers: Vec<_> = signed.headers().collect();
/// assert_eq!(headers, [
///     ("X-API-Key", "kk_test_pk_8c1f0b2e"),
///     ("X-Timestamp", "2026-01-27T09:23:06.658Z"),
///     ("X-Signature", "6307031171ff7ce2a46a2535b8b062115c57a045714434b0ec3d047cb5e2f325"),
/// ]);
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct SignedRequest<'s> {
    scheme: Scheme,
    identity: Option<&'s str>,
    timestamp: TimestampText,
    signature: Signature,
    hex: HexSignature,
}

impl<'s> SignedRequest<'s> {
    pub(crate) fn new(
        scheme: Scheme,
        identity: Option<&'s str>,
        timestamp: TimestampText,
        signature: Signature,
    ) -> Self {
        SignedRequest {
            scheme,
            identity,
            timestamp,
            signature,
            hex: signature.to_hex(),
        }
    }

    /// The scheme that produced it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{KamioKashWebhookSigner, SecretKey, SignableRequest, Signer, Timestamp, Scheme};
    /// let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(signed.scheme(), Scheme::KamioKashWebhook);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The signature.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{KamioKashWebhookSigner, SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(signed.signature().to_hex().as_str(), signed.signature_hex());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The signature as sent: lowercase hex.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{KamioKashWebhookSigner, SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(signed.signature_hex().len(), 64);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn signature_hex(&self) -> &str {
        self.hex.as_str()
    }

    /// The timestamp as sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{KamioKashWebhookSigner, SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(signed.timestamp(), "1970-01-01T00:00:00.000Z");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn timestamp(&self) -> &str {
        self.timestamp.as_str()
    }

    /// The headers to send, `(name, value)`, names spelled as the provider spells them.
    /// Treat the signature header's value as sensitive in logs.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{KitopaySimplifiedSigner, SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = KitopaySimplifiedSigner::new("m-1", SecretKey::new("s")?)?;
    /// let signed = signer.sign(&SignableRequest::simplified("GET", "tx-1")?, Timestamp::from_unix_secs(1_601_234_567)?)?;
    /// let names: Vec<_> = signed.headers().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["x-merchant-id", "x-timestamp", "x-simplified-signature"]);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let identity = self.scheme.identity_header().zip(self.identity);
        identity.into_iter().chain([
            (self.scheme.timestamp_header(), self.timestamp.as_str()),
            (self.scheme.signature_header(), self.hex.as_str()),
        ])
    }
}

impl fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.headers()).finish()
    }
}

/// Signs a body fed in chunks, in constant memory, for bodies that should not be buffered.
///
/// Get one from [`KitopaySigner::begin`](crate::KitopaySigner::begin),
/// [`KamioKashSigner::begin`](crate::KamioKashSigner::begin) or
/// [`KamioKashWebhookSigner::begin`](crate::KamioKashWebhookSigner::begin); feed every byte
/// of the body with [`BodySigner::update`], then [`BodySigner::finish`]. The result is the
/// same as signing the whole body at once.
///
/// # Examples
///
/// ```
/// use countersign::{CanonicalUrl, KitopaySigner, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = KitopaySigner::new("merchant-1", SecretKey::new("s3cret")?)?;
/// let url = CanonicalUrl::parse("https://api.example.com/upload")?;
/// let at = Timestamp::from_unix_secs(1_601_234_567)?;
///
/// let mut stream = signer.begin("PUT", &url, at)?;
/// for chunk in [&b"hello "[..], b"world"] {
///     stream.update(chunk);
/// }
/// let streamed = stream.finish();
/// let whole = signer.sign(&SignableRequest::new("PUT", &url, b"hello world")?, at)?;
/// assert_eq!(streamed.signature(), whole.signature());
/// # Ok::<(), countersign::Error>(())
/// ```
pub struct BodySigner<'s> {
    mac: Mac<'s>,
    scheme: Scheme,
    identity: Option<&'s str>,
    timestamp: TimestampText,
    /// KamioKash requests put `":" || timestamp` after the body.
    timestamp_after_body: bool,
}

impl<'s> BodySigner<'s> {
    pub(crate) fn new(
        mac: Mac<'s>,
        scheme: Scheme,
        identity: Option<&'s str>,
        timestamp: TimestampText,
        timestamp_after_body: bool,
    ) -> Self {
        BodySigner {
            mac,
            scheme,
            identity,
            timestamp,
            timestamp_after_body,
        }
    }

    /// Feeds the next body bytes.
    ///
    /// # Examples
    ///
    /// See [`BodySigner`].
    pub fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Completes the signature.
    ///
    /// # Examples
    ///
    /// See [`BodySigner`].
    #[must_use]
    pub fn finish(mut self) -> SignedRequest<'s> {
        if self.timestamp_after_body {
            self.mac.update(b":");
            self.mac.update(self.timestamp.as_bytes());
        }
        let signature = Signature::from_bytes(self.mac.finish());
        SignedRequest::new(self.scheme, self.identity, self.timestamp, signature)
    }
}

impl fmt::Debug for BodySigner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodySigner")
            .field("scheme", &self.scheme)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}
