//! What a successful verification leaves in the request's extensions.

use crate::replay::ReplayKey;
use crate::scheme::Scheme;
use crate::signature::Signature;
use crate::time::Timestamp;
use crate::verify::Verified;

/// What a successful verification leaves in the request's extensions.
///
/// # Examples
///
/// ```
/// use axum::Extension;
/// use countersign::layer::VerifiedDelivery;
///
/// // A handler behind `VerifyLayer` reads which key matched, and when the sender signed.
/// async fn handler(Extension(delivery): Extension<VerifiedDelivery>) -> String {
///     let signed_at = delivery.timestamp.map(|t| t.unix_secs());
///     format!("{} delivery, key {}, signed at {signed_at:?}", delivery.scheme, delivery.key_id)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedDelivery {
    /// The scheme verified.
    pub scheme: &'static Scheme,
    /// The id of the key that matched.
    pub key_id: String,
    /// The sender's timestamp (`None` for a scheme without one).
    pub timestamp: Option<Timestamp>,
    /// The verified signature.
    pub signature: Signature,
    /// Whether only the other trailing-slash form of the URL matched (tolerance on).
    pub trailing_slash_toggled: bool,
    /// How long the delivery's replay claim is held (see [`Verified::expires_at`]).
    pub expires_at: Timestamp,
}

impl VerifiedDelivery {
    /// A delivery as the layer would describe it, for tests of handlers that read
    /// `Extension<VerifiedDelivery>` without a signed request; the claim lifetime is computed
    /// with the default window.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::layer::VerifiedDelivery;
    /// use countersign::{kamiokash, Signature, Timestamp};
    /// use std::time::Duration;
    ///
    /// let delivery = VerifiedDelivery::new(&kamiokash::WEBHOOK, "primary", Some(Timestamp::UNIX_EPOCH), Signature::from_bytes([1; 32]));
    /// assert_eq!(delivery.key_id, "primary");
    /// assert!(!delivery.trailing_slash_toggled);
    /// // Held for the 60 s window, one step of RFC 3339 time (1 ns) and 60 s of allowed skew.
    /// assert_eq!(delivery.expires_at.since_epoch(), Duration::new(120, 1));
    /// ```
    #[must_use]
    pub fn new(
        scheme: &'static Scheme,
        key_id: impl Into<String>,
        timestamp: Option<Timestamp>,
        signature: Signature,
    ) -> Self {
        let expires_at = match (timestamp, scheme.time_format()) {
            (Some(timestamp), Some(format)) => scheme
                .freshness()
                .claim_expiry(timestamp, format.resolution()),
            _ => Timestamp::MAX,
        };
        VerifiedDelivery {
            scheme,
            key_id: key_id.into(),
            timestamp,
            signature,
            trailing_slash_toggled: false,
            expires_at,
        }
    }

    /// The delivery's identity for replay protection.
    ///
    /// # Examples
    ///
    /// ```
    /// # use countersign::layer::VerifiedDelivery;
    /// fn key(d: &VerifiedDelivery) -> String { d.replay_key().to_string() }
    /// ```
    #[must_use]
    pub fn replay_key(&self) -> ReplayKey {
        ReplayKey::new(self.scheme, self.signature)
    }

    pub(super) fn from_verified(verified: &Verified) -> Self {
        VerifiedDelivery {
            scheme: verified.scheme(),
            key_id: verified.key_id().to_owned(),
            timestamp: verified.timestamp(),
            signature: *verified.signature(),
            trailing_slash_toggled: verified.trailing_slash_toggled(),
            expires_at: verified.expires_at(),
        }
    }
}

/// How old the timestamp is at `now`, in milliseconds (negative: ahead of the clock).
pub(super) fn age_ms(now: Timestamp, timestamp: Timestamp) -> i64 {
    let (now, at) = (now.since_epoch(), timestamp.since_epoch());
    if now >= at {
        i64::try_from((now - at).as_millis()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((at - now).as_millis()).unwrap_or(i64::MAX)
    }
}
