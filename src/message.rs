//! [`StringToSign`]: the exact message a scheme MACs, kept as its fields.
//!
//! Every scheme's message is a concatenation of fields and literal separators with no
//! length prefixes. [`StringToSign::layout`] is the one place a scheme's [`Part`]s are
//! turned into bytes: signers, verifiers, `explain` and `diagnose` all call it. Keeping the
//! fields apart (instead of building one buffer) lets the MAC absorb them in place, with no
//! allocation, and lets tools show where each field starts and ends.
//!
//! # Field-boundary ambiguity
//!
//! The Kitopay schemes and KamioKash webhooks concatenate fields with **no delimiter**, so two
//! different requests could have the same message: merchant id `m1` with timestamp
//! `23456…` signs the same bytes as merchant id `m12` with timestamp `3456…`; a signed
//! `GET …?amount=1000` with an empty body signs the same bytes as `GET …?amount=10` with
//! body `00`. countersign's verifiers close every boundary they can: the identity is
//! configured (not read from the request), timestamps are parsed strictly (digits only, a
//! fixed RFC 3339 grammar), only the nine standard upper-case methods are accepted (none is
//! a prefix of another), named values are checked against their [`Domain`](crate::Domain),
//! a body on `GET`/`HEAD` is refused unless allowed where a URL meets the body, and a
//! received URL must already be canonical. What remains is the boundary between a query
//! string and a body on requests that have both: leading body bytes that are legal in a
//! query can move to its end and back (a JSON body can lose at most its `{`, which then does
//! not parse). The ambiguity is inherent to the providers' formats and is shown in
//! `tests/properties.rs` and `tests/verifier.rs`.

use core::fmt;

use crate::error::{Error, ErrorKind, err};
use crate::key::SecretKey;
use crate::mac::Mac;
use crate::scheme::{MAX_PARTS, MAX_VALUES, Part, Scheme, Value};
use crate::signature::Signature;
use crate::signer::SignableRequest;

/// The most pieces a message has: its parts, with the URL given in up to three pieces (its
/// trailing-slash variants are written without copying).
const MAX_PIECES: usize = MAX_PARTS + 2;

/// Where a message's fields come from: a request being signed, a request received, a
/// diagnosis variant. [`StringToSign::layout`] asks only for the parts the scheme signs.
pub(crate) trait Source<'a> {
    /// The identity, if configured.
    fn identity(&self) -> Option<&'a [u8]>;
    /// The timestamp's text as sent.
    fn timestamp(&self) -> &'a [u8];
    /// The method, if known.
    fn method(&self) -> Option<&'a str>;
    /// The URL in up to three pieces, if known.
    fn url(&self) -> Option<[&'a str; 3]>;
    /// The body.
    fn body(&self) -> &'a [u8];
    /// The named value `spec`, the `index`-th of the scheme's values, if given.
    fn value(&self, index: usize, spec: &Value) -> Option<&'a [u8]>;
}

/// What a message is laid out from, gathered beforehand (the verifier resolves headers and
/// defaults first, each with its own error). Values are in the order of the scheme's
/// [`Part::Value`]s.
#[derive(Clone, Copy, Default)]
pub(crate) struct Inputs<'a> {
    pub(crate) identity: Option<&'a [u8]>,
    pub(crate) timestamp: &'a [u8],
    pub(crate) method: Option<&'a str>,
    pub(crate) url: Option<[&'a str; 3]>,
    pub(crate) body: &'a [u8],
    pub(crate) values: [Option<&'a [u8]>; MAX_VALUES],
}

impl<'a> Source<'a> for Inputs<'a> {
    #[inline(always)]
    fn identity(&self) -> Option<&'a [u8]> {
        self.identity
    }
    #[inline(always)]
    fn timestamp(&self) -> &'a [u8] {
        self.timestamp
    }
    #[inline(always)]
    fn method(&self) -> Option<&'a str> {
        self.method
    }
    #[inline(always)]
    fn url(&self) -> Option<[&'a str; 3]> {
        self.url
    }
    #[inline(always)]
    fn body(&self) -> &'a [u8] {
        self.body
    }
    #[inline(always)]
    fn value(&self, index: usize, _: &Value) -> Option<&'a [u8]> {
        self.values.get(index).copied().flatten()
    }
}

/// The message a scheme signs, as its fields in order.
///
/// Built by the signers and verifiers; build one yourself to see or test exactly what is
/// signed. `Display` writes the message (non-UTF-8 bytes replaced, for reading only);
/// [`StringToSign::to_bytes`] gives the exact bytes.
///
/// # Examples
///
/// ```
/// use countersign::{kamiokash, SecretKey, SignableRequest, StringToSign};
///
/// let request = SignableRequest::body(br#"{"wallet_id":"w_123"}"#);
/// let msg = StringToSign::new(&kamiokash::REQUEST, None, "2026-01-27T09:23:06.658Z", &request)?;
/// assert_eq!(msg.to_string(), r#"{"wallet_id":"w_123"}:2026-01-27T09:23:06.658Z"#);
/// let sig = msg.sign(&SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d")?);
/// assert_eq!(sig.to_string(), "6307031171ff7ce2a46a2535b8b062115c57a045714434b0ec3d047cb5e2f325");
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct StringToSign<'a> {
    scheme: &'static Scheme,
    pieces: Pieces<'a>,
}

/// A message's pieces in order: one per part, the URL in up to three. Filled in place (the
/// hot paths lay a message out into a stack array and hand it to the MAC, with no copy).
#[derive(Clone, Copy)]
pub(crate) struct Pieces<'a> {
    pieces: [&'a [u8]; MAX_PIECES],
    len: usize,
    /// How many pieces the URL took (1 to 3), for naming the pieces.
    url: u8,
}

impl<'a> Pieces<'a> {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Pieces {
            pieces: [&[]; MAX_PIECES],
            len: 0,
            url: 0,
        }
    }

    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[&'a [u8]] {
        self.pieces.get(..self.len).unwrap_or(&[])
    }

    /// Completes `mac`, which has absorbed the first `skip` pieces (signers whose message
    /// starts with fixed parts resume from a state that already holds them), over the rest:
    /// in one compression call when the message is short enough (see `Mac::finish_fields`).
    #[inline(always)]
    pub(crate) fn finish(&self, mac: Mac<'_>, skip: usize) -> Signature {
        Signature::from_bytes(mac.finish_fields(self.as_slice().get(skip..).unwrap_or(&[])))
    }

    /// The index of the first piece of the scheme's `part`-th part.
    pub(crate) fn index_of(&self, scheme: &Scheme, part: usize) -> usize {
        scheme
            .message()
            .iter()
            .take(part)
            .map(|p| match p {
                Part::Url => usize::from(self.url),
                _ => 1,
            })
            .sum()
    }

    #[inline(always)]
    fn push(&mut self, bytes: &'a [u8]) {
        // `Scheme::check` bounds the parts to MAX_PARTS, and only the URL adds two pieces.
        if let Some(slot) = self.pieces.get_mut(self.len) {
            *slot = bytes;
            self.len += 1;
        }
    }

    /// Lays out `scheme`'s message from `src`: the one place a layout becomes bytes. Checks
    /// that every part the scheme signs is there and that every named value is in its
    /// domain.
    #[inline(always)]
    pub(crate) fn lay_out(&mut self, scheme: &Scheme, src: &impl Source<'a>) -> Result<(), Error> {
        self.len = 0;
        let mut value = 0;
        for part in scheme.message() {
            match part {
                Part::Body => self.push(src.body()),
                Part::Timestamp => self.push(src.timestamp()),
                Part::Literal(text) => self.push(text.as_bytes()),
                Part::Identity => match src.identity() {
                    Some(identity) => self.push(identity),
                    None => {
                        return err(ErrorKind::MissingField(
                            scheme.identity_name().unwrap_or("identity"),
                        ));
                    }
                },
                Part::Method => match src.method() {
                    Some(method) => self.push(method.as_bytes()),
                    None => return err(ErrorKind::InvalidMethod),
                },
                Part::Url => match src.url() {
                    Some([url, more, rest]) => {
                        let before = self.len;
                        self.push(url.as_bytes());
                        for piece in [more, rest] {
                            if !piece.is_empty() {
                                self.push(piece.as_bytes());
                            }
                        }
                        self.url = (self.len - before) as u8;
                    }
                    None => return err(ErrorKind::MissingUrl),
                },
                Part::Value(spec) => {
                    let Some(bytes) = src.value(value, spec) else {
                        return err(ErrorKind::MissingField(spec.name()));
                    };
                    spec.check(bytes)?;
                    value += 1;
                    self.push(bytes);
                }
            }
        }
        Ok(())
    }
}

impl<'a> StringToSign<'a> {
    /// The message `scheme` signs for `request`, with `identity` (the merchant id, where the
    /// scheme signs one) and the timestamp's text exactly as sent in its header (ignored by
    /// schemes without one).
    ///
    /// # Errors
    ///
    /// As [`Signer::sign`](crate::Signer::sign): [`ErrorKind::MissingUrl`],
    /// [`ErrorKind::InvalidMethod`], [`ErrorKind::MissingField`] when a part the scheme
    /// signs was not given; [`ErrorKind::InvalidField`] for a value outside its domain.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, CanonicalUrl, SignableRequest, StringToSign};
    ///
    /// let url = CanonicalUrl::parse("https://api.example.com/x?a=1")?;
    /// let request = SignableRequest::new("GET", &url, b"")?;
    /// let msg = StringToSign::new(&kitopay::FULL, Some("m"), "1601234567", &request)?;
    /// assert_eq!(msg.to_string(), "m1601234567GEThttps://api.example.com/x?a=1");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(
        scheme: &'static Scheme,
        identity: Option<&'a str>,
        timestamp: &'a str,
        request: &SignableRequest<'a>,
    ) -> Result<Self, Error> {
        Self::layout(scheme, &request.source(identity, timestamp.as_bytes()))
    }

    /// Lays out `scheme`'s message from `src` (see [`Pieces::lay_out`]).
    pub(crate) fn layout(scheme: &'static Scheme, src: &impl Source<'a>) -> Result<Self, Error> {
        let mut pieces = Pieces::new();
        pieces.lay_out(scheme, src)?;
        Ok(StringToSign { scheme, pieces })
    }

    /// The scheme whose message this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SignableRequest, StringToSign};
    ///
    /// let msg = StringToSign::new(&kamiokash::WEBHOOK, None, "T", &SignableRequest::body(b"{}"))?;
    /// assert_eq!(msg.scheme(), &kamiokash::WEBHOOK);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn scheme(&self) -> &'static Scheme {
        self.scheme
    }

    /// The fields in order, each with its name and bytes: the identity under the scheme's
    /// name for it (`merchant_id`), `timestamp`, `method`, `url`, `body`, each value's name,
    /// and `delimiter` for literals. A URL given in pieces (a trailing-slash variant) is
    /// yielded as several consecutive `url` parts.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SignableRequest, StringToSign};
    ///
    /// let msg = StringToSign::new(&kamiokash::WEBHOOK, None, "T", &SignableRequest::body(b"{}"))?;
    /// let names: Vec<_> = msg.parts().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["timestamp", "body"]);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn parts(&self) -> impl Iterator<Item = (&'static str, &'a [u8])> + '_ {
        let scheme = self.scheme;
        let names = scheme.message().iter().flat_map(move |part| {
            let name = match part {
                Part::Identity => scheme.identity_name().unwrap_or("identity"),
                part => part.name(),
            };
            let count = match part {
                Part::Url => usize::from(self.pieces.url),
                _ => 1,
            };
            core::iter::repeat_n(name, count)
        });
        names.zip(self.pieces.as_slice().iter().copied())
    }

    /// The message length in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SignableRequest, StringToSign};
    ///
    /// let msg = StringToSign::new(&kamiokash::REQUEST, None, "T", &SignableRequest::body(b"ab"))?;
    /// assert_eq!(msg.len(), 4);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.pieces.as_slice().iter().map(|b| b.len()).sum()
    }

    /// Whether the message is empty (possible only for a scheme that signs nothing but an
    /// empty body).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SignableRequest, StringToSign};
    ///
    /// let msg = StringToSign::new(&kamiokash::REQUEST, None, "", &SignableRequest::body(b""))?;
    /// assert!(!msg.is_empty()); // the ':' separator
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The exact message bytes (allocates; signing never calls this).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SignableRequest, StringToSign};
    ///
    /// let msg = StringToSign::new(&kamiokash::WEBHOOK, None, "T", &SignableRequest::body(b"\xff"))?;
    /// assert_eq!(msg.to_bytes(), b"T\xff");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.pieces.as_slice().concat()
    }

    /// HMAC-SHA256 of the message under `key`, absorbing the fields in place.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, SecretKey, SignableRequest, StringToSign};
    ///
    /// let key = SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?;
    /// let body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
    /// let request = SignableRequest::body(body);
    /// let sig = StringToSign::new(&kamiokash::WEBHOOK, None, "2026-01-27T09:23:07.001Z", &request)?.sign(&key);
    /// assert_eq!(sig.to_string(), "f9a037d0ae66988e198d1bc661bef45514c008ab6cad1d439d2f664515a65942");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn sign(&self, key: &SecretKey) -> Signature {
        self.finish(key.pads().start(), 0)
    }

    #[inline]
    fn finish(&self, mac: Mac<'_>, skip: usize) -> Signature {
        self.pieces.finish(mac, skip)
    }
}

impl fmt::Display for StringToSign<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for bytes in self.pieces.as_slice() {
            for chunk in bytes.utf8_chunks() {
                f.write_str(chunk.valid())?;
                if !chunk.invalid().is_empty() {
                    f.write_str("\u{FFFD}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StringToSign<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (name, bytes) in self.parts() {
            list.entry(&(name, String::from_utf8_lossy(bytes)));
        }
        list.finish()
    }
}
