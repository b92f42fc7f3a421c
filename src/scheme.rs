//! [`Scheme`]: the five signing schemes, their header names and timestamp formats.

use core::fmt;
use core::str::FromStr;

use crate::error::{Error, ErrorKind};
use crate::time::TimeFormat;

/// Header names as the providers spell them. HTTP header names are case-insensitive; these
/// are what countersign sends and prints.
pub mod headers {
    /// KamioKash request: the public API key.
    pub const KAMIOKASH_API_KEY: &str = "X-API-Key";
    /// KamioKash request and webhook: the timestamp.
    pub const KAMIOKASH_TIMESTAMP: &str = "X-Timestamp";
    /// KamioKash request: the signature.
    pub const KAMIOKASH_SIGNATURE: &str = "X-Signature";
    /// KamioKash webhook: the signature.
    pub const KAMIOKASH_WEBHOOK_SIGNATURE: &str = "X-Kamio-Signature";
    /// Kitopay: the merchant id.
    pub const KITOPAY_MERCHANT_ID: &str = "x-merchant-id";
    /// Kitopay: the timestamp (UNIX seconds).
    pub const KITOPAY_TIMESTAMP: &str = "x-timestamp";
    /// Kitopay full scheme (requests and webhooks): the signature.
    pub const KITOPAY_SIGNATURE: &str = "x-signature";
    /// Kitopay simplified scheme: the signature.
    pub const KITOPAY_SIMPLIFIED_SIGNATURE: &str = "x-simplified-signature";
}

/// A signing scheme: which fields make the message, which headers carry the result.
///
/// | scheme | message | headers |
/// |---|---|---|
/// | `kitopay` | merchant_id ‖ timestamp ‖ method ‖ url ‖ body | `x-merchant-id`, `x-timestamp`, `x-signature` |
/// | `kitopay-simplified` | merchant_id ‖ timestamp ‖ method ‖ transaction_id | `x-merchant-id`, `x-timestamp`, `x-simplified-signature` |
/// | `kamiokash` | body ‖ `:` ‖ timestamp | `X-API-Key`, `X-Timestamp`, `X-Signature` |
/// | `kitopay-webhook` | as `kitopay`, over the merchant's webhook URL | as `kitopay` |
/// | `kamiokash-webhook` | timestamp ‖ body | `X-Timestamp`, `X-Kamio-Signature` |
///
/// Kitopay timestamps are UNIX seconds; KamioKash timestamps are RFC 3339 (sent as
/// `toISOString()` writes them).
///
/// # Examples
///
/// ```
/// use countersign::Scheme;
///
/// let scheme: Scheme = "kitopay-simplified".parse()?;
/// assert_eq!(scheme.signature_header(), "x-simplified-signature");
/// assert_eq!(scheme.as_str(), "kitopay-simplified");
/// # Ok::<(), countersign::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Kitopay full request signature.
    Kitopay,
    /// Kitopay simplified signature (transaction id instead of URL and body).
    KitopaySimplified,
    /// KamioKash request signature.
    KamioKash,
    /// Kitopay webhook to the merchant (the full scheme over the webhook URL).
    KitopayWebhook,
    /// KamioKash webhook.
    KamioKashWebhook,
}

impl Scheme {
    /// All schemes, in a stable order.
    pub const ALL: [Scheme; 5] = [
        Scheme::Kitopay,
        Scheme::KitopaySimplified,
        Scheme::KamioKash,
        Scheme::KitopayWebhook,
        Scheme::KamioKashWebhook,
    ];

    /// The scheme's name: `kitopay`, `kitopay-simplified`, `kamiokash`, `kitopay-webhook`,
    /// `kamiokash-webhook`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Scheme;
    ///
    /// assert_eq!(Scheme::KamioKashWebhook.as_str(), "kamiokash-webhook");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Kitopay => "kitopay",
            Scheme::KitopaySimplified => "kitopay-simplified",
            Scheme::KamioKash => "kamiokash",
            Scheme::KitopayWebhook => "kitopay-webhook",
            Scheme::KamioKashWebhook => "kamiokash-webhook",
        }
    }

    /// The header carrying the signature.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Scheme;
    ///
    /// assert_eq!(Scheme::KamioKash.signature_header(), "X-Signature");
    /// ```
    #[must_use]
    pub fn signature_header(self) -> &'static str {
        match self {
            Scheme::Kitopay | Scheme::KitopayWebhook => headers::KITOPAY_SIGNATURE,
            Scheme::KitopaySimplified => headers::KITOPAY_SIMPLIFIED_SIGNATURE,
            Scheme::KamioKash => headers::KAMIOKASH_SIGNATURE,
            Scheme::KamioKashWebhook => headers::KAMIOKASH_WEBHOOK_SIGNATURE,
        }
    }

    /// The header carrying the timestamp.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Scheme;
    ///
    /// assert_eq!(Scheme::Kitopay.timestamp_header(), "x-timestamp");
    /// ```
    #[must_use]
    pub fn timestamp_header(self) -> &'static str {
        if self.is_kitopay() {
            headers::KITOPAY_TIMESTAMP
        } else {
            headers::KAMIOKASH_TIMESTAMP
        }
    }

    /// The header identifying the sender (`x-merchant-id`, `X-API-Key`), if the scheme has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Scheme;
    ///
    /// assert_eq!(Scheme::KamioKash.identity_header(), Some("X-API-Key"));
    /// assert_eq!(Scheme::KamioKashWebhook.identity_header(), None);
    /// ```
    #[must_use]
    pub fn identity_header(self) -> Option<&'static str> {
        match self {
            Scheme::Kitopay | Scheme::KitopaySimplified | Scheme::KitopayWebhook => {
                Some(headers::KITOPAY_MERCHANT_ID)
            }
            Scheme::KamioKash => Some(headers::KAMIOKASH_API_KEY),
            Scheme::KamioKashWebhook => None,
        }
    }

    /// Whether this is one of the Kitopay schemes (UNIX-seconds timestamps).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Scheme;
    ///
    /// assert!(Scheme::KitopayWebhook.is_kitopay());
    /// ```
    #[must_use]
    pub fn is_kitopay(self) -> bool {
        matches!(
            self,
            Scheme::Kitopay | Scheme::KitopaySimplified | Scheme::KitopayWebhook
        )
    }

    /// Whether the message covers the URL (the Kitopay full schemes).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Scheme;
    ///
    /// assert!(Scheme::Kitopay.signs_url());
    /// assert!(!Scheme::KamioKash.signs_url());
    /// ```
    #[must_use]
    pub fn signs_url(self) -> bool {
        matches!(self, Scheme::Kitopay | Scheme::KitopayWebhook)
    }

    /// Parses the scheme's timestamp format (see [`crate::Timestamp::parse_unix`] and
    /// [`crate::Timestamp::parse_rfc3339`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Scheme;
    ///
    /// assert!(Scheme::Kitopay.parse_timestamp("1601234567").is_ok());
    /// assert!(Scheme::KamioKash.parse_timestamp("1601234567").is_err());
    /// ```
    pub fn parse_timestamp(self, text: &str) -> Result<crate::Timestamp, Error> {
        self.time_format().parse(text)
    }

    /// Writes a timestamp in the scheme's format.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Scheme, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs(1_601_234_567)?;
    /// assert_eq!(Scheme::Kitopay.format_timestamp(t).as_str(), "1601234567");
    /// assert_eq!(Scheme::KamioKash.format_timestamp(t).as_str(), "2020-09-27T19:22:47.000Z");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn format_timestamp(self, at: crate::Timestamp) -> crate::TimestampText {
        self.time_format().format(at)
    }

    pub(crate) fn time_format(self) -> TimeFormat {
        if self.is_kitopay() {
            TimeFormat::UnixSecs
        } else {
            TimeFormat::Rfc3339
        }
    }
}

/// Honours width and fill, as names in tables do.
///
/// ```
/// use countersign::Scheme;
///
/// assert_eq!(format!("[{:<20}]", Scheme::Kitopay), "[kitopay             ]");
/// assert_eq!(format!("[{:>9}]", Scheme::KamioKash), "[kamiokash]");
/// ```
impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == s)
            .ok_or(Error::from(ErrorKind::UnknownName {
                what: "scheme",
                expected: "kitopay, kitopay-simplified, kamiokash, kitopay-webhook, kamiokash-webhook",
            }))
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
    let b = value.as_bytes();
    !b.is_empty()
        && b.iter().all(|&c| (0x20..0x7f).contains(&c))
        && b.first() != Some(&b' ')
        && b.last() != Some(&b' ')
}
