//! The one error type, and its kinds grouped by failure class.

use core::fmt;
use core::time::Duration;

use crate::claim::state::ClaimState;

/// Every failure countersign reports.
///
/// Match on [`Error::kind`] to tell failure classes apart; the message (`Display`) is lowercase
/// and says what to fix. `Debug` shows the kind and the message, so `fn main() -> Result<(),
/// Box<dyn Error>>` prints the fix too. No error ever contains secret bytes, and a signature
/// mismatch carries no detail that would help an attacker.
///
/// # Examples
///
/// ```
/// use countersign::{CanonicalUrl, ErrorKind, SecretKey, UrlRule};
///
/// let err = CanonicalUrl::parse("ftp://example.com/").unwrap_err();
/// assert_eq!(err.kind(), &ErrorKind::InvalidUrl(UrlRule::Scheme));
/// assert!(err.to_string().contains("http or https"));
///
/// let err = SecretKey::new("").unwrap_err();
/// assert_eq!(
///     format!("{err:?}"),
///     r#"Error { kind: EmptySecret, message: "the secret is empty: check where it is loaded from (environment variable, file)" }"#
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
}

impl Error {
    /// The failure class.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Error, ErrorKind};
    ///
    /// let err = Error::from(ErrorKind::SignatureMismatch);
    /// assert_eq!(err.kind(), &ErrorKind::SignatureMismatch);
    /// ```
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Consumes the error, returning its kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Error, ErrorKind};
    ///
    /// let kind = Error::from(ErrorKind::InvalidMethod).into_kind();
    /// assert_eq!(kind, ErrorKind::InvalidMethod);
    /// ```
    #[must_use]
    pub fn into_kind(self) -> ErrorKind {
        self.kind
    }

    /// A short, stable snake_case name for the kind, for logs and machine-readable output
    /// (`signature_mismatch`, `expired`, `future`, `malformed_timestamp`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Error, ErrorKind};
    ///
    /// assert_eq!(Error::from(ErrorKind::SignatureMismatch).code(), "signature_mismatch");
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.kind.to_string())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for Error {}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error { kind }
    }
}

/// The class of a failure. New kinds may be added in minor releases.
///
/// # Examples
///
/// ```
/// use countersign::{ErrorKind, Timestamp, Freshness};
/// use std::time::Duration;
///
/// let now = Timestamp::from_unix_secs(1_601_234_567).unwrap();
/// let old = Timestamp::from_unix_secs(1_601_234_500).unwrap();
/// let err = Freshness::default().check(old, now).unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::Expired { age, .. } if *age == Duration::from_secs(67)));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The timestamp does not parse in the provider's format, or is out of range.
    #[error("malformed timestamp: {reason}")]
    MalformedTimestamp {
        /// What is wrong and what the format should be.
        reason: &'static str,
    },
    /// The timestamp is older than the freshness window allows. The message says both
    /// durations in human units (`307 days old`, `more than the 60 seconds allowed`).
    #[error(
        "timestamp expired: it is {} old, more than the {} allowed; check the sender's clock (NTP) and sign at send time",
        Human(*.age),
        Human(*.max_age)
    )]
    Expired {
        /// How old the timestamp was.
        age: Duration,
        /// The window it exceeded.
        max_age: Duration,
    },
    /// The timestamp is further in the future than the freshness window allows. The
    /// message says both durations in human units (`40 seconds in the future`).
    #[error(
        "timestamp is {} in the future, more than the {} allowed; check the sender's clock (NTP)",
        Human(*.ahead),
        Human(*.max_future)
    )]
    Future {
        /// How far ahead the timestamp was.
        ahead: Duration,
        /// The window it exceeded.
        max_future: Duration,
    },
    /// The signature is well-formed but is not the MAC of the message with any configured key.
    #[error(
        "signature mismatch: the bytes signed differ from the bytes received (check the secret, the exact URL incl. trailing slash, and the exact body bytes)"
    )]
    SignatureMismatch,
    /// The signature header is not 64 hex characters.
    #[error("malformed signature: {reason}")]
    MalformedSignature {
        /// What is wrong.
        reason: &'static str,
    },
    /// A header the scheme reads appears more than once; a verifier never picks one.
    #[error(
        "header `{0}` appears more than once: a signed request carries it exactly once (check proxies and clients that append headers)"
    )]
    DuplicateHeader(&'static str),
    /// A `GET` or `HEAD` request carries a body, which a verifier refuses unless allowed.
    #[error(
        "a {0} request carries a body: send none (the signature would let its bytes move into the URL), or allow it with Verifier::with_body_on_get"
    )]
    BodyNotAllowed(&'static str),
    /// A required header is absent.
    #[error("missing header `{0}`: the sender must set it")]
    MissingHeader(&'static str),
    /// A value that must go into a header is not a valid header value.
    #[error(
        "invalid value for header `{0}`: use visible ASCII without leading or trailing whitespace"
    )]
    InvalidHeaderValue(&'static str),
    /// A header identifying the sender (merchant id, API key) does not match the configuration.
    #[error("header `{0}` does not match the configured value: check which account sent this")]
    IdentityMismatch(&'static str),
    /// The URL breaks one of the canonical-URL rules.
    #[error("invalid url: {0}")]
    InvalidUrl(UrlRule),
    /// The request has no URL, but the scheme signs one.
    #[error(
        "this scheme signs the request URL, but none was given: pass the canonical URL (or configure the public webhook URL)"
    )]
    MissingUrl,
    /// The HTTP method is not one of the standard upper-case methods (GET, HEAD, POST, PUT,
    /// DELETE, CONNECT, OPTIONS, TRACE, PATCH).
    #[error(
        "invalid method: use a standard upper-case HTTP method (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)"
    )]
    InvalidMethod,
    /// The scheme signs a field (a named value such as Kitopay's `transaction_id` or
    /// Standard Webhooks' `id`, or the sender's identity) and none was given.
    #[error(
        "this scheme signs `{0}`, but none was given: add it to the request (or, for an identity, configure it)"
    )]
    MissingField(&'static str),
    /// A field's value is outside its domain (see [`Domain`](crate::Domain)): refused
    /// rather than signed or verified, so no message of one scheme can pass as another's.
    #[error("invalid `{field}`: expected {expected}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// Its domain's description.
        expected: &'static str,
    },
    /// A [`Scheme`](crate::Scheme) is not self-consistent (see
    /// [`Scheme::check`](crate::Scheme::check)).
    #[error("invalid scheme definition: {0}")]
    InvalidScheme(&'static str),
    /// A secret's text is not in its scheme's form (e.g. not base64 after `whsec_`). The
    /// text itself is never part of the error.
    #[error("invalid secret: {0}")]
    InvalidSecret(&'static str),
    /// The secret is empty.
    #[error("the secret is empty: check where it is loaded from (environment variable, file)")]
    EmptySecret,
    /// A verifier was built without any key.
    #[error("no verification key configured: add at least one secret")]
    NoKeys,
    /// The request body is a stream that cannot be read before sending, so it cannot be
    /// signed (it is never sent unsigned).
    #[error(
        "the request body is a stream and cannot be signed: send the body as bytes, or sign it with a BodySigner"
    )]
    UnbufferedBody,
    /// A name (scheme, policy) that is not one of the known ones.
    #[error("unknown {what}: expected one of {expected}")]
    UnknownName {
        /// What was being named.
        what: &'static str,
        /// The accepted names.
        expected: &'static str,
    },
    /// The same delivery (or, claimed by event id, another delivery of the same event) was
    /// already accepted and its claim is still held: in flight (being processed: retry
    /// later) or done (processed: acknowledge the duplicate, do not process it again).
    #[error("{}", replayed_message(*.0))]
    Replayed(ClaimState),
    /// The replay guard could not be reached or failed; the message was not accepted.
    #[error("replay guard unavailable: {0}")]
    ReplayGuardUnavailable(String),
    /// A request body is larger than the receiver reads (declared in `Content-Length`, or
    /// counted while reading).
    #[error(
        "the body is over the {} limit{}: send a smaller body, or raise the receiver's limit",
        Size(*.limit),
        Declared(*.declared)
    )]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
        /// The length the request declared, if it declared one over the limit.
        declared: Option<u64>,
    },
    /// A request body did not arrive in full within the receiver's deadline (a stalled
    /// upload, or a `Content-Length` longer than the body sent).
    #[error(
        "the body did not arrive in full within {}: send it at once, with a correct Content-Length",
        Human(*.timeout)
    )]
    BodyTimeout {
        /// The deadline, counted from the request's arrival.
        timeout: Duration,
    },
    /// A request body could not be read (the connection failed, or the body was malformed).
    #[error("the body could not be read: {0}")]
    BodyUnreadable(String),
    /// A replay guard was configured so that it could not keep its promise (a shared store
    /// without a namespace).
    #[error("invalid replay guard: {0}")]
    InvalidGuard(&'static str),
}

impl ErrorKind {
    /// See [`Error::code`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::ErrorKind;
    ///
    /// assert_eq!(ErrorKind::MissingHeader("x-signature").code(), "missing_header");
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::MalformedTimestamp { .. } => "malformed_timestamp",
            ErrorKind::Expired { .. } => "expired",
            ErrorKind::Future { .. } => "future",
            ErrorKind::SignatureMismatch => "signature_mismatch",
            ErrorKind::MalformedSignature { .. } => "malformed_signature",
            ErrorKind::DuplicateHeader(_) => "duplicate_header",
            ErrorKind::BodyNotAllowed(_) => "body_not_allowed",
            ErrorKind::MissingHeader(_) => "missing_header",
            ErrorKind::InvalidHeaderValue(_) => "invalid_header_value",
            ErrorKind::IdentityMismatch(_) => "identity_mismatch",
            ErrorKind::InvalidUrl(_) => "invalid_url",
            ErrorKind::MissingUrl => "missing_url",
            ErrorKind::InvalidMethod => "invalid_method",
            ErrorKind::MissingField(_) => "missing_field",
            ErrorKind::InvalidField { .. } => "invalid_field",
            ErrorKind::InvalidScheme(_) => "invalid_scheme",
            ErrorKind::InvalidSecret(_) => "invalid_secret",
            ErrorKind::EmptySecret => "empty_secret",
            ErrorKind::NoKeys => "no_keys",
            ErrorKind::UnbufferedBody => "unbuffered_body",
            ErrorKind::UnknownName { .. } => "unknown_name",
            ErrorKind::Replayed(_) => "replayed",
            ErrorKind::ReplayGuardUnavailable(_) => "replay_guard_unavailable",
            ErrorKind::BodyTooLarge { .. } => "body_too_large",
            ErrorKind::BodyTimeout { .. } => "body_timeout",
            ErrorKind::BodyUnreadable(_) => "body_unreadable",
            ErrorKind::InvalidGuard(_) => "invalid_guard",
        }
    }
}

/// Which canonical-URL rule a URL broke.
///
/// # Examples
///
/// ```
/// use countersign::{CanonicalUrl, ErrorKind, UrlRule};
///
/// let err = CanonicalUrl::parse("https://user:pw@example.com/").unwrap_err();
/// assert_eq!(err.kind(), &ErrorKind::InvalidUrl(UrlRule::Credentials));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlRule {
    /// The text does not parse as a URL at all.
    #[error("does not parse as a URL; give an absolute URL such as https://api.example.com/path")]
    Syntax,
    /// The URL is relative (no scheme).
    #[error("relative URL; give an absolute URL with scheme and host")]
    Relative,
    /// The scheme is neither `http` nor `https`.
    #[error("the scheme must be http or https")]
    Scheme,
    /// The URL carries a user name or password.
    #[error(
        "the URL contains credentials (user:password@); remove them, they would be signed and sent"
    )]
    Credentials,
    /// A received URL is not in canonical form (`..` or `%2e` segments, a default port, an
    /// upper-case host, an empty `?`): it is refused rather than verified as something else.
    #[error(
        "the URL received is not in canonical form (dot segments, default port, upper-case host, empty query): it must arrive exactly as it was signed"
    )]
    NotCanonical,
    /// The `Host` header (or request authority) is not a plain `host[:port]`.
    #[error("the Host header must be a plain host[:port], without / ? # or @")]
    Host,
}

/// A duration in the unit a person would use: `250 milliseconds`, `40 seconds`,
/// `60.5 seconds`, `2 minutes`, `5 hours`, `307 days` (whole units, rounded down, past two
/// of them).
struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn plural(f: &mut fmt::Formatter<'_>, n: u64, unit: &str) -> fmt::Result {
            match n {
                1 => write!(f, "1 {unit}"),
                _ => write!(f, "{n} {unit}s"),
            }
        }
        let secs = self.0.as_secs();
        let millis = self.0.subsec_millis();
        match secs {
            0 if millis > 0 => plural(f, u64::from(millis), "millisecond"),
            0..120 if millis == 0 => plural(f, secs, "second"),
            0..120 => {
                let fraction = format!("{millis:03}");
                write!(f, "{secs}.{} seconds", fraction.trim_end_matches('0'))
            }
            120..7_200 => plural(f, secs / 60, "minute"),
            7_200..172_800 => plural(f, secs / 3_600, "hour"),
            _ => plural(f, secs / 86_400, "day"),
        }
    }
}

/// A size in bytes, in the unit a person would use: `1 MiB`, `64 KiB`, `1000 bytes`.
struct Size(usize);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => write!(f, "{} MiB", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => write!(f, "{} KiB", n >> 10),
            1 => f.write_str("1 byte"),
            n => write!(f, "{n} bytes"),
        }
    }
}

/// ` (Content-Length: N)` when a length was declared.
struct Declared(Option<u64>);

impl fmt::Display for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, " (Content-Length: {n})"),
            None => Ok(()),
        }
    }
}

fn replayed_message(state: ClaimState) -> &'static str {
    match state {
        ClaimState::InFlight => {
            "replayed: this delivery (or another of the same event) is being processed; retry later"
        }
        ClaimState::Done => {
            "replayed: this delivery (or another of the same event) was already processed; acknowledge the duplicate without processing it again"
        }
    }
}

pub(crate) fn err<T>(kind: ErrorKind) -> Result<T, Error> {
    Err(Error::from(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(d: Duration) -> String {
        Human(d).to_string()
    }

    #[test]
    fn durations_read_in_human_units() {
        let secs = Duration::from_secs;
        assert_eq!(human(secs(307 * 86_400 + 5)), "307 days");
        assert_eq!(human(secs(2 * 86_400)), "2 days");
        assert_eq!(human(secs(172_799)), "47 hours");
        assert_eq!(human(secs(7_200)), "2 hours");
        assert_eq!(human(secs(7_199)), "119 minutes");
        assert_eq!(human(secs(150)), "2 minutes");
        assert_eq!(human(secs(120)), "2 minutes");
        assert_eq!(human(secs(119)), "119 seconds");
        assert_eq!(human(secs(40)), "40 seconds");
        assert_eq!(human(secs(1)), "1 second");
        assert_eq!(human(secs(0)), "0 seconds");
        assert_eq!(human(Duration::from_millis(60_500)), "60.5 seconds");
        assert_eq!(human(Duration::from_millis(60_050)), "60.05 seconds");
        assert_eq!(human(Duration::from_millis(60_001)), "60.001 seconds");
        assert_eq!(human(Duration::from_millis(250)), "250 milliseconds");
        assert_eq!(human(Duration::from_millis(1)), "1 millisecond");
    }

    #[test]
    fn expired_and_future_say_ages_in_human_units() {
        let expired = ErrorKind::Expired {
            age: Duration::from_secs(307 * 86_400),
            max_age: Duration::from_secs(60),
        };
        assert!(
            expired.to_string().starts_with(
                "timestamp expired: it is 307 days old, more than the 60 seconds allowed;"
            ),
            "{expired}"
        );
        let future = ErrorKind::Future {
            ahead: Duration::from_secs(40),
            max_future: Duration::from_secs(30),
        };
        assert!(
            future.to_string().starts_with(
                "timestamp is 40 seconds in the future, more than the 30 seconds allowed;"
            ),
            "{future}"
        );
    }

    #[test]
    fn body_errors_say_the_limit_and_the_fix() {
        let large = ErrorKind::BodyTooLarge {
            limit: 1 << 20,
            declared: Some(5_000_000),
        };
        assert_eq!(
            large.to_string(),
            "the body is over the 1 MiB limit (Content-Length: 5000000): send a smaller body, or raise the receiver's limit"
        );
        let streamed = ErrorKind::BodyTooLarge {
            limit: 1000,
            declared: None,
        };
        assert!(
            streamed
                .to_string()
                .starts_with("the body is over the 1000 bytes limit:")
        );
        assert_eq!(Size(64 << 10).to_string(), "64 KiB");
        let slow = ErrorKind::BodyTimeout {
            timeout: Duration::from_secs(10),
        };
        assert!(slow.to_string().contains("within 10 seconds"), "{slow}");
    }

    #[test]
    fn debug_carries_the_message() {
        let text = format!("{:?}", Error::from(ErrorKind::EmptySecret));
        assert_eq!(
            text,
            r#"Error { kind: EmptySecret, message: "the secret is empty: check where it is loaded from (environment variable, file)" }"#
        );
    }
}
