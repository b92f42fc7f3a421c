//! Secrets: [`SecretKey`] (one secret, pre-keyed) and [`KeyRing`] (several, for rotation).

use core::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, err};
use crate::mac::{PadStates, Prefix};

/// An HMAC-SHA256 secret, keyed once.
///
/// Building it runs the HMAC key schedule and keeps only the two precomputed pad states, so
/// signing never re-hashes the key. Those states are zeroized on drop. It prints as
/// `[redacted]`, has no `Display`, no `PartialEq` (compare signatures, not keys) and no
/// `Clone` (share one behind an `Arc` if several owners need it, so there is one copy to
/// wipe).
///
/// The key is the UTF-8 bytes of the secret as the provider issued it, with no trimming:
/// a stray newline or space is a different key (`countersign diagnose` detects that mistake).
///
/// # Examples
///
/// ```
/// use countersign::SecretKey;
///
/// let key = SecretKey::new("kk_test_sk_3b9d7f51a2c64e0e9f7d").unwrap();
/// assert_eq!(format!("{key:?}"), "SecretKey([redacted])");
/// assert!(SecretKey::new("").is_err());
/// ```
pub struct SecretKey {
    pads: Box<PadStates>,
}

impl SecretKey {
    /// Keys from the UTF-8 bytes of `secret`.
    ///
    /// The caller's string is not wiped (it is borrowed); use [`SecretKey::from_string`] to
    /// hand over an owned secret that is wiped after keying.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::EmptySecret`] for an empty secret (an unset variable, an empty file).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SecretKey;
    ///
    /// let key = SecretKey::new("whsec_kk_5e2a91c07d3b4f68")?;
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(secret: &str) -> Result<Self, Error> {
        Self::from_bytes(secret.as_bytes())
    }

    /// Keys from raw bytes (for secrets that are not text).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::EmptySecret`] for an empty secret.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SecretKey;
    ///
    /// let key = SecretKey::from_bytes(&[0x0b; 20])?;
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn from_bytes(secret: &[u8]) -> Result<Self, Error> {
        if secret.is_empty() {
            return err(ErrorKind::EmptySecret);
        }
        Ok(SecretKey {
            pads: PadStates::new(secret),
        })
    }

    /// Keys from an owned string and wipes the string's bytes afterwards.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::EmptySecret`] for an empty secret.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::SecretKey;
    ///
    /// let from_env = String::from("kk_test_sk_3b9d7f51a2c64e0e9f7d"); // e.g. std::env::var(..)
    /// let key = SecretKey::from_string(from_env)?;
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn from_string(secret: String) -> Result<Self, Error> {
        let secret = Zeroizing::new(secret);
        Self::from_bytes(secret.as_bytes())
    }

    #[inline]
    pub(crate) fn pads(&self) -> &PadStates {
        &self.pads
    }

    pub(crate) fn prefix(&self, prefix: &[u8]) -> Box<Prefix> {
        self.pads.prefix(prefix)
    }

    /// HMAC of one contiguous message.
    #[cfg(feature = "diagnose")]
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> crate::Signature {
        let mut mac = self.pads.start();
        mac.update(message);
        crate::Signature::from_bytes(mac.finish())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// The secrets a verifier accepts, each with an id reported when it matches.
///
/// Rotation: add the new secret next to the old one, deploy, switch the sender to the new
/// one, then remove the old one. Verification tries the keys in order and reports which one
/// matched ([`Verified::key_id`](crate::Verified::key_id)), so you can tell when the old key
/// stops being used.
///
/// # Examples
///
/// ```
/// use countersign::{KeyRing, SecretKey};
///
/// let keys = KeyRing::new("2026-10", SecretKey::new("old secret")?)
///     .with("2026-11", SecretKey::new("new secret")?);
/// assert_eq!(keys.ids().collect::<Vec<_>>(), ["2026-10", "2026-11"]);
/// assert!(format!("{keys:?}").contains("[redacted]"));
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<(KeyId, SecretKey)>,
}

/// A key's id, as reported by a verification: short ids (the usual `primary`, `2026-11`)
/// are copied inline, so reporting which key matched costs no reference count; longer ones
/// are shared.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyId {
    Inline(InlineId),
    Shared(Arc<str>),
}

/// An id of up to [`InlineId::CAPACITY`] bytes and its length, eight-byte aligned: the
/// enum's tag gets a word of its own, so copying a `KeyId` (once per verification) is
/// whole-word moves. With the tag and a `u8` length packed in front of the bytes, the copy
/// was split into overlapping 4-byte moves whose reloads missed store forwarding (two
/// stalls, about 10 ns of a 390 ns KamioKash verification).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
pub(crate) struct InlineId {
    bytes: [u8; InlineId::CAPACITY],
    len: u8,
}

impl InlineId {
    const CAPACITY: usize = 23;
}

impl KeyId {
    pub(crate) fn new(id: String) -> Self {
        let mut bytes = [0u8; InlineId::CAPACITY];
        match bytes.get_mut(..id.len()) {
            Some(head) => {
                head.copy_from_slice(id.as_bytes());
                KeyId::Inline(InlineId {
                    bytes,
                    len: id.len() as u8,
                })
            }
            None => KeyId::Shared(Arc::from(id)),
        }
    }

    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Built from a `String`'s first `len` bytes: a UTF-8 boundary.
            KeyId::Inline(InlineId { bytes, len }) => {
                core::str::from_utf8(bytes.get(..usize::from(*len)).unwrap_or(&[]))
                    .unwrap_or_default()
            }
            KeyId::Shared(id) => id,
        }
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl KeyRing {
    /// A ring with one key.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey};
    ///
    /// let keys = KeyRing::new("primary", SecretKey::new("s3cret")?);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn new(id: impl Into<String>, key: SecretKey) -> Self {
        KeyRing {
            keys: vec![(KeyId::new(id.into()), key)],
        }
    }

    /// Adds a key, tried after the ones already present.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey};
    ///
    /// let keys = KeyRing::new("old", SecretKey::new("a")?).with("new", SecretKey::new("b")?);
    /// assert_eq!(keys.len(), 2);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with(mut self, id: impl Into<String>, key: SecretKey) -> Self {
        self.add(id, key);
        self
    }

    /// Adds a key in place, tried after the ones already present.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey};
    ///
    /// let mut keys = KeyRing::new("old", SecretKey::new("a")?);
    /// keys.add("new", SecretKey::new("b")?);
    /// assert_eq!(keys.ids().collect::<Vec<_>>(), ["old", "new"]);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn add(&mut self, id: impl Into<String>, key: SecretKey) {
        self.keys.push((KeyId::new(id.into()), key));
    }

    /// Removes every key with this id (the end of a rotation). Returns how many were removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey};
    ///
    /// let mut keys = KeyRing::new("old", SecretKey::new("a")?).with("new", SecretKey::new("b")?);
    /// assert_eq!(keys.remove("old"), 1);
    /// assert_eq!(keys.ids().collect::<Vec<_>>(), ["new"]);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn remove(&mut self, id: &str) -> usize {
        let before = self.keys.len();
        self.keys.retain(|(k, _)| k.as_str() != id);
        before - self.keys.len()
    }

    /// The key ids, in the order they are tried.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey};
    ///
    /// let keys = KeyRing::new("a", SecretKey::new("x")?);
    /// assert_eq!(keys.ids().next(), Some("a"));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// How many keys the ring holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey};
    ///
    /// assert_eq!(KeyRing::new("a", SecretKey::new("x")?).len(), 1);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring is empty (every key removed); a verifier then rejects everything.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey};
    ///
    /// let mut keys = KeyRing::new("a", SecretKey::new("x")?);
    /// keys.remove("a");
    /// assert!(keys.is_empty());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&KeyId, &SecretKey)> {
        self.keys.iter().map(|(id, k)| (id, k))
    }
}

/// A verifier's keys, shared: rotate them while the verifier serves requests, without
/// rebuilding it (or the router around it).
///
/// Every clone is a handle to the same ring. [`SharedKeys::replace`] and
/// [`SharedKeys::update`] swap the ring atomically: a verification sees either the old
/// ring or the new one, never a mix, and none is refused because a swap happened
/// meanwhile. Get a verifier's handle with [`Verifier::keys`](crate::Verifier::keys).
///
/// # Examples
///
/// ```
/// use countersign::{KeyRing, SecretKey, Verifier};
///
/// let verifier = Verifier::kamiokash_webhook(KeyRing::new("2026-10", SecretKey::new("old")?));
/// let keys = verifier.keys(); // keep this handle, e.g. in your admin endpoint's state
/// // Rotation, step 1: accept both secrets.
/// keys.update(|ring| ring.add("2026-11", SecretKey::new("new").expect("non-empty")));
/// // Step 2, once the sender uses the new one: drop the old one (its state is wiped).
/// keys.update(|ring| { ring.remove("2026-10"); });
/// assert_eq!(keys.ids(), ["2026-11"]);
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedKeys {
    ring: Arc<RwLock<KeyRing>>,
}

impl SharedKeys {
    /// A handle holding `ring`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey, SharedKeys, Verifier};
    ///
    /// let keys = SharedKeys::new(KeyRing::new("primary", SecretKey::new("s")?));
    /// let a = Verifier::kamiokash_webhook(keys.clone());
    /// let b = Verifier::kamiokash_request(keys.clone()); // one rotation serves both
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn new(ring: KeyRing) -> Self {
        SharedKeys {
            ring: Arc::new(RwLock::new(ring)),
        }
    }

    /// Swaps in a new ring; returns the old one (dropping it wipes its keys).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{KeyRing, SecretKey, SharedKeys};
    ///
    /// let keys = SharedKeys::new(KeyRing::new("a", SecretKey::new("x")?));
    /// let old = keys.replace(KeyRing::new("b", SecretKey::new("y")?));
    /// assert_eq!(old.ids().collect::<Vec<_>>(), ["a"]);
    /// assert_eq!(keys.ids(), ["b"]);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn replace(&self, ring: KeyRing) -> KeyRing {
        core::mem::replace(&mut *self.write(), ring)
    }

    /// Changes the ring in place (add, remove), atomically with respect to verifications.
    /// The closure runs under the ring's write lock: it must not use this ring itself
    /// (`ids`, `Debug`, a verifier built on it), which would wait for that lock forever.
    ///
    /// # Examples
    ///
    /// See [`SharedKeys`].
    pub fn update(&self, change: impl FnOnce(&mut KeyRing)) {
        change(&mut self.write());
    }

    /// The key ids, in the order they are tried.
    ///
    /// # Examples
    ///
    /// See [`SharedKeys`].
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        self.read().ids().map(str::to_owned).collect()
    }

    /// The ring, for one verification.
    #[inline]
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, KeyRing> {
        // No code that can panic runs while the lock is held for writing but the caller's
        // `update` closure; the ring is consistent after any of its steps.
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyRing> {
        self.ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl From<KeyRing> for SharedKeys {
    fn from(ring: KeyRing) -> Self {
        SharedKeys::new(ring)
    }
}

impl From<SecretKey> for SharedKeys {
    /// A one-key ring with the id `primary`.
    fn from(key: SecretKey) -> Self {
        SharedKeys::new(KeyRing::from(key))
    }
}

impl fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.read(), f)
    }
}

impl From<SecretKey> for KeyRing {
    /// A one-key ring with the id `primary`.
    fn from(key: SecretKey) -> Self {
        KeyRing::new("primary", key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_never_print_and_rings_count() {
        let key = SecretKey::new("s3cret-value").unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey([redacted])");
        let ring = KeyRing::new("a", key).with("b", SecretKey::new("other").unwrap());
        assert_eq!(ring.len(), 2);
        assert_eq!(KeyRing::new("a", SecretKey::new("x").unwrap()).len(), 1);
        let shared = SharedKeys::new(ring);
        let text = format!("{shared:?}");
        assert!(
            text.contains("\"a\"") && text.contains("\"b\"") && text.contains("[redacted]"),
            "{text}"
        );
        assert!(!text.contains("s3cret"));
    }

    #[test]
    fn key_ids_are_kept_whole_at_the_inline_capacity_and_either_side() {
        assert_eq!(std::mem::size_of::<KeyId>(), 32);
        let edge = InlineId::CAPACITY;
        for len in [0, 1, edge - 1, edge, edge + 1, 64] {
            let id = "k".repeat(len);
            let key_id = KeyId::new(id.clone());
            assert_eq!(key_id.as_str(), id);
            assert_eq!(matches!(key_id, KeyId::Inline(_)), len <= edge, "{len}");
            assert_eq!(key_id.clone(), key_id);
        }
        // A multi-byte character ending exactly at the capacity, and one past it.
        for id in [
            format!("{}é", "k".repeat(edge - 2)),
            format!("{}é", "k".repeat(edge - 1)),
        ] {
            assert_eq!(KeyId::new(id.clone()).as_str(), id);
        }
        // Ids differing only past the first byte, or only in length, differ.
        assert_ne!(KeyId::new("ab".into()), KeyId::new("ac".into()));
        assert_ne!(KeyId::new("a".into()), KeyId::new("a\0".into()));
    }

    #[test]
    fn key_material_is_wiped_on_drop() {
        // The pad states are the key's only copy; they implement `ZeroizeOnDrop`.
        fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wipes_on_drop::<PadStates>();
    }
}
