//! The guard's policy around a store whose operations take a round trip, written once for
//! every network store: timeouts (an undecided claim is refused and cleaned up by its
//! token), a claim future dropped before the store answered (cleaned up), the failure
//! policy, releases retried in the background, the blocking path for synchronous callers,
//! a store that hands the handler a transaction refused by `Verifier::verify`, and the
//! completions that follow answers: batched (many per `complete_all`), none lost, none sent
//! twice, a failing batch leaving its claims in flight (never released).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign::claim::{
    Attachment, Claim, ClaimKey, ClaimState, ClaimStore, FailurePolicy, InMemoryStore, Outcome,
    ReplayGuard, StoreFuture,
};
use countersign::{
    ErrorKind, FixedClock, ReceivedRequest, SecretKey, SignableRequest, Signature, Signer,
    Timestamp, Verified, Verifier, kitopay,
};

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

/// A store whose claims land after `delay` (or never), and which records every release
/// by token; releases fail while `failing_releases` is above zero.
struct Slow {
    inner: InMemoryStore,
    delay: Option<Duration>,
    releases: Mutex<Vec<u128>>,
    failing_releases: std::sync::atomic::AtomicUsize,
}

impl Slow {
    fn new(delay: Option<Duration>) -> Self {
        Slow {
            inner: InMemoryStore::new(1_000),
            delay,
            releases: Mutex::new(Vec::new()),
            failing_releases: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl ClaimStore for Slow {
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome> {
        let claim = *claim;
        StoreFuture::pending(async move {
            match self.delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending::<()>().await,
            }
            self.inner.claim(&claim).await
        })
    }

    fn complete(&self, claim: &Claim) -> StoreFuture<'_, bool> {
        let claim = *claim;
        StoreFuture::pending(async move { self.inner.complete(&claim).await })
    }

    fn release(&self, claim: &Claim) -> StoreFuture<'_, ()> {
        let claim = *claim;
        StoreFuture::pending(async move {
            let failing = &self.failing_releases;
            if failing.load(Ordering::SeqCst) > 0 {
                failing.fetch_sub(1, Ordering::SeqCst);
                return Err(ErrorKind::ReplayGuardUnavailable("connection reset".into()).into());
            }
            self.releases.lock().unwrap().push(claim.token());
            self.inner.release(&claim).await
        })
    }
}

fn delivery(n: u8) -> Verified {
    Verified::dangerous_assume(
        &kitopay::FULL,
        "primary",
        Some(Timestamp::from_unix_secs(1_700_000_000).unwrap()),
        Signature::from_bytes([n; 32]),
    )
}

fn no_request() -> ReceivedRequest<'static> {
    static NO_HEADERS: [(&str, &str); 0] = [];
    ReceivedRequest::new(&NO_HEADERS, b"")
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs).unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_claim_is_refused_at_the_timeout_and_cleaned_up_by_its_token() {
    let slow = Arc::new(Slow::new(Some(Duration::from_millis(300))));
    let guard = ReplayGuard::new(Arc::clone(&slow), "t")
        .unwrap()
        .with_timeout(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let refused = guard
        .claim(&delivery(1), &no_request(), "/", at(1_700_000_000))
        .await;
    assert_eq!(refused.unwrap_err().code(), "replay_guard_unavailable");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // The claim lands late; the clean-up deletes it (it holds the claim's token), so the
    // provider's retry gets in.
    wait_for("the timed-out claim was never cleaned up", || {
        !slow.releases.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        guard
            .with_timeout(Duration::from_secs(2))
            .claim(&delivery(1), &no_request(), "/", at(1_700_000_000))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_dropped_before_the_store_answered_is_cleaned_up() {
    let slow = Arc::new(Slow::new(Some(Duration::from_millis(100))));
    let guard = ReplayGuard::new(Arc::clone(&slow), "t").unwrap();
    let claiming = guard.claim(&delivery(2), &no_request(), "/", at(1_700_000_000));
    // The client hangs up: the request's future is dropped mid-claim.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), claiming)
            .await
            .is_err()
    );
    wait_for("the dropped claim was never cleaned up", || {
        slow.releases.lock().unwrap().len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_policy_decides_what_an_outage_means() {
    let never = || Arc::new(Slow::new(None));
    let closed = ReplayGuard::new(never(), "t")
        .unwrap()
        .with_timeout(Duration::from_millis(20));
    assert_eq!(closed.failure_policy(), FailurePolicy::Closed);
    let refused = closed
        .claim(&delivery(3), &no_request(), "/", at(1_700_000_000))
        .await;
    assert_eq!(refused.unwrap_err().code(), "replay_guard_unavailable");
    let open = closed.clone().with_failure_policy(FailurePolicy::Open);
    let accepted = open
        .claim(&delivery(3), &no_request(), "/", at(1_700_000_000))
        .await
        .unwrap();
    assert_eq!(accepted.claim(), None, "accepted unguarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_release_is_retried_in_the_background_until_it_lands() {
    let slow = Arc::new(Slow::new(Some(Duration::ZERO)));
    let guard = ReplayGuard::new(Arc::clone(&slow), "t").unwrap();
    // Signed now, so its claim is held for two minutes by the system clock: the retries go
    // on (they stop once the claim would have lapsed anyway).
    let now = countersign::Clock::now(&countersign::SystemClock);
    let fresh = Verified::dangerous_assume(
        &kitopay::FULL,
        "primary",
        Some(now),
        Signature::from_bytes([4; 32]),
    );
    let admission = guard.claim(&fresh, &no_request(), "/", now).await.unwrap();
    let claim = admission.claim().unwrap();
    slow.failing_releases.store(2, Ordering::SeqCst);
    assert_eq!(
        guard.release(&claim).await.unwrap_err().code(),
        "replay_guard_unavailable"
    );
    // 100 ms, then 200 ms: the second retry lands.
    wait_for("the release was never retried", || {
        slow.releases.lock().unwrap().contains(&claim.token())
    })
    .await;
    assert!(
        guard.claim(&fresh, &no_request(), "/", now).await.is_ok(),
        "released: the retry gets in"
    );
}

#[test]
fn synchronous_callers_wait_on_the_guards_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Built inside the runtime: the guard keeps its handle for synchronous callers.
    let guard = runtime.block_on(async {
        ReplayGuard::new(Slow::new(Some(Duration::from_millis(10))), "t").unwrap()
    });
    let first = guard.claim_blocking(&delivery(5), &no_request(), "/", at(1_700_000_000));
    let claim = first.unwrap().claim().unwrap();
    let again = guard.claim_blocking(&delivery(5), &no_request(), "/", at(1_700_000_000));
    assert_eq!(
        again.unwrap_err().kind(),
        &ErrorKind::Replayed(ClaimState::InFlight)
    );
    assert!(guard.complete_blocking(&claim).unwrap());
    let done = guard.claim_blocking(&delivery(5), &no_request(), "/", at(1_700_000_000));
    assert_eq!(
        done.unwrap_err().kind(),
        &ErrorKind::Replayed(ClaimState::Done)
    );
    guard.release_blocking(&claim).unwrap();
    // A store that never answers: the caller waits at most about the timeout.
    let stuck_store = Arc::new(Slow::new(None));
    let stuck = runtime.block_on(async {
        ReplayGuard::new(Arc::clone(&stuck_store), "t")
            .unwrap()
            .with_timeout(Duration::from_millis(50))
    });

    let started = std::time::Instant::now();
    let refused = stuck.claim_blocking(&delivery(6), &no_request(), "/", at(1_700_000_000));
    assert_eq!(refused.unwrap_err().code(), "replay_guard_unavailable");
    // The claim may still land: it is cleaned up by its token, as on the async path.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stuck_store.releases.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the undecided claim was not cleaned up"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // Without a runtime to run a network store on, a clear error, not a hang or a panic.
    let orphan = ReplayGuard::new(Slow::new(Some(Duration::ZERO)), "t").unwrap();
    let refused = orphan.claim_blocking(&delivery(7), &no_request(), "/", at(1_700_000_000));
    assert!(refused.unwrap_err().to_string().contains("Tokio runtime"));
}

/// A store that hands the handler something, as the transactional PostgreSQL store does.
struct Handing(InMemoryStore);

struct Token;

impl Attachment for Token {
    fn settle(&self, success: bool) -> StoreFuture<'_, bool> {
        StoreFuture::ready(Ok(success))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl ClaimStore for Handing {
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome> {
        match self.0.claim(claim).into_ready() {
            Ok(Ok(Outcome::Claimed(_))) => {
                StoreFuture::ready(Ok(Outcome::Claimed(Some(Arc::new(Token)))))
            }
            Ok(other) => StoreFuture::ready(other),
            Err(pending) => pending,
        }
    }
    fn complete(&self, claim: &Claim) -> StoreFuture<'_, bool> {
        self.0.complete(claim)
    }
    fn release(&self, claim: &Claim) -> StoreFuture<'_, ()> {
        self.0.release(claim)
    }
    fn is_shared(&self) -> bool {
        false
    }
}

#[test]
fn a_store_that_hands_over_a_transaction_is_refused_by_the_plain_verifier_and_leaves_no_claim() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let signer = Signer::kamiokash_webhook(SecretKey::new("whsec").unwrap());
    let signed = signer.sign(&SignableRequest::body(b"{}"), at).unwrap();
    let headers: Vec<_> = signed.headers().collect();
    let guard = ReplayGuard::new(Handing(InMemoryStore::new(10)), "").unwrap();
    let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(FixedClock::new(at))
        .with_replay_guard(guard.clone());
    let request = ReceivedRequest::new(&headers, b"{}");
    for _ in 0..2 {
        let refused = verifier.verify(&request).unwrap_err();
        assert_eq!(refused.code(), "invalid_guard");
        assert!(refused.to_string().contains("tower layer"), "{refused}");
    }
    // Through the guard directly, the attachment is the caller's.
    let admission = futures_util::FutureExt::now_or_never(
        guard.claim(
            &verifier
                .verify(&request)
                .err()
                .map(|_| delivery(9))
                .unwrap(),
            &request,
            "/",
            at,
        ),
    )
    .unwrap()
    .unwrap();
    assert!(admission.attachment().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_after_the_lease_lapsed_is_reported_and_logged() {
    let (captured, subscriber) = countersign_test_support::server::capturing_subscriber();
    let _default = tracing::subscriber::set_default(subscriber);
    let remote = Arc::new(Remote::default());
    let guard = ReplayGuard::new(Arc::clone(&remote), "lapsed").unwrap();
    let first = claim(1);
    remote.claim(&first).await.unwrap();
    // Its lease lapsed and another instance claimed the key again.
    let later = Claim::new(
        first.key(),
        99,
        claim(1).lease_until(),
        at(1_700_001_000),
        at(1_700_001_000),
    );
    assert!(matches!(
        remote.claim(&later).await.unwrap(),
        Outcome::Claimed(_)
    ));
    assert!(!guard.complete(&first).await.unwrap());
    let log = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("WARN") && log.contains("lease lapsed"),
        "{log}"
    );
}

#[test]
fn a_completion_with_no_runtime_to_send_it_on_does_not_stop_the_next_ones() {
    // Found by this review: a completion queued where there was no Tokio runtime to send
    // it on (logged) left the queue marked "being sent" for good, so every later
    // completion of the guard was queued and never sent: each claim stayed in flight until
    // its lease lapsed (duplicates 409, then processed again) and the queue grew without
    // bound. The queue's sender is now released when its task cannot run.
    let remote = Arc::new(Remote::default());
    let guard = ReplayGuard::new(Arc::clone(&remote), "orphan").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for n in [1, 2] {
            remote.claim(&claim(n)).await.unwrap();
        }
    });
    guard.complete_detached(&claim(1));
    runtime.block_on(async {
        guard.complete_detached(&claim(2));
        wait_for("a later completion was never sent", || {
            remote.completed.lock().unwrap().contains(&2)
        })
        .await;
        wait_for(
            "the completion queued without a runtime went with it",
            || remote.completed.lock().unwrap().contains(&1),
        )
        .await;
        assert_eq!(state(&remote, 1).await, Some(ClaimState::Done));
        assert_eq!(state(&remote, 2).await, Some(ClaimState::Done));
    });
}

#[test]
fn a_lease_is_at_least_a_second_so_a_copy_never_slips_in_beside_the_first() {
    // The review's attack: a zero lease lapsed the instant it was taken, so a copy arriving
    // while the first was being processed was processed beside it. Leases are at least 1 s.
    let delivery = Verified::dangerous_assume(
        &countersign::standard_webhooks::SCHEME,
        "primary",
        Some(at(1_700_000_000)),
        Signature::from_bytes([1; 32]),
    );
    let headers = [("webhook-id", "msg_zero")];
    let request = ReceivedRequest::new(&headers, b"{}");
    let zero = ReplayGuard::in_memory(10).with_lease(Duration::ZERO);
    assert_eq!(zero.lease(), Duration::from_secs(1));
    let start = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let just_before = Timestamp::from_duration(
        start.since_epoch() + Duration::from_secs(1) - Duration::from_nanos(1),
    )
    .unwrap();
    let second = Timestamp::from_duration(start.since_epoch() + Duration::from_secs(1)).unwrap();
    assert!(zero.claim_blocking(&delivery, &request, "/", start).is_ok());
    assert_eq!(
        zero.claim_blocking(&delivery, &request, "/", start)
            .unwrap_err()
            .kind(),
        &ErrorKind::Replayed(ClaimState::InFlight)
    );
    assert_eq!(
        zero.claim_blocking(&delivery, &request, "/", just_before)
            .unwrap_err()
            .kind(),
        &ErrorKind::Replayed(ClaimState::InFlight)
    );
    assert!(
        zero.claim_blocking(&delivery, &request, "/", second)
            .is_ok(),
        "lapsed at 1 s"
    );
    let default = ReplayGuard::in_memory(10);
    assert!(
        default
            .claim_blocking(&delivery, &request, "/", at(1_700_000_000))
            .is_ok()
    );
    assert_eq!(
        default
            .claim_blocking(&delivery, &request, "/", at(1_700_000_059))
            .unwrap_err()
            .kind(),
        &ErrorKind::Replayed(ClaimState::InFlight)
    );
}
