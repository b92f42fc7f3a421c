//! Replay protection: a verified message may be accepted once per freshness window.
//!
//! A signature proves who sent a message, not that it is new: within the freshness window
//! an attacker who captured a delivery can send it again. A [`ReplayGuard`] remembers the
//! identity of every accepted message ([`ReplayKey`]: scheme + signature) until its
//! timestamp can no longer pass the freshness check, and rejects a second claim with
//! [`ErrorKind::Replayed`].
//!
//! Claims can be released: if the application fails to process an accepted event, release
//! its claim so the provider's retry (the same signed delivery) is accepted.
//!
//! [`InMemoryReplayGuard`] serves one process. A fleet of instances needs a shared store
//! (Redis: `SET key 1 NX PX ttl`); the trait is fallible so such a store can report that it
//! is unreachable ([`ErrorKind::ReplayGuardUnavailable`]), and verification then fails
//! closed.

use core::fmt;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::error::{Error, ErrorKind, err};
use crate::scheme::Scheme;
use crate::signature::Signature;
use crate::time::Timestamp;

/// The identity of a verified message: its scheme and signature.
///
/// Two deliveries with the same key carry the same signed bytes (or a MAC collision).
///
/// # Examples
///
/// ```
/// use countersign::{ReplayKey, Scheme, Signature};
///
/// let key = ReplayKey::new(Scheme::KamioKashWebhook, Signature::from_bytes([7; 32]));
/// assert_eq!(key.to_string(), format!("kamiokash-webhook:{}", "07".repeat(32)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    scheme: Scheme,
    signature: [u8; 32],
}

impl ReplayKey {
    /// The key for a message of `scheme` with `signature`.
    ///
    /// # Examples
    ///
    /// See [`ReplayKey`].
    #[must_use]
    pub fn new(scheme: Scheme, signature: Signature) -> Self {
        ReplayKey {
            scheme,
            signature: *signature.as_bytes(),
        }
    }

    /// The scheme.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{ReplayKey, Scheme, Signature};
    ///
    /// let key = ReplayKey::new(Scheme::Kitopay, Signature::from_bytes([0; 32]));
    /// assert_eq!(key.scheme(), Scheme::Kitopay);
    /// ```
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

impl fmt::Display for ReplayKey {
    /// `scheme:hex-signature`, suitable as a key in an external store.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.scheme,
            Signature::from_bytes(self.signature).to_hex()
        )
    }
}

/// Remembers accepted messages until they expire. Implementations must be thread-safe and
/// atomic per key: of any number of concurrent claims of one key, exactly one succeeds.
///
/// # Examples
///
/// ```
/// use countersign::{ErrorKind, InMemoryReplayGuard, ReplayGuard, ReplayKey, Scheme, Signature, Timestamp};
///
/// let guard = InMemoryReplayGuard::new(10_000);
/// let key = ReplayKey::new(Scheme::KamioKashWebhook, Signature::from_bytes([1; 32]));
/// let now = Timestamp::from_unix_secs(1_000)?;
/// let until = Timestamp::from_unix_secs(1_060)?;
/// guard.claim(key, until, now)?;
/// assert_eq!(guard.claim(key, until, now).unwrap_err().kind(), &ErrorKind::Replayed);
/// guard.release(key)?; // processing failed: let the retry in
/// guard.claim(key, until, now)?;
/// # Ok::<(), countersign::Error>(())
/// ```
pub trait ReplayGuard: Send + Sync {
    /// Claims `key` until `expires_at`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Replayed`] if the key is claimed and not yet expired at `now`;
    /// [`ErrorKind::ReplayGuardUnavailable`] if the guard cannot decide (store unreachable,
    /// full): the message must then be rejected.
    fn claim(&self, key: ReplayKey, expires_at: Timestamp, now: Timestamp) -> Result<(), Error>;

    /// Releases a claim so the same message can be accepted again (after the application
    /// failed to process it). Releasing an unknown key is not an error.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the store cannot be reached.
    fn release(&self, key: ReplayKey) -> Result<(), Error>;
}

/// A boxed future, as returned by [`AsyncReplayGuard`] (keeps the trait object-safe).
pub type GuardFuture<'a> =
    core::pin::Pin<Box<dyn core::future::Future<Output = Result<(), Error>> + Send + 'a>>;

/// The asynchronous form of [`ReplayGuard`], for guards backed by a network store (Redis)
/// and for async servers. Same contract: atomic per key, fallible, fail closed.
///
/// Every [`ReplayGuard`] is also an `AsyncReplayGuard` (its futures are ready at once).
///
/// # Examples
///
/// ```
/// use countersign::{AsyncReplayGuard, InMemoryReplayGuard, ReplayKey, Scheme, Signature, Timestamp};
/// use std::sync::Arc;
///
/// let guard: Arc<dyn AsyncReplayGuard> = Arc::new(InMemoryReplayGuard::new(1_000));
/// let key = ReplayKey::new(Scheme::Kitopay, Signature::from_bytes([3; 32]));
/// let claim = guard.claim_async(key, Timestamp::from_unix_secs(60)?, Timestamp::UNIX_EPOCH);
/// // `claim.await?` inside an async function.
/// # drop(claim);
/// # Ok::<(), countersign::Error>(())
/// ```
pub trait AsyncReplayGuard: Send + Sync {
    /// See [`ReplayGuard::claim`].
    fn claim_async(&self, key: ReplayKey, expires_at: Timestamp, now: Timestamp)
    -> GuardFuture<'_>;

    /// See [`ReplayGuard::release`].
    fn release_async(&self, key: ReplayKey) -> GuardFuture<'_>;
}

impl<G: ReplayGuard + ?Sized> AsyncReplayGuard for G {
    fn claim_async(
        &self,
        key: ReplayKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> GuardFuture<'_> {
        let outcome = self.claim(key, expires_at, now);
        Box::pin(core::future::ready(outcome))
    }

    fn release_async(&self, key: ReplayKey) -> GuardFuture<'_> {
        let outcome = self.release(key);
        Box::pin(core::future::ready(outcome))
    }
}

/// A process-local [`ReplayGuard`]: thread-safe, O(1) amortised per claim, bounded memory.
///
/// Expired entries are evicted as claims arrive. When `capacity` live claims are held, new
/// claims are **rejected** with [`ErrorKind::ReplayGuardUnavailable`] rather than evicting a
/// live claim (forgetting one would let its replay in). Size the capacity for the peak
/// number of deliveries per freshness window (60 s by default); each entry takes about
/// 100 bytes.
///
/// # Examples
///
/// See [`ReplayGuard`].
pub struct InMemoryReplayGuard {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Live claims: key → (expiry, generation).
    claims: HashMap<ReplayKey, (Timestamp, u64)>,
    /// Claims in the order they were made, for eviction. Expiries are nearly ordered
    /// (timestamp + window), so popping from the front while expired is amortised O(1);
    /// an entry whose generation no longer matches the map (released, re-claimed) is skipped.
    order: VecDeque<(Timestamp, ReplayKey, u64)>,
    generation: u64,
}

impl InMemoryReplayGuard {
    /// A guard holding at most `capacity` live claims.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::InMemoryReplayGuard;
    ///
    /// let guard = InMemoryReplayGuard::new(100_000);
    /// assert_eq!(guard.len(), 0);
    /// ```
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        InMemoryReplayGuard {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The number of claims held (live or not yet evicted).
    ///
    /// # Examples
    ///
    /// See [`InMemoryReplayGuard::new`].
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().map(|inner| inner.claims.len()).unwrap_or(0)
    }

    /// Whether no claim is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::InMemoryReplayGuard;
    ///
    /// assert!(InMemoryReplayGuard::new(1).is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, Error> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // admits a replay (each operation is a single insert or remove), so keep going.
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Inner {
    fn evict(&mut self, now: Timestamp) {
        while let Some(&(expires_at, key, generation)) = self.order.front() {
            let stale = match self.claims.get(&key) {
                Some(&(_, live)) => live != generation,
                None => true,
            };
            if !stale && expires_at > now {
                break;
            }
            self.order.pop_front();
            if !stale {
                self.claims.remove(&key);
            }
        }
    }

    fn compact(&mut self) {
        let claims = &self.claims;
        self.order
            .retain(|(_, key, generation)| claims.get(key).is_some_and(|&(_, g)| g == *generation));
    }
}

impl ReplayGuard for InMemoryReplayGuard {
    fn claim(&self, key: ReplayKey, expires_at: Timestamp, now: Timestamp) -> Result<(), Error> {
        let mut inner = self.lock()?;
        inner.evict(now);
        if let Some(&(held_until, _)) = inner.claims.get(&key)
            && held_until > now
        {
            return err(ErrorKind::Replayed);
        }
        if inner.claims.len() >= self.capacity && !inner.claims.contains_key(&key) {
            return err(ErrorKind::ReplayGuardUnavailable(format!(
                "the in-memory replay guard is full ({} live claims); raise its capacity or use a shared store",
                self.capacity
            )));
        }
        inner.generation += 1;
        let generation = inner.generation;
        inner.claims.insert(key, (expires_at, generation));
        inner.order.push_back((expires_at, key, generation));
        if inner.order.len() > 2 * self.capacity.max(16) {
            inner.compact();
        }
        Ok(())
    }

    fn release(&self, key: ReplayKey) -> Result<(), Error> {
        self.lock()?.claims.remove(&key);
        Ok(())
    }
}

impl fmt::Debug for InMemoryReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayGuard")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(n: u8) -> ReplayKey {
        ReplayKey::new(Scheme::Kitopay, Signature::from_bytes([n; 32]))
    }
    fn t(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    #[test]
    fn expired_claims_are_evicted_and_can_be_claimed_again() {
        let guard = InMemoryReplayGuard::new(2);
        guard.claim(key(1), t(60), t(0)).unwrap();
        guard.claim(key(2), t(61), t(1)).unwrap();
        // Full: a third live claim is rejected, not made by forgetting one.
        assert_eq!(
            guard.claim(key(3), t(62), t(2)).unwrap_err().code(),
            "replay_guard_unavailable"
        );
        assert_eq!(
            guard.claim(key(1), t(60), t(2)).unwrap_err().kind(),
            &ErrorKind::Replayed
        );
        // At t=60 key 1 has expired: evicted, room again.
        guard.claim(key(3), t(120), t(60)).unwrap();
        guard.claim(key(1), t(121), t(61)).unwrap();
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn release_then_reclaim_and_stale_order_entries_do_not_evict_new_claims() {
        let guard = InMemoryReplayGuard::new(10);
        guard.claim(key(1), t(60), t(0)).unwrap();
        guard.release(key(1)).unwrap();
        guard.claim(key(1), t(100), t(10)).unwrap();
        // The first claim's queue entry expires at 60; it must not remove the new claim.
        assert_eq!(
            guard.claim(key(1), t(100), t(70)).unwrap_err().kind(),
            &ErrorKind::Replayed
        );
    }

    #[test]
    fn memory_stays_bounded_under_claim_release_churn() {
        let guard = InMemoryReplayGuard::new(4);
        for i in 0..10_000u32 {
            let k = ReplayKey::new(Scheme::Kitopay, Signature::from_bytes([(i % 7) as u8; 32]));
            let _ = guard.claim(k, t(1_000), t(0));
            guard.release(k).unwrap();
        }
        let inner = guard.lock().unwrap();
        assert!(inner.order.len() <= 2 * 16 + 1, "{}", inner.order.len());
    }
}
