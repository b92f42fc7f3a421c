//! A debugging tool: which single well-known mistake explains a signature mismatch?
//! (feature `diagnose`)
//!
//! **Never call this on a production verification path.** It computes MACs of many
//! variants of a message and tells which one matches a given signature: that is a
//! signature oracle. It exists for people holding their own secret and a failing request,
//! at a terminal (`countersign diagnose`) or in a test.
//!
//! The hypotheses, each tried alone: trailing slash added or removed; default port written
//! out; http instead of https (and back); a trailing newline added to or removed from the
//! body; the JSON body pretty-printed, minified, or as Python's default `json.dumps` writes
//! it; the method in another case; the timestamp signed with milliseconds (any three digits,
//! as `Date.now()` gives) where the header has seconds, and the reverse; whitespace around the secret; the KamioKash
//! webhook message order used for a request (and back). A hypothesis is reported only if the
//! signature verifies under it.
//!
//! # Examples
//!
//! ```
//! use countersign::diagnose::{diagnose, Diagnosis, Hypothesis, Inputs};
//! use countersign::{CanonicalUrl, Scheme};
//!
//! // The sender signed ".../payins" but we expected ".../payins/".
//! let url = CanonicalUrl::parse("https://api.dev.kitopay.com/api/v1/merchants/payins/")?;
//! let inputs = Inputs {
//!     scheme: Scheme::Kitopay,
//!     // Kitopay's sample secret; its `У` is Cyrillic (a key is UTF-8 bytes).
//!     secret: "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9",
//!     merchant_id: "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148",
//!     timestamp: "1601234567",
//!     method: "POST",
//!     url: Some(&url),
//!     body: br#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"},"customer":{"id":"1","first_name":"John","last_name":"Doe"}}"#,
//!     transaction_id: "",
//!     signature: "ec8a4f5261b12ca64dbd8acde2f8d380ad63939db937e76156435530da2daa48",
//! };
//! match diagnose(&inputs)? {
//!     Diagnosis::Explained(finding) => assert_eq!(finding.hypothesis, Hypothesis::TrailingSlashRemoved),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), countersign::Error>(())
//! ```

use core::fmt;
use std::rc::Rc;

use zeroize::Zeroizing;

use crate::error::Error;
use crate::key::SecretKey;
use crate::message::StringToSign;
use crate::scheme::Scheme;
use crate::signature::Signature;
use crate::url::CanonicalUrl;

/// What the receiver knows: the inputs as it believes they were, and the signature received.
///
/// Fields a scheme does not use are ignored (pass `""` / `None`).
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// The scheme.
    pub scheme: Scheme,
    /// The secret, as text (needed to try whitespace variants).
    pub secret: &'a str,
    /// Kitopay merchant id.
    pub merchant_id: &'a str,
    /// The timestamp header's raw text.
    pub timestamp: &'a str,
    /// The method (Kitopay schemes).
    pub method: &'a str,
    /// The canonical URL (Kitopay full schemes).
    pub url: Option<&'a CanonicalUrl>,
    /// The body bytes.
    pub body: &'a [u8],
    /// The transaction id (simplified scheme).
    pub transaction_id: &'a str,
    /// The signature received (hex).
    pub signature: &'a str,
}

impl fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs")
            .field("scheme", &self.scheme)
            .field("secret", &"[redacted]")
            .field("merchant_id", &self.merchant_id)
            .field("timestamp", &self.timestamp)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("body_len", &self.body.len())
            .field("transaction_id", &self.transaction_id)
            .field("signature", &self.signature)
            .finish()
    }
}

/// A well-known mistake.
///
/// # Examples
///
/// ```
/// use countersign::diagnose::Hypothesis;
///
/// assert!(Hypothesis::BodyPrettyPrinted.to_string().contains("pretty"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hypothesis {
    /// The sender's URL had a trailing slash that ours lacks.
    TrailingSlashAdded,
    /// The sender's URL lacked the trailing slash ours has.
    TrailingSlashRemoved,
    /// The sender signed the URL with the default port written out (`:443`, `:80`).
    DefaultPortAdded,
    /// The sender signed `http://` where we have `https://`.
    HttpInsteadOfHttps,
    /// The sender signed `https://` where we have `http://`.
    HttpsInsteadOfHttp,
    /// The sender's body ended with a newline ours lacks.
    BodyTrailingNewlineAdded,
    /// The sender's body lacked the trailing newline ours has.
    BodyTrailingNewlineRemoved,
    /// The sender signed the JSON body pretty-printed (2-space indent).
    BodyPrettyPrinted,
    /// The sender signed the JSON body minified.
    BodyMinified,
    /// The sender signed the JSON body as Python's default `json.dumps` writes it (`", "`
    /// and `": "` separators, non-ASCII as `\uXXXX`).
    BodyPythonDumps,
    /// The sender signed the method in lowercase.
    MethodLowercase,
    /// The sender signed the method in uppercase.
    MethodUppercase,
    /// The sender signed the timestamp in milliseconds (we have seconds).
    TimestampMillis,
    /// The sender signed the timestamp in seconds (we have milliseconds).
    TimestampSeconds,
    /// The sender's secret had whitespace around it (e.g. a newline from a file).
    SecretWhitespace,
    /// The sender used the KamioKash webhook message order (timestamp ‖ body).
    KamioKashWebhookOrder,
    /// The sender used the KamioKash request message order (body ‖ `:` ‖ timestamp).
    KamioKashRequestOrder,
}

impl fmt::Display for Hypothesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hypothesis::TrailingSlashAdded => {
                "trailing slash: the sender signed the URL with a trailing slash; ours has none"
            }
            Hypothesis::TrailingSlashRemoved => {
                "trailing slash: the sender signed the URL without the trailing slash ours has"
            }
            Hypothesis::DefaultPortAdded => {
                "default port: the sender signed the URL with the default port written out; sign the canonical URL"
            }
            Hypothesis::HttpInsteadOfHttps => "scheme: the sender signed http:// where we use https://",
            Hypothesis::HttpsInsteadOfHttp => "scheme: the sender signed https:// where we use http://",
            Hypothesis::BodyTrailingNewlineAdded => {
                "body: the sender signed the body with a trailing newline that was not sent"
            }
            Hypothesis::BodyTrailingNewlineRemoved => {
                "body: the sender signed the body without the trailing newline that was sent"
            }
            Hypothesis::BodyPrettyPrinted => {
                "body: the sender signed pretty-printed JSON but sent other bytes; sign the exact bytes sent"
            }
            Hypothesis::BodyMinified => {
                "body: the sender signed minified JSON but sent other bytes; sign the exact bytes sent"
            }
            Hypothesis::BodyPythonDumps => {
                "body: the sender signed Python's json.dumps output (spaces after , and :) but sent other bytes; sign the exact bytes sent, e.g. serialise once and send that string"
            }
            Hypothesis::MethodLowercase => "method: the sender signed the method in lowercase",
            Hypothesis::MethodUppercase => "method: the sender signed the method in uppercase",
            Hypothesis::TimestampMillis => {
                "timestamp: the sender signed the time with milliseconds but put it in the header without them; sign the exact text of the header (Kitopay: UNIX seconds)"
            }
            Hypothesis::TimestampSeconds => {
                "timestamp: the sender signed the time in whole seconds but put milliseconds in the header; sign the exact text of the header (Kitopay: UNIX seconds)"
            }
            Hypothesis::SecretWhitespace => {
                "secret: one side's secret has whitespace around it (a newline from a file or env?)"
            }
            Hypothesis::KamioKashWebhookOrder => {
                "message order: the sender used the webhook order (timestamp + body) for a request"
            }
            Hypothesis::KamioKashRequestOrder => {
                "message order: the sender used the request order (body + ':' + timestamp) for a webhook"
            }
        })
    }
}

/// A hypothesis under which the signature verifies, with both messages.
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The mistake.
    pub hypothesis: Hypothesis,
    /// The message we expected the sender to sign.
    pub expected: Vec<u8>,
    /// The message the sender evidently signed.
    pub signed: Vec<u8>,
}

/// The outcome of [`diagnose`].
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// The signature verifies as is: there is nothing to diagnose.
    Valid,
    /// Exactly this mistake explains the mismatch.
    Explained(Finding),
    /// No single known mistake explains it: check the secret and every input.
    Unexplained,
}

/// One hypothesis: what differs from the inputs (everything else is as given).
#[derive(Clone, Default)]
struct Variant {
    /// A different secret, already keyed (the text it was keyed from is wiped).
    key: Option<Rc<SecretKey>>,
    timestamp: Option<String>,
    method: Option<String>,
    url: Option<String>,
    body: Option<Rc<[u8]>>,
    scheme: Option<Scheme>,
}

/// Runs the hypothesis search; see the [module documentation](self).
///
/// The secret is never copied into an unwiped buffer: variants of it (whitespace) are built
/// in zeroizing buffers of exact capacity and keyed at once.
///
/// # Errors
///
/// [`crate::ErrorKind::MalformedSignature`] if the signature is not 64 hex characters,
/// [`crate::ErrorKind::EmptySecret`], [`crate::ErrorKind::MissingUrl`] if a URL scheme has
/// no URL.
///
/// # Examples
///
/// See the [module documentation](self).
pub fn diagnose(inputs: &Inputs<'_>) -> Result<Diagnosis, Error> {
    let received = Signature::from_hex(inputs.signature)?;
    let key = SecretKey::new(inputs.secret)?;
    if inputs.scheme.signs_url() && inputs.url.is_none() {
        return Err(crate::ErrorKind::MissingUrl.into());
    }
    let expected = message(inputs, &Variant::default());
    if key.sign_bytes(&expected) == received {
        return Ok(Diagnosis::Valid);
    }
    for (hypothesis, variant) in variants(inputs)? {
        let signed = message(inputs, &variant);
        let variant_key = variant.key.as_deref().unwrap_or(&key);
        if variant_key.sign_bytes(&signed) == received {
            return Ok(Diagnosis::Explained(Finding {
                hypothesis,
                expected,
                signed,
            }));
        }
    }
    Ok(Diagnosis::Unexplained)
}

/// The message bytes for a variant (URL given as text: variants need not be canonical).
fn message(inputs: &Inputs<'_>, v: &Variant) -> Vec<u8> {
    let url = match (&v.url, inputs.url) {
        (Some(url), _) => url.as_str(),
        (None, Some(url)) => url.as_str(),
        (None, None) => "",
    };
    let timestamp = v.timestamp.as_deref().unwrap_or(inputs.timestamp);
    let method = v.method.as_deref().unwrap_or(inputs.method);
    let body = v.body.as_deref().unwrap_or(inputs.body);
    let pieces: StringToSign<'_> = match v.scheme.unwrap_or(inputs.scheme) {
        Scheme::Kitopay | Scheme::KitopayWebhook => {
            StringToSign::kitopay_pieces(inputs.merchant_id, timestamp, method, [url, "", ""], body)
        }
        Scheme::KitopaySimplified => StringToSign::kitopay_simplified(
            inputs.merchant_id,
            timestamp,
            method,
            inputs.transaction_id,
        ),
        Scheme::KamioKash => StringToSign::kamiokash_request(body, timestamp),
        Scheme::KamioKashWebhook => StringToSign::kamiokash_webhook(timestamp, body),
    };
    pieces.to_bytes()
}

fn variants(inputs: &Inputs<'_>) -> Result<Vec<(Hypothesis, Variant)>, Error> {
    let mut out = Vec::new();
    let mut push = |hypothesis: Hypothesis, variant: Variant| out.push((hypothesis, variant));

    if let (true, Some(url)) = (inputs.scheme.signs_url(), inputs.url) {
        if let Some(pieces) = url.toggled_slash() {
            let hypothesis = if url.path().ends_with('/') {
                Hypothesis::TrailingSlashRemoved
            } else {
                Hypothesis::TrailingSlashAdded
            };
            push(
                hypothesis,
                Variant {
                    url: Some(pieces.concat()),
                    ..Variant::default()
                },
            );
        }
        let text = url.as_str();
        let (scheme_len, port) = if text.starts_with("https://") {
            (8, ":443")
        } else {
            (7, ":80")
        };
        let host_end = scheme_len
            + text[scheme_len..]
                .find('/')
                .unwrap_or(text.len() - scheme_len);
        if !text[scheme_len..host_end].contains(':') || text[scheme_len..host_end].ends_with(']') {
            let with_port = format!("{}{}{}", &text[..host_end], port, &text[host_end..]);
            push(
                Hypothesis::DefaultPortAdded,
                Variant {
                    url: Some(with_port),
                    ..Variant::default()
                },
            );
        }
        if let Some(rest) = text.strip_prefix("https://") {
            push(
                Hypothesis::HttpInsteadOfHttps,
                Variant {
                    url: Some(format!("http://{rest}")),
                    ..Variant::default()
                },
            );
        } else if let Some(rest) = text.strip_prefix("http://") {
            push(
                Hypothesis::HttpsInsteadOfHttp,
                Variant {
                    url: Some(format!("https://{rest}")),
                    ..Variant::default()
                },
            );
        }
    }

    if inputs.scheme != Scheme::KitopaySimplified {
        let body = |bytes: Vec<u8>| Variant {
            body: Some(Rc::from(bytes)),
            ..Variant::default()
        };
        let mut with_newline = inputs.body.to_vec();
        with_newline.push(b'\n');
        push(Hypothesis::BodyTrailingNewlineAdded, body(with_newline));
        if let Some(trimmed) = inputs.body.strip_suffix(b"\n") {
            let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed).to_vec();
            push(Hypothesis::BodyTrailingNewlineRemoved, body(trimmed));
        }
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(inputs.body) {
            for (hypothesis, bytes) in [
                (
                    Hypothesis::BodyPrettyPrinted,
                    serde_json::to_vec_pretty(&json).ok(),
                ),
                (Hypothesis::BodyMinified, serde_json::to_vec(&json).ok()),
                (Hypothesis::BodyPythonDumps, python_dumps(&json, true)),
                (Hypothesis::BodyPythonDumps, python_dumps(&json, false)),
            ] {
                if let Some(bytes) = bytes
                    && bytes != inputs.body
                {
                    push(hypothesis, body(bytes));
                }
            }
        }
    }

    if inputs.scheme.is_kitopay() {
        let lower = inputs.method.to_ascii_lowercase();
        let upper = inputs.method.to_ascii_uppercase();
        if lower != inputs.method {
            push(
                Hypothesis::MethodLowercase,
                Variant {
                    method: Some(lower),
                    ..Variant::default()
                },
            );
        }
        if upper != inputs.method {
            push(
                Hypothesis::MethodUppercase,
                Variant {
                    method: Some(upper),
                    ..Variant::default()
                },
            );
        }
        let ts = inputs.timestamp;
        if ts.len() >= 13 && ts.bytes().all(|b| b.is_ascii_digit()) {
            // The header has milliseconds (Date.now()); the sender signed seconds.
            let secs = ts[..ts.len() - 3].to_owned();
            push(
                Hypothesis::TimestampSeconds,
                Variant {
                    timestamp: Some(secs),
                    ..Variant::default()
                },
            );
        } else if !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()) {
            // The header has seconds; the sender signed the same instant in milliseconds,
            // whatever its last three digits.
            for ms in 0..1000 {
                let millis = format!("{ts}{ms:03}");
                push(
                    Hypothesis::TimestampMillis,
                    Variant {
                        timestamp: Some(millis),
                        ..Variant::default()
                    },
                );
            }
        }
    } else if let Some(stem) = inputs.timestamp.strip_suffix('Z') {
        // KamioKash: with and without the milliseconds.
        match stem.split_once('.') {
            Some((secs, _)) => {
                push(
                    Hypothesis::TimestampSeconds,
                    Variant {
                        timestamp: Some(format!("{secs}Z")),
                        ..Variant::default()
                    },
                );
            }
            None => {
                for ms in 0..1000 {
                    let millis = format!("{stem}.{ms:03}Z");
                    push(
                        Hypothesis::TimestampMillis,
                        Variant {
                            timestamp: Some(millis),
                            ..Variant::default()
                        },
                    );
                }
            }
        }
    }

    let trimmed = inputs.secret.trim().as_bytes();
    for (before, after) in [("", ""), ("", "\n"), ("", "\r\n"), (" ", ""), ("", " ")] {
        let len = before.len() + trimmed.len() + after.len();
        let mut secret = Zeroizing::new(Vec::with_capacity(len));
        secret.extend_from_slice(before.as_bytes());
        secret.extend_from_slice(trimmed);
        secret.extend_from_slice(after.as_bytes());
        if secret.as_slice() != inputs.secret.as_bytes() && !secret.is_empty() {
            let key = SecretKey::from_bytes(&secret)?;
            push(
                Hypothesis::SecretWhitespace,
                Variant {
                    key: Some(Rc::new(key)),
                    ..Variant::default()
                },
            );
        }
    }

    match inputs.scheme {
        Scheme::KamioKash => push(
            Hypothesis::KamioKashWebhookOrder,
            Variant {
                scheme: Some(Scheme::KamioKashWebhook),
                ..Variant::default()
            },
        ),
        Scheme::KamioKashWebhook => push(
            Hypothesis::KamioKashRequestOrder,
            Variant {
                scheme: Some(Scheme::KamioKash),
                ..Variant::default()
            },
        ),
        _ => {}
    }
    Ok(out)
}

/// The bytes Python's `json.dumps(value)` writes: `", "` and `": "` separators, and (with
/// `ensure_ascii`, Python's default) every non-ASCII character as a lower-case `\uXXXX`.
fn python_dumps(value: &serde_json::Value, ensure_ascii: bool) -> Option<Vec<u8>> {
    struct Python {
        ensure_ascii: bool,
    }
    impl serde_json::ser::Formatter for Python {
        fn begin_array_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first { Ok(()) } else { w.write_all(b", ") }
        }
        fn begin_object_key<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first { Ok(()) } else { w.write_all(b", ") }
        }
        fn begin_object_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
        ) -> std::io::Result<()> {
            w.write_all(b": ")
        }
        fn write_string_fragment<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            fragment: &str,
        ) -> std::io::Result<()> {
            if !self.ensure_ascii {
                return w.write_all(fragment.as_bytes());
            }
            for c in fragment.chars() {
                if c.is_ascii() {
                    w.write_all(&[c as u8])?;
                } else {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        write!(w, "\\u{unit:04x}")?;
                    }
                }
            }
            Ok(())
        }
    }
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, Python { ensure_ascii });
    serde::Serialize::serialize(value, &mut serializer).ok()?;
    Some(out)
}
