//! The completions that follow answers (`ReplayGuard::complete_detached`) on a store whose
//! operations take a round trip: batched (many completions per `complete_all`), none lost,
//! none sent twice, and a failing batch leaves its claims in flight (never released).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign::claim::{
    Claim, ClaimKey, ClaimState, ClaimStore, InMemoryStore, Outcome, ReplayGuard, StoreFuture,
};
use countersign::{ErrorKind, Timestamp, kitopay};

/// An in-memory store behind a 2 ms "network": every operation is pending; counts the
/// batches and every claim completed.
#[derive(Default)]
struct Remote {
    store: Arc<InMemoryStoreHandle>,
    batches: Mutex<Vec<usize>>,
    completed: Mutex<Vec<u128>>,
    failing: AtomicBool,
}

struct InMemoryStoreHandle(InMemoryStore);

impl Default for InMemoryStoreHandle {
    fn default() -> Self {
        InMemoryStoreHandle(InMemoryStore::new(100_000))
    }
}

impl ClaimStore for Remote {
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome> {
        let claim = *claim;
        StoreFuture::pending(async move { self.store.0.claim(&claim).await })
    }

    fn complete(&self, claim: &Claim) -> StoreFuture<'_, bool> {
        let claim = *claim;
        StoreFuture::pending(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.completed.lock().unwrap().push(claim.token());
            self.store.0.complete(&claim).await
        })
    }

    fn release(&self, claim: &Claim) -> StoreFuture<'_, ()> {
        let claim = *claim;
        StoreFuture::pending(async move { self.store.0.release(&claim).await })
    }

    fn complete_all<'a>(&'a self, claims: &'a [Claim]) -> StoreFuture<'a, Vec<bool>> {
        StoreFuture::pending(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(ErrorKind::ReplayGuardUnavailable("connection reset".into()).into());
            }
            self.batches.lock().unwrap().push(claims.len());
            let mut done = Vec::new();
            for claim in claims {
                self.completed.lock().unwrap().push(claim.token());
                done.push(self.store.0.complete(claim).await?);
            }
            Ok(done)
        })
    }
}

fn claim(n: u32) -> Claim {
    let now = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let until = Timestamp::from_unix_secs(1_700_000_600).unwrap();
    let key = ClaimKey::new("t", "/", &kitopay::WEBHOOK, "event", &n.to_le_bytes());
    Claim::new(key, u128::from(n), now, until, until)
}

async fn state(store: &Remote, n: u32) -> Option<ClaimState> {
    let probe = Claim::new(
        claim(n).key(),
        u128::MAX,
        claim(n).claimed_at(),
        claim(n).lease_until(),
        claim(n).retain_until(),
    );
    match store.store.0.claim(&probe).await.unwrap() {
        Outcome::Held(state) => Some(state),
        _ => {
            store.store.0.release(&probe).await.unwrap();
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_after_answers_are_batched_and_none_is_lost_or_sent_twice() {
    let remote = Arc::new(Remote::default());
    let guard = ReplayGuard::new(Arc::clone(&remote), "batches").unwrap();
    const N: u32 = 2_000;
    for n in 0..N {
        assert!(matches!(
            remote.claim(&claim(n)).await.unwrap(),
            Outcome::Claimed(_)
        ));
    }
    // Answers come in from many tasks at once.
    let tasks: Vec<_> = (0..N)
        .map(|n| {
            let guard = guard.clone();
            tokio::spawn(async move { guard.complete_detached(&claim(n)) })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while remote.completed.lock().unwrap().len() < N as usize {
        assert!(std::time::Instant::now() < deadline, "completions lost");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut completed = remote.completed.lock().unwrap().clone();
    completed.sort_unstable();
    completed.dedup();
    assert_eq!(
        completed.len(),
        N as usize,
        "a completion sent twice or lost"
    );
    assert_eq!(remote.completed.lock().unwrap().len(), N as usize);
    let batches = remote.batches.lock().unwrap().clone();
    assert!(
        batches.len() < N as usize / 4,
        "not batched: {} batches",
        batches.len()
    );
    assert!(
        batches.iter().all(|&b| (1..=512).contains(&b)),
        "{batches:?}"
    );
    for n in [0, N / 2, N - 1] {
        assert_eq!(state(&remote, n).await, Some(ClaimState::Done));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_leaves_its_claims_in_flight_and_the_next_batch_goes_through() {
    let remote = Arc::new(Remote::default());
    let guard = ReplayGuard::new(Arc::clone(&remote), "failing").unwrap();
    for n in 0..10 {
        remote.claim(&claim(n)).await.unwrap();
    }
    remote.failing.store(true, Ordering::SeqCst);
    for n in 0..5 {
        guard.complete_detached(&claim(n));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Never released: a duplicate is told "in flight" (409), not processed again.
    assert_eq!(state(&remote, 0).await, Some(ClaimState::InFlight));
    remote.failing.store(false, Ordering::SeqCst);
    for n in 5..10 {
        guard.complete_detached(&claim(n));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(state(&remote, 7).await, Some(ClaimState::Done));
    assert_eq!(state(&remote, 2).await, Some(ClaimState::InFlight));
}
