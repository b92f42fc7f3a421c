//! [`InMemoryStore`]: claims held in this process, for a single instance.

use core::fmt;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::guard::Claim;
use super::key::ClaimKey;
use super::state::ClaimState;
use super::store::{ClaimStore, Outcome, StoreFuture};
use crate::error::{Error, ErrorKind};
use crate::time::Timestamp;

/// A process-local [`ClaimStore`]: thread-safe, bounded memory, O(log n) per operation, and
/// its operations finish at once (no runtime, no allocation beyond the claim's entry).
///
/// Claims are spread over independently locked shards (by key), so concurrent deliveries
/// do not queue behind one lock. Claims whose `until` has passed are evicted exactly: each
/// one is dropped before its shard is next used, and before a claim is ever refused for
/// capacity every shard is swept, so the store never reports "full" while it holds a lapsed
/// claim. With `capacity` live claims held, new claims are **refused**
/// ([`ErrorKind::ReplayGuardUnavailable`]) rather than by forgetting a live claim (which
/// would let its replay in).
///
/// Size the capacity for the claims alive at once: deliveries per second times how long
/// each is kept (the retention for claims by event id, 7 days by default; about two minutes
/// for claims by signature). Each claim takes 228 bytes (measured in
/// `tests/claim_memory.rs`): 100 events/s kept 7 days is 60 million claims, 14 GB, which is
/// a shared store's job (Redis, PostgreSQL); by signature it is 12,100 claims, 2.8 MB.
///
/// # Examples
///
/// ```
/// use countersign::claim::{ClaimStore, InMemoryStore, ReplayGuard};
///
/// let store = InMemoryStore::new(100_000);
/// assert!(store.is_empty());
/// let guard = ReplayGuard::in_memory(100_000);
/// ```
pub struct InMemoryStore {
    capacity: usize,
    /// Claims held across all shards (live, or lapsed and not yet evicted).
    held: AtomicUsize,
    shards: Box<[Mutex<Shard>]>,
}

/// Number of independently locked shards.
const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    claims: HashMap<ClaimKey, Entry>,
    /// Every claim in `claims`, ordered by `until` (then token, unique per key).
    by_until: BTreeMap<(Timestamp, u128, ClaimKey), ()>,
}

#[derive(Clone, Copy)]
struct Entry {
    until: Timestamp,
    token: u128,
    state: ClaimState,
}

impl InMemoryStore {
    /// A store holding at most `capacity` live claims.
    ///
    /// # Examples
    ///
    /// See [`InMemoryStore`].
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        InMemoryStore {
            capacity,
            held: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The number of claims held (live, or lapsed and not yet evicted).
    ///
    /// # Examples
    ///
    /// See [`InMemoryStore`].
    #[must_use]
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Whether no claim is held.
    ///
    /// # Examples
    ///
    /// See [`InMemoryStore`].
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &ClaimKey) -> MutexGuard<'_, Shard> {
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

    fn claim_now(
        &self,
        key: &ClaimKey,
        token: u128,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Outcome, Error> {
        let mut shard = self.shard(key);
        self.evict(&mut shard, now);
        if let Some(entry) = shard.claims.get(key) {
            return Ok(Outcome::Held(entry.state));
        }
        if !self.reserve() {
            // Full: sweep every shard (one lock at a time) before refusing, so a lapsed
            // claim queued behind a longer-lived one never costs a delivery.
            drop(shard);
            for other in &self.shards {
                self.evict(&mut lock(other), now);
            }
            shard = self.shard(key);
            self.evict(&mut shard, now);
            if let Some(entry) = shard.claims.get(key) {
                return Ok(Outcome::Held(entry.state));
            }
            if !self.reserve() {
                return Err(ErrorKind::ReplayGuardUnavailable(format!(
                    "the in-memory claim store is full ({} live claims); raise its capacity or use a shared store",
                    self.capacity
                ))
                .into());
            }
        }
        shard.insert(*key, token, until, ClaimState::InFlight);
        Ok(Outcome::Claimed(None))
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Every operation leaves the two maps consistent before it could panic (it cannot: no
    // user code runs under the lock), so a poisoned lock is still safe to use.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shard {
    /// Drops every claim with `until <= now`; returns how many. A claim until
    /// [`Timestamp::MAX`] never lapses: the clock saturates there (after year 9999), where
    /// the claim could otherwise end while its message is still fresh.
    fn evict(&mut self, now: Timestamp) -> usize {
        let mut evicted = 0;
        while let Some(entry) = self.by_until.first_entry() {
            let (until, _, key) = *entry.key();
            if until > now || until == Timestamp::MAX {
                break;
            }
            entry.remove();
            self.claims.remove(&key);
            evicted += 1;
        }
        evicted
    }

    fn insert(&mut self, key: ClaimKey, token: u128, until: Timestamp, state: ClaimState) {
        self.claims.insert(
            key,
            Entry {
                until,
                token,
                state,
            },
        );
        self.by_until.insert((until, token, key), ());
    }

    /// Removes `key`'s claim if `token` holds it in flight; returns whether it did.
    fn take_in_flight(&mut self, key: &ClaimKey, token: u128) -> bool {
        match self.claims.get(key) {
            Some(entry) if entry.token == token && entry.state == ClaimState::InFlight => {
                self.by_until.remove(&(entry.until, entry.token, *key));
                self.claims.remove(key);
                true
            }
            _ => false,
        }
    }
}

impl ClaimStore for InMemoryStore {
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome> {
        StoreFuture::ready(self.claim_now(
            &claim.key(),
            claim.token(),
            claim.lease_until(),
            claim.claimed_at(),
        ))
    }

    fn complete(&self, claim: &Claim) -> StoreFuture<'_, bool> {
        let (key, token) = (claim.key(), claim.token());
        let mut shard = self.shard(&key);
        let done = shard.take_in_flight(&key, token);
        if done {
            shard.insert(key, token, claim.retain_until(), ClaimState::Done);
        }
        StoreFuture::ready(Ok(done))
    }

    fn release(&self, claim: &Claim) -> StoreFuture<'_, ()> {
        let key = claim.key();
        if self.shard(&key).take_in_flight(&key, claim.token()) {
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
        StoreFuture::ready(Ok(()))
    }

    fn is_shared(&self) -> bool {
        false
    }
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryStore")
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
    use core::time::Duration;

    fn key(n: u8) -> ClaimKey {
        ClaimKey::new("", "", &kitopay::FULL, "signature", &[n; 32])
    }
    fn t(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }
    /// A claim of `key` by `token` at `now`, in flight until `until`, done until `until`.
    fn claim(key: ClaimKey, token: u128, until: Timestamp, now: Timestamp) -> Claim {
        Claim::new(key, token, now, until, until)
    }
    fn outcome(store: &InMemoryStore, claim: &Claim) -> Result<Outcome, Error> {
        store.claim(claim).into_ready().ok().unwrap()
    }
    fn held(store: &InMemoryStore, claim: &Claim) -> Option<ClaimState> {
        match outcome(store, claim).unwrap() {
            Outcome::Held(state) => Some(state),
            Outcome::Claimed(_) => None,
        }
    }
    fn complete(store: &InMemoryStore, claim: &Claim) -> bool {
        store.complete(claim).into_ready().ok().unwrap().unwrap()
    }
    fn release(store: &InMemoryStore, claim: &Claim) {
        store.release(claim).into_ready().ok().unwrap().unwrap();
    }
    const FULL: &str = "replay_guard_unavailable";

    #[test]
    fn a_claim_is_held_until_just_before_its_instant_and_then_evicted() {
        let store = InMemoryStore::new(10);
        assert_eq!(held(&store, &claim(key(1), 1, t(60), t(0))), None);
        let last_held =
            Timestamp::from_duration(t(60).since_epoch() - Duration::from_nanos(1)).unwrap();
        assert_eq!(
            held(&store, &claim(key(1), 2, t(60), last_held)),
            Some(ClaimState::InFlight)
        );
        assert_eq!(store.len(), 1);
        assert_eq!(held(&store, &claim(key(1), 3, t(120), t(60))), None);
        assert_eq!(
            store.len(),
            1,
            "the lapsed claim was evicted, not kept beside the new one"
        );
    }

    #[test]
    fn full_means_live_claims_only_even_behind_a_longer_lived_one() {
        // The review's case: capacity 3, one claim until 1120, two until 1001; at 1050 a
        // new claim must evict the two lapsed ones instead of reporting full.
        let store = InMemoryStore::new(3);
        assert_eq!(held(&store, &claim(key(1), 1, t(1_120), t(1_000))), None);
        assert_eq!(held(&store, &claim(key(2), 2, t(1_001), t(1_000))), None);
        assert_eq!(held(&store, &claim(key(3), 3, t(1_001), t(1_000))), None);
        let refused = outcome(&store, &claim(key(4), 4, t(1_100), t(1_000)));
        assert_eq!(refused.unwrap_err().code(), FULL);
        assert_eq!(held(&store, &claim(key(4), 5, t(1_100), t(1_050))), None);
        assert_eq!(store.len(), 2);
        // At capacity exactly (3 live), the next one is refused; one below, accepted.
        assert_eq!(held(&store, &claim(key(5), 6, t(1_100), t(1_050))), None);
        let refused = outcome(&store, &claim(key(6), 7, t(1_100), t(1_050)));
        assert_eq!(refused.unwrap_err().code(), FULL);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn a_full_store_still_reports_a_held_key_as_held() {
        let store = InMemoryStore::new(1);
        assert_eq!(held(&store, &claim(key(1), 1, t(10), t(0))), None);
        assert_eq!(
            held(&store, &claim(key(1), 2, t(10), t(5))),
            Some(ClaimState::InFlight),
            "a duplicate is a duplicate, not a capacity failure"
        );
    }

    #[test]
    fn eviction_across_shards_frees_capacity_for_any_key() {
        // Keys in different shards: the full sweep must reach the other shards.
        let store = InMemoryStore::new(2);
        let keys: Vec<_> = (0..=255u8).map(key).collect();
        let (a, b) = (keys[0], keys[1]);
        let (sa, sb) = (a.shard(SHARDS), b.shard(SHARDS));
        let (a, b) = if sa == sb {
            let other = keys
                .iter()
                .copied()
                .find(|k| k.shard(SHARDS) != sa)
                .unwrap();
            (a, other)
        } else {
            (a, b)
        };
        assert_ne!(a.shard(SHARDS), b.shard(SHARDS));
        assert_eq!(held(&store, &claim(a, 1, t(10), t(0))), None);
        assert_eq!(held(&store, &claim(b, 2, t(10), t(0))), None);
        let c = keys
            .iter()
            .copied()
            .find(|k| k.shard(SHARDS) != a.shard(SHARDS) && k.shard(SHARDS) != b.shard(SHARDS))
            .unwrap();
        let refused = outcome(&store, &claim(c, 3, t(20), t(9)));
        assert_eq!(refused.unwrap_err().code(), FULL);
        assert_eq!(held(&store, &claim(c, 4, t(20), t(10))), None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn release_and_complete_act_only_on_their_own_in_flight_claim() {
        let store = InMemoryStore::new(10);
        let first = claim(key(1), 1, t(60), t(0));
        assert_eq!(held(&store, &first), None);
        release(&store, &first);
        assert!(store.is_empty());
        let second = claim(key(1), 2, t(100), t(10));
        assert_eq!(held(&store, &second), None);
        // A late release or completion of the first claim does nothing to the second.
        release(&store, &first);
        assert!(!complete(&store, &first));
        assert_eq!(
            held(&store, &claim(key(1), 3, t(100), t(20))),
            Some(ClaimState::InFlight)
        );
        assert!(complete(&store, &second));
        assert!(!complete(&store, &second), "done once");
        assert_eq!(
            held(&store, &claim(key(1), 4, t(100), t(20))),
            Some(ClaimState::Done)
        );
        // A done claim is never released.
        release(&store, &second);
        assert_eq!(
            held(&store, &claim(key(1), 5, t(100), t(99))),
            Some(ClaimState::Done)
        );
        assert_eq!(store.len(), 1);
        assert_eq!(held(&store, &claim(key(1), 6, t(200), t(100))), None);
    }

    #[test]
    fn done_is_held_for_the_retention_not_the_lease() {
        let store = InMemoryStore::new(10);
        let c = Claim::new(key(1), 1, t(0), t(60), t(3_600));
        assert_eq!(held(&store, &c), None);
        assert!(complete(&store, &c));
        for (now, state) in [
            (t(60), Some(ClaimState::Done)),
            (t(3_599), Some(ClaimState::Done)),
            (t(3_600), None),
        ] {
            assert_eq!(
                held(&store, &claim(key(1), 9, t(7_200), now)),
                state,
                "{now:?}"
            );
        }
    }

    #[test]
    fn a_lapsed_lease_lets_the_delivery_in_again_and_the_old_token_cannot_complete() {
        let store = InMemoryStore::new(10);
        let first = Claim::new(key(1), 1, t(0), t(60), t(3_600));
        assert_eq!(held(&store, &first), None);
        let second = Claim::new(key(1), 2, t(60), t(120), t(3_660));
        assert_eq!(held(&store, &second), None, "the lease lapsed at 60 s");
        assert!(
            !complete(&store, &first),
            "the first instance was presumed dead"
        );
        assert!(complete(&store, &second));
    }

    #[test]
    fn a_claim_held_for_good_is_never_evicted() {
        let store = InMemoryStore::new(10);
        assert_eq!(held(&store, &claim(key(1), 1, Timestamp::MAX, t(0))), None);
        assert_eq!(
            held(&store, &claim(key(1), 2, Timestamp::MAX, Timestamp::MAX)),
            Some(ClaimState::InFlight)
        );
    }

    #[test]
    fn names_and_formats() {
        assert_eq!(ClaimState::InFlight.as_str(), "in_flight");
        assert_eq!(ClaimState::Done.as_str(), "done");
        assert_eq!(format!("[{:>6}]", ClaimState::Done), "[  done]");
        let store = InMemoryStore::new(7);
        assert!(store.is_empty());
        assert_eq!(held(&store, &claim(key(1), 1, t(10), t(0))), None);
        assert!(!store.is_empty());
        assert_eq!(
            format!("{store:?}"),
            "InMemoryStore { capacity: 7, len: 1, .. }"
        );
    }

    #[test]
    fn memory_stays_bounded_under_claim_release_churn() {
        let store = InMemoryStore::new(4);
        for i in 0..10_000u32 {
            let c = claim(key((i % 7) as u8), u128::from(i), t(1_000), t(0));
            if let Ok(Outcome::Claimed(_)) = outcome(&store, &c) {
                release(&store, &c);
            }
        }
        assert!(store.is_empty());
        let indexed: usize = store.shards.iter().map(|s| lock(s).by_until.len()).sum();
        assert_eq!(indexed, 0);
    }
}
