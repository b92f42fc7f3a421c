//! [`StringToSign`]: the exact message a scheme MACs, kept as its fields.
//!
//! Every scheme's message is a concatenation of fields with no length prefixes. Keeping the
//! fields apart (instead of building one buffer) lets the MAC absorb them in place, with no
//! allocation, and lets tools show where each field starts and ends.
//!
//! # Field-boundary ambiguity
//!
//! The Kitopay schemes and KamioKash webhooks concatenate fields with **no delimiter**, so two
//! different requests can have the same message: merchant id `m1` with timestamp
//! `23456…` signs the same bytes as merchant id `m12` with timestamp `3456…`; a signed
//! `GET …?amount=1000` with an empty body signs the same bytes as `GET …?amount=10` with
//! body `00`. countersign's verifiers close every boundary they can: the merchant id is
//! configured (not read from the request), timestamps are parsed strictly (digits only, a
//! fixed RFC 3339 grammar), only the nine standard upper-case methods are accepted (none is
//! a prefix of another), a body on `GET`/`HEAD` is refused unless allowed, and a received
//! URL must already be canonical. What remains is the boundary between a query string and
//! a body on requests that have both: leading body bytes that are legal in a query can move
//! to its end and back (a JSON body can lose at most its `{`, which then does not parse).
//! The ambiguity is inherent to the providers' formats and is shown in `tests/properties.rs`
//! and `tests/verifier.rs`.

use core::fmt;

use crate::key::SecretKey;
use crate::mac::Mac;
use crate::signature::Signature;

/// Which part of a request a message field holds.
///
/// # Examples
///
/// ```
/// use countersign::FieldName;
///
/// assert_eq!(FieldName::MerchantId.as_str(), "merchant_id");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldName {
    /// The Kitopay merchant id.
    MerchantId,
    /// The timestamp, exactly as sent in the timestamp header.
    Timestamp,
    /// The HTTP method, exactly as sent.
    Method,
    /// The canonical URL with its query.
    Url,
    /// The request or webhook body, byte for byte.
    Body,
    /// The Kitopay transaction id (simplified scheme).
    TransactionId,
    /// The `:` KamioKash puts between body and timestamp.
    Delimiter,
}

impl FieldName {
    /// The field's snake_case name.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::FieldName;
    ///
    /// assert_eq!(FieldName::Body.as_str(), "body");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FieldName::MerchantId => "merchant_id",
            FieldName::Timestamp => "timestamp",
            FieldName::Method => "method",
            FieldName::Url => "url",
            FieldName::Body => "body",
            FieldName::TransactionId => "transaction_id",
            FieldName::Delimiter => "delimiter",
        }
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
/// use countersign::{StringToSign, SecretKey};
///
/// let msg = StringToSign::kamiokash_request(br#"{"wallet_id":"w_123"}"#, "2026-01-27T09:23:06.658Z");
/// assert_eq!(msg.to_string(), r#"{"wallet_id":"w_123"}:2026-01-27T09:23:06.658Z"#);
/// let sig = msg.sign(&SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d")?);
/// assert_eq!(sig.to_string(), "6307031171ff7ce2a46a2535b8b062115c57a045714434b0ec3d047cb5e2f325");
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct StringToSign<'a> {
    fields: [(FieldName, &'a [u8]); 5],
    len: usize,
    /// The URL may be given in up to three pieces (trailing-slash variants); they are
    /// reported as one field.
    url_extra: [&'a [u8]; 2],
}

impl<'a> StringToSign<'a> {
    pub(crate) fn set_url_extra(&mut self, extra: [&'a [u8]; 2]) {
        self.url_extra = extra;
    }

    pub(crate) fn from_fields(fields: &[(FieldName, &'a [u8])]) -> Self {
        let mut out = StringToSign {
            fields: [(FieldName::Body, &[][..]); 5],
            len: fields.len().min(5),
            url_extra: [&[], &[]],
        };
        for (slot, field) in out.fields.iter_mut().zip(fields) {
            *slot = *field;
        }
        out
    }

    /// Kitopay full scheme (requests and webhooks):
    /// `merchant_id || timestamp || method || url || body`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, StringToSign};
    ///
    /// let url = CanonicalUrl::parse("https://api.example.com/x?a=1")?;
    /// let msg = StringToSign::kitopay("m", "1601234567", "GET", &url, b"");
    /// assert_eq!(msg.to_string(), "m1601234567GEThttps://api.example.com/x?a=1");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn kitopay(
        merchant_id: &'a str,
        timestamp: &'a str,
        method: &'a str,
        url: &'a crate::CanonicalUrl,
        body: &'a [u8],
    ) -> Self {
        Self::kitopay_pieces(merchant_id, timestamp, method, [url.as_str(), "", ""], body)
    }

    pub(crate) fn kitopay_pieces(
        merchant_id: &'a str,
        timestamp: &'a str,
        method: &'a str,
        url: [&'a str; 3],
        body: &'a [u8],
    ) -> Self {
        StringToSign {
            fields: [
                (FieldName::MerchantId, merchant_id.as_bytes()),
                (FieldName::Timestamp, timestamp.as_bytes()),
                (FieldName::Method, method.as_bytes()),
                (FieldName::Url, url[0].as_bytes()),
                (FieldName::Body, body),
            ],
            len: 5,
            url_extra: [url[1].as_bytes(), url[2].as_bytes()],
        }
    }

    /// Kitopay simplified scheme: `merchant_id || timestamp || method || transaction_id`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::StringToSign;
    ///
    /// let msg = StringToSign::kitopay_simplified("m", "1601234567", "GET", "tx-1");
    /// assert_eq!(msg.to_string(), "m1601234567GETtx-1");
    /// ```
    #[must_use]
    pub fn kitopay_simplified(
        merchant_id: &'a str,
        timestamp: &'a str,
        method: &'a str,
        transaction_id: &'a str,
    ) -> Self {
        Self::from_fields(&[
            (FieldName::MerchantId, merchant_id.as_bytes()),
            (FieldName::Timestamp, timestamp.as_bytes()),
            (FieldName::Method, method.as_bytes()),
            (FieldName::TransactionId, transaction_id.as_bytes()),
        ])
    }

    /// KamioKash request: `body || ":" || timestamp`. Neither method nor URL is covered.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::StringToSign;
    ///
    /// assert_eq!(StringToSign::kamiokash_request(b"", "T").to_string(), ":T");
    /// ```
    #[must_use]
    pub fn kamiokash_request(body: &'a [u8], timestamp: &'a str) -> Self {
        Self::from_fields(&[
            (FieldName::Body, body),
            (FieldName::Delimiter, b":"),
            (FieldName::Timestamp, timestamp.as_bytes()),
        ])
    }

    /// KamioKash webhook: `timestamp || body`, no delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::StringToSign;
    ///
    /// assert_eq!(StringToSign::kamiokash_webhook("T", b"{}").to_string(), "T{}");
    /// ```
    #[must_use]
    pub fn kamiokash_webhook(timestamp: &'a str, body: &'a [u8]) -> Self {
        Self::from_fields(&[
            (FieldName::Timestamp, timestamp.as_bytes()),
            (FieldName::Body, body),
        ])
    }

    /// The fields in order, each with its bytes. A URL given in pieces is yielded as several
    /// consecutive [`FieldName::Url`] parts.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{FieldName, StringToSign};
    ///
    /// let msg = StringToSign::kamiokash_webhook("T", b"{}");
    /// let names: Vec<_> = msg.parts().map(|(name, _)| name).collect();
    /// assert_eq!(names, [FieldName::Timestamp, FieldName::Body]);
    /// ```
    pub fn parts(&self) -> impl Iterator<Item = (FieldName, &'a [u8])> + '_ {
        self.fields[..self.len]
            .iter()
            .flat_map(move |&(name, bytes)| {
                let extra: &[&'a [u8]] = if name == FieldName::Url {
                    &self.url_extra
                } else {
                    &[]
                };
                core::iter::once((name, bytes)).chain(
                    extra
                        .iter()
                        .filter(|e| !e.is_empty())
                        .map(move |&e| (name, e)),
                )
            })
    }

    /// The message length in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::StringToSign;
    ///
    /// assert_eq!(StringToSign::kamiokash_request(b"ab", "T").len(), 4);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.parts().map(|(_, b)| b.len()).sum()
    }

    /// Whether the message is empty (never, for the built-in schemes).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::StringToSign;
    ///
    /// assert!(!StringToSign::kamiokash_request(b"", "").is_empty());
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
    /// use countersign::StringToSign;
    ///
    /// assert_eq!(StringToSign::kamiokash_webhook("T", b"\xff").to_bytes(), b"T\xff");
    /// ```
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for (_, bytes) in self.parts() {
            out.extend_from_slice(bytes);
        }
        out
    }

    /// HMAC-SHA256 of the message under `key`, absorbing the fields in place.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{SecretKey, StringToSign};
    ///
    /// let key = SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?;
    /// let body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
    /// let sig = StringToSign::kamiokash_webhook("2026-01-27T09:23:07.001Z", body).sign(&key);
    /// assert_eq!(sig.to_string(), "f9a037d0ae66988e198d1bc661bef45514c008ab6cad1d439d2f664515a65942");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn sign(&self, key: &SecretKey) -> Signature {
        self.finish(key.pads().start(), 0)
    }

    /// Absorbs the fields from `skip` on into `mac` and completes it: signers whose first
    /// field is fixed (the Kitopay merchant id) resume from a state that already holds it.
    /// Completes `mac` (which has absorbed the first `skip` fields) over the rest, in one
    /// compression call when the message is short enough (see `Mac::finish_fields`).
    #[inline]
    pub(crate) fn finish(&self, mac: Mac<'_>, skip: usize) -> Signature {
        // At most five fields and the URL's two extra pieces (trailing-slash tolerance).
        let mut pieces: [&[u8]; 7] = [&[]; 7];
        let mut n = 0;
        for &(name, bytes) in self.fields[..self.len].iter().skip(skip) {
            pieces[n] = bytes;
            n += 1;
            if name == FieldName::Url {
                pieces[n] = self.url_extra[0];
                pieces[n + 1] = self.url_extra[1];
                n += 2;
            }
        }
        Signature::from_bytes(mac.finish_fields(&pieces[..n]))
    }
}

impl fmt::Display for StringToSign<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (_, bytes) in self.parts() {
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
