//! What the handler receives: the request's extensions after a successful verification.
//!
//! - [`Verified`](crate::Verified): the scheme, the key that matched, the timestamp, the
//!   signature, the claim and the event id it was claimed under (the same type
//!   [`Verifier::verify`](crate::Verifier::verify) returns, so
//!   `kitopay::WebhookEvent::from_verified` and friends take it as it is);
//! - with a store that hands the handler something (the transactional PostgreSQL store's
//!   transaction), an `Arc<dyn `[`Attachment`](crate::claim::Attachment)`>`, which the
//!   store's extractor reads (`claim::postgres::ClaimTransaction`).

use crate::time::Timestamp;

/// How old the timestamp is at `now`, in milliseconds (negative: ahead of the clock).
pub(super) fn age_ms(now: Timestamp, timestamp: Timestamp) -> i64 {
    let (now, at) = (now.since_epoch(), timestamp.since_epoch());
    if now >= at {
        i64::try_from((now - at).as_millis()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((at - now).as_millis()).unwrap_or(i64::MAX)
    }
}
