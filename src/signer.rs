//! [`Signer`]: signs requests for any [`Scheme`]; the request view it signs
//! ([`SignableRequest`]), what it produces ([`SignedRequest`]), and [`BodySigner`] for large
//! bodies.

use core::fmt;

use crate::error::{Error, ErrorKind, err};
use crate::key::SecretKey;
use crate::mac::{Mac, Prefix};
use crate::message::{Pieces, Source, StringToSign};
use crate::scheme::{
    MAX_HEADER_VALUES, MAX_VALUES, Part, Scheme, Value, is_header_value, is_standard_method,
};
use crate::signature::{Signature, SignatureText};
use crate::time::{Timestamp, TimestampText};
use crate::url::CanonicalUrl;

/// Signs requests (or test webhook deliveries) with one scheme, one key and, where the
/// scheme has one, one identity.
///
/// Keyed once: the HMAC pad states are precomputed, and so is the MAC state after the fixed
/// parts every message starts with (Kitopay's merchant id), so each signature costs only the
/// compressions of the rest. The signing time is always an input. Signing does not allocate.
///
/// # Examples
///
/// ```
/// use countersign::{kitopay, CanonicalUrl, SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = Signer::new(&kitopay::FULL, SecretKey::new("s3cret")?)?.with_identity("merchant-1")?;
/// let url = CanonicalUrl::parse("https://api.example.com/orders")?;
/// let request = SignableRequest::new("POST", &url, b"{}")?;
/// let signed = signer.sign(&request, Timestamp::from_unix_secs(1_601_234_567)?)?;
/// let names: Vec<_> = signed.headers().map(|(name, _)| name).collect();
/// assert_eq!(names, ["x-merchant-id", "x-timestamp", "x-signature"]);
/// # Ok::<(), countersign::Error>(())
/// ```
pub struct Signer {
    scheme: &'static Scheme,
    key: SecretKey,
    identity: Option<String>,
    /// The MAC state after the fixed parts the message starts with, and how many pieces
    /// that is.
    prefix: Option<(Box<Prefix>, usize)>,
}

impl Signer {
    /// A signer for `scheme` with `key` (see [`Scheme::key`] for keys from a scheme's text
    /// form). Schemes with an identity need [`Signer::with_identity`] too.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidScheme`] if the scheme is not self-consistent ([`Scheme::check`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SecretKey, Signer};
    ///
    /// let signer = Signer::new(&kamiokash::WEBHOOK, SecretKey::new("whsec")?)?;
    /// assert_eq!(signer.scheme(), &kamiokash::WEBHOOK);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(scheme: &'static Scheme, key: SecretKey) -> Result<Self, Error> {
        scheme.check()?;
        Ok(Self::unchecked(scheme, key))
    }

    /// For the built-in schemes, which pass [`Scheme::check`] (a unit test says so).
    pub(crate) fn unchecked(scheme: &'static Scheme, key: SecretKey) -> Self {
        let mut signer = Signer {
            scheme,
            key,
            identity: None,
            prefix: None,
        };
        signer.precompute();
        signer
    }

    /// The sender's identity (Kitopay's merchant id, KamioKash's API key), sent in the
    /// scheme's identity header and signed where the scheme signs it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] if it cannot be sent as a header value;
    /// [`ErrorKind::InvalidScheme`] if the scheme has no identity.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, SecretKey, Signer};
    ///
    /// let signer = Signer::new(&kitopay::FULL, SecretKey::new("s")?)?;
    /// assert!(signer.with_identity("merchant\n1").is_err());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn with_identity(mut self, identity: &str) -> Result<Self, Error> {
        let Some(header) = self.scheme.identity_header() else {
            return err(ErrorKind::InvalidScheme("this scheme has no identity"));
        };
        if !is_header_value(identity) {
            return err(ErrorKind::InvalidHeaderValue(header));
        }
        self.identity = Some(identity.to_owned());
        self.precompute();
        Ok(self)
    }

    /// Absorbs the fixed parts every message starts with (identity, separators) once.
    fn precompute(&mut self) {
        let mut fixed: [&[u8]; crate::scheme::MAX_PARTS] = [&[]; crate::scheme::MAX_PARTS];
        let mut n = 0;
        for part in self.scheme.message() {
            let bytes: &[u8] = match part {
                Part::Literal(text) => text.as_bytes(),
                Part::Identity => match &self.identity {
                    Some(identity) => identity.as_bytes(),
                    None => break,
                },
                _ => break,
            };
            if let Some(slot) = fixed.get_mut(n) {
                *slot = bytes;
                n += 1;
            }
        }
        self.prefix = (n > 0).then(|| (self.key.prefix(&fixed[..n].concat()), n));
    }

    /// The scheme signed with.
    ///
    /// # Examples
    ///
    /// See [`Signer::new`].
    #[must_use]
    pub fn scheme(&self) -> &'static Scheme {
        self.scheme
    }

    /// The identity sent (and, where the scheme signs it, signed), if set.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{SecretKey, Signer};
    /// let signer = Signer::kitopay("merchant-1", SecretKey::new("s")?)?;
    /// assert_eq!(signer.identity(), Some("merchant-1"));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The MAC, started (and resumed past the fixed prefix, if any), and how many pieces
    /// of the message it has absorbed.
    #[inline]
    fn start(&self) -> (Mac<'_>, usize) {
        match &self.prefix {
            Some((prefix, n)) => (self.key.pads().resume(prefix), *n),
            None => (self.key.pads().start(), 0),
        }
    }

    fn identity_checked(&self) -> Result<Option<&str>, Error> {
        match (self.scheme.identity_name(), &self.identity) {
            (Some(name), None) => err(ErrorKind::MissingField(name)),
            (_, identity) => Ok(identity.as_deref()),
        }
    }

    /// Signs `request` as of `at`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingUrl`], [`ErrorKind::InvalidMethod`] or [`ErrorKind::MissingField`]
    /// when the request lacks a part the scheme signs (or the signer its identity);
    /// [`ErrorKind::InvalidField`] when a value is outside its domain (a Kitopay transaction
    /// id with a `/`, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, SignableRequest, Signer, Timestamp};
    ///
    /// let signer = Signer::kamiokash("kk_test_pk_8c1f0b2e", SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d")?)?;
    /// let at = Timestamp::from_unix_millis(1_769_505_786_658)?; // 2026-01-27T09:23:06.658Z
    /// let signed = signer.sign(&SignableRequest::body(br#"{"wallet_id":"w_123"}"#), at)?;
    /// assert_eq!(signed.signature_hex(), "6307031171ff7ce2a46a2535b8b062115c57a045714434b0ec3d047cb5e2f325");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[inline]
    pub fn sign<'a>(
        &'a self,
        request: &SignableRequest<'a>,
        at: Timestamp,
    ) -> Result<SignedRequest<'a>, Error> {
        let identity = self.identity_checked()?;
        let timestamp = self.scheme.format_timestamp(at);
        let signature = {
            let text = timestamp.as_ref().map_or(&[][..], TimestampText::as_bytes);
            let mut pieces = Pieces::new();
            pieces.lay_out(self.scheme, &request.source(identity, text))?;
            let (mac, skip) = self.start();
            pieces.finish(mac, skip)
        };
        Ok(SignedRequest::new(
            self.scheme,
            identity,
            request,
            timestamp,
            signature,
        ))
    }

    /// The exact message [`Signer::sign`] would sign for `request` with this timestamp text.
    ///
    /// # Errors
    ///
    /// As [`Signer::sign`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, SignableRequest, Signer};
    ///
    /// let signer = Signer::kitopay_simplified("m-1", SecretKey::new("s")?)?;
    /// let request = SignableRequest::simplified("GET", "tx-1")?;
    /// assert_eq!(signer.string_to_sign(&request, "1601234567")?.to_string(), "m-11601234567GETtx-1");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn string_to_sign<'a>(
        &'a self,
        request: &SignableRequest<'a>,
        timestamp: &'a str,
    ) -> Result<StringToSign<'a>, Error> {
        StringToSign::new(self.scheme, self.identity_checked()?, timestamp, request)
    }

    /// Starts signing a request whose body is fed in chunks, in constant memory: everything
    /// but the body is taken from `request` (its body is ignored). Feed every byte of the
    /// body with [`BodySigner::update`], then [`BodySigner::finish`]; the result is the same
    /// as signing the whole body at once.
    ///
    /// # Errors
    ///
    /// As [`Signer::sign`]; [`ErrorKind::UnbufferedBody`] if the scheme signs no body.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, SecretKey, SignableRequest, Signer, Timestamp};
    ///
    /// let signer = Signer::kitopay("merchant-1", SecretKey::new("s3cret")?)?;
    /// let url = CanonicalUrl::parse("https://api.example.com/upload")?;
    /// let at = Timestamp::from_unix_secs(1_601_234_567)?;
    ///
    /// let mut stream = signer.begin(&SignableRequest::new("PUT", &url, b"")?, at)?;
    /// for chunk in [&b"hello "[..], b"world"] {
    ///     stream.update(chunk);
    /// }
    /// let streamed = stream.finish();
    /// let whole = signer.sign(&SignableRequest::new("PUT", &url, b"hello world")?, at)?;
    /// assert_eq!(streamed.signature(), whole.signature());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn begin<'a>(
        &'a self,
        request: &SignableRequest<'a>,
        at: Timestamp,
    ) -> Result<BodySigner<'a>, Error> {
        let Some(body_part) = self
            .scheme
            .message()
            .iter()
            .position(|p| matches!(p, Part::Body))
        else {
            return err(ErrorKind::UnbufferedBody);
        };
        let identity = self.identity_checked()?;
        let timestamp = self.scheme.format_timestamp(at);
        let request = request.with_body(&[]);
        let (mut mac, skip) = self.start();
        {
            let text = timestamp.as_ref().map_or(&[][..], TimestampText::as_bytes);
            let mut pieces = Pieces::new();
            pieces.lay_out(self.scheme, &request.source(identity, text))?;
            let body = pieces.index_of(self.scheme, body_part);
            for piece in pieces.as_slice().get(skip..body).unwrap_or(&[]) {
                mac.update(piece);
            }
        }
        Ok(BodySigner {
            mac,
            body_part,
            request,
            signed: SignedRequest::new(
                self.scheme,
                identity,
                &request,
                timestamp,
                Signature::from_bytes([0; 32]),
            ),
        })
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.scheme)
            .field("identity", &self.identity)
            .field("key", &self.key)
            .finish()
    }
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
    values: [(&'a str, &'a str); MAX_VALUES],
    value_count: usize,
}

impl<'a> SignableRequest<'a> {
    /// A request with method, canonical URL and body (empty for none).
    ///
    /// The method is signed exactly as given (`post` and `POST` sign differently).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidMethod`] unless the method is one of the standard upper-case
    /// methods ([`STANDARD_METHODS`](crate::STANDARD_METHODS)).
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
        Ok(Self::body(body).with_method(method)?.with_url(url))
    }

    /// Only a body: enough for schemes that sign neither method nor URL (KamioKash,
    /// Standard Webhooks with its id added by [`SignableRequest::with_value`]).
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
            values: [("", ""); MAX_VALUES],
            value_count: 0,
        }
    }

    /// Sets the method.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidMethod`] unless the method is one of the standard upper-case
    /// methods.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// let request = SignableRequest::body(b"").with_method("DELETE")?;
    /// assert_eq!(request.method(), Some("DELETE"));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn with_method(mut self, method: &'a str) -> Result<Self, Error> {
        if !is_standard_method(method) {
            return err(ErrorKind::InvalidMethod);
        }
        self.method = Some(method);
        Ok(self)
    }

    /// Sets the canonical URL.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, SignableRequest};
    ///
    /// let url = CanonicalUrl::parse("https://api.example.com/x")?;
    /// assert!(SignableRequest::body(b"").with_url(&url).url().is_some());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_url(mut self, url: &'a CanonicalUrl) -> Self {
        self.url = Some(url);
        self
    }

    /// Sets the body (empty for none).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// let request = SignableRequest::simplified("GET", "tx-1")?.with_body(b"{}");
    /// assert_eq!(request.body_bytes(), b"{}");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// Adds (or replaces) the named value `name` the scheme signs (Standard Webhooks' `id`,
    /// Kitopay's `transaction_id`; see [`Scheme::values`]). At most
    /// [`MAX_VALUES`](crate::MAX_VALUES) names; further ones are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SignableRequest;
    ///
    /// let request = SignableRequest::body(b"{}").with_value("id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
    /// assert_eq!(request.value("id"), Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"));
    /// ```
    #[must_use]
    pub fn with_value(mut self, name: &'a str, value: &'a str) -> Self {
        if let Some(slot) = self.values[..self.value_count]
            .iter_mut()
            .find(|(n, _)| *n == name)
        {
            slot.1 = value;
        } else if let Some(slot) = self.values.get_mut(self.value_count) {
            *slot = (name, value);
            self.value_count += 1;
        }
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

    /// The named value `name`, if given.
    ///
    /// # Examples
    ///
    /// See [`SignableRequest::with_value`].
    #[must_use]
    #[inline]
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.values[..self.value_count]
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }

    /// What `scheme`'s message is laid out from, with the signer's identity and timestamp.
    pub(crate) fn source<'r>(
        &'r self,
        identity: Option<&'a str>,
        timestamp: &'a [u8],
    ) -> Signing<'r, 'a> {
        Signing {
            request: self,
            identity,
            timestamp,
        }
    }
}

/// A request being signed, with the signer's identity and timestamp: a message's source.
pub(crate) struct Signing<'r, 'a> {
    request: &'r SignableRequest<'a>,
    identity: Option<&'a str>,
    timestamp: &'a [u8],
}

impl<'a> Source<'a> for Signing<'_, 'a> {
    #[inline(always)]
    fn identity(&self) -> Option<&'a [u8]> {
        self.identity.map(str::as_bytes)
    }
    #[inline(always)]
    fn timestamp(&self) -> &'a [u8] {
        self.timestamp
    }
    #[inline(always)]
    fn method(&self) -> Option<&'a str> {
        self.request.method
    }
    #[inline(always)]
    fn url(&self) -> Option<[&'a str; 3]> {
        self.request.url.map(|url| [url.as_str(), "", ""])
    }
    #[inline(always)]
    fn body(&self) -> &'a [u8] {
        self.request.body
    }
    #[inline]
    fn value(&self, _: usize, spec: &Value) -> Option<&'a [u8]> {
        self.request.value(spec.name()).map(str::as_bytes)
    }
}

/// A signed request: the signature and the headers to send, all on the stack.
///
/// # Examples
///
/// ```
/// use countersign::{SecretKey, SignableRequest, Signer, Timestamp};
///
/// let signer = Signer::kamiokash("kk_test_pk_8c1f0b2e", SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d")?)?;
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
pub struct SignedRequest<'a> {
    scheme: &'static Scheme,
    identity: Option<&'a str>,
    /// The values the scheme sends in headers of their own, in the scheme's order.
    values: [&'a str; MAX_HEADER_VALUES],
    timestamp: Option<TimestampText>,
    signature: Signature,
    /// The signature as sent, and as hex.
    text: SignatureText,
}

impl<'a> SignedRequest<'a> {
    #[inline(always)]
    fn new(
        scheme: &'static Scheme,
        identity: Option<&'a str>,
        request: &SignableRequest<'a>,
        timestamp: Option<TimestampText>,
        signature: Signature,
    ) -> Self {
        let mut values = [""; MAX_HEADER_VALUES];
        for (slot, spec) in values.iter_mut().zip(scheme.header_values()) {
            // Laid out (so present) before a signature exists.
            *slot = request.value(spec.name()).unwrap_or_default();
        }
        SignedRequest {
            scheme,
            identity,
            values,
            timestamp,
            signature,
            text: SignatureText::new(scheme.signature(), &signature),
        }
    }

    /// The scheme that produced it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{kamiokash, SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(signed.scheme(), &kamiokash::WEBHOOK);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn scheme(&self) -> &'static Scheme {
        self.scheme
    }

    /// The signature.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(signed.signature().to_hex().as_str(), signed.signature_hex());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The signature as lower-case hex (what the hex schemes send, without any prefix).
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(signed.signature_hex().len(), 64);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn signature_hex(&self) -> &str {
        self.text.hex()
    }

    /// The signature header's value, exactly as sent (`sha256=…`, `v1,…`, or bare hex).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, SignableRequest, Signer, Timestamp};
    ///
    /// let signer = Signer::standard_webhooks(countersign::standard_webhooks::SCHEME.key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?);
    /// let request = SignableRequest::body(br#"{"test": 2432232314}"#).with_value("id", "msg_p5jXN8AQM9LWM0D4loKWxJek");
    /// let signed = signer.sign(&request, Timestamp::from_unix_secs(1_614_265_330)?)?;
    /// assert_eq!(signed.signature_value(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn signature_value(&self) -> &str {
        self.text.as_str()
    }

    /// The timestamp as sent, if the scheme has one.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(signed.timestamp(), Some("1970-01-01T00:00:00.000Z"));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn timestamp(&self) -> Option<&str> {
        self.timestamp.as_ref().map(TimestampText::as_str)
    }

    /// The headers to send, `(name, value)`, names spelled as the provider spells them:
    /// the identity, the values sent in headers, the timestamp, then the signature. Treat
    /// the signature header's value as sensitive in logs.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{SecretKey, SignableRequest, Signer, Timestamp};
    /// let signer = Signer::kitopay_simplified("m-1", SecretKey::new("s")?)?;
    /// let signed = signer.sign(&SignableRequest::simplified("GET", "tx-1")?, Timestamp::from_unix_secs(1_601_234_567)?)?;
    /// let names: Vec<_> = signed.headers().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["x-merchant-id", "x-timestamp", "x-simplified-signature"]);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let identity = self.scheme.identity_header().zip(self.identity);
        let timestamp = self.scheme.timestamp_header().zip(self.timestamp());
        let values = self
            .scheme
            .header_values()
            .filter_map(|spec| spec.header_name())
            .zip(self.values);
        identity
            .into_iter()
            .chain(values)
            .chain(timestamp)
            .chain([(self.scheme.signature_header(), self.signature_value())])
    }
}

impl fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.headers()).finish()
    }
}

/// Signs a body fed in chunks, in constant memory, for bodies that should not be buffered.
///
/// Get one from [`Signer::begin`]; feed every byte of the body with [`BodySigner::update`],
/// then [`BodySigner::finish`]. The result is the same as signing the whole body at once.
///
/// # Examples
///
/// See [`Signer::begin`].
pub struct BodySigner<'a> {
    mac: Mac<'a>,
    /// The index of the body among the scheme's parts.
    body_part: usize,
    request: SignableRequest<'a>,
    /// Everything but the signature.
    signed: SignedRequest<'a>,
}

impl<'a> BodySigner<'a> {
    /// Feeds the next body bytes.
    ///
    /// # Examples
    ///
    /// See [`Signer::begin`].
    pub fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Completes the signature: the parts after the body (KamioKash requests:
    /// `":" || timestamp`) are absorbed, then the MAC is finished.
    ///
    /// # Examples
    ///
    /// See [`Signer::begin`].
    #[must_use]
    pub fn finish(mut self) -> SignedRequest<'a> {
        let scheme = self.signed.scheme;
        let text = self
            .signed
            .timestamp
            .as_ref()
            .map_or(&[][..], TimestampText::as_bytes);
        // Laid out and checked in `Signer::begin`: this cannot fail now.
        let mut pieces = Pieces::new();
        if pieces
            .lay_out(scheme, &self.request.source(self.signed.identity, text))
            .is_ok()
        {
            let body = pieces.index_of(scheme, self.body_part);
            for piece in pieces.as_slice().get(body + 1..).unwrap_or(&[]) {
                self.mac.update(piece);
            }
        }
        self.signed.signature = Signature::from_bytes(self.mac.finish());
        self.signed.text = SignatureText::new(scheme.signature(), &self.signed.signature);
        self.signed
    }
}

impl fmt::Debug for BodySigner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodySigner")
            .field("scheme", &self.signed.scheme)
            .field("timestamp", &self.signed.timestamp())
            .finish_non_exhaustive()
    }
}
