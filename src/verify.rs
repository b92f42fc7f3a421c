//! Verification: [`Verifier`] checks what a provider (or a mock of one) sent, for any
//! [`Scheme`].
//!
//! Order of checks, each failing with its own [`ErrorKind`]: required headers present; the
//! sender's identity header matches the configuration; the timestamp parses strictly and is
//! fresh against the injected [`Clock`]; the signature header is well-formed (every
//! signature in it decoded); the named values are in their domains; then the MAC of the
//! message (built from the headers' **raw** text, exactly as received) is compared in
//! constant time with every signature offered, for each configured key in turn.

use core::fmt;
use std::sync::Arc;

use crate::claim::{Admission, Claim, ReplayGuard};
use crate::error::{Error, ErrorKind, err};
use crate::headers::{DuplicateHeader, HeaderLookup};
use crate::key::{KeyId, SharedKeys};
use crate::message::{Inputs, Pieces};
use crate::scheme::{MAX_VALUES, NO_WINDOW_RETENTION, Scheme, is_header_value, is_standard_method};
use crate::signature::{Candidates, Signature};
use crate::time::{Clock, Freshness, SystemClock, Timestamp};
use crate::url::CanonicalUrl;

/// A borrowed view of a received request: headers, body, and (where the scheme signs them)
/// method, canonical URL and named values the scheme does not send in headers (Kitopay's
/// transaction id).
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
    values: [(&'a str, &'a str); MAX_VALUES],
    value_count: usize,
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
            values: [("", ""); MAX_VALUES],
            value_count: 0,
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

    /// The canonical URL the request was sent to (request schemes that sign the URL).
    /// Webhook verifiers ignore it and use their configured public URL.
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

    /// A named value the scheme signs but does not send in a header (see
    /// [`Value::param`](crate::Value::param)), e.g. Kitopay's `transaction_id`. At most
    /// [`MAX_VALUES`](crate::MAX_VALUES) names; further ones are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::ReceivedRequest;
    /// let headers = [("a", "b")];
    /// let request = ReceivedRequest::new(&headers, b"").with_value("transaction_id", "tx-1");
    /// assert_eq!(request.value("transaction_id"), Some("tx-1"));
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

    /// The named value `name`, if given.
    ///
    /// # Examples
    ///
    /// See [`ReceivedRequest::with_value`].
    #[must_use]
    #[inline]
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.values[..self.value_count]
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
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

    /// The method, if given.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::ReceivedRequest;
    /// let headers = [("a", "b")];
    /// assert_eq!(ReceivedRequest::new(&headers, b"").with_method("PUT").method(), Some("PUT"));
    /// ```
    #[must_use]
    pub fn method(&self) -> Option<&'a str> {
        self.method
    }

    /// The URL, if given.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::ReceivedRequest;
    /// let headers = [("a", "b")];
    /// assert!(ReceivedRequest::new(&headers, b"").url().is_none());
    /// ```
    #[must_use]
    pub fn url(&self) -> Option<&'a CanonicalUrl> {
        self.url
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
            .field("values", &&self.values[..self.value_count])
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
    scheme: &'static Scheme,
    key_id: KeyId,
    timestamp: Option<Timestamp>,
    signature: Signature,
    trailing_slash_toggled: bool,
    expires_at: Timestamp,
    claim: Option<Claim>,
    event_id: Option<Arc<str>>,
}

impl Verified {
    /// Until when this signature could still be accepted by a verifier whose clock is at
    /// most `max_future` off, so until when a claim by signature is kept:
    ///
    /// ```text
    /// expires_at = timestamp + max_age + resolution + max_future   (held while now < expires_at)
    /// ```
    ///
    /// A verifier accepts `t` until its clock reads `t + max_age`, plus the timestamp's
    /// resolution less one nanosecond for schemes whose "now" is compared in whole seconds
    /// (Kitopay); instances in a fleet may have clocks up to `max_future` apart. So 121 s
    /// after a Kitopay timestamp and 120 s + 1 ns after a KamioKash one with the default
    /// window. A scheme without a timestamp has no window: its signatures verify forever,
    /// and this is 7 days from verification.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{FixedClock, ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp, Verifier};
    /// use std::time::Duration;
    ///
    /// let at = Timestamp::from_unix_secs(1_700_000_000)?;
    /// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
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

    /// The replay claim taken for this delivery, if it was claimed (by the verifier's
    /// guard, or the tower layer's).
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_replay_guard`].
    #[must_use]
    pub fn claim(&self) -> Option<Claim> {
        self.claim
    }

    /// The event id the delivery was claimed under, when it was claimed by one
    /// ([`Identity`](crate::claim::Identity)): Standard Webhooks' `webhook-id`, a Kitopay
    /// webhook's `id/status`, or what your identity function chose.
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::claim`].
    #[must_use]
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// A delivery as if it had been verified, for tests of handlers that take a
    /// [`Verified`] (behind the tower layer, or from [`Verifier::verify`]) without signing
    /// a request. It proves nothing: never build one for a request you received. Its claim
    /// lifetime is computed with the scheme's default window; it has no claim.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, Signature, Timestamp, Verified};
    /// use std::time::Duration;
    ///
    /// let delivery = Verified::dangerous_assume(&kamiokash::WEBHOOK, "primary", Some(Timestamp::UNIX_EPOCH), Signature::from_bytes([1; 32]));
    /// assert_eq!(delivery.key_id(), "primary");
    /// assert!(!delivery.trailing_slash_toggled());
    /// // Held for the 60 s window, one step of RFC 3339 time (1 ns) and 60 s of allowed skew.
    /// assert_eq!(delivery.expires_at().since_epoch(), Duration::new(120, 1));
    /// ```
    #[must_use]
    pub fn dangerous_assume(
        scheme: &'static Scheme,
        key_id: &str,
        timestamp: Option<Timestamp>,
        signature: Signature,
    ) -> Self {
        let expires_at = match (timestamp, scheme.time_format()) {
            (Some(timestamp), Some(format)) => scheme
                .freshness()
                .claim_expiry(timestamp, format.resolution()),
            _ => Timestamp::MAX,
        };
        Verified {
            scheme,
            key_id: KeyId::new(key_id.to_owned()),
            timestamp,
            signature,
            trailing_slash_toggled: false,
            expires_at,
            claim: None,
            event_id: None,
        }
    }

    /// Takes what a guard's [`Admission`] says into the verified delivery; the store's
    /// attachment, if any, is returned.
    pub(crate) fn admit(
        &mut self,
        admission: Admission,
    ) -> Option<Arc<dyn crate::claim::Attachment>> {
        self.claim = admission.claim;
        self.event_id = admission.event_id;
        admission.attachment
    }

    /// The scheme verified.
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn scheme(&self) -> &'static Scheme {
        self.scheme
    }

    /// The id of the key that matched (see [`KeyRing`](crate::KeyRing)).
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn key_id(&self) -> &str {
        self.key_id.as_str()
    }

    /// The sender's timestamp (`None` for a scheme without one).
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[must_use]
    pub fn timestamp(&self) -> Option<Timestamp> {
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

/// Verifies signed requests and webhooks for one [`Scheme`].
///
/// Built with secure defaults: the scheme's [`Freshness`] window (60 s either way for
/// KamioKash and Kitopay, 5 minutes for Standard Webhooks), the [`SystemClock`], no
/// trailing-slash tolerance, no body on `GET`/`HEAD` where the URL meets the body.
/// Verification does not allocate.
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
    scheme: &'static Scheme,
    keys: SharedKeys,
    freshness: Freshness,
    clock: Arc<dyn Clock>,
    /// The sender's identity: signed (Kitopay's merchant id) or only checked (an API key).
    identity: Option<String>,
    /// Webhooks: the public URL the webhook was registered with.
    url: Option<CanonicalUrl>,
    /// The method used when the request does not say (webhooks: `POST`).
    default_method: Option<String>,
    slash_tolerance: bool,
    body_on_get: bool,
    replay: Option<ReplayGuard>,
    /// What the scheme's message covers, looked up once.
    layout: Layout,
}

/// What a scheme's message covers, read off its parts once per verifier.
#[derive(Debug, Clone, Copy)]
struct Layout {
    method: bool,
    url: bool,
    url_meets_body: bool,
}

impl Verifier {
    /// A verifier for `scheme` with `keys` (see [`Scheme::key`] for keys from a scheme's
    /// text form). Configure what the scheme needs: [`Verifier::with_identity`] where it
    /// signs one (Kitopay's merchant id), [`Verifier::with_url`] for webhooks that sign the
    /// URL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidScheme`] if the scheme is not self-consistent ([`Scheme::check`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{standard_webhooks, Verifier};
    ///
    /// let key = standard_webhooks::SCHEME.key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    /// let verifier = Verifier::new(&standard_webhooks::SCHEME, key)?;
    /// assert_eq!(verifier.freshness().max_age.as_secs(), 300);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(scheme: &'static Scheme, keys: impl Into<SharedKeys>) -> Result<Self, Error> {
        scheme.check()?;
        Ok(Self::unchecked(scheme, keys.into()))
    }

    /// For the built-in schemes, which pass [`Scheme::check`] (a unit test says so).
    pub(crate) fn unchecked(scheme: &'static Scheme, keys: SharedKeys) -> Self {
        Verifier {
            scheme,
            keys,
            freshness: scheme.freshness(),
            clock: Arc::new(SystemClock),
            identity: None,
            url: None,
            default_method: scheme.is_webhook().then(|| "POST".to_owned()),
            slash_tolerance: false,
            body_on_get: false,
            replay: None,
            layout: Layout {
                method: scheme.signs_method(),
                url: scheme.signs_url(),
                url_meets_body: scheme.url_meets_body(),
            },
        }
    }

    /// The sender's identity the request must carry in the scheme's identity header (and,
    /// where the scheme signs it, the identity signed): Kitopay's merchant id, KamioKash's
    /// API key. Required for schemes that sign it; optional otherwise (then not checked).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderValue`] if it cannot be a header value;
    /// [`ErrorKind::InvalidScheme`] if the scheme has no identity.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, SecretKey, Verifier};
    ///
    /// let verifier = Verifier::new(&kitopay::FULL, SecretKey::new("s3cret")?)?.with_identity("merchant-1")?;
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
        Ok(self)
    }

    /// Webhooks: the public URL the webhook was registered with, verified instead of any
    /// URL rebuilt from the request (proxies change scheme, host and port).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, CanonicalUrl, SecretKey, Verifier};
    ///
    /// let url = CanonicalUrl::parse("https://shop.example.com/webhooks/kitopay")?;
    /// let verifier = Verifier::new(&kitopay::WEBHOOK, SecretKey::new("s")?)?.with_identity("m-1")?.with_url(url);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_url(mut self, public_url: CanonicalUrl) -> Self {
        self.url = Some(public_url);
        self
    }

    /// Replaces the freshness window. Defaults to the scheme's ([`Scheme::freshness`]).
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
    /// use countersign::{CanonicalUrl, FixedClock, ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp, Verifier};
    ///
    /// let at = Timestamp::from_unix_secs(1_601_234_567)?;
    /// let sent_to = CanonicalUrl::parse("https://shop.example.com/hooks/kitopay")?;
    /// let signer = Signer::kitopay_webhook("m-1", SecretKey::new("s3cret")?)?;
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

    /// Claims every verified delivery with `guard`, so that each delivery (or, by its
    /// identity, each event) is accepted once while its claim is held
    /// ([`ErrorKind::Replayed`], carrying whether the first is still being processed or
    /// done). A guard that cannot decide ([`ErrorKind::ReplayGuardUnavailable`]) fails the
    /// verification (by default: see [`FailurePolicy`](crate::claim::FailurePolicy)). A
    /// webhook's claim route is the path of the URL the verifier is configured with, if any
    /// (never the path a request came with, which its sender chooses). Defaults to no
    /// guard.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::ReplayGuard;
    /// use countersign::{ClaimState, ErrorKind, FixedClock, ReceivedRequest, SecretKey, Timestamp, Verifier};
    ///
    /// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?)
    ///     .with_clock(FixedClock::new(Timestamp::parse_rfc3339("2026-01-27T09:23:30Z")?))
    ///     .with_replay_guard(ReplayGuard::in_memory(100_000));
    /// let body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
    /// let headers = [
    ///     ("X-Timestamp", "2026-01-27T09:23:07.001Z"),
    ///     ("X-Kamio-Signature", "f9a037d0ae66988e198d1bc661bef45514c008ab6cad1d439d2f664515a65942"),
    /// ];
    /// let request = ReceivedRequest::new(&headers, body);
    /// let first = verifier.verify(&request)?;
    /// assert!(first.claim().is_some());
    /// assert_eq!(verifier.verify(&request).unwrap_err().kind(), &ErrorKind::Replayed(ClaimState::InFlight));
    /// verifier.release(&first)?; // processing failed: the retry is accepted
    /// let retry = verifier.verify(&request)?;
    /// verifier.complete(&retry)?;
    /// assert_eq!(verifier.verify(&request).unwrap_err().kind(), &ErrorKind::Replayed(ClaimState::Done));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_replay_guard(mut self, guard: ReplayGuard) -> Self {
        self.replay = Some(guard);
        self
    }

    /// The replay guard, if any (the tower layer takes it over).
    #[cfg(feature = "tower")]
    pub(crate) fn replay_guard(&self) -> Option<&ReplayGuard> {
        self.replay.as_ref()
    }

    /// Releases the replay claim of an accepted message (processing failed), so the
    /// provider's retry is accepted. Does nothing without a claim, or if the claim is no
    /// longer held in flight.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the guard's store fails (the release is
    /// then retried in the background until the claim's lease lapses).
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_replay_guard`].
    pub fn release(&self, verified: &Verified) -> Result<(), Error> {
        match (&self.replay, &verified.claim) {
            (Some(guard), Some(claim)) => guard.release_blocking(claim),
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
            (Some(guard), Some(claim)) => guard.complete_blocking(claim).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Accepts a body on `GET` and `HEAD` requests where the scheme's URL meets the body
    /// (Kitopay full scheme). Defaults to off: with a body on a request whose URL ends in a
    /// query, bytes can move between the end of the query and the start of the body
    /// without changing the signed message (`?amount=1000` + `` verifies as `?amount=10` +
    /// `00`), and GET bodies have no meaning anyway.
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

    /// The method a verifier assumes when the request does not carry one. Defaults to
    /// `POST` for webhook schemes.
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

    /// The scheme verified.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SecretKey, Verifier};
    ///
    /// assert_eq!(Verifier::kamiokash_webhook(SecretKey::new("w")?).scheme(), &kamiokash::WEBHOOK);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn scheme(&self) -> &'static Scheme {
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

    /// The configured public URL (webhooks), if any.
    ///
    /// # Examples
    ///
    /// See [`Verifier::with_url`].
    #[must_use]
    pub fn url(&self) -> Option<&CanonicalUrl> {
        self.url.as_ref()
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
    /// [`ErrorKind::MissingHeader`], [`ErrorKind::DuplicateHeader`],
    /// [`ErrorKind::IdentityMismatch`], [`ErrorKind::MalformedTimestamp`],
    /// [`ErrorKind::Expired`], [`ErrorKind::Future`], [`ErrorKind::MalformedSignature`],
    /// [`ErrorKind::MissingUrl`], [`ErrorKind::InvalidMethod`], [`ErrorKind::BodyNotAllowed`],
    /// [`ErrorKind::MissingField`], [`ErrorKind::InvalidField`], [`ErrorKind::NoKeys`], or
    /// [`ErrorKind::SignatureMismatch`]; with a replay guard, [`ErrorKind::Replayed`] or
    /// [`ErrorKind::ReplayGuardUnavailable`].
    ///
    /// # Examples
    ///
    /// See [`Verifier`].
    #[inline]
    pub fn verify(&self, request: &ReceivedRequest<'_>) -> Result<Verified, Error> {
        let now = self.clock.now();
        let mut verified = self.verify_at(request, now)?;
        if let Some(guard) = &self.replay {
            let admission = guard.claim_blocking(&verified, request, &self.route(), now)?;
            self.admit(guard, &mut verified, admission)?;
        }
        Ok(verified)
    }

    /// [`Verifier::verify`] for async code: the guard's store is awaited, not waited on.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::ReplayGuard;
    /// use countersign::{ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp, Verifier};
    ///
    /// # async fn run() -> Result<(), countersign::Error> {
    /// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec")?)
    ///     .with_replay_guard(ReplayGuard::in_memory(1_000));
    /// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
    /// let signed = signer.sign(&SignableRequest::body(b"{}"), Timestamp::now(&countersign::SystemClock))?;
    /// let headers: Vec<_> = signed.headers().collect();
    /// let verified = verifier.verify_async(&ReceivedRequest::new(&headers, b"{}")).await?;
    /// assert!(verified.claim().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn verify_async(&self, request: &ReceivedRequest<'_>) -> Result<Verified, Error> {
        let now = self.clock.now();
        let mut verified = self.verify_at(request, now)?;
        if let Some(guard) = &self.replay {
            let admission = guard.claim(&verified, request, &self.route(), now).await?;
            self.admit(guard, &mut verified, admission)?;
        }
        Ok(verified)
    }

    /// Records an admission in `verified`. A store that hands the handler something (the
    /// transactional PostgreSQL store's transaction) cannot be used here: dropping it would
    /// drop the claim.
    fn admit(
        &self,
        guard: &ReplayGuard,
        verified: &mut Verified,
        admission: Admission,
    ) -> Result<(), Error> {
        if let Some(attachment) = verified.admit(admission) {
            drop(attachment);
            if let Some(claim) = verified.claim.take() {
                guard.release_detached(&claim);
            }
            return err(ErrorKind::InvalidGuard(
                "this store hands the handler a transaction holding the claim: use it through the tower layer or ReplayGuard::claim, not Verifier::verify",
            ));
        }
        Ok(())
    }

    /// Everything [`Verifier::verify`] checks except the replay claim, against the clock
    /// reading `now` (the tower layer claims with its own guard, asynchronously).
    #[inline]
    pub(crate) fn verify_at(
        &self,
        request: &ReceivedRequest<'_>,
        now: Timestamp,
    ) -> Result<Verified, Error> {
        let scheme = self.scheme;
        let format = scheme.time_format();
        let timestamp_raw = match scheme.timestamp_header() {
            Some(name) => required(request, name)?,
            None => &[],
        };
        let signature_raw = required(request, scheme.signature_header())?;
        if let Some(name) = scheme.identity_header() {
            match &self.identity {
                Some(expected) if required(request, name)? != expected.as_bytes() => {
                    return err(ErrorKind::IdentityMismatch(name));
                }
                Some(_) => {}
                None if scheme.signs_identity() => {
                    return err(ErrorKind::MissingField(
                        scheme.identity_name().unwrap_or("identity"),
                    ));
                }
                None => {}
            }
        }

        let timestamp = match format {
            Some(format) => {
                let timestamp = format.parse_bytes(timestamp_raw)?;
                self.freshness.check(timestamp, format.truncate(now))?;
                Some(timestamp)
            }
            None => None,
        };
        let mut candidates = Candidates::new();
        candidates.read(scheme.signature(), signature_raw)?;

        let mut inputs = Inputs {
            identity: self.identity.as_deref().map(str::as_bytes),
            timestamp: timestamp_raw,
            method: None,
            url: None,
            body: request.body,
            values: [None; MAX_VALUES],
        };
        for (slot, spec) in inputs.values.iter_mut().zip(scheme.values()) {
            *slot = Some(match spec.header_name() {
                Some(name) => required(request, name)?,
                None => match request.value(spec.name()) {
                    Some(value) => value.as_bytes(),
                    None => return err(ErrorKind::MissingField(spec.name())),
                },
            });
        }
        if self.layout.method {
            let method = request
                .method
                .or(self.default_method.as_deref())
                .ok_or(Error::from(ErrorKind::InvalidMethod))?;
            if !is_standard_method(method) {
                return err(ErrorKind::InvalidMethod);
            }
            if self.layout.url_meets_body && !self.body_on_get && !request.body.is_empty() {
                match method {
                    "GET" => return err(ErrorKind::BodyNotAllowed("GET")),
                    "HEAD" => return err(ErrorKind::BodyNotAllowed("HEAD")),
                    _ => {}
                }
            }
            inputs.method = Some(method);
        }
        let url = match self.layout.url {
            true => Some(
                self.url
                    .as_ref()
                    .or(request.url)
                    .ok_or(Error::from(ErrorKind::MissingUrl))?,
            ),
            false => None,
        };
        inputs.url = url.map(|url| [url.as_str(), "", ""]);
        let mut message = Pieces::new();
        message.lay_out(scheme, &inputs)?;
        // The other trailing-slash form, only where tolerated.
        let toggled = match (
            self.slash_tolerance,
            url.and_then(CanonicalUrl::toggled_slash),
        ) {
            (true, Some(pieces)) => {
                inputs.url = Some(pieces);
                let mut toggled = Pieces::new();
                toggled.lay_out(scheme, &inputs)?;
                Some(toggled)
            }
            _ => None,
        };

        let keys = self.keys.read();
        if keys.is_empty() {
            return err(ErrorKind::NoKeys);
        }
        for (key_id, key) in keys.iter() {
            for (message, trailing_slash_toggled) in
                [(Some(&message), false), (toggled.as_ref(), true)]
            {
                let Some(message) = message else { break };
                let mac = message.finish(key.pads().start(), 0);
                if candidates.matches(&mac) {
                    let expires_at = match (timestamp, format) {
                        (Some(timestamp), Some(format)) => {
                            self.freshness.claim_expiry(timestamp, format.resolution())
                        }
                        _ => Timestamp::from_duration(
                            now.since_epoch().saturating_add(NO_WINDOW_RETENTION),
                        )
                        .unwrap_or(Timestamp::MAX),
                    };
                    return Ok(Verified {
                        scheme,
                        key_id: key_id.clone(),
                        timestamp,
                        signature: mac,
                        trailing_slash_toggled,
                        expires_at,
                        claim: None,
                        event_id: None,
                    });
                }
            }
        }
        err(ErrorKind::SignatureMismatch)
    }

    /// The route a plain verifier claims a webhook under: the path of the URL it is
    /// configured with (a Kitopay webhook's: the URL signed, whatever URL the caller
    /// passes), normalised as the tower layer's; empty without one (give each endpoint's
    /// guard a namespace of its own to keep them apart).
    fn route(&self) -> String {
        // The configured URL's path (the URL signed, for a Kitopay webhook), else none:
        // never the URL a request came with, whose path the sender chooses.
        self.url
            .as_ref()
            .map_or_else(String::new, |url| crate::claim::normalized_path(url.path()))
    }

    /// The verifier's clock.
    #[cfg(feature = "tower")]
    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.clock
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
