//! [`ClaimKey`]: what a claim is held under, and [`Identity`]: how a delivery's key is
//! chosen.

use core::fmt;
use std::sync::Arc;

use crate::scheme::Scheme;
use crate::verify::{ReceivedRequest, Verified};

/// The key a claim is held under: a SHA-256 digest of (namespace, route, scheme, kind of
/// identity, identity), each part length-prefixed, so no two different tuples share a key
/// and every store keys on 32 bytes whatever the identity's length.
///
/// The **namespace** is the [`ReplayGuard`](super::ReplayGuard)'s (shared stores require
/// one: one per service); the **route** is the path the delivery was received at. Two
/// routes of one service never share a key, and two services share one only if they share
/// a namespace.
///
/// # Examples
///
/// ```
/// use countersign::claim::ClaimKey;
/// use countersign::kamiokash;
///
/// let orders = ClaimKey::new("shop", "/hooks/orders", &kamiokash::WEBHOOK, "event", b"evt_1");
/// let analytics = ClaimKey::new("shop", "/hooks/analytics", &kamiokash::WEBHOOK, "event", b"evt_1");
/// assert_ne!(orders, analytics);
/// assert_eq!(orders.to_string().len(), 64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimKey([u8; 32]);

impl ClaimKey {
    /// The key of `identity` (of kind `kind`: `signature`, `event`) for `scheme`, received
    /// at `route`, in `namespace`.
    ///
    /// # Examples
    ///
    /// See [`ClaimKey`].
    #[must_use]
    pub fn new(namespace: &str, route: &str, scheme: &Scheme, kind: &str, identity: &[u8]) -> Self {
        let parts: [&[u8]; 5] = [
            namespace.as_bytes(),
            route.as_bytes(),
            scheme.name().as_bytes(),
            kind.as_bytes(),
            identity,
        ];
        let mut lengths = [[0u8; 8]; 5];
        for (length, part) in lengths.iter_mut().zip(parts) {
            *length = (part.len() as u64).to_be_bytes();
        }
        ClaimKey(crate::mac::sha256(&[
            b"countersign/claim/v1",
            &lengths[0],
            parts[0],
            &lengths[1],
            parts[1],
            &lengths[2],
            parts[2],
            &lengths[3],
            parts[3],
            &lengths[4],
            parts[4],
        ]))
    }

    /// The 32 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::ClaimKey;
    ///
    /// let key = ClaimKey::new("n", "/", &countersign::kitopay::FULL, "signature", &[7; 32]);
    /// assert_eq!(key.as_bytes().len(), 32);
    /// ```
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Which of `shards` buckets the key falls in (the key is a digest: uniform bytes).
    pub(crate) fn shard(&self, shards: usize) -> usize {
        let [a, b, c, d, ..] = self.0;
        (u32::from_le_bytes([a, b, c, d]) as usize) % shards.max(1)
    }
}

/// Lower-case hex, as network stores name their keys.
impl fmt::Display for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimKey({self})")
    }
}

/// A function choosing a delivery's identity (see [`Identity::Custom`]).
pub type IdentityFn = dyn Fn(&Verified, &ReceivedRequest<'_>) -> Option<String> + Send + Sync;

/// What identifies a delivery for replay protection, and so how long its claim is kept.
///
/// - [`Identity::Signature`]: the signature verified. A copy of the same signed bytes is a
///   duplicate; a provider's retry that is signed again (a new timestamp) is a new delivery.
///   Its claim is kept while the signature could still verify anywhere in the fleet
///   ([`Verified::expires_at`]): 121 s after a Kitopay timestamp. For a scheme without a
///   timestamp there is no such window: it is kept for the retention.
///   A signature list (Standard Webhooks) is keyed by the signature that verified: while
///   the receiver rotates its keys, a copy whose list was trimmed to another matching
///   signature is another key. Use [`Identity::Event`] (that scheme's default) where that
///   matters.
/// - [`Identity::Event`]: the event the delivery carries, as its scheme defines it
///   ([`Scheme::event_id`](crate::Scheme::event_id)): Standard Webhooks' signed
///   `webhook-id`, a Kitopay webhook's transaction id and status. Every delivery of the
///   event (copies, retries signed again) is one. Its claim is kept for the retention
///   (7 days by default), as long as providers retry.
/// - [`Identity::Custom`]: your function of the verified delivery (the body is signed, so
///   any field of it will do: a KamioKash webhook's `data.id`), kept for the retention.
///
/// Where an event identity cannot be read (a body without the field) or is empty, the
/// signature is used. The default is [`Identity::Event`] for schemes with an event id, and
/// [`Identity::Signature`] otherwise.
///
/// # Examples
///
/// ```
/// use countersign::claim::Identity;
/// use std::sync::Arc;
///
/// let by_data_id = Identity::Custom(Arc::new(|_verified, request| {
///     let body: serde_json::Value = serde_json::from_slice(request.body()).ok()?;
///     Some(body["data"]["id"].as_str()?.to_owned())
/// }));
/// ```
#[non_exhaustive]
#[derive(Clone)]
pub enum Identity {
    /// The signature verified, kept for the signature's lifetime.
    Signature,
    /// The scheme's event id, kept for the retention.
    Event,
    /// Your function of the delivery, kept for the retention.
    Custom(Arc<IdentityFn>),
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Identity::Signature => "Signature",
            Identity::Event => "Event",
            Identity::Custom(_) => "Custom(..)",
        })
    }
}

/// `path` with percent-escapes decoded, dot segments resolved and empty segments dropped.
pub(crate) fn normalized_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&high), Some(&low)) => hex(high).zip(hex(low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                decoded.push(high << 4 | low);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{kamiokash, kitopay};
    use sha2::Digest as _;

    #[test]
    fn the_key_is_sha256_over_length_prefixed_parts_and_stays_so() {
        // Computed here without the library's SHA-256: a change of the derivation would
        // split claims between instances of a rolling deploy, so it is pinned.
        let parts: [&[u8]; 5] = [
            b"shop",
            b"/hooks",
            b"kitopay-webhook",
            b"event",
            b"6956d4fc/new",
        ];
        let mut reference = sha2::Sha256::new();
        reference.update(b"countersign/claim/v1");
        for part in parts {
            reference.update((part.len() as u64).to_be_bytes());
            reference.update(part);
        }
        let key = ClaimKey::new(
            "shop",
            "/hooks",
            &kitopay::WEBHOOK,
            "event",
            b"6956d4fc/new",
        );
        assert_eq!(key.as_bytes().as_slice(), reference.finalize().as_slice());
        let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(key.to_string(), hex);
        assert_eq!(format!("{key:?}"), format!("ClaimKey({hex})"));
    }

    #[test]
    fn no_two_different_tuples_share_a_key() {
        let scheme = &kamiokash::WEBHOOK;
        let key = |ns: &str, route: &str, kind: &str, id: &[u8]| {
            ClaimKey::new(ns, route, scheme, kind, id)
        };
        let keys = [
            key("ab", "c", "event", b"x"),
            key("a", "bc", "event", b"x"),
            key("a", "b", "cevent", b"x"),
            key("a", "b", "ce", b"ventx"),
            key("", "", "event", b"x"),
            key("", "", "signature", b"x"),
            ClaimKey::new("", "", &kitopay::WEBHOOK, "event", b"x"),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        for shards in [1, 16, 7] {
            assert!(keys.iter().all(|k| k.shard(shards) < shards));
        }
        assert_eq!(keys[0].shard(0), 0, "no division by zero");
    }

    #[test]
    fn identities_print_their_kind() {
        assert_eq!(format!("{:?}", Identity::Signature), "Signature");
        assert_eq!(format!("{:?}", Identity::Event), "Event");
        let custom = Identity::Custom(Arc::new(|_, _| None));
        assert_eq!(format!("{custom:?}"), "Custom(..)");
    }
}
