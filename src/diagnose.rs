//! A debugging tool: which single well-known mistake explains a signature mismatch?
//! (feature `diagnose`)
//!
//! **Never call this on a production verification path.** It computes MACs of many
//! variants of a message and tells which one matches a given signature: that is a
//! signature oracle. It exists for people holding their own secret and a failing request,
//! at a terminal (`countersign diagnose`) or in a test.
//!
//! The hypotheses, each tried alone, where the scheme signs the part concerned: trailing
//! slash added or removed; default port written out; http instead of https (and back); a
//! trailing newline added to or removed from the body; the JSON body pretty-printed,
//! minified, or as Python's default `json.dumps` writes it; the method in another case;
//! whitespace around the secret; a look-alike letter in the secret (a Latin `Y` typed for
//! Kitopay's Cyrillic `У`); another scheme's message layout (the KamioKash webhook order
//! used for a request, and back); the timestamp signed with milliseconds (any three
//! digits, as `Date.now()` gives) where the header has seconds, and the reverse. A
//! hypothesis is reported only if the signature verifies under it.
//!
//! The search is bounded: at most [`WORK_LIMIT`] bytes are MACed per call, cheap
//! hypotheses first, so a large body cannot make it expensive; when the bound stops it,
//! the outcome says so ([`Diagnosis::CutShort`]).
//!
//! # Examples
//!
//! ```
//! use countersign::diagnose::{diagnose, Diagnosis, Hypothesis, Inputs};
//! use countersign::{kitopay, CanonicalUrl};
//!
//! // The sender signed ".../payins" but we expected ".../payins/".
//! let url = CanonicalUrl::parse("https://api.dev.kitopay.com/api/v1/merchants/payins/")?;
//! let inputs = Inputs {
//!     // Kitopay's sample secret; its `У` is Cyrillic (a key is UTF-8 bytes).
//!     secret: "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9",
//!     identity: "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148",
//!     timestamp: "1601234567",
//!     method: "POST",
//!     url: Some(&url),
//!     body: br#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"},"customer":{"id":"1","first_name":"John","last_name":"Doe"}}"#,
//!     signature: "ec8a4f5261b12ca64dbd8acde2f8d380ad63939db937e76156435530da2daa48",
//!     ..Inputs::new(&kitopay::FULL)
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

use crate::error::{Error, ErrorKind};
use crate::key::SecretKey;
use crate::message::{Inputs as Layout, StringToSign};
use crate::scheme::{MAX_VALUES, Scheme, built_in};
use crate::signature::Candidates;
use crate::time::TimeFormat;
use crate::url::CanonicalUrl;

/// The most message bytes one [`diagnose`] call MACs (over all hypotheses): 16 MiB, about
/// 20 ms of hashing. A 1 KiB webhook gets every hypothesis; a 1 MiB body the cheap ones.
pub const WORK_LIMIT: usize = 16 << 20;

/// What the receiver knows: the inputs as it believes they were, and the signature received.
///
/// Fields a scheme does not sign are ignored (leave them at their defaults, from
/// [`Inputs::new`]).
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// The scheme.
    pub scheme: &'static Scheme,
    /// The secret, as text (needed to try whitespace and look-alike variants).
    pub secret: &'a str,
    /// The sender's identity (Kitopay's merchant id), where the scheme signs one.
    pub identity: &'a str,
    /// The timestamp header's raw text.
    pub timestamp: &'a str,
    /// The method.
    pub method: &'a str,
    /// The canonical URL.
    pub url: Option<&'a CanonicalUrl>,
    /// The body bytes.
    pub body: &'a [u8],
    /// The named values, `(name, value)` (Kitopay's `transaction_id`, Standard Webhooks'
    /// `id`).
    pub values: &'a [(&'a str, &'a str)],
    /// The signature header's value, as received.
    pub signature: &'a str,
}

impl Inputs<'_> {
    /// Empty inputs for `scheme`, to fill in with struct update syntax.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub fn new(scheme: &'static Scheme) -> Inputs<'static> {
        Inputs {
            scheme,
            secret: "",
            identity: "",
            timestamp: "",
            method: "",
            url: None,
            body: &[],
            values: &[],
            signature: "",
        }
    }
}

impl fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs")
            .field("scheme", &self.scheme)
            .field("secret", &"[redacted]")
            .field("identity", &self.identity)
            .field("timestamp", &self.timestamp)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("body_len", &self.body.len())
            .field("values", &self.values)
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
/// assert_eq!(Hypothesis::BodyPrettyPrinted.id(), "body_pretty_printed");
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
    /// One side's secret has a look-alike letter typed for another (a Latin `Y` for a
    /// Cyrillic `У`, as in Kitopay's sample secret).
    SecretConfusable,
    /// The sender used another scheme's message layout (e.g. the KamioKash webhook order,
    /// timestamp ‖ body, for a request).
    Layout(&'static Scheme),
}

impl Hypothesis {
    /// A stable snake_case id for logs and machine-readable output; another scheme's
    /// layout is `layout:` + the scheme's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::diagnose::Hypothesis;
    /// use countersign::kamiokash;
    ///
    /// assert_eq!(Hypothesis::TrailingSlashAdded.id(), "trailing_slash_added");
    /// assert_eq!(Hypothesis::Layout(&kamiokash::WEBHOOK).id(), "layout:kamiokash-webhook");
    /// ```
    #[must_use]
    pub fn id(&self) -> String {
        let name = match self {
            Hypothesis::TrailingSlashAdded => "trailing_slash_added",
            Hypothesis::TrailingSlashRemoved => "trailing_slash_removed",
            Hypothesis::DefaultPortAdded => "default_port_added",
            Hypothesis::HttpInsteadOfHttps => "http_instead_of_https",
            Hypothesis::HttpsInsteadOfHttp => "https_instead_of_http",
            Hypothesis::BodyTrailingNewlineAdded => "body_trailing_newline_added",
            Hypothesis::BodyTrailingNewlineRemoved => "body_trailing_newline_removed",
            Hypothesis::BodyPrettyPrinted => "body_pretty_printed",
            Hypothesis::BodyMinified => "body_minified",
            Hypothesis::BodyPythonDumps => "body_python_dumps",
            Hypothesis::MethodLowercase => "method_lowercase",
            Hypothesis::MethodUppercase => "method_uppercase",
            Hypothesis::TimestampMillis => "timestamp_millis",
            Hypothesis::TimestampSeconds => "timestamp_seconds",
            Hypothesis::SecretWhitespace => "secret_whitespace",
            Hypothesis::SecretConfusable => "secret_confusable",
            Hypothesis::Layout(scheme) => return format!("layout:{}", scheme.name()),
        };
        name.to_owned()
    }
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
                "timestamp: the sender signed the time with milliseconds but put it in the header without them; sign the exact text of the header"
            }
            Hypothesis::TimestampSeconds => {
                "timestamp: the sender signed the time in whole seconds but put milliseconds in the header; sign the exact text of the header"
            }
            Hypothesis::SecretWhitespace => {
                "secret: one side's secret has whitespace around it (a newline from a file or env?)"
            }
            Hypothesis::SecretConfusable => {
                "secret: one side's secret has a look-alike letter (e.g. a Latin Y typed for a Cyrillic У): copy the secret from the provider, do not retype it"
            }
            Hypothesis::Layout(scheme) => {
                return write!(
                    f,
                    "message layout: the sender signed the {} message layout ({})",
                    scheme.name(),
                    layout_text(scheme)
                );
            }
        })
    }
}

/// `timestamp ‖ body`: a scheme's layout as text.
fn layout_text(scheme: &Scheme) -> String {
    scheme
        .message()
        .iter()
        .map(|part| match part {
            crate::scheme::Part::Literal(text) => format!("'{text}'"),
            crate::scheme::Part::Identity => {
                scheme.identity_name().unwrap_or("identity").to_owned()
            }
            other => other.name().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ‖ ")
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
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// The signature verifies as is: there is nothing to diagnose.
    Valid,
    /// Exactly this mistake explains the mismatch.
    Explained(Finding),
    /// No single known mistake explains it: check the secret and every input.
    Unexplained,
    /// No hypothesis tried explains it, but the search stopped at [`WORK_LIMIT`] before
    /// trying them all (a large body): `tried` of `total`.
    CutShort {
        /// Hypotheses tried.
        tried: usize,
        /// Hypotheses there were.
        total: usize,
    },
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
    scheme: Option<&'static Scheme>,
}

/// Runs the hypothesis search; see the [module documentation](self).
///
/// The secret is never copied into an unwiped buffer: variants of it (whitespace,
/// look-alikes) are built in zeroizing buffers of exact capacity and keyed at once.
///
/// # Errors
///
/// [`ErrorKind::MalformedSignature`] if the signature header is not in the scheme's form,
/// [`ErrorKind::EmptySecret`] or [`ErrorKind::InvalidSecret`], [`ErrorKind::MissingUrl`]
/// if a URL scheme has no URL, [`ErrorKind::MissingField`] if a value it signs is missing.
///
/// # Examples
///
/// See the [module documentation](self).
pub fn diagnose(inputs: &Inputs<'_>) -> Result<Diagnosis, Error> {
    let scheme = inputs.scheme;
    let mut received = Candidates::new();
    received.read(scheme.signature(), inputs.signature.as_bytes())?;
    let key = scheme.key(inputs.secret)?;
    if scheme.signs_url() && inputs.url.is_none() {
        return Err(ErrorKind::MissingUrl.into());
    }
    let expected = message(inputs, &Variant::default())?;
    if received.matches(&key.sign_bytes(&expected)) {
        return Ok(Diagnosis::Valid);
    }
    let variants = variants(inputs)?;
    let total = variants.len();
    let mut work = 0usize;
    for (tried, (hypothesis, variant)) in variants.into_iter().enumerate() {
        let Ok(signed) = message(inputs, &variant) else {
            continue;
        };
        work = work.saturating_add(signed.len() + 64);
        if work > WORK_LIMIT {
            return Ok(Diagnosis::CutShort { tried, total });
        }
        let variant_key = variant.key.as_deref().unwrap_or(&key);
        if received.matches(&variant_key.sign_bytes(&signed)) {
            return Ok(Diagnosis::Explained(Finding {
                hypothesis,
                expected,
                signed,
            }));
        }
    }
    Ok(Diagnosis::Unexplained)
}

/// The message bytes for a variant (URL given as text: variants need not be canonical),
/// laid out by the one layout function.
fn message(inputs: &Inputs<'_>, v: &Variant) -> Result<Vec<u8>, Error> {
    let scheme = v.scheme.unwrap_or(inputs.scheme);
    let url = match (&v.url, inputs.url) {
        (Some(url), _) => Some(url.as_str()),
        (None, Some(url)) => Some(url.as_str()),
        (None, None) => None,
    };
    let mut values = [None; MAX_VALUES];
    for (slot, spec) in values.iter_mut().zip(scheme.values()) {
        *slot = inputs
            .values
            .iter()
            .find(|(name, _)| *name == spec.name())
            .map(|(_, value)| value.as_bytes());
    }
    let method = v.method.as_deref().unwrap_or(inputs.method);
    let layout = Layout {
        identity: Some(inputs.identity.as_bytes()),
        timestamp: v
            .timestamp
            .as_deref()
            .unwrap_or(inputs.timestamp)
            .as_bytes(),
        method: Some(method),
        url: url.map(|url| [url, "", ""]),
        body: v.body.as_deref().unwrap_or(inputs.body),
        values,
    };
    Ok(StringToSign::layout(scheme, &layout)?.to_bytes())
}

fn variants(inputs: &Inputs<'_>) -> Result<Vec<(Hypothesis, Variant)>, Error> {
    let scheme = inputs.scheme;
    let mut out = Vec::new();
    let mut push = |hypothesis: Hypothesis, variant: Variant| out.push((hypothesis, variant));

    if let (true, Some(url)) = (scheme.signs_url(), inputs.url) {
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

    if scheme.signs_body() {
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

    if scheme.signs_method() {
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
    }

    for (hypothesis, secret) in secret_variants(inputs.secret) {
        if let Ok(key) = scheme.key(&String::from_utf8_lossy(&secret)) {
            push(
                hypothesis,
                Variant {
                    key: Some(Rc::new(key)),
                    ..Variant::default()
                },
            );
        }
    }

    for other in built_in() {
        if *other != scheme && same_inputs(scheme, other) && differs(scheme, other) {
            push(
                Hypothesis::Layout(other),
                Variant {
                    scheme: Some(other),
                    ..Variant::default()
                },
            );
        }
    }

    // Last: the millisecond sweep is 1,000 MACs of the whole message.
    let ts = inputs.timestamp;
    match scheme.time_format() {
        Some(TimeFormat::UnixSecs) if ts.len() >= 13 && ts.bytes().all(|b| b.is_ascii_digit()) => {
            // The header has milliseconds (Date.now()); the sender signed seconds.
            push(
                Hypothesis::TimestampSeconds,
                Variant {
                    timestamp: Some(ts[..ts.len() - 3].to_owned()),
                    ..Variant::default()
                },
            );
        }
        Some(TimeFormat::UnixSecs) if !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()) => {
            // The header has seconds; the sender signed the same instant in milliseconds,
            // whatever its last three digits.
            for ms in 0..1000 {
                push(
                    Hypothesis::TimestampMillis,
                    Variant {
                        timestamp: Some(format!("{ts}{ms:03}")),
                        ..Variant::default()
                    },
                );
            }
        }
        Some(TimeFormat::Rfc3339) => {
            if let Some(stem) = ts.strip_suffix('Z') {
                match stem.split_once('.') {
                    Some((secs, _)) => push(
                        Hypothesis::TimestampSeconds,
                        Variant {
                            timestamp: Some(format!("{secs}Z")),
                            ..Variant::default()
                        },
                    ),
                    None => {
                        for ms in 0..1000 {
                            push(
                                Hypothesis::TimestampMillis,
                                Variant {
                                    timestamp: Some(format!("{stem}.{ms:03}Z")),
                                    ..Variant::default()
                                },
                            );
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Whether `other` signs nothing `scheme` does not give (so its layout can be tried on the
/// same inputs) and reads its timestamp in the same format.
fn same_inputs(scheme: &Scheme, other: &Scheme) -> bool {
    other.time_format() == scheme.time_format()
        && (!other.signs_identity() || scheme.signs_identity())
        && (!other.signs_url() || scheme.signs_url())
        && (!other.signs_method() || scheme.signs_method())
        && (!other.signs_body() || scheme.signs_body())
        && other
            .values()
            .all(|v| scheme.values().any(|w| w.name() == v.name()))
}

/// Whether the two layouts differ (the same layout under another name is no hypothesis).
fn differs(scheme: &Scheme, other: &Scheme) -> bool {
    layout_text(scheme) != layout_text(other)
}

/// Variants of the secret's text, each in a zeroizing buffer of exact capacity: whitespace
/// around it, and each look-alike letter swapped for its twin.
fn secret_variants(secret: &str) -> Vec<(Hypothesis, Zeroizing<Vec<u8>>)> {
    let mut out = Vec::new();
    let trimmed = secret.trim().as_bytes();
    for (before, after) in [("", ""), ("", "\n"), ("", "\r\n"), (" ", ""), ("", " ")] {
        let len = before.len() + trimmed.len() + after.len();
        let mut variant = Zeroizing::new(Vec::with_capacity(len));
        variant.extend_from_slice(before.as_bytes());
        variant.extend_from_slice(trimmed);
        variant.extend_from_slice(after.as_bytes());
        if variant.as_slice() != secret.as_bytes() && !variant.is_empty() {
            out.push((Hypothesis::SecretWhitespace, variant));
        }
    }
    // One look-alike at a time: a secret retyped by hand has one or two, and each is tried
    // alone; then all of them at once.
    let swaps: Vec<(usize, char, char)> = secret
        .char_indices()
        .filter_map(|(at, c)| confusable(c).map(|twin| (at, c, twin)))
        .collect();
    let swap = |chosen: &dyn Fn(usize) -> bool| {
        let len = secret
            .char_indices()
            .map(|(at, c)| match swaps.iter().find(|s| s.0 == at) {
                Some(&(_, _, twin)) if chosen(at) => twin.len_utf8(),
                _ => c.len_utf8(),
            })
            .sum();
        let mut variant = Zeroizing::new(Vec::with_capacity(len));
        for (at, c) in secret.char_indices() {
            let c = match swaps.iter().find(|s| s.0 == at) {
                Some(&(_, _, twin)) if chosen(at) => twin,
                _ => c,
            };
            let mut buf = [0u8; 4];
            variant.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            buf.fill(0);
        }
        variant
    };
    for &(at, _, _) in swaps.iter().take(32) {
        out.push((Hypothesis::SecretConfusable, swap(&|i| i == at)));
    }
    if swaps.len() > 1 {
        out.push((Hypothesis::SecretConfusable, swap(&|_| true)));
    }
    out
}

/// The look-alike twin of a Latin or Cyrillic letter, if it has one.
fn confusable(c: char) -> Option<char> {
    const PAIRS: [(char, char); 22] = [
        ('A', 'А'),
        ('B', 'В'),
        ('C', 'С'),
        ('E', 'Е'),
        ('H', 'Н'),
        ('K', 'К'),
        ('M', 'М'),
        ('O', 'О'),
        ('P', 'Р'),
        ('T', 'Т'),
        ('X', 'Х'),
        ('Y', 'У'),
        ('a', 'а'),
        ('c', 'с'),
        ('e', 'е'),
        ('o', 'о'),
        ('p', 'р'),
        ('x', 'х'),
        ('y', 'у'),
        ('i', 'і'),
        ('j', 'ј'),
        ('s', 'ѕ'),
    ];
    PAIRS.iter().find_map(|&(latin, cyrillic)| {
        if c == latin {
            Some(cyrillic)
        } else if c == cyrillic {
            Some(latin)
        } else {
            None
        }
    })
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
