//! Verification: [`Verifier`] checks what a provider (or a mock of one) sent.
//!
//! Order of checks, each failing with its own [`ErrorKind`]: required headers present; the
//! sender's identity header matches the configuration; the timestamp parses strictly and is
//! fresh against the injected [`Clock`]; the signature is 64 hex characters; then the MAC of
//! the message (built from the timestamp header's **raw** text, exactly as received) is
//! compared in constant time with each configured key in turn.

use core::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, err};
use crate::key::SharedKeys;
use crate::message::{FieldName, StringToSign};
use crate::replay::{Claim, ReplayGuard, ReplayKey};
use crate::scheme::{Scheme, is_header_value, is_standard_method};
use crate::signature::Signature;
use crate::time::{Clock, Freshness, SystemClock, Timestamp};
use crate::url::CanonicalUrl;

/// Case-insensitive header lookup over whatever a transport uses for headers.
///
/// Implemented for slices, arrays and vectors of `(name, value)` pairs, `HashMap` and
/// `BTreeMap` of string names to values, and (feature `http`) `http::HeaderMap`.
///
/// A header that appears more than once (in any spelling) is a [`DuplicateHeader`]: a
/// verifier refuses the request instead of choosing one of the values, because two layers
/// that choose differently (first wins, last wins, exact spelling wins) can be made to
/// check one value and act on another.
///
/// # Examples
///
/// ```
/// use countersign::{DuplicateHeader, HeaderLookup};
///
/// let headers = [("X-Timestamp", "1601234567")];
/// assert_eq!(headers.header("x-timestamp"), Ok(Some(&b"1601234567"[..])));
/// assert_eq!(headers.header("x-signature"), Ok(None));
/// let twice = [("x-timestamp", "1"), ("X-Timestamp", "2")];
/// assert_eq!(twice.header("x-timestamp"), Err(DuplicateHeader));
/// ```
pub trait HeaderLookup {
    /// The value of the header `name` (ASCII case-insensitive) as raw bytes, or `None`.
    ///
    /// # Errors
    ///
    /// [`DuplicateHeader`] when the header appears more than once.
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader>;
}

/// A header appeared more than once where one value was expected; see [`HeaderLookup`].
///
/// # Examples
///
/// See [`HeaderLookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateHeader;

impl fmt::Display for DuplicateHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the header appears more than once")
    }
}

impl std::error::Error for DuplicateHeader {}

/// The only value among `pairs` whose name matches `name` in any case.
fn only<'a, K: AsRef<str> + 'a, V: AsRef<[u8]> + ?Sized + 'a>(
    pairs: impl Iterator<Item = (&'a K, &'a V)>,
    name: &str,
) -> Result<Option<&'a [u8]>, DuplicateHeader> {
    let mut found = None;
    for (k, v) in pairs {
        let k = k.as_ref();
        // Lengths first (one compare), then the exact spelling (one memcmp, the usual case),
        // then any case.
        if k.len() == name.len() && (k == name || k.eq_ignore_ascii_case(name)) {
            if found.is_some() {
                return Err(DuplicateHeader);
            }
            found = Some(v.as_ref());
        }
    }
    Ok(found)
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for [(K, V)] {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        only(self.iter().map(|(k, v)| (k, v)), name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> HeaderLookup for [(K, V); N] {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        self.as_slice().header(name)
    }
}

/// For a borrowed slice (a `&[(K, V)]` is sized, so it can stand behind `&dyn HeaderLookup`).
impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for &[(K, V)] {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        (**self).header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for Vec<(K, V)> {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        self.as_slice().header(name)
    }
}

/// Names are compared in any case, so `{"X-A": .., "x-a": ..}` holds a duplicate.
///
/// ```
/// use countersign::HeaderLookup;
/// use std::collections::HashMap;
///
/// let headers = HashMap::from([("X-Timestamp".to_owned(), "1601234567".to_owned())]);
/// assert_eq!(headers.header("x-timestamp"), Ok(Some(&b"1601234567"[..])));
/// ```
impl<K: AsRef<str>, V: AsRef<[u8]>, S> HeaderLookup for std::collections::HashMap<K, V, S> {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        only(self.iter(), name)
    }
}

/// Names are compared in any case, so `{"X-A": .., "x-a": ..}` holds a duplicate.
///
/// ```
/// use countersign::HeaderLookup;
/// use std::collections::BTreeMap;
///
/// let headers = BTreeMap::from([("x-timestamp", "1601234567")]);
/// assert_eq!(headers.header("X-Timestamp"), Ok(Some(&b"1601234567"[..])));
/// ```
impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for std::collections::BTreeMap<K, V> {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        only(self.iter(), name)
    }
}

/// A borrowed view of a received request: headers, body, and (where the scheme signs them)
/// method, canonical URL and transaction id.
///
/// # Examples
///
/// ```
/// use countersign::ReceivedRequest;
///
/// let headers = [("X-Timestamp", "2026-01-27T09:23:07.001Z"), ("X-Kamio-Signature", "00")];
/// let request = ReceivedRequest::new(&headers, b"{}");
/// assert_eq!(request.body(), b"{}");
/// ```
#[derive(Clone, Copy)]
pub struct ReceivedRequest<'a> {
    headers: &'a dyn HeaderLookup,
    body: &'a [u8],
    method: Option<&'a str>,
    url: Option<&'a CanonicalUrl>,
    transaction_id: Option<&'a str>,
}

impl<'a> ReceivedRequest<'a> {
    /// Headers and the exact body bytes received.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::ReceivedRequest;
    ///
    /// let headers: Vec<(String, String)> = Vec::new();
    /// let request = ReceivedRequest::new(&headers, b"");
    /// ```
    #[must_use]
    pub fn new(headers: &'a dyn HeaderLookup, body: &'a [u8]) -> Self {
        ReceivedRequest {
            headers,
            body,
            method: None,
            url: None,
            transaction_id: None,
        }
    }

    /// The method the request arrived with. Webhook verifiers use their configured method
    /// (`POST`) when none is given.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::ReceivedRequest;
    /// let headers = [("a", "b")];
    /// let request = ReceivedRequest::new(&headers, b"").with_method("POST");
    /// ```
    #[must_use]
    pub fn with_method(mut self, method: &'a str) -> Self {
        self.method = Some(method);
        self
    }

    /// The canonical URL the request was sent to (Kitopay full-scheme requests). Webhook
    /// verifiers ignore it and use their configured public URL.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::{CanonicalUrl, ReceivedRequest};
    /// let url = CanonicalUrl::parse("https://api.example.com/x")?;
    /// let headers = [("a", "b")];
    /// let request = ReceivedRequest::new(&headers, b"").with_url(&url);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_url(mut self, url: &'a CanonicalUrl) -> Self {
        self.url = Some(url);
        self
    }

    /// The transaction id the request refers to (Kitopay simplified scheme).
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::ReceivedRequest;
    /// let headers = [("a", "b")];
    /// let request = ReceivedRequest::new(&headers, b"").with_transaction_id("tx-1");
    /// ```
    #[must_use]
    pub fn with_transaction_id(mut self, transaction_id: &'a str) -> Self {
        self.transaction_id = Some(transaction_id);
        self
    }

    /// The body bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::ReceivedRequest;
    /// let headers = [("a", "b")];
    /// assert_eq!(ReceivedRequest::new(&headers, b"x").body(), b"x");
    /// ```
    #[must_use]
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Looks up a header (see [`HeaderLookup`]).
    ///
    /// # Errors
    ///
    /// [`DuplicateHeader`] when the header appears more than once.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::ReceivedRequest;
    /// let headers = [("X-A", "b")];
    /// assert_eq!(ReceivedRequest::new(&headers, b"").header("x-a"), Ok(Some(&b"b"[..])));
    /// ```
    pub fn header(&self, name: &str) -> Result<Option<&'a [u8]>, DuplicateHeader> {
        self.headers.header(name)
    }
}

impl fmt::Debug for ReceivedRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedRequest")
            .field("body_len", &self.body.len())
            .field("method", &self.method)
            .field("url", &self.url)
            .field("transaction_id", &self.transaction_id)
            .finish_non_exhaustive()
    }
}

/// A successful verification: which key matched and what was verified.
///
/// # Examples
///
/// See [`Verifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    scheme: Scheme,
    key_id: Arc<str>,
    timestamp: Timestamp,
    signature: Signature,
    trailing_slash_toggled: bool,
    expires_at: Timestamp,
    claim: Option<Claim>,
}

impl Verified {
    /// The message's identity for replay protection.
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_replay_guard`].
    #[must_use]
    pub fn replay_key(&self) -> ReplayKey {
        ReplayKey::new(self.scheme, self.signature)
    }

    /// How long a replay guard must remember this message: it is held while
    /// `now < expires_at`, where `expires_at = timestamp + max_age + resolution +
    /// max_future`, which covers the last instant any verifier whose clock is at most
    /// `max_future` off could still accept it (see the [replay module](crate::ReplayGuard)
    /// documentation for the derivation).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{FixedClock, KamioKashWebhookSigner, ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp, Verifier};
    /// use std::time::Duration;
    ///
    /// let at = Timestamp::from_unix_secs(1_700_000_000)?;
    /// let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), at)?;
    /// let headers: Vec<_> = signed.headers().collect();
    /// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec")?).with_clock(FixedClock::new(at));
    /// let verified = verifier.verify(&ReceivedRequest::new(&headers, b"{}"))?;
    /// // 60 s window + 1 ns resolution + 60 s of clock skew between instances.
    /// assert_eq!(verified.expires_at().since_epoch() - at.since_epoch(), Duration::new(120, 1));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// The replay claim taken by the verifier's guard, if it has one.
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_replay_guard`].
    #[must_use]
    pub fn claim(&self) -> Option<Claim> {
        self.claim
    }

    /// The scheme verified.
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The id of the key that matched (see [`KeyRing`](crate::KeyRing)).
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The sender's timestamp.
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The verified signature (with the scheme, the identity of this message for replay
    /// protection).
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Whether the signature matched only the other trailing-slash form of the URL (possible
    /// only with [`Verifier::with_trailing_slash_tolerance`]); worth a warning in logs.
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_trailing_slash_tolerance`].
    #[must_use]
    pub fn trailing_slash_toggled(&self) -> bool {
        self.trailing_slash_toggled
    }
}

/// Verifies signed requests and webhooks for one scheme.
///
/// Built per scheme with secure defaults: a 60 s [`Freshness`] window both ways, the
/// [`SystemClock`], no trailing-slash tolerance. Verification does not allocate.
///
/// # Examples
///
/// ```
/// use countersign::{FixedClock, KeyRing, ReceivedRequest, SecretKey, Timestamp, Verifier};
///
/// let verifier = Verifier::kamiokash_webhook(KeyRing::new("2026-11", SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?))
///     .with_clock(FixedClock::new(Timestamp::parse_rfc3339("2026-01-27T09:23:30Z")?));
///
/// let body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
/// let headers = [
///     ("X-Timestamp", "2026-01-27T09:23:07.001Z"),
///     ("X-Kamio-Signature", "f9a037d0ae66988e198d1bc661bef45514c008ab6cad1d439d2f664515a65942"),
/// ];
/// let verified = verifier.verify(&ReceivedRequest::new(&headers, body))?;
/// assert_eq!(verified.key_id(), "2026-11");
///
/// let tampered = verifier.verify(&ReceivedRequest::new(&headers, b"{}")).unwrap_err();
/// assert_eq!(tampered.code(), "signature_mismatch");
/// # Ok::<(), countersign::Error>(())
/// ```
pub struct Verifier {
    scheme: Scheme,
    keys: SharedKeys,
    freshness: Freshness,
    clock: Arc<dyn Clock>,
    /// Kitopay: the merchant id (signed). KamioKash requests: the expected API key, if set.
    identity: Option<String>,
    /// Webhooks: the public URL the webhook was registered with.
    url: Option<CanonicalUrl>,
    /// Webhooks: the method used when the request does not say.
    default_method: Option<String>,
    slash_tolerance: bool,
    body_on_get: bool,
    replay: Option<Arc<dyn ReplayGuard>>,
}

impl Verifier {
    fn new(scheme: Scheme, keys: SharedKeys) -> Self {
        Verifier {
            scheme,
            keys,
            freshness: Freshness::default(),
            clock: Arc::new(SystemClock),
            identity: None,
            url: None,
            default_method: None,
            slash_tolerance: false,
            body_on_get: false,
            replay: None,
        }
    }

    fn with_merchant(scheme: Scheme, merchant_id: &str, keys: SharedKeys) -> Result<Self, Error> {
        if !is_header_value(merchant_id) {
            return err(ErrorKind::InvalidHeaderValue(
                crate::scheme::headers::KITOPAY_MERCHANT_ID,
            ));
        }
        let mut v = Self::new(scheme, keys);
        v.identity = Some(merchant_id.to_owned());
        Ok(v)
    }

    /// Verifies KamioKash webhooks (`X-Timestamp`, `X-Kamio-Signature`).
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn kamiokash_webhook(keys: impl Into<SharedKeys>) -> Self {
        Self::new(Scheme::KamioKashWebhook, keys.into())
    }

    /// Verifies KamioKash-signed requests (what KamioKash, or a mock of it, checks). Use
    /// [`Verifier::with_api_key`] to also require a particular `X-API-Key`.
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
        Self::new(Scheme::KamioKash, keys.into())
    }

    /// Verifies Kitopay webhooks to a merchant: the full scheme over `public_url`, the URL
    /// the webhook was registered with (never rebuilt from the request: proxies change
    /// scheme, host and port). The method defaults to `POST`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] for a merchant id that cannot be a header value.
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
        let mut v = Self::with_merchant(Scheme::KitopayWebhook, merchant_id, keys.into())?;
        v.url = Some(public_url);
        v.default_method = Some("POST".to_owned());
        Ok(v)
    }

    /// Verifies Kitopay full-scheme requests (what Kitopay, or a mock of it, checks). The
    /// request must carry its method and canonical URL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] for a merchant id that cannot be a header value.
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
        Self::with_merchant(Scheme::Kitopay, merchant_id, keys.into())
    }

    /// Verifies Kitopay simplified-scheme requests. The request must carry its method and
    /// transaction id.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] for a merchant id that cannot be a header value.
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
        Self::with_merchant(Scheme::KitopaySimplified, merchant_id, keys.into())
    }

    /// Replaces the freshness window. Defaults to 60 s either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Freshness, SecretKey, Verifier};
    /// use std::time::Duration;
    ///
    /// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec")?)
    ///     .with_freshness(Freshness { max_age: Duration::from_secs(30), max_future: Duration::from_secs(5) });
    /// assert_eq!(verifier.freshness().max_age, Duration::from_secs(30));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = freshness;
        self
    }

    /// Replaces the clock. Defaults to [`SystemClock`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{FixedClock, SecretKey, Timestamp, Verifier};
    ///
    /// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec")?)
    ///     .with_clock(FixedClock::new(Timestamp::UNIX_EPOCH));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces the clock with a shared one.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Clock, SecretKey, SystemClock, Verifier};
    /// use std::sync::Arc;
    ///
    /// let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    /// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec")?).with_shared_clock(clock);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Also accepts a signature over the other trailing-slash form of the URL (`/a` for
    /// `/a/` and back): at most two MACs per key. Defaults to off: the providers compare
    /// bytes, and tolerance halves the effort of a forgery search on that URL.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, FixedClock, KitopaySigner, ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp, Verifier};
    ///
    /// let at = Timestamp::from_unix_secs(1_601_234_567)?;
    /// let sent_to = CanonicalUrl::parse("https://shop.example.com/hooks/kitopay")?;
    /// let signer = KitopaySigner::for_webhooks("m-1", SecretKey::new("s3cret")?)?;
    /// let signed = signer.sign(&SignableRequest::new("POST", &sent_to, b"{}")?, at)?;
    /// let headers: Vec<_> = signed.headers().collect();
    ///
    /// let registered = CanonicalUrl::parse("https://shop.example.com/hooks/kitopay/")?;
    /// let verifier = Verifier::kitopay_webhook("m-1", SecretKey::new("s3cret")?, registered)?
    ///     .with_clock(FixedClock::new(at));
    /// assert!(verifier.verify(&ReceivedRequest::new(&headers, b"{}")).is_err());
    /// let tolerant = verifier.with_trailing_slash_tolerance(true);
    /// assert!(tolerant.verify(&ReceivedRequest::new(&headers, b"{}"))?.trailing_slash_toggled());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_trailing_slash_tolerance(mut self, tolerate: bool) -> Self {
        self.slash_tolerance = tolerate;
        self
    }

    /// Claims every verified delivery with `guard`, so a delivery is accepted at most once
    /// while its signature could pass ([`ErrorKind::Replayed`], carrying whether the first
    /// is still in flight or done). Defaults to none. A guard that cannot decide
    /// ([`ErrorKind::ReplayGuardUnavailable`]) fails the verification: closed, not open.
    ///
    /// After processing, call [`Verifier::complete`] (a duplicate is then reported as done,
    /// to be acknowledged) or, if processing failed, [`Verifier::release`] (the provider's
    /// retry is then accepted). The tower layer does both for you, and uses this guard if
    /// it is given none of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{ClaimState, ErrorKind, FixedClock, InMemoryReplayGuard, ReceivedRequest, SecretKey, Timestamp, Verifier};
    /// use std::sync::Arc;
    ///
    /// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?)
    ///     .with_clock(FixedClock::new(Timestamp::parse_rfc3339("2026-01-27T09:23:30Z")?))
    ///     .with_replay_guard(Arc::new(InMemoryReplayGuard::new(100_000)));
    /// let body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
    /// let headers = [
    ///     ("X-Timestamp", "2026-01-27T09:23:07.001Z"),
    ///     ("X-Kamio-Signature", "f9a037d0ae66988e198d1bc661bef45514c008ab6cad1d439d2f664515a65942"),
    /// ];
    /// let request = ReceivedRequest::new(&headers, body);
    /// let first = verifier.verify(&request)?;
    /// assert!(first.claim().is_some());
    /// assert_eq!(verifier.verify(&request).unwrap_err().kind(), &ErrorKind::Replayed(ClaimState::InFlight));
    /// verifier.release(&first)?; // processing failed: accept the provider's retry
    /// let retry = verifier.verify(&request)?;
    /// verifier.complete(&retry)?; // processed
    /// assert_eq!(verifier.verify(&request).unwrap_err().kind(), &ErrorKind::Replayed(ClaimState::Done));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_replay_guard(mut self, guard: Arc<dyn ReplayGuard>) -> Self {
        self.replay = Some(guard);
        self
    }

    /// The replay guard, if any (the tower layer takes it over).
    #[cfg(feature = "tower")]
    pub(crate) fn replay_guard(&self) -> Option<&Arc<dyn ReplayGuard>> {
        self.replay.as_ref()
    }

    /// Releases the replay claim of an accepted message (processing failed), so the
    /// provider's retry is accepted. Does nothing without a guard, or if the claim is no
    /// longer held by this verification (expired, already released or completed).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the guard's store fails.
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_replay_guard`].
    pub fn release(&self, verified: &Verified) -> Result<(), Error> {
        match (&self.replay, &verified.claim) {
            (Some(guard), Some(claim)) => guard.release(claim),
            _ => Ok(()),
        }
    }

    /// Marks the replay claim of an accepted message done (processing succeeded): a
    /// duplicate is then refused as [`ErrorKind::Replayed`]`(`[`ClaimState::Done`](crate::ClaimState::Done)`)`, to be
    /// acknowledged rather than processed. Does nothing without a guard.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the guard's store fails.
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_replay_guard`].
    pub fn complete(&self, verified: &Verified) -> Result<(), Error> {
        match (&self.replay, &verified.claim) {
            (Some(guard), Some(claim)) => guard.complete(claim),
            _ => Ok(()),
        }
    }

    /// Accepts a body on `GET` and `HEAD` requests (Kitopay full scheme). Defaults to off:
    /// with a body on a request whose URL ends in a query, bytes can move between the end
    /// of the query and the start of the body without changing the signed message
    /// (`?amount=1000` + `` verifies as `?amount=10` + `00`), and GET bodies have no
    /// meaning anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, Verifier};
    ///
    /// let verifier = Verifier::kitopay_request("merchant-1", SecretKey::new("s3cret")?)?.with_body_on_get(true);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_body_on_get(mut self, allow: bool) -> Self {
        self.body_on_get = allow;
        self
    }

    /// The method a webhook verifier assumes when the request does not carry one. Defaults
    /// to `POST` for Kitopay webhooks.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidMethod`] unless the method is one of the standard upper-case
    /// methods ([`STANDARD_METHODS`](crate::STANDARD_METHODS)).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, SecretKey, Verifier};
    ///
    /// let url = CanonicalUrl::parse("https://shop.example.com/hooks")?;
    /// let verifier = Verifier::kitopay_webhook("m-1", SecretKey::new("s")?, url)?.with_method("PUT")?;
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn with_method(mut self, method: &str) -> Result<Self, Error> {
        if !is_standard_method(method) {
            return err(ErrorKind::InvalidMethod);
        }
        self.default_method = Some(method.to_owned());
        Ok(self)
    }

    /// KamioKash requests: also require this `X-API-Key`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] if it cannot be a header value.
    ///
    /// # Examples
    ///
    /// See [`Verifier::kamiokash_request`].
    pub fn with_api_key(mut self, api_key: &str) -> Result<Self, Error> {
        if !is_header_value(api_key) {
            return err(ErrorKind::InvalidHeaderValue(
                crate::scheme::headers::KAMIOKASH_API_KEY,
            ));
        }
        self.identity = Some(api_key.to_owned());
        Ok(self)
    }

    /// The scheme verified.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Scheme, SecretKey, Verifier};
    ///
    /// assert_eq!(Verifier::kamiokash_webhook(SecretKey::new("w")?).scheme(), Scheme::KamioKashWebhook);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The freshness window in force.
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_freshness`].
    #[must_use]
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// A handle to the verifier's keys, to rotate them while it runs (see [`SharedKeys`]).
    /// Build the verifier from a [`SharedKeys`] to share one ring between verifiers.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey, Verifier};
    ///
    /// let verifier = Verifier::kamiokash_webhook(KeyRing::new("old", SecretKey::new("a")?));
    /// verifier.keys().update(|ring| { ring.remove("old"); });
    /// assert!(verifier.keys().ids().is_empty());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn keys(&self) -> SharedKeys {
        self.keys.clone()
    }

    /// Verifies a received request.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingHeader`], [`ErrorKind::IdentityMismatch`],
    /// [`ErrorKind::MalformedTimestamp`], [`ErrorKind::Expired`], [`ErrorKind::Future`],
    /// [`ErrorKind::MalformedSignature`], [`ErrorKind::MissingUrl`],
    /// [`ErrorKind::InvalidMethod`], [`ErrorKind::MissingTransactionId`],
    /// [`ErrorKind::NoKeys`], or [`ErrorKind::SignatureMismatch`].
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    pub fn verify(&self, request: &ReceivedRequest<'_>) -> Result<Verified, Error> {
        let now = self.clock.now();
        let mut verified = self.verify_at(request, now)?;
        if let Some(guard) = &self.replay {
            verified.claim = Some(guard.claim(verified.replay_key(), verified.expires_at, now)?);
        }
        Ok(verified)
    }

    /// Everything [`Verifier::verify`] checks except the replay claim, against the clock
    /// reading `now` (the tower layer claims with its own guard, asynchronously).
    pub(crate) fn verify_at(
        &self,
        request: &ReceivedRequest<'_>,
        now: Timestamp,
    ) -> Result<Verified, Error> {
        let scheme = self.scheme;
        let timestamp_raw = required(request, scheme.timestamp_header())?;
        let signature_raw = required(request, scheme.signature_header())?;
        if let (Some(name), Some(expected)) = (scheme.identity_header(), &self.identity)
            && required(request, name)? != expected.as_bytes()
        {
            return err(ErrorKind::IdentityMismatch(name));
        }

        let format = scheme.time_format();
        let timestamp = format.parse_bytes(timestamp_raw)?;
        self.freshness.check(timestamp, format.truncate(now))?;
        let signature = Signature::from_hex_bytes(signature_raw)?;

        let message = self.message(request, timestamp_raw, false)?;
        let toggled = match self.slash_tolerance {
            true => self.message(request, timestamp_raw, true)?,
            false => None,
        };
        let keys = self.keys.read();
        if keys.is_empty() {
            return err(ErrorKind::NoKeys);
        }
        for (key_id, key) in keys.iter() {
            for (message, trailing_slash_toggled) in [(&message, false), (&toggled, true)] {
                if let Some(message) = message
                    && message.sign(key) == signature
                {
                    return Ok(Verified {
                        scheme,
                        key_id: Arc::clone(key_id),
                        timestamp,
                        signature,
                        trailing_slash_toggled,
                        expires_at: self
                            .freshness
                            .claim_expiry(timestamp, self.scheme.time_format().resolution()),
                        claim: None,
                    });
                }
            }
        }
        err(ErrorKind::SignatureMismatch)
    }

    /// The verifier's clock.
    #[cfg(feature = "tower")]
    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The message to check, built from the timestamp header's raw bytes; with `toggled`,
    /// the one with the URL's trailing slash toggled (`None` where there is no such form).
    fn message<'a>(
        &'a self,
        request: &ReceivedRequest<'a>,
        timestamp: &'a [u8],
        toggled: bool,
    ) -> Result<Option<StringToSign<'a>>, Error> {
        let merchant = self.identity.as_deref().unwrap_or_default().as_bytes();
        let method = || -> Result<&'a str, Error> {
            let method = request
                .method
                .or(self.default_method.as_deref())
                .ok_or(Error::from(ErrorKind::InvalidMethod))?;
            if !is_standard_method(method) {
                return err(ErrorKind::InvalidMethod);
            }
            Ok(method)
        };
        if toggled && !self.scheme.signs_url() {
            return Ok(None);
        }
        Ok(Some(match self.scheme {
            Scheme::KamioKash => StringToSign::from_fields(&[
                (FieldName::Body, request.body),
                (FieldName::Delimiter, b":"),
                (FieldName::Timestamp, timestamp),
            ]),
            Scheme::KamioKashWebhook => StringToSign::from_fields(&[
                (FieldName::Timestamp, timestamp),
                (FieldName::Body, request.body),
            ]),
            Scheme::KitopaySimplified => {
                let transaction_id = request
                    .transaction_id
                    .ok_or(Error::from(ErrorKind::MissingTransactionId))?;
                StringToSign::from_fields(&[
                    (FieldName::MerchantId, merchant),
                    (FieldName::Timestamp, timestamp),
                    (FieldName::Method, method()?.as_bytes()),
                    (FieldName::TransactionId, transaction_id.as_bytes()),
                ])
            }
            Scheme::Kitopay | Scheme::KitopayWebhook => {
                let url = self
                    .url
                    .as_ref()
                    .or(request.url)
                    .ok_or(Error::from(ErrorKind::MissingUrl))?;
                let pieces = if toggled {
                    match url.toggled_slash() {
                        Some(pieces) => pieces,
                        None => return Ok(None),
                    }
                } else {
                    [url.as_str(), "", ""]
                };
                let method = method()?;
                if !self.body_on_get && !request.body.is_empty() {
                    match method {
                        "GET" => return err(ErrorKind::BodyNotAllowed("GET")),
                        "HEAD" => return err(ErrorKind::BodyNotAllowed("HEAD")),
                        _ => {}
                    }
                }
                let mut message = StringToSign::from_fields(&[
                    (FieldName::MerchantId, merchant),
                    (FieldName::Timestamp, timestamp),
                    (FieldName::Method, method.as_bytes()),
                    (FieldName::Url, pieces[0].as_bytes()),
                    (FieldName::Body, request.body),
                ]);
                message.set_url_extra([pieces[1].as_bytes(), pieces[2].as_bytes()]);
                message
            }
        }))
    }
}

fn required<'a>(request: &ReceivedRequest<'a>, name: &'static str) -> Result<&'a [u8], Error> {
    match request.headers.header(name) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => err(ErrorKind::MissingHeader(name)),
        Err(DuplicateHeader) => err(ErrorKind::DuplicateHeader(name)),
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme)
            .field("keys", &self.keys)
            .field("freshness", &self.freshness)
            .field("identity", &self.identity)
            .field("url", &self.url)
            .field("default_method", &self.default_method)
            .field("slash_tolerance", &self.slash_tolerance)
            .field("body_on_get", &self.body_on_get)
            .field("replay_guard", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}
