//! [`Scheme`]: a signing scheme as a value, defined in one place.
//!
//! A scheme says everything a signer, a verifier and the debugging tools need to know, and
//! nothing is chosen again elsewhere by a `match` on its name:
//!
//! - its **name** (`kitopay`, `standard-webhooks`, ...), unique among the schemes you use;
//! - its **message**: the ordered [`Part`]s that are concatenated and MACed, each a field
//!   (identity, timestamp, method, URL, body, or a named [`Value`]) or a literal separator;
//! - the **domain** of each field: which bytes it may hold ([`Domain`]), enforced by signers
//!   and verifiers alike, so that no message of one scheme is a message of another that
//!   shares its secret (see [Cross-scheme forgeries](#cross-scheme-forgeries));
//! - its **headers**: the signature header and its encoding ([`SignatureFormat`]: hex or
//!   base64, an optional prefix such as `sha256=` or `v1,`, one signature or a list), the
//!   timestamp header and format (or none), the identity header (or none);
//! - its **secret** ([`SecretSpec`]): how the secret's text becomes the HMAC key (UTF-8
//!   bytes, or `whsec_` + base64), and which schemes share it;
//! - its default **freshness** window, and whether it is a webhook (verified against the URL
//!   the receiver registered, `POST` unless said otherwise).
//!
//! [`Signer`](crate::Signer), [`Verifier`](crate::Verifier), [`StringToSign`](crate::StringToSign),
//! `diagnose`, the tower layer and the CLI are generic over it.
//!
//! # Adding a scheme
//!
//! A scheme is one `static` in one file; nothing in countersign changes:
//!
//! ```
//! use countersign::{Part, Scheme, SecretKey, SecretSpec, SignatureFormat, Signer, SignableRequest, Timestamp};
//!
//! /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body; no timestamp.
//! pub static GITHUB: Scheme = Scheme::new(
//!     "github",
//!     "GitHub webhook (X-Hub-Signature-256 over the body)",
//!     &[Part::Body],
//!     SignatureFormat::hex("X-Hub-Signature-256").with_prefix("sha256="),
//! )
//! .with_secret(SecretSpec::utf8("GITHUB_WEBHOOK_SECRET"))
//! .webhook();
//!
//! let signer = Signer::new(&GITHUB, SecretKey::new("It's a Secret to Everybody")?)?;
//! let signed = signer.sign(&SignableRequest::body(b"Hello, World!"), Timestamp::UNIX_EPOCH)?;
//! assert_eq!(
//!     signed.signature_value(),
//!     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
//! );
//! # Ok::<(), countersign::Error>(())
//! ```
//!
//! The touch points of a new scheme are: its file (the `static`, and convenience
//! constructors if you like), its test vectors, and, for a scheme built into countersign, one
//! line in [`built_in`] (which also puts it in the CLI's `sign`, `verify`, `explain` and
//! `diagnose`). `examples/github_scheme.rs` defines GitHub's scheme outside the crate and
//! serves it behind the tower layer.
//!
//! # Cross-scheme forgeries
//!
//! Two schemes that share a secret ([`SecretSpec::name`]) must never produce the same
//! message: otherwise a signature made for one is valid for the other, and moving it from
//! one header to another forges a request. The built-in schemes sharing a secret are the
//! three Kitopay schemes. Their messages all start with the configured merchant id and the
//! timestamp (ASCII digits, so the timestamp ends where the method starts, at an upper-case
//! letter), then one of the nine standard methods (none a prefix of another). After that:
//!
//! - **`kitopay` vs `kitopay-simplified`** (and `kitopay-webhook` vs
//!   `kitopay-simplified`): the full scheme continues with a URL, which always contains `:`
//!   (after `http` or `https`); a transaction id is drawn from the unreserved characters
//!   `A–Z a–z 0–9 - . _ ~`, which exclude `:`. No full-scheme message is a simplified one.
//! - **`kitopay` vs `kitopay-webhook`**: one layout, by Kitopay's design (its webhooks are
//!   its request scheme over the merchant's URL). What separates them is the URL: a webhook
//!   verifier only accepts the public URL it was configured with, and requests are signed
//!   for Kitopay's API URLs. Do not send requests signed with your Kitopay secret to your
//!   own webhook URL.
//!
//! The KamioKash request and webhook schemes use different secrets (the API secret key and
//! the webhook secret), and Standard Webhooks secrets are issued by other providers: none
//! of these pairs share a secret. `tests/cross_scheme.rs` checks every pair: for schemes
//! sharing a secret, random messages of one are parsed as the other (every split of the
//! bytes into fields within their domains) and no parse exists.

use core::fmt;
use core::time::Duration;

use crate::error::{Error, ErrorKind, err};
use crate::key::SecretKey;
use crate::time::{Freshness, TimeFormat, Timestamp, TimestampText};

/// The most parts a scheme's message may have.
pub const MAX_PARTS: usize = 8;

/// The most named [`Value`]s a scheme's message may have.
pub const MAX_VALUES: usize = 4;

/// The most named [`Value`]s a scheme may send in headers of their own.
pub const MAX_HEADER_VALUES: usize = 2;

/// The most signatures read from one signature header (a list, during key rotation).
pub const MAX_SIGNATURES: usize = 8;

/// The longest signature prefix (`sha256=`, `v1,`).
pub const MAX_PREFIX: usize = 16;

/// A signing scheme: its message layout, headers, secret and freshness, as one value.
///
/// Build one with the `const` constructors, as a `static`; see the [module
/// documentation](self) for a complete example and what each part means. Schemes compare
/// (and hash) by name.
///
/// # Examples
///
/// ```
/// use countersign::kitopay;
///
/// assert_eq!(kitopay::SIMPLIFIED.name(), "kitopay-simplified");
/// assert_eq!(kitopay::SIMPLIFIED.signature_header(), "x-simplified-signature");
/// assert_eq!(kitopay::SIMPLIFIED.timestamp_header(), Some("x-timestamp"));
/// ```
#[derive(Clone, Copy)]
pub struct Scheme {
    name: &'static str,
    about: &'static str,
    message: &'static [Part],
    signature: SignatureFormat,
    timestamp: Option<TimestampSpec>,
    identity: Option<Identity>,
    secret: SecretSpec,
    freshness: Freshness,
    webhook: bool,
    event_id: Option<EventId>,
}

impl Scheme {
    /// A scheme named `name` (lower-case, `-` between words: it is the CLI's subcommand),
    /// described by `about` (one line), whose message is `message` and whose signature
    /// travels as `signature` says. Without more, it has no timestamp, no identity, a UTF-8
    /// secret named after it, the default 60 s freshness, and is a request scheme.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub const fn new(
        name: &'static str,
        about: &'static str,
        message: &'static [Part],
        signature: SignatureFormat,
    ) -> Self {
        Scheme {
            name,
            about,
            message,
            signature,
            timestamp: None,
            identity: None,
            secret: SecretSpec::utf8(""),
            freshness: Freshness::DEFAULT,
            webhook: false,
            event_id: None,
        }
    }

    /// The timestamp: sent in `header`, written in `format`, and signed where the message
    /// has [`Part::Timestamp`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, TimeFormat};
    ///
    /// assert_eq!(kamiokash::WEBHOOK.time_format(), Some(TimeFormat::Rfc3339));
    /// ```
    #[must_use]
    pub const fn with_timestamp(mut self, header: &'static str, format: TimeFormat) -> Self {
        self.timestamp = Some(TimestampSpec { header, format });
        self
    }

    /// The sender's identity (Kitopay's merchant id, KamioKash's API key): sent in `header`,
    /// configured on both sides, and signed where the message has [`Part::Identity`]. `name`
    /// is what it is called (`merchant_id`; the CLI's flag is `--merchant-id`).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::kitopay;
    ///
    /// assert_eq!(kitopay::FULL.identity_header(), Some("x-merchant-id"));
    /// assert_eq!(kitopay::FULL.identity_name(), Some("merchant_id"));
    /// ```
    #[must_use]
    pub const fn with_identity(mut self, header: &'static str, name: &'static str) -> Self {
        self.identity = Some(Identity { header, name });
        self
    }

    /// How the secret's text becomes the key, and which secret it is. Defaults to the UTF-8
    /// bytes of a secret of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::kitopay;
    ///
    /// // The three Kitopay schemes use the merchant's one secret.
    /// assert_eq!(kitopay::FULL.secret().name(), kitopay::SIMPLIFIED.secret().name());
    /// ```
    #[must_use]
    pub const fn with_secret(mut self, secret: SecretSpec) -> Self {
        self.secret = secret;
        self
    }

    /// The default freshness window of its verifiers. Defaults to 60 s either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::standard_webhooks;
    /// use std::time::Duration;
    ///
    /// assert_eq!(standard_webhooks::SCHEME.freshness().max_age, Duration::from_secs(300));
    /// ```
    #[must_use]
    pub const fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = freshness;
        self
    }

    /// Marks it a webhook scheme: its verifiers check the URL they were configured with (the
    /// one the webhook was registered with), never one rebuilt from the request, and assume
    /// `POST` when the request does not say.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::kitopay;
    ///
    /// assert!(kitopay::WEBHOOK.is_webhook());
    /// assert!(!kitopay::FULL.is_webhook());
    /// ```
    #[must_use]
    pub const fn webhook(mut self) -> Self {
        self.webhook = true;
        self
    }

    /// Where its deliveries name the event they carry: the identity a
    /// [`ReplayGuard`](crate::claim::ReplayGuard) claims them under by default, so that
    /// every delivery of one event (copies, and retries signed again) is processed once.
    /// Defaults to none (deliveries are claimed by signature).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, standard_webhooks, EventId};
    ///
    /// assert_eq!(standard_webhooks::SCHEME.event_id_spec(), Some(EventId::Value("id")));
    /// assert_eq!(kitopay::WEBHOOK.event_id_spec(), Some(EventId::JsonFields(&["id", "status"])));
    /// ```
    #[must_use]
    pub const fn with_event_id(mut self, event_id: EventId) -> Self {
        self.event_id = Some(event_id);
        self
    }

    /// The scheme's name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::kamiokash::WEBHOOK.name(), "kamiokash-webhook");
    /// ```
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The scheme's name (as [`Scheme::name`]; `Display` writes it too).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::kamiokash::REQUEST.as_str(), "kamiokash");
    /// ```
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        self.name
    }

    /// One line describing it (the CLI's help).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(countersign::kitopay::SIMPLIFIED.about().contains("transaction id"));
    /// ```
    #[must_use]
    pub const fn about(&self) -> &'static str {
        self.about
    }

    /// The message's parts, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, Part};
    ///
    /// assert!(matches!(kamiokash::WEBHOOK.message(), [Part::Timestamp, Part::Body]));
    /// ```
    #[must_use]
    pub const fn message(&self) -> &'static [Part] {
        self.message
    }

    /// How the signature travels.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{standard_webhooks, Encoding};
    ///
    /// assert_eq!(standard_webhooks::SCHEME.signature().encoding(), Encoding::Base64);
    /// ```
    #[must_use]
    pub const fn signature(&self) -> &SignatureFormat {
        &self.signature
    }

    /// The header carrying the signature.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::kamiokash::REQUEST.signature_header(), "X-Signature");
    /// ```
    #[must_use]
    pub const fn signature_header(&self) -> &'static str {
        self.signature.header
    }

    /// The header carrying the timestamp, if the scheme has one.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::kitopay::FULL.timestamp_header(), Some("x-timestamp"));
    /// ```
    #[must_use]
    pub const fn timestamp_header(&self) -> Option<&'static str> {
        match &self.timestamp {
            Some(spec) => Some(spec.header),
            None => None,
        }
    }

    /// The timestamp's format, if the scheme has a timestamp.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, TimeFormat};
    ///
    /// assert_eq!(kitopay::FULL.time_format(), Some(TimeFormat::UnixSecs));
    /// ```
    #[must_use]
    pub const fn time_format(&self) -> Option<TimeFormat> {
        match &self.timestamp {
            Some(spec) => Some(spec.format),
            None => None,
        }
    }

    /// The header identifying the sender (`x-merchant-id`, `X-API-Key`), if the scheme has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::kamiokash;
    ///
    /// assert_eq!(kamiokash::REQUEST.identity_header(), Some("X-API-Key"));
    /// assert_eq!(kamiokash::WEBHOOK.identity_header(), None);
    /// ```
    #[must_use]
    pub const fn identity_header(&self) -> Option<&'static str> {
        match &self.identity {
            Some(identity) => Some(identity.header),
            None => None,
        }
    }

    /// What the identity is called (`merchant_id`, `api_key`), if the scheme has one.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::kamiokash::REQUEST.identity_name(), Some("api_key"));
    /// ```
    #[must_use]
    pub const fn identity_name(&self) -> Option<&'static str> {
        match &self.identity {
            Some(identity) => Some(identity.name),
            None => None,
        }
    }

    /// The secret: how its text becomes the key, and its name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::kamiokash::WEBHOOK.secret().name(), "KAMIOKASH_WEBHOOK_SECRET");
    /// ```
    #[must_use]
    pub const fn secret(&self) -> &SecretSpec {
        &self.secret
    }

    /// The default freshness window of its verifiers.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// assert_eq!(countersign::kitopay::FULL.freshness().max_age, Duration::from_secs(60));
    /// ```
    #[must_use]
    pub const fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// Whether it is a webhook scheme (see [`Scheme::webhook`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(countersign::standard_webhooks::SCHEME.is_webhook());
    /// ```
    #[must_use]
    pub const fn is_webhook(&self) -> bool {
        self.webhook
    }

    /// Where its deliveries name their event (see [`Scheme::with_event_id`]).
    ///
    /// # Examples
    ///
    /// See [`Scheme::with_event_id`].
    #[must_use]
    pub const fn event_id_spec(&self) -> Option<EventId> {
        self.event_id
    }

    /// The event id a received delivery carries, if the scheme names one and the delivery
    /// has it: a signed value as sent, or the JSON body's fields as text joined with `/`
    /// (strings and numbers only; `None` if one is missing, of another type, or contains
    /// `/`; needs the `serde` feature, implied by `tower`).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, ReceivedRequest};
    ///
    /// let body = br#"{"id":"6956d4fc","reference_id":"order-7","status":"success"}"#;
    /// let no_headers: [(&str, &str); 0] = [];
    /// let request = ReceivedRequest::new(&no_headers, body);
    /// # #[cfg(feature = "serde")]
    /// assert_eq!(kitopay::WEBHOOK.event_id(&request).as_deref(), Some("6956d4fc/success"));
    /// ```
    #[must_use]
    pub fn event_id(&self, request: &crate::verify::ReceivedRequest<'_>) -> Option<String> {
        match self.event_id? {
            EventId::Value(name) => {
                let spec = self.values().find(|v| v.name == name)?;
                let bytes = match spec.header {
                    Some(header) => request.header(header).ok()??,
                    None => request.value(name)?.as_bytes(),
                };
                String::from_utf8(bytes.to_vec()).ok()
            }
            EventId::JsonFields(fields) => json_fields(request.body(), fields),
        }
    }

    /// The named values sent in headers of their own, in order.
    #[inline]
    pub(crate) fn header_values(&self) -> impl Iterator<Item = &'static Value> + '_ {
        self.values().filter(|v| v.header.is_some())
    }

    /// Whether the message has this kind of part.
    const fn has(&self, wanted: PartKind) -> bool {
        let mut i = 0;
        while i < self.message.len() {
            if self.message[i].kind() as u8 == wanted as u8 {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Whether the message covers the URL.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, kitopay};
    ///
    /// assert!(kitopay::FULL.signs_url());
    /// assert!(!kamiokash::REQUEST.signs_url());
    /// ```
    #[must_use]
    pub const fn signs_url(&self) -> bool {
        self.has(PartKind::Url)
    }

    /// Whether the message covers the HTTP method.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(countersign::kitopay::SIMPLIFIED.signs_method());
    /// ```
    #[must_use]
    pub const fn signs_method(&self) -> bool {
        self.has(PartKind::Method)
    }

    /// Whether the message covers the body.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!countersign::kitopay::SIMPLIFIED.signs_body());
    /// ```
    #[must_use]
    pub const fn signs_body(&self) -> bool {
        self.has(PartKind::Body)
    }

    /// Whether the message covers the identity.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, kitopay};
    ///
    /// assert!(kitopay::FULL.signs_identity());
    /// assert!(!kamiokash::REQUEST.signs_identity()); // X-API-Key is sent, not signed
    /// ```
    #[must_use]
    pub const fn signs_identity(&self) -> bool {
        self.has(PartKind::Identity)
    }

    /// The named values of the message, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::standard_webhooks;
    ///
    /// let names: Vec<_> = standard_webhooks::SCHEME.values().map(|v| v.name()).collect();
    /// assert_eq!(names, ["id"]);
    /// ```
    #[inline]
    pub fn values(&self) -> impl Iterator<Item = &'static Value> + '_ {
        self.message.iter().filter_map(|part| match part {
            Part::Value(value) => Some(value),
            _ => None,
        })
    }

    /// Whether a request's URL ends the message just before its body (so bytes could move
    /// between a query and the body: a body on `GET`/`HEAD` is then refused by default).
    pub(crate) fn url_meets_body(&self) -> bool {
        self.message
            .windows(2)
            .any(|w| matches!(w, [Part::Url, Part::Body]))
    }

    /// Parses a timestamp in the scheme's format (see [`crate::Timestamp::parse_unix`] and
    /// [`crate::Timestamp::parse_rfc3339`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`], also when the scheme has no timestamp.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, kitopay};
    ///
    /// assert!(kitopay::FULL.parse_timestamp("1601234567").is_ok());
    /// assert!(kamiokash::REQUEST.parse_timestamp("1601234567").is_err());
    /// ```
    pub fn parse_timestamp(&self, text: &str) -> Result<Timestamp, Error> {
        match self.time_format() {
            Some(format) => format.parse(text),
            None => err(ErrorKind::MalformedTimestamp {
                reason: "this scheme signs no timestamp",
            }),
        }
    }

    /// Writes a timestamp in the scheme's format (`None` if it has no timestamp).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, kitopay, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs(1_601_234_567)?;
    /// assert_eq!(kitopay::FULL.format_timestamp(t).unwrap().as_str(), "1601234567");
    /// assert_eq!(kamiokash::REQUEST.format_timestamp(t).unwrap().as_str(), "2020-09-27T19:22:47.000Z");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn format_timestamp(&self, at: Timestamp) -> Option<TimestampText> {
        self.time_format().map(|format| format.format(at))
    }

    /// The key for `secret` in this scheme's form (see [`SecretSpec`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::EmptySecret`], or [`ErrorKind::InvalidSecret`] when the text is not in
    /// the scheme's form (e.g. not base64 after `whsec_`).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::standard_webhooks;
    ///
    /// assert!(standard_webhooks::SCHEME.key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    /// assert!(standard_webhooks::SCHEME.key("whsec_not base64!").is_err());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn key(&self, secret: &str) -> Result<SecretKey, Error> {
        self.secret.key(secret)
    }

    /// Checks that the scheme is self-consistent: at most [`MAX_PARTS`] parts, each kind of
    /// field at most once (values: unique names, at most [`MAX_VALUES`]), a timestamp header
    /// exactly when the message has a timestamp, an identity when it is signed, a non-empty
    /// name and signature header, literals non-empty, a prefix of at most [`MAX_PREFIX`]
    /// bytes. [`Signer::new`](crate::Signer::new) and [`Verifier::new`](crate::Verifier::new)
    /// run it; the built-in schemes pass it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidScheme`], saying what is wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Part, Scheme, SignatureFormat};
    ///
    /// static BROKEN: Scheme = Scheme::new("broken", "no timestamp header", &[Part::Timestamp, Part::Body], SignatureFormat::hex("x-sig"));
    /// assert_eq!(BROKEN.check().unwrap_err().code(), "invalid_scheme");
    /// assert!(countersign::kitopay::FULL.check().is_ok());
    /// ```
    pub fn check(&self) -> Result<(), Error> {
        let fail = |reason: &'static str| err(ErrorKind::InvalidScheme(reason));
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return fail("the name must be non-empty lower-case ASCII letters, digits and '-'");
        }
        if self.message.is_empty() || self.message.len() > MAX_PARTS {
            return fail("the message must have between 1 and MAX_PARTS parts");
        }
        for kind in [
            PartKind::Identity,
            PartKind::Timestamp,
            PartKind::Method,
            PartKind::Url,
            PartKind::Body,
        ] {
            if self.message.iter().filter(|p| p.kind() == kind).count() > 1 {
                return fail("each of identity, timestamp, method, url and body may appear once");
            }
        }
        if self.values().count() > MAX_VALUES {
            return fail("at most MAX_VALUES named values");
        }
        if self.values().filter(|v| v.header.is_some()).count() > MAX_HEADER_VALUES {
            return fail("at most MAX_HEADER_VALUES named values in headers");
        }
        for (i, value) in self.values().enumerate() {
            if value.name.is_empty() || self.values().take(i).any(|v| v.name == value.name) {
                return fail("value names must be non-empty and unique");
            }
            if value.header.is_some_and(|h| !is_header_name(h)) {
                return fail("a value's header must be a valid header name");
            }
        }
        if self
            .message
            .iter()
            .any(|p| matches!(p, Part::Literal(l) if l.is_empty()))
        {
            return fail("a literal separator must not be empty");
        }
        if self.timestamp.is_some() != self.has(PartKind::Timestamp) {
            return fail("a timestamp header exactly when the message signs the timestamp");
        }
        if self.timestamp.is_some_and(|t| !is_header_name(t.header)) {
            return fail("the timestamp header must be a valid header name");
        }
        if self.has(PartKind::Identity) && self.identity.is_none() {
            return fail("the message signs an identity: give its header (with_identity)");
        }
        if self
            .identity
            .is_some_and(|i| !is_header_name(i.header) || i.name.is_empty())
        {
            return fail("the identity needs a valid header name and a name");
        }
        if !is_header_name(self.signature.header) {
            return fail("the signature header must be a valid header name");
        }
        match self.event_id {
            Some(EventId::Value(name)) if !self.values().any(|v| v.name == name) => {
                return fail("the event id must name one of the message's values");
            }
            Some(EventId::JsonFields(fields)) if fields.is_empty() || !self.has(PartKind::Body) => {
                return fail(
                    "an event id from JSON fields needs at least one field and a signed body",
                );
            }
            _ => {}
        }
        let prefix = self.signature.prefix;
        if prefix.len() > MAX_PREFIX || (!prefix.is_empty() && !is_header_value(prefix)) {
            return fail("the signature prefix must be visible ASCII of at most MAX_PREFIX bytes");
        }
        if self
            .signature
            .separator
            .is_some_and(|s| self.signature.prefix.as_bytes().contains(&s))
        {
            return fail("the signature list separator must not occur in the prefix");
        }
        if self
            .signature
            .separator
            .is_some_and(|s| self.signature.encoding.is_digit(s))
        {
            return fail(
                "the signature list separator must not be a digit of the signature's encoding",
            );
        }
        Ok(())
    }
}

/// Where a scheme's deliveries name the event they carry (see [`Scheme::with_event_id`]).
///
/// # Examples
///
/// ```
/// use countersign::EventId;
///
/// let stripe_like = EventId::JsonFields(&["id"]);
/// assert_ne!(stripe_like, EventId::Value("id"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventId {
    /// A named [`Value`] of the message, which is signed (Standard Webhooks' `id`).
    Value(&'static str),
    /// Top-level fields of the JSON body, which is signed, joined with `/` (a Kitopay
    /// webhook's transaction `id` and `status`: each status change is an event of its own).
    JsonFields(&'static [&'static str]),
}

/// The top-level `fields` of a JSON object body as text, joined with `/`.
#[cfg(feature = "serde")]
fn json_fields(body: &[u8], fields: &[&str]) -> Option<String> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    let mut id = String::new();
    for (i, field) in fields.iter().enumerate() {
        let text = match object.get(*field)? {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Number(number) => number.to_string(),
            _ => return None,
        };
        if text.is_empty() || text.contains('/') {
            return None;
        }
        if i > 0 {
            id.push('/');
        }
        id.push_str(&text);
    }
    Some(id)
}

#[cfg(not(feature = "serde"))]
fn json_fields(_body: &[u8], _fields: &[&str]) -> Option<String> {
    None
}

/// Schemes are equal when their names are.
impl PartialEq for Scheme {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Scheme {}

impl core::hash::Hash for Scheme {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// Honours width and fill, as names in tables do.
///
/// ```
/// use countersign::{kamiokash, kitopay};
///
/// assert_eq!(format!("[{:<20}]", kitopay::FULL), "[kitopay             ]");
/// assert_eq!(format!("[{:>9}]", kamiokash::REQUEST), "[kamiokash]");
/// ```
impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name)
    }
}

/// The name alone (`Scheme(kitopay)`): its definition is in its file.
impl fmt::Debug for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scheme({})", self.name)
    }
}

/// The schemes built into countersign, in a stable order: the registry the CLI's scheme
/// list, flags and help come from.
///
/// # Examples
///
/// ```
/// let names: Vec<_> = countersign::built_in().iter().map(|s| s.name()).collect();
/// assert!(names.contains(&"kitopay"));
/// ```
#[must_use]
pub fn built_in() -> &'static [&'static Scheme] {
    static BUILT_IN: &[&Scheme] = &[
        &crate::kitopay::FULL,
        &crate::kitopay::SIMPLIFIED,
        &crate::kamiokash::REQUEST,
        &crate::kitopay::WEBHOOK,
        &crate::kamiokash::WEBHOOK,
        #[cfg(feature = "standard-webhooks")]
        &crate::standard_webhooks::SCHEME,
    ];
    BUILT_IN
}

impl Scheme {
    /// The built-in scheme named `name` (see [`built_in`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownName`] listing the known names.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, Scheme};
    ///
    /// assert_eq!(Scheme::named("kitopay-simplified")?, &kitopay::SIMPLIFIED);
    /// assert!(Scheme::named("kitopay-v2").is_err());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn named(name: &str) -> Result<&'static Scheme, Error> {
        built_in()
            .iter()
            .copied()
            .find(|scheme| scheme.name == name)
            .ok_or(Error::from(ErrorKind::UnknownName {
                what: "scheme",
                expected: BUILT_IN_NAMES,
            }))
    }
}

/// The names of [`built_in`], for error messages.
#[cfg(feature = "standard-webhooks")]
const BUILT_IN_NAMES: &str =
    "kitopay, kitopay-simplified, kamiokash, kitopay-webhook, kamiokash-webhook, standard-webhooks";
#[cfg(not(feature = "standard-webhooks"))]
const BUILT_IN_NAMES: &str =
    "kitopay, kitopay-simplified, kamiokash, kitopay-webhook, kamiokash-webhook";

/// One part of a scheme's message: a field, or a literal separator.
///
/// Parts are concatenated with nothing between them but the literals the scheme puts there;
/// each field holds only the bytes of its domain.
///
/// # Examples
///
/// ```
/// use countersign::{Part, Domain, Value};
///
/// // Standard Webhooks: id "." timestamp "." body
/// static PARTS: [Part; 5] = [
///     Part::Value(Value::header("id", "webhook-id", Domain::HEADER_VALUE)),
///     Part::Literal("."),
///     Part::Timestamp,
///     Part::Literal("."),
///     Part::Body,
/// ];
/// assert_eq!(PARTS[1].name(), "delimiter");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub enum Part {
    /// The configured identity (e.g. Kitopay's merchant id): a header value.
    Identity,
    /// The timestamp, exactly as sent in the timestamp header (its format's grammar).
    Timestamp,
    /// The HTTP method, one of [`STANDARD_METHODS`].
    Method,
    /// The canonical URL with its query ([`CanonicalUrl`](crate::CanonicalUrl)).
    Url,
    /// The body, byte for byte (any bytes).
    Body,
    /// A named value, in its [`Domain`].
    Value(Value),
    /// A fixed separator.
    Literal(&'static str),
}

/// What kind of part (for the layout checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PartKind {
    Identity,
    Timestamp,
    Method,
    Url,
    Body,
    Value,
    Literal,
}

impl Part {
    pub(crate) const fn kind(&self) -> PartKind {
        match self {
            Part::Identity => PartKind::Identity,
            Part::Timestamp => PartKind::Timestamp,
            Part::Method => PartKind::Method,
            Part::Url => PartKind::Url,
            Part::Body => PartKind::Body,
            Part::Value(_) => PartKind::Value,
            Part::Literal(_) => PartKind::Literal,
        }
    }

    /// The part's name as tools show it: `identity`, `timestamp`, `method`, `url`, `body`,
    /// the value's name, or `delimiter`. (A scheme's identity is shown under its own name,
    /// see [`Scheme::identity_name`].)
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Part;
    ///
    /// assert_eq!(Part::Body.name(), "body");
    /// ```
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Part::Identity => "identity",
            Part::Timestamp => "timestamp",
            Part::Method => "method",
            Part::Url => "url",
            Part::Body => "body",
            Part::Value(value) => value.name,
            Part::Literal(_) => "delimiter",
        }
    }
}

/// A named value the message signs: carried in a header (Standard Webhooks' `webhook-id`),
/// or given by the caller on both sides (Kitopay's transaction id, which is in the URL path).
///
/// # Examples
///
/// ```
/// use countersign::{Domain, Value};
///
/// let id = Value::header("id", "webhook-id", Domain::HEADER_VALUE);
/// assert_eq!(id.header_name(), Some("webhook-id"));
/// let tx = Value::param("transaction_id", Domain::UNRESERVED);
/// assert_eq!(tx.header_name(), None);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Value {
    name: &'static str,
    header: Option<&'static str>,
    domain: Domain,
}

impl Value {
    /// A value sent in `header` by the signer and read from it by the verifier.
    ///
    /// # Examples
    ///
    /// See [`Value`].
    #[must_use]
    pub const fn header(name: &'static str, header: &'static str, domain: Domain) -> Self {
        Value {
            name,
            header: Some(header),
            domain,
        }
    }

    /// A value the caller gives when signing and when verifying; the scheme does not send it.
    ///
    /// # Examples
    ///
    /// See [`Value`].
    #[must_use]
    pub const fn param(name: &'static str, domain: Domain) -> Self {
        Value {
            name,
            header: None,
            domain,
        }
    }

    /// Its name (`id`, `transaction_id`): the CLI's flag is `--` + the name with `-` for `_`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::Value::param("transaction_id", countersign::Domain::UNRESERVED).name(), "transaction_id");
    /// ```
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The header carrying it, if any.
    ///
    /// # Examples
    ///
    /// See [`Value`].
    #[must_use]
    pub const fn header_name(&self) -> Option<&'static str> {
        self.header
    }

    /// The bytes it may hold.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Domain, Value};
    ///
    /// assert!(!Value::param("t", Domain::UNRESERVED).domain().contains(b"a:b"));
    /// ```
    #[must_use]
    pub const fn domain(&self) -> &Domain {
        &self.domain
    }

    /// `Ok` if `bytes` is in its domain.
    #[inline]
    pub(crate) fn check(&self, bytes: &[u8]) -> Result<(), Error> {
        if self.domain.contains(bytes) {
            Ok(())
        } else {
            err(ErrorKind::InvalidField {
                field: self.name,
                expected: self.domain.about,
            })
        }
    }
}

/// The bytes a field may hold: a description and a predicate.
///
/// # Examples
///
/// ```
/// use countersign::Domain;
///
/// fn digits(b: &[u8]) -> bool { !b.is_empty() && b.iter().all(u8::is_ascii_digit) }
/// const DIGITS: Domain = Domain::new("ASCII digits", digits);
/// assert!(DIGITS.contains(b"123"));
/// assert!(!DIGITS.contains(b"12a"));
/// assert_eq!(DIGITS.about(), "ASCII digits");
/// ```
#[derive(Clone, Copy)]
pub struct Domain {
    about: &'static str,
    accepts: fn(&[u8]) -> bool,
}

impl Domain {
    /// A domain described by `about` (it completes "expected ..." in errors) whose members
    /// are the byte strings `accepts` returns `true` for.
    ///
    /// # Examples
    ///
    /// See [`Domain`].
    #[must_use]
    pub const fn new(about: &'static str, accepts: fn(&[u8]) -> bool) -> Self {
        Domain { about, accepts }
    }

    /// Visible ASCII and inner spaces, non-empty, no leading or trailing space: anything
    /// that can be sent as a header value unchanged.
    pub const HEADER_VALUE: Domain = Domain::new(
        "visible ASCII without leading or trailing spaces",
        is_header_value_bytes,
    );

    /// 1 to 128 unreserved URL characters (RFC 3986): `A–Z a–z 0–9 - . _ ~`. Excludes `:`
    /// and `/`, so no URL is a member.
    pub const UNRESERVED: Domain = Domain::new(
        "1 to 128 unreserved characters A-Z a-z 0-9 - . _ ~",
        is_unreserved,
    );

    /// Whether `bytes` is a member.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Domain;
    ///
    /// assert!(Domain::UNRESERVED.contains(b"6956d4fc-d7b7-4514-9759-c699fc029b25"));
    /// assert!(!Domain::UNRESERVED.contains(b"https://shop.example.com/x"));
    /// assert!(!Domain::UNRESERVED.contains(b""));
    /// ```
    #[must_use]
    #[inline]
    pub fn contains(&self, bytes: &[u8]) -> bool {
        (self.accepts)(bytes)
    }

    /// Its description.
    ///
    /// # Examples
    ///
    /// See [`Domain`].
    #[must_use]
    pub const fn about(&self) -> &'static str {
        self.about
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.about)
    }
}

fn is_unreserved(bytes: &[u8]) -> bool {
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn is_header_value_bytes(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter().all(|&c| (0x20..0x7f).contains(&c))
        && b.first() != Some(&b' ')
        && b.last() != Some(&b' ')
}

/// Where a scheme's timestamp travels and how it is written.
#[derive(Debug, Clone, Copy)]
struct TimestampSpec {
    header: &'static str,
    format: TimeFormat,
}

/// Where a scheme's sender identity travels and what it is called.
#[derive(Debug, Clone, Copy)]
struct Identity {
    header: &'static str,
    name: &'static str,
}

/// How a signature is written in its header.
///
/// # Examples
///
/// ```
/// use countersign::{Encoding, SignatureFormat};
///
/// let github = SignatureFormat::hex("X-Hub-Signature-256").with_prefix("sha256=");
/// assert_eq!(github.prefix(), "sha256=");
/// let standard = SignatureFormat::base64("webhook-signature").with_prefix("v1,").with_list(b' ');
/// assert_eq!(standard.separator(), Some(b' '));
/// assert_eq!(standard.encoding(), Encoding::Base64);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SignatureFormat {
    header: &'static str,
    encoding: Encoding,
    prefix: &'static str,
    separator: Option<u8>,
}

/// How the 32 signature bytes are written.
///
/// # Examples
///
/// ```
/// use countersign::{kitopay, Encoding};
///
/// assert_eq!(kitopay::FULL.signature().encoding(), Encoding::Hex);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 64 hex characters: written lower-case, read in either case.
    Hex,
    /// 44 characters of standard base64 with padding (RFC 4648 §4).
    Base64,
}

impl Encoding {
    /// How many characters a signature takes: 64 (hex) or 44 (base64).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Encoding;
    ///
    /// assert_eq!(Encoding::Base64.text_len(), 44);
    /// ```
    #[must_use]
    pub const fn text_len(self) -> usize {
        match self {
            Encoding::Hex => 64,
            Encoding::Base64 => 44,
        }
    }

    /// Whether `byte` can appear in a signature so encoded (a list separator must not).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Encoding;
    ///
    /// assert!(Encoding::Base64.is_digit(b'='));
    /// assert!(!Encoding::Base64.is_digit(b' '));
    /// ```
    #[must_use]
    pub const fn is_digit(self, byte: u8) -> bool {
        match self {
            Encoding::Hex => byte.is_ascii_hexdigit(),
            Encoding::Base64 => byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='),
        }
    }
}

impl SignatureFormat {
    /// Lower-case hex in `header`.
    ///
    /// # Examples
    ///
    /// See [`SignatureFormat`].
    #[must_use]
    pub const fn hex(header: &'static str) -> Self {
        SignatureFormat {
            header,
            encoding: Encoding::Hex,
            prefix: "",
            separator: None,
        }
    }

    /// Standard base64 in `header`.
    ///
    /// # Examples
    ///
    /// See [`SignatureFormat`].
    #[must_use]
    pub const fn base64(header: &'static str) -> Self {
        SignatureFormat {
            header,
            encoding: Encoding::Base64,
            prefix: "",
            separator: None,
        }
    }

    /// Written after `prefix` (`sha256=`, `v1,`); when reading, a signature without it is
    /// malformed (or, in a list, ignored: another version).
    ///
    /// # Examples
    ///
    /// See [`SignatureFormat`].
    #[must_use]
    pub const fn with_prefix(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    /// The header holds a list of signatures separated by `separator`, any of which may
    /// verify (several keys during a rotation). At most [`MAX_SIGNATURES`] with the prefix
    /// are read.
    ///
    /// # Examples
    ///
    /// See [`SignatureFormat`].
    #[must_use]
    pub const fn with_list(mut self, separator: u8) -> Self {
        self.separator = Some(separator);
        self
    }

    /// The header's name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::kitopay::FULL.signature().header(), "x-signature");
    /// ```
    #[must_use]
    pub const fn header(&self) -> &'static str {
        self.header
    }

    /// The encoding.
    ///
    /// # Examples
    ///
    /// See [`SignatureFormat`].
    #[must_use]
    pub const fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The prefix (empty for none).
    ///
    /// # Examples
    ///
    /// See [`SignatureFormat`].
    #[must_use]
    pub const fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The list separator, if the header holds a list.
    ///
    /// # Examples
    ///
    /// See [`SignatureFormat`].
    #[must_use]
    pub const fn separator(&self) -> Option<u8> {
        self.separator
    }
}

/// How a scheme's secret text becomes its HMAC key, and which secret it is.
///
/// Schemes whose secrets have the same [`name`](SecretSpec::name) use the same secret (the
/// three Kitopay schemes); the name is also the environment variable the CLI and examples
/// read it from by default.
///
/// # Examples
///
/// ```
/// use countersign::{KeyForm, SecretSpec};
///
/// let spec = SecretSpec::base64("STANDARD_WEBHOOKS_SECRET", "whsec_");
/// assert_eq!(spec.form(), KeyForm::Base64 { prefix: "whsec_" });
/// assert!(spec.key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SecretSpec {
    name: &'static str,
    form: KeyForm,
}

/// The text form of a secret.
///
/// # Examples
///
/// See [`SecretSpec`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// The key is the UTF-8 bytes of the text, as issued, with no trimming.
    Utf8,
    /// The key is the standard base64 (padding optional) after `prefix`; the prefix may be
    /// left out, as the providers' own libraries allow.
    Base64 {
        /// The prefix (`whsec_`).
        prefix: &'static str,
    },
}

impl SecretSpec {
    /// A secret used as its UTF-8 bytes, named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(countersign::SecretSpec::utf8("KITOPAY_SECRET").name(), "KITOPAY_SECRET");
    /// ```
    #[must_use]
    pub const fn utf8(name: &'static str) -> Self {
        SecretSpec {
            name,
            form: KeyForm::Utf8,
        }
    }

    /// A secret written as `prefix` + base64, named `name`.
    ///
    /// # Examples
    ///
    /// See [`SecretSpec`].
    #[must_use]
    pub const fn base64(name: &'static str, prefix: &'static str) -> Self {
        SecretSpec {
            name,
            form: KeyForm::Base64 { prefix },
        }
    }

    /// The secret's name.
    ///
    /// # Examples
    ///
    /// See [`SecretSpec::utf8`].
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Its text form.
    ///
    /// # Examples
    ///
    /// See [`SecretSpec`].
    #[must_use]
    pub const fn form(&self) -> KeyForm {
        self.form
    }

    /// The key for the secret's text. Decoded bytes are wiped after keying.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::EmptySecret`] for an empty secret (or one whose key is empty);
    /// [`ErrorKind::InvalidSecret`] when a base64 secret does not decode (the text is never
    /// part of the error).
    ///
    /// # Examples
    ///
    /// See [`SecretSpec`].
    pub fn key(&self, secret: &str) -> Result<SecretKey, Error> {
        match self.form {
            KeyForm::Utf8 => SecretKey::new(secret),
            KeyForm::Base64 { prefix } => {
                use base64::Engine as _;
                let text = secret.strip_prefix(prefix).unwrap_or(secret);
                if text.is_empty() {
                    return err(ErrorKind::EmptySecret);
                }
                // Any length, as the reference implementations take (a key longer than a
                // block is hashed by the key schedule). Decoded into a buffer sized for the
                // longest result up front (never reallocated: a reallocation would free a
                // copy unwiped), wiped on drop, on success and on error.
                let engine = base64::engine::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::GeneralPurposeConfig::new()
                        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
                );
                let mut decoded =
                    zeroize::Zeroizing::new(vec![0u8; base64::decoded_len_estimate(text.len())]);
                match engine.decode_slice(text.as_bytes(), &mut decoded[..]) {
                    Ok(len) => SecretKey::from_bytes(decoded.get(..len).unwrap_or_default()),
                    Err(_) => err(ErrorKind::InvalidSecret(
                        "expected the provider's secret: `whsec_` followed by standard base64",
                    )),
                }
            }
        }
    }
}

/// The methods countersign signs and verifies: RFC 9110's standard methods and PATCH,
/// upper-case, as they go on the wire.
pub const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Whether `method` is one of [`STANDARD_METHODS`]. No standard method is a prefix of
/// another, so with this rule no byte can move between the method and the next field of a
/// message without the result being refused.
pub(crate) fn is_standard_method(method: &str) -> bool {
    STANDARD_METHODS.contains(&method)
}

/// Whether `value` can be sent as a header value unchanged: visible ASCII and inner spaces,
/// non-empty, no leading or trailing whitespace.
pub(crate) fn is_header_value(value: &str) -> bool {
    is_header_value_bytes(value.as_bytes())
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// The claim retention for schemes without a timestamp (no window bounds a claim by
/// signature): 7 days.
pub(crate) const NO_WINDOW_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_built_in_scheme_is_consistent_and_named_uniquely() {
        for (i, scheme) in built_in().iter().enumerate() {
            scheme.check().unwrap();
            assert_eq!(Scheme::named(scheme.name()).unwrap(), *scheme);
            assert!(built_in()[..i].iter().all(|s| s.name() != scheme.name()));
            assert!(BUILT_IN_NAMES.contains(scheme.name()));
        }
        assert_eq!(BUILT_IN_NAMES.split(", ").count(), built_in().len());
    }

    #[test]
    fn a_list_separator_may_be_neither_in_the_prefix_nor_a_digit_of_the_encoding() {
        static BODY: &[Part] = &[Part::Body];
        let with = |format: SignatureFormat| Scheme::new("listed", "a list", BODY, format).check();
        assert!(
            with(
                SignatureFormat::base64("sig")
                    .with_prefix("v1,")
                    .with_list(b' ')
            )
            .is_ok()
        );
        assert!(with(SignatureFormat::hex("sig").with_list(b'g')).is_ok());
        for bad in [
            SignatureFormat::base64("sig")
                .with_prefix("v1,")
                .with_list(b','),
            SignatureFormat::base64("sig").with_list(b'='),
            SignatureFormat::base64("sig").with_list(b'+'),
            SignatureFormat::base64("sig").with_list(b'z'),
            SignatureFormat::hex("sig").with_list(b'f'),
            SignatureFormat::hex("sig").with_list(b'F'),
            SignatureFormat::hex("sig").with_list(b'0'),
        ] {
            assert_eq!(with(bad).unwrap_err().code(), "invalid_scheme", "{bad:?}");
        }
        for byte in 0..=255u8 {
            let digit = byte.is_ascii_alphanumeric() || b"+/=".contains(&byte);
            assert_eq!(Encoding::Base64.is_digit(byte), digit, "{byte}");
            assert_eq!(
                Encoding::Hex.is_digit(byte),
                byte.is_ascii_hexdigit(),
                "{byte}"
            );
        }
    }

    #[test]
    fn unreserved_domain_edges() {
        assert!(is_unreserved(&[b'a'; 128]));
        assert!(!is_unreserved(&[b'a'; 129]));
        assert!(is_unreserved(b"~"));
        assert!(!is_unreserved(b""));
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            assert_eq!(is_unreserved(&[b]), expected, "{b}");
        }
    }
}
