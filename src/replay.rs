//! Replay protection: a signed delivery is processed at most once.
//!
//! A signature proves who sent a message, not that it is new: within the freshness window
//! an attacker who captured a delivery can send it again, and a provider that did not see
//! your `200` sends it again too. A [`ReplayGuard`] remembers every accepted delivery
//! ([`ReplayKey`]: scheme + signature) as a [`Claim`] that goes through three states:
//!
//! - **in flight** ([`ClaimState::InFlight`]): claimed, being processed;
//! - **done** ([`ClaimState::Done`]): processed ([`ReplayGuard::complete`]); a duplicate
//!   is to be *acknowledged* (the provider lost your answer), not processed again;
//! - **released** ([`ReplayGuard::release`]): processing failed, the claim is gone, and
//!   the provider's retry (the same signed bytes) is processed as new.
//!
//! A second claim of a held key fails with [`ErrorKind::Replayed`], which carries the
//! state, so a caller can answer a duplicate of a done delivery with `200` and one in flight
//! with `409`. Completing and releasing take the [`Claim`] (its token), so they only ever
//! act on the claim they were given: never on a newer claim of the same key.
//!
//! # How long a claim is held
//!
//! A claim must outlive every instant at which *any* verifier sharing the guard could still
//! accept the message. A verifier accepts a timestamp `t` until its clock reads
//! `t + max_age`, plus the timestamp's resolution less one nanosecond for schemes whose
//! "now" is compared in whole seconds (Kitopay); instances in a fleet may have clocks up to
//! `max_future` apart. So the verifier claims until
//!
//! ```text
//! expires_at = t + max_age + resolution + max_future      (held while now < expires_at)
//! ```
//!
//! ([`Verified::expires_at`](crate::Verified::expires_at)): 121 s after a Kitopay timestamp
//! and 120 s + 1 ns after a KamioKash one with the default window. A guard compares
//! `now < expires_at` with the claimer's clock; a store with relative expiry (Redis) rounds
//! the remaining time **up**.
//!
//! [`InMemoryReplayGuard`] serves one process. A fleet of instances needs a shared store
//! (the `redis` feature); the trait is fallible so such a store can report that it cannot
//! decide ([`ErrorKind::ReplayGuardUnavailable`]), and the delivery is then refused (and
//! can be retried), never accepted unguarded unless you opt in.

use core::fmt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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
/// use countersign::{kamiokash, kitopay, ReplayKey, Signature};
///
/// let key = ReplayKey::new(&kamiokash::WEBHOOK, Signature::from_bytes([7; 32]));
/// assert_eq!(key.to_string(), format!("kamiokash-webhook:{}", "07".repeat(32)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    scheme: &'static Scheme,
    signature: [u8; 32],
}

impl ReplayKey {
    /// The key for a message of `scheme` with `signature`.
    ///
    /// # Examples
    ///
    /// See [`ReplayKey`].
    #[must_use]
    pub fn new(scheme: &'static Scheme, signature: Signature) -> Self {
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
    /// use countersign::{kamiokash, kitopay, ReplayKey, Signature};
    ///
    /// let key = ReplayKey::new(&kitopay::FULL, Signature::from_bytes([0; 32]));
    /// assert_eq!(key.scheme(), &kitopay::FULL);
    /// ```
    #[must_use]
    pub fn scheme(&self) -> &'static Scheme {
        self.scheme
    }

    /// The signature.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kamiokash, kitopay, ReplayKey, Signature};
    ///
    /// let key = ReplayKey::new(&kitopay::FULL, Signature::from_bytes([9; 32]));
    /// assert_eq!(key.signature(), Signature::from_bytes([9; 32]));
    /// ```
    #[must_use]
    pub fn signature(&self) -> Signature {
        Signature::from_bytes(self.signature)
    }

    /// Which of `shards` buckets the key falls in (the signature is a MAC: uniform bytes).
    fn shard(&self, shards: usize) -> usize {
        let [a, b, c, d, ..] = self.signature;
        (u32::from_le_bytes([a, b, c, d]) as usize) % shards
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

/// Where a held claim stands; carried by [`ErrorKind::Replayed`].
///
/// # Examples
///
/// ```
/// use countersign::{ClaimState, ErrorKind};
///
/// let duplicate = ErrorKind::Replayed(ClaimState::Done);
/// assert!(duplicate.to_string().contains("already processed"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimState {
    /// Claimed and being processed: a duplicate should be retried later (`409`).
    InFlight,
    /// Processed successfully: a duplicate should be acknowledged (`200`), not processed.
    Done,
}

impl ClaimState {
    /// `in_flight` or `done`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::ClaimState;
    ///
    /// assert_eq!(ClaimState::InFlight.as_str(), "in_flight");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::InFlight => "in_flight",
            ClaimState::Done => "done",
        }
    }
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A successful claim: the key, a token unique to this claim, and when it may be forgotten.
///
/// [`ReplayGuard::complete`] and [`ReplayGuard::release`] act only if the key is still held
/// by this token, so a late release never frees someone else's claim.
///
/// # Examples
///
/// ```
/// use countersign::{kitopay, InMemoryReplayGuard, ReplayGuard, ReplayKey, Signature, Timestamp};
///
/// let guard = InMemoryReplayGuard::new(10);
/// let key = ReplayKey::new(&kitopay::FULL, Signature::from_bytes([1; 32]));
/// let claim = guard.claim(key, Timestamp::from_unix_secs(121)?, Timestamp::UNIX_EPOCH)?;
/// assert_eq!(claim.key(), key);
/// assert_eq!(claim.expires_at(), Timestamp::from_unix_secs(121)?);
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    key: ReplayKey,
    token: u128,
    expires_at: Timestamp,
}

impl Claim {
    /// A claim of `key` by `token` until `expires_at`; for [`ReplayGuard`] implementations.
    /// The token must be unique among the claims the store has held for this key.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{kitopay, Claim, ReplayKey, Signature, Timestamp};
    ///
    /// let key = ReplayKey::new(&kitopay::FULL, Signature::from_bytes([1; 32]));
    /// let claim = Claim::new(key, 42, Timestamp::UNIX_EPOCH);
    /// assert_eq!(claim.token(), 42);
    /// ```
    #[must_use]
    pub fn new(key: ReplayKey, token: u128, expires_at: Timestamp) -> Self {
        Claim {
            key,
            token,
            expires_at,
        }
    }

    /// The delivery's identity.
    ///
    /// # Examples
    ///
    /// See [`Claim`].
    #[must_use]
    pub fn key(&self) -> ReplayKey {
        self.key
    }

    /// The token that identifies this claim among all claims of the same key.
    ///
    /// # Examples
    ///
    /// See [`Claim::new`].
    #[must_use]
    pub fn token(&self) -> u128 {
        self.token
    }

    /// When the claim may be forgotten (it is held while `now < expires_at`;
    /// [`Timestamp::MAX`] means never).
    ///
    /// # Examples
    ///
    /// See [`Claim`].
    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

/// Remembers accepted deliveries until they expire. Implementations must be thread-safe and
/// atomic per key: of any number of concurrent claims of one key, at most one succeeds.
///
/// # Examples
///
/// ```
/// use countersign::{kamiokash, ClaimState, ErrorKind, InMemoryReplayGuard, ReplayGuard, ReplayKey, Signature, Timestamp};
///
/// let guard = InMemoryReplayGuard::new(10_000);
/// let key = ReplayKey::new(&kamiokash::WEBHOOK, Signature::from_bytes([1; 32]));
/// let now = Timestamp::from_unix_secs(1_000)?;
/// let until = Timestamp::from_unix_secs(1_121)?;
/// let claim = guard.claim(key, until, now)?;
/// assert_eq!(guard.claim(key, until, now).unwrap_err().kind(), &ErrorKind::Replayed(ClaimState::InFlight));
/// guard.release(&claim)?; // processing failed: let the retry in
/// let retry = guard.claim(key, until, now)?;
/// guard.complete(&retry)?; // processed: a duplicate is acknowledged, not processed
/// assert_eq!(guard.claim(key, until, now).unwrap_err().kind(), &ErrorKind::Replayed(ClaimState::Done));
/// # Ok::<(), countersign::Error>(())
/// ```
pub trait ReplayGuard: Send + Sync {
    /// Claims `key` until `expires_at` (held while `now < expires_at`; a claim until
    /// [`Timestamp::MAX`] is held for good).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Replayed`] with the held claim's state if the key is held at `now`;
    /// [`ErrorKind::ReplayGuardUnavailable`] if the guard cannot decide (store unreachable,
    /// full): the delivery must then be refused, and may be retried.
    fn claim(&self, key: ReplayKey, expires_at: Timestamp, now: Timestamp) -> Result<Claim, Error>;

    /// Marks a claim done (processing succeeded), if the key is still held by its token and
    /// in flight; otherwise does nothing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the store cannot be reached.
    fn complete(&self, claim: &Claim) -> Result<(), Error>;

    /// Releases a claim (processing failed) so the same delivery can be accepted again, if
    /// the key is still held by its token and in flight; otherwise does nothing (a done
    /// claim is never released).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the store cannot be reached.
    fn release(&self, claim: &Claim) -> Result<(), Error>;
}

impl<G: ReplayGuard + ?Sized> ReplayGuard for std::sync::Arc<G> {
    fn claim(&self, key: ReplayKey, expires_at: Timestamp, now: Timestamp) -> Result<Claim, Error> {
        (**self).claim(key, expires_at, now)
    }

    fn complete(&self, claim: &Claim) -> Result<(), Error> {
        (**self).complete(claim)
    }

    fn release(&self, claim: &Claim) -> Result<(), Error> {
        (**self).release(claim)
    }
}

/// A boxed future, as returned by [`AsyncReplayGuard`] (keeps the trait object-safe).
pub type GuardFuture<'a, T = ()> =
    core::pin::Pin<Box<dyn core::future::Future<Output = Result<T, Error>> + Send + 'a>>;

/// The asynchronous form of [`ReplayGuard`], for guards backed by a network store (Redis)
/// and for async servers. Same contract: atomic per key, token-checked, fallible.
///
/// Every [`ReplayGuard`] is also an `AsyncReplayGuard` (its futures are ready at once), so
/// a synchronous guard runs on the async server's threads: it must not block on I/O; a
/// guard that talks to a network store implements this trait instead.
///
/// # Examples
///
/// ```
/// use countersign::{kitopay, AsyncReplayGuard, InMemoryReplayGuard, ReplayKey, Signature, Timestamp};
/// use std::sync::Arc;
///
/// let guard: Arc<dyn AsyncReplayGuard> = Arc::new(InMemoryReplayGuard::new(1_000));
/// let key = ReplayKey::new(&kitopay::FULL, Signature::from_bytes([3; 32]));
/// let claim = guard.claim_async(key, Timestamp::from_unix_secs(121)?, Timestamp::UNIX_EPOCH);
/// // `let claim = claim.await?;` inside an async function.
/// # drop(claim);
/// # Ok::<(), countersign::Error>(())
/// ```
pub trait AsyncReplayGuard: Send + Sync {
    /// See [`ReplayGuard::claim`].
    fn claim_async(
        &self,
        key: ReplayKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> GuardFuture<'_, Claim>;

    /// See [`ReplayGuard::complete`].
    fn complete_async(&self, claim: Claim) -> GuardFuture<'_>;

    /// See [`ReplayGuard::release`].
    fn release_async(&self, claim: Claim) -> GuardFuture<'_>;

    /// Releases a claim from a place that cannot wait: a drop guard, when the handler
    /// panicked or the runtime stopped under it. A network store starts the release in the
    /// background (retrying until the claim would expire anyway); failures are logged by the
    /// store, not returned.
    fn release_detached(&self, claim: Claim);

    /// Marks a claim done without making the caller wait: the tower layer calls it once the
    /// handler answered 2xx, so the answer does not wait on a second round trip to a network
    /// store. A duplicate that arrives before the store has it sees the claim in flight
    /// (`409`, retry later), never a second processing. A local guard completes at once.
    fn complete_detached(&self, claim: Claim);
}

impl<G: ReplayGuard + ?Sized> AsyncReplayGuard for G {
    fn claim_async(
        &self,
        key: ReplayKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> GuardFuture<'_, Claim> {
        let outcome = self.claim(key, expires_at, now);
        Box::pin(core::future::ready(outcome))
    }

    fn complete_async(&self, claim: Claim) -> GuardFuture<'_> {
        let outcome = self.complete(&claim);
        Box::pin(core::future::ready(outcome))
    }

    fn release_async(&self, claim: Claim) -> GuardFuture<'_> {
        let outcome = self.release(&claim);
        Box::pin(core::future::ready(outcome))
    }

    fn release_detached(&self, claim: Claim) {
        // A synchronous guard releases at once; there is no caller to report a failure to.
        let _ = self.release(&claim);
    }

    fn complete_detached(&self, claim: Claim) {
        let _ = self.complete(&claim);
    }
}

/// A process-local [`ReplayGuard`]: thread-safe, bounded memory, O(log n) per claim.
///
/// Claims are spread over independently locked shards (by signature), so concurrent
/// deliveries do not queue behind one lock. Expired claims are evicted exactly: every claim
/// whose `expires_at` has passed is dropped before a shard is used, and before a claim is
/// ever refused for capacity every shard is swept, so the guard never reports "full" while
/// it holds an expired claim. With `capacity` live claims held, new claims are **refused**
/// with [`ErrorKind::ReplayGuardUnavailable`] rather than by forgetting a live claim (which
/// would let its replay in). Size the capacity for the peak number of deliveries per claim
/// lifetime (about two minutes with the default window); each claim takes about 250 bytes
/// (hash-table bucket and expiry-index entry at their usual load).
///
/// # Examples
///
/// See [`ReplayGuard`].
pub struct InMemoryReplayGuard {
    capacity: usize,
    /// Claims held across all shards (live or expired but not yet evicted).
    held: AtomicUsize,
    shards: Box<[Mutex<Shard>]>,
}

/// Number of independently locked shards.
const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    claims: HashMap<ReplayKey, Entry>,
    /// Every claim in `claims`, ordered by expiry (then token, which is unique).
    by_expiry: BTreeMap<(Timestamp, u64), ReplayKey>,
    /// The next claim's token. A key always falls in the same shard, so tokens unique per
    /// shard are unique among a key's claims, with no counter shared between threads.
    next_token: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    expires_at: Timestamp,
    token: u64,
    state: ClaimState,
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
            held: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The number of claims held (live, or expired and not yet evicted).
    ///
    /// # Examples
    ///
    /// See [`InMemoryReplayGuard::new`].
    #[must_use]
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Acquire)
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

    fn shard(&self, key: &ReplayKey) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[key.shard(self.shards.len())])
    }

    /// Takes one unit of capacity, if there is one.
    fn reserve(&self) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn evict(&self, shard: &mut Shard, now: Timestamp) {
        let evicted = shard.evict(now);
        if evicted > 0 {
            self.held.fetch_sub(evicted, Ordering::AcqRel);
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // Every operation leaves the two maps consistent before it can panic (it cannot: no
    // user code runs under the lock), so a poisoned lock is still safe to use.
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shard {
    /// Drops every claim with `expires_at <= now`; returns how many. A claim until
    /// [`Timestamp::MAX`] never expires: the clock saturates there (after year 9999), where
    /// the claim could otherwise end while its message is still fresh.
    fn evict(&mut self, now: Timestamp) -> usize {
        let mut evicted = 0;
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now || entry.key().0 == Timestamp::MAX {
                break;
            }
            let key = entry.remove();
            self.claims.remove(&key);
            evicted += 1;
        }
        evicted
    }

    /// The entry of `claim`'s key if it is still held by `claim`'s token and in flight.
    fn in_flight(&mut self, claim: &Claim) -> Option<&mut Entry> {
        self.claims.get_mut(&claim.key).filter(|entry| {
            u128::from(entry.token) == claim.token && entry.state == ClaimState::InFlight
        })
    }
}

impl ReplayGuard for InMemoryReplayGuard {
    fn claim(&self, key: ReplayKey, expires_at: Timestamp, now: Timestamp) -> Result<Claim, Error> {
        let mut shard = self.shard(&key);
        self.evict(&mut shard, now);
        if let Some(entry) = shard.claims.get(&key) {
            return err(ErrorKind::Replayed(entry.state));
        }
        if !self.reserve() {
            // Full: sweep every shard (one lock at a time) before refusing, so an expired
            // claim queued behind a longer-lived one never costs a delivery.
            drop(shard);
            for other in self.shards.iter() {
                self.evict(&mut lock(other), now);
            }
            shard = self.shard(&key);
            self.evict(&mut shard, now);
            if let Some(entry) = shard.claims.get(&key) {
                return err(ErrorKind::Replayed(entry.state));
            }
            if !self.reserve() {
                return err(ErrorKind::ReplayGuardUnavailable(format!(
                    "the in-memory replay guard is full ({} live claims); raise its capacity or use a shared store",
                    self.capacity
                )));
            }
        }
        shard.next_token += 1;
        let token = shard.next_token;
        shard.claims.insert(
            key,
            Entry {
                expires_at,
                token,
                state: ClaimState::InFlight,
            },
        );
        shard.by_expiry.insert((expires_at, token), key);
        Ok(Claim::new(key, u128::from(token), expires_at))
    }

    fn complete(&self, claim: &Claim) -> Result<(), Error> {
        if let Some(entry) = self.shard(&claim.key).in_flight(claim) {
            entry.state = ClaimState::Done;
        }
        Ok(())
    }

    fn release(&self, claim: &Claim) -> Result<(), Error> {
        let mut shard = self.shard(&claim.key);
        if let Some(entry) = shard.in_flight(claim).copied() {
            shard.claims.remove(&claim.key);
            shard.by_expiry.remove(&(entry.expires_at, entry.token));
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(())
    }
}

impl fmt::Debug for InMemoryReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayGuard")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kitopay;

    fn key(n: u8) -> ReplayKey {
        ReplayKey::new(&kitopay::FULL, Signature::from_bytes([n; 32]))
    }
    fn t(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }
    fn kind(result: Result<Claim, Error>) -> ErrorKind {
        result.unwrap_err().into_kind()
    }
    const FULL: &str = "replay_guard_unavailable";

    #[test]
    fn a_claim_is_held_until_just_before_expires_at_and_then_evicted() {
        let guard = InMemoryReplayGuard::new(10);
        guard.claim(key(1), t(60), t(0)).unwrap();
        let last_held =
            Timestamp::from_duration(t(60).since_epoch() - core::time::Duration::from_nanos(1))
                .unwrap();
        assert_eq!(
            kind(guard.claim(key(1), t(60), last_held)),
            ErrorKind::Replayed(ClaimState::InFlight)
        );
        assert_eq!(guard.len(), 1);
        guard.claim(key(1), t(120), t(60)).unwrap();
        assert_eq!(
            guard.len(),
            1,
            "the expired claim was evicted, not kept beside the new one"
        );
    }

    #[test]
    fn full_means_live_claims_only_even_behind_a_longer_lived_one() {
        // The review's case: capacity 3, one claim until 1120, two until 1001; at 1050 a
        // new claim must evict the two expired ones instead of reporting full.
        let guard = InMemoryReplayGuard::new(3);
        guard.claim(key(1), t(1_120), t(1_000)).unwrap();
        guard.claim(key(2), t(1_001), t(1_000)).unwrap();
        guard.claim(key(3), t(1_001), t(1_000)).unwrap();
        assert_eq!(
            guard.claim(key(4), t(1_100), t(1_000)).unwrap_err().code(),
            FULL
        );
        guard.claim(key(4), t(1_100), t(1_050)).unwrap();
        assert_eq!(guard.len(), 2);
        // At capacity exactly (3 live), the next one is refused; one below, accepted.
        guard.claim(key(5), t(1_100), t(1_050)).unwrap();
        assert_eq!(
            guard.claim(key(6), t(1_100), t(1_050)).unwrap_err().code(),
            FULL
        );
        assert_eq!(guard.len(), 3);
    }

    #[test]
    fn eviction_across_shards_frees_capacity_for_any_key() {
        // Keys in different shards: the full sweep must reach the other shards.
        let guard = InMemoryReplayGuard::new(2);
        let keys: Vec<_> = (0..=255u8).map(key).collect();
        let (a, b) = (keys[0], keys[1]);
        assert_ne!(a.shard(SHARDS), b.shard(SHARDS));
        guard.claim(a, t(10), t(0)).unwrap();
        guard.claim(b, t(10), t(0)).unwrap();
        let c = keys
            .iter()
            .copied()
            .find(|k| k.shard(SHARDS) != a.shard(SHARDS) && k.shard(SHARDS) != b.shard(SHARDS))
            .unwrap();
        assert_eq!(guard.claim(c, t(20), t(9)).unwrap_err().code(), FULL);
        guard.claim(c, t(20), t(10)).unwrap();
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn release_and_complete_act_only_on_their_own_in_flight_claim() {
        let guard = InMemoryReplayGuard::new(10);
        let first = guard.claim(key(1), t(60), t(0)).unwrap();
        guard.release(&first).unwrap();
        assert!(guard.is_empty());
        let second = guard.claim(key(1), t(100), t(10)).unwrap();
        assert_ne!(first.token(), second.token());
        // A late release or completion of the first claim does nothing to the second.
        guard.release(&first).unwrap();
        guard.complete(&first).unwrap();
        assert_eq!(
            kind(guard.claim(key(1), t(100), t(20))),
            ErrorKind::Replayed(ClaimState::InFlight)
        );
        guard.complete(&second).unwrap();
        assert_eq!(
            kind(guard.claim(key(1), t(100), t(20))),
            ErrorKind::Replayed(ClaimState::Done)
        );
        // A done claim is never released.
        guard.release(&second).unwrap();
        assert_eq!(
            kind(guard.claim(key(1), t(100), t(99))),
            ErrorKind::Replayed(ClaimState::Done)
        );
        assert_eq!(guard.len(), 1);
        guard.claim(key(1), t(200), t(100)).unwrap();
    }

    #[test]
    fn names_and_formats() {
        let key = ReplayKey::new(&kitopay::WEBHOOK, Signature::from_bytes([0xab; 32]));
        assert_eq!(
            key.to_string(),
            format!("kitopay-webhook:{}", "ab".repeat(32))
        );
        assert_eq!(ClaimState::InFlight.as_str(), "in_flight");
        assert_eq!(ClaimState::Done.as_str(), "done");
        assert_eq!(format!("[{:>6}]", ClaimState::Done), "[  done]");
        let guard = InMemoryReplayGuard::new(7);
        assert!(guard.is_empty());
        guard.claim(key, t(10), t(0)).unwrap();
        assert!(!guard.is_empty());
        assert_eq!(
            format!("{guard:?}"),
            "InMemoryReplayGuard { capacity: 7, len: 1, .. }"
        );
    }

    #[test]
    fn memory_stays_bounded_under_claim_release_churn() {
        let guard = InMemoryReplayGuard::new(4);
        for i in 0..10_000u32 {
            let k = key((i % 7) as u8);
            if let Ok(claim) = guard.claim(k, t(1_000), t(0)) {
                guard.release(&claim).unwrap();
            }
        }
        assert!(guard.is_empty());
        let indexed: usize = guard.shards.iter().map(|s| lock(s).by_expiry.len()).sum();
        assert_eq!(indexed, 0);
    }
}
