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
    (1..=256).contains(&bytes.len()) && all_id_bytes(bytes)
}

/// Whether every byte is visible ASCII (0x21..=0x7e) other than `.` (0x2e): eight bytes at
/// a time without a branch per byte (a 31-byte id took 320 instructions a byte at a time),
/// with the word tests of "Bit Twiddling Hacks" (`hasless`, `hasmore`, `haszero`), each
/// exact as a test of whether *any* byte of the word has the property.
fn all_id_bytes(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_less = |w: u64, n: u64| w.wrapping_sub(n * ONES) & !w & HIGH != 0;
    let has_more = |w: u64, n: u64| (w.wrapping_add((127 - n) * ONES) | w) & HIGH != 0;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let word_ok = |chunk: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        !has_less(w, 0x21) && !has_more(w, 0x7e) && !has_zero(w ^ (0x2e * ONES))
    };
    if bytes.len() < 8 {
        return bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'.');
    }
    // The whole words, then the last eight bytes as one word (overlapping the last whole
    // word when the length is not a multiple of eight: each byte is tested at least once).
    let last = bytes.len() - 8;
    bytes.chunks_exact(8).all(word_ok) && word_ok(&bytes[last..])
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn whsec_keys_of_any_length_key_the_hmac_of_their_bytes() {
        // Found by the fuzz smoke: a 193-byte key was refused (a fixed 192-byte buffer);
        // the reference implementations take any length.
        use base64::Engine as _;
        use hmac::{Hmac, KeyInit, Mac as _};
        let engine = &base64::engine::general_purpose::STANDARD;
        for len in [1, 24, 63, 64, 65, 191, 192, 193, 1_000] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let secret = format!("whsec_{}", engine.encode(&key));
            let signer = crate::Signer::standard_webhooks(SCHEME.key(&secret).unwrap());
            let request = crate::SignableRequest::body(b"{}").with_value("id", "msg_1");
            let at = crate::Timestamp::from_unix_secs(1_614_265_330).unwrap();
            let signed = signer.sign(&request, at).unwrap();
            let expected = Hmac::<sha2::Sha256>::new_from_slice(&key)
                .unwrap()
                .chain_update(b"msg_1.1614265330.{}")
                .finalize()
                .into_bytes();
            assert_eq!(
                signed.signature_value(),
                format!("v1,{}", engine.encode(expected)),
                "{len}"
            );
        }
    }

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

    #[test]
    fn id_bytes_eight_at_a_time_agree_with_one_at_a_time() {
        let reference = |bytes: &[u8]| bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'.');
        // Every byte value at every position of a word and of the remainder.
        for len in [1, 7, 8, 9, 15, 16, 17, 31] {
            for position in 0..len {
                for byte in 0..=255u8 {
                    let mut id = vec![b'a'; len];
                    id[position] = byte;
                    assert_eq!(super::all_id_bytes(&id), reference(&id), "{id:?}");
                }
            }
        }
        // Pairs of bytes near the edges, in one word (a borrow from one byte to the next).
        let edges = [0x00, 0x20, 0x21, 0x2d, 0x2e, 0x2f, 0x7e, 0x7f, 0x80, 0xff];
        for &a in &edges {
            for &b in &edges {
                for position in 0..7 {
                    let mut id = [b'x'; 8];
                    id[position] = a;
                    id[position + 1] = b;
                    assert_eq!(super::all_id_bytes(&id), reference(&id), "{id:?}");
                }
            }
        }
        assert!(!super::is_id(b""));
        assert!(super::is_id(&[b'a'; 256]));
        assert!(!super::is_id(&[b'a'; 257]));
    }

    #[test]
    fn id_bytes_agree_with_one_at_a_time_on_random_ids_near_the_edges() {
        // Attack of the review: words mixing edge bytes at random (a borrow carried across
        // several bytes of one word), at every length to the 256-byte edge.
        let edges = [
            0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x2d, 0x2e, 0x2f, 0x30, 0x7d, 0x7e, 0x7f, 0x80,
            0x81, 0xa0, 0xae, 0xfe, 0xff,
        ];
        let reference = |bytes: &[u8]| bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'.');
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let len = 1 + (next() % 257) as usize;
            let id: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => edges[(next() % edges.len() as u64) as usize],
                    _ => b'!' + (next() % 94) as u8,
                })
                .collect();
            assert_eq!(super::all_id_bytes(&id), reference(&id), "{id:?}");
            assert_eq!(super::is_id(&id), len <= 256 && reference(&id), "{id:?}");
        }
    }
}
