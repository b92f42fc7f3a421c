//! Standard Webhooks (feature `standard-webhooks`, on by default): the open specification
//! many providers sign their webhooks with (<https://www.standardwebhooks.com>).
//!
//! Message: `id || "." || timestamp || "." || body`, where `id` is the `webhook-id` header
//! and the timestamp (`webhook-timestamp`) is UNIX seconds. `webhook-signature` holds a
//! space-separated list of `v1,<base64 HMAC-SHA256>`: a provider rotating its secret sends
//! one per secret, and any one that verifies is enough; entries of other versions are
//! ignored. Secrets are written `whsec_` + base64 (the prefix may be left out, as the
//! official libraries allow); the key is the decoded bytes. Freshness: 5 minutes either
//! way, as the specification says.
//!
//! Unlike the official Rust crate, bodies need not be UTF-8: the bytes are signed as they
//! are. The `id` is 1 to 256 visible ASCII characters without `.` (a `.` in the id would
//! make `a.1` + `2` and `a` + `1.2` the same message); it is signed, so it is the natural
//! identity of the event for replay protection.
//!
//! # Examples
//!
//! ```
//! use countersign::{standard_webhooks, FixedClock, ReceivedRequest, Timestamp, Verifier};
//!
//! let key = standard_webhooks::SCHEME.key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let verifier = Verifier::standard_webhooks(key)
//!     .with_clock(FixedClock::new(Timestamp::from_unix_secs(1_614_265_400)?));
//! let headers = [
//!     ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
//!     ("webhook-timestamp", "1614265330"),
//!     ("webhook-signature", "v1,bm90IHRoaXMgb25lIGJ1dCBhIGtleSBpbiByb3RhdGlvbiE= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
//! ];
//! let verified = verifier.verify(&ReceivedRequest::new(&headers, br#"{"test": 2432232314}"#))?;
//! assert_eq!(verified.scheme(), &standard_webhooks::SCHEME);
//! # Ok::<(), countersign::Error>(())
//! ```

use crate::key::{SecretKey, SharedKeys};
use crate::scheme::{Domain, EventId, Part, Scheme, SecretSpec, SignatureFormat, Value};
use crate::signer::Signer;
use crate::time::{Freshness, TimeFormat};
use crate::verify::Verifier;

/// The `webhook-id`: 1 to 256 visible ASCII characters without `.`.
pub const ID: Value = Value::header("id", "webhook-id", ID_DOMAIN);

const ID_DOMAIN: Domain = Domain::new("1 to 256 visible ASCII characters without '.'", is_id);

fn is_id(bytes: &[u8]) -> bool {
    (1..=256).contains(&bytes.len()) && bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'.')
}

/// The Standard Webhooks scheme: `id.timestamp.body`, `v1,<base64>` signature lists.
///
/// # Examples
///
/// ```
/// use countersign::{standard_webhooks, SignableRequest, Signer, Timestamp};
///
/// let signer = Signer::standard_webhooks(standard_webhooks::SCHEME.key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?);
/// let request = SignableRequest::body(br#"{"test": 2432232314}"#).with_value("id", "msg_p5jXN8AQM9LWM0D4loKWxJek");
/// let signed = signer.sign(&request, Timestamp::from_unix_secs(1_614_265_330)?)?;
/// let headers: Vec<_> = signed.headers().collect();
/// assert_eq!(headers, [
///     ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
///     ("webhook-timestamp", "1614265330"),
///     ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
/// ]);
/// # Ok::<(), countersign::Error>(())
/// ```
pub static SCHEME: Scheme = Scheme::new(
    "standard-webhooks",
    "Standard Webhooks (id, '.', timestamp, '.', body; v1,<base64> signatures; whsec_ secrets)",
    &[
        Part::Value(ID),
        Part::Literal("."),
        Part::Timestamp,
        Part::Literal("."),
        Part::Body,
    ],
    SignatureFormat::base64("webhook-signature")
        .with_prefix("v1,")
        .with_list(b' '),
)
.with_timestamp("webhook-timestamp", TimeFormat::UnixSecs)
.with_secret(SecretSpec::base64("STANDARD_WEBHOOKS_SECRET", "whsec_"))
.with_freshness(Freshness::symmetric(core::time::Duration::from_secs(300)))
.with_event_id(EventId::Value("id"))
.webhook();

impl Signer {
    /// Signs Standard Webhooks deliveries ([`SCHEME`]): give each request its id with
    /// [`SignableRequest::with_value`](crate::SignableRequest::with_value)`("id", …)`. Get
    /// the key from the `whsec_` text with [`Scheme::key`].
    ///
    /// # Examples
    ///
    /// See [`SCHEME`].
    #[must_use]
    pub fn standard_webhooks(key: SecretKey) -> Self {
        Signer::unchecked(&SCHEME, key)
    }
}

impl Verifier {
    /// Verifies Standard Webhooks deliveries ([`SCHEME`]), 5 minutes either way.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub fn standard_webhooks(keys: impl Into<SharedKeys>) -> Self {
        Verifier::unchecked(&SCHEME, keys.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_domain_edges() {
        assert!(is_id(&[b'a'; 256]));
        assert!(!is_id(&[b'a'; 257]));
        assert!(is_id(b"!"));
        assert!(!is_id(b""));
        for b in 0..=255u8 {
            assert_eq!(is_id(&[b]), (0x21..=0x7e).contains(&b) && b != b'.', "{b}");
        }
    }
}
