//! Replay protection through the verifier: one acceptance per delivery, under contention,
//! with release for retries, and failing closed when the guard fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};

use countersign::{
    Error, ErrorKind, FixedClock, InMemoryReplayGuard, KamioKashWebhookSigner, ReceivedRequest,
    ReplayGuard, ReplayKey, SecretKey, SignableRequest, Signer, Timestamp, Verifier,
};

fn delivery(at: Timestamp, body: &[u8]) -> Vec<(String, String)> {
    let signer = KamioKashWebhookSigner::new(SecretKey::new("whsec").unwrap());
    let signed = signer.sign(&SignableRequest::body(body), at).unwrap();
    signed
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn sixty_four_threads_verifying_the_same_delivery_exactly_one_succeeds() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let verifier = Arc::new(
        Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
            .with_clock(FixedClock::new(at))
            .with_replay_guard(Arc::new(InMemoryReplayGuard::new(1_000))),
    );
    let headers = Arc::new(delivery(at, b"{\"type\":\"wallet.new\"}"));
    let barrier = Arc::new(Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (verifier, headers, barrier) = (verifier.clone(), headers.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                verifier
                    .verify(&ReceivedRequest::new(
                        &*headers,
                        b"{\"type\":\"wallet.new\"}",
                    ))
                    .map(|_| ())
                    .map_err(Error::into_kind)
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    assert!(
        outcomes
            .iter()
            .filter(|o| o.is_err())
            .all(|o| o == &Err(ErrorKind::Replayed))
    );
}

#[test]
fn different_deliveries_do_not_collide_and_expiry_follows_the_window() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let guard = Arc::new(InMemoryReplayGuard::new(1_000));
    let verifier = |now: u64| {
        Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
            .with_clock(FixedClock::new(Timestamp::from_unix_secs(now).unwrap()))
            .with_replay_guard(guard.clone())
    };
    let a = delivery(at, b"a");
    let b = delivery(at, b"b");
    let v = verifier(1_700_000_000);
    let first = v.verify(&ReceivedRequest::new(&a, b"a")).unwrap();
    assert_eq!(
        first.expires_at(),
        Timestamp::from_unix_secs(1_700_000_060).unwrap()
    );
    assert!(v.verify(&ReceivedRequest::new(&b, b"b")).is_ok());
    assert_eq!(
        v.verify(&ReceivedRequest::new(&a, b"a"))
            .unwrap_err()
            .kind(),
        &ErrorKind::Replayed
    );
    // Still a replay at the window's edge; past it the freshness check rejects it first.
    let edge = verifier(1_700_000_059);
    assert_eq!(
        edge.verify(&ReceivedRequest::new(&a, b"a"))
            .unwrap_err()
            .kind(),
        &ErrorKind::Replayed
    );
    let late = verifier(1_700_000_061);
    assert!(matches!(
        late.verify(&ReceivedRequest::new(&a, b"a"))
            .unwrap_err()
            .kind(),
        ErrorKind::Expired { .. }
    ));
}

#[test]
fn release_lets_a_retry_in() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let v = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(FixedClock::new(at))
        .with_replay_guard(Arc::new(InMemoryReplayGuard::new(10)));
    let h = delivery(at, b"x");
    let accepted = v.verify(&ReceivedRequest::new(&h, b"x")).unwrap();
    v.release(&accepted).unwrap();
    assert!(v.verify(&ReceivedRequest::new(&h, b"x")).is_ok());
}

struct Unreachable;

impl ReplayGuard for Unreachable {
    fn claim(&self, _: ReplayKey, _: Timestamp, _: Timestamp) -> Result<(), Error> {
        Err(ErrorKind::ReplayGuardUnavailable("connection refused".into()).into())
    }
    fn release(&self, _: ReplayKey) -> Result<(), Error> {
        Err(ErrorKind::ReplayGuardUnavailable("connection refused".into()).into())
    }
}

#[test]
fn a_failing_guard_fails_closed_and_only_valid_messages_reach_it() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let v = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(FixedClock::new(at))
        .with_replay_guard(Arc::new(Unreachable));
    let h = delivery(at, b"x");
    assert_eq!(
        v.verify(&ReceivedRequest::new(&h, b"x"))
            .unwrap_err()
            .code(),
        "replay_guard_unavailable"
    );
    // A forged message is rejected as a mismatch before the guard is asked.
    assert_eq!(
        v.verify(&ReceivedRequest::new(&h, b"y"))
            .unwrap_err()
            .kind(),
        &ErrorKind::SignatureMismatch
    );
}
