//! Replay protection through the verifier: one acceptance per delivery, under contention,
//! over time (every edge of the freshness window and of the claim's lifetime, for whole-second
//! and millisecond timestamps, up to the year-9999 edge; across instances with skewed clocks,
//! a fleet split either side of true time, a clock jumping forward and back), with done and
//! released states, and failing closed when the guard fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};
use std::time::Duration;

use countersign::claim::ReplayGuard;
use countersign::{
    CanonicalUrl, ClaimState, Error, ErrorKind, FixedClock, Freshness, ReceivedRequest, SecretKey,
    Timestamp, Verifier,
};
use countersign_test_support::clock::Moving;
use countersign_test_support::store::Unreachable;
use countersign_test_support::{replay_model, sign};
use proptest::prelude::*;

/// The KamioKash webhook secret.
const SECRET: &str = "whsec";
const MERCHANT: &str = "m-1";
const KITOPAY_SECRET: &str = "kitopay-secret";
const KITOPAY_URL: &str = "https://shop.example.com/hooks/kitopay";

/// A KamioKash webhook delivery of `body` signed at `at`: its headers.
fn delivery(at: Timestamp, body: &[u8]) -> Vec<(String, String)> {
    sign::kamiokash_webhook(SECRET, body, at)
}

/// [`delivery`] with its arguments the other way round.
fn signed(body: &str, at: Timestamp) -> Vec<(String, String)> {
    delivery(at, body.as_bytes())
}

/// A Kitopay webhook delivery of `body` to [`KITOPAY_URL`] signed at `at`: its headers.
fn kitopay_webhook_delivery(at: Timestamp, body: &[u8]) -> Vec<(String, String)> {
    sign::kitopay_webhook(MERCHANT, KITOPAY_SECRET, KITOPAY_URL, body, at)
}

/// A Kitopay webhook verifier for [`KITOPAY_URL`] reading `clock`, claiming through `guard`.
fn kitopay_webhook_verifier(clock: Moving, guard: ReplayGuard) -> Verifier {
    Verifier::kitopay_webhook(
        MERCHANT,
        SecretKey::new(KITOPAY_SECRET).unwrap(),
        CanonicalUrl::parse(KITOPAY_URL).unwrap(),
    )
    .unwrap()
    .with_clock(clock)
    .with_replay_guard(guard)
}

fn at_ms(ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(ms).unwrap()
}

#[test]
fn sixty_four_threads_verifying_the_same_delivery_exactly_one_succeeds() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let verifier = Arc::new(
        Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
            .with_clock(FixedClock::new(at))
            .with_replay_guard(ReplayGuard::in_memory(1_000)),
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
            .all(|o| o == &Err(ErrorKind::Replayed(ClaimState::InFlight)))
    );
}

fn secs_nanos(secs: u64, nanos: u32) -> Timestamp {
    Timestamp::from_duration(Duration::new(secs, nanos)).unwrap()
}

fn outcome(
    verifier: &Verifier,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), ErrorKind> {
    verifier
        .verify(&ReceivedRequest::new(&headers, body))
        .map(|_| ())
        .map_err(Error::into_kind)
}

#[test]
fn kitopay_webhook_replays_at_and_after_sixty_seconds_are_refused_until_stale() {
    // The review's finding: accepted at t, then accepted again at t+60.000, t+60.500 and
    // t+60.999 s (whole-second "now", claim expiring at t+60, held only while > now).
    let t = 1_700_000_000;
    let url = CanonicalUrl::parse("https://shop.example.com/hooks/kitopay").unwrap();
    let headers = sign::kitopay_webhook(
        "m-1",
        "s",
        url.as_str(),
        b"{}",
        Timestamp::from_unix_secs(t).unwrap(),
    );
    let clock = Moving::new(secs_nanos(t, 0));
    let verifier = Verifier::kitopay_webhook("m-1", SecretKey::new("s").unwrap(), url)
        .unwrap()
        .with_clock(clock.clone())
        .with_replay_guard(ReplayGuard::in_memory(100));
    let accepted = verifier
        .verify(&ReceivedRequest::new(&headers, b"{}"))
        .unwrap();
    assert_eq!(accepted.expires_at(), secs_nanos(t + 121, 0));
    for nanos in [0, 500_000_000, 999_999_999] {
        clock.set(secs_nanos(t + 60, nanos));
        assert_eq!(
            outcome(&verifier, &headers, b"{}"),
            Err(ErrorKind::Replayed(ClaimState::InFlight)),
            "t+60 s + {nanos} ns"
        );
    }
    clock.set(secs_nanos(t + 61, 0));
    assert!(matches!(
        outcome(&verifier, &headers, b"{}"),
        Err(ErrorKind::Expired { .. })
    ));
}

#[test]
fn kamiokash_replay_at_exactly_sixty_seconds_is_refused_and_one_nanosecond_later_is_stale() {
    let at = Timestamp::from_unix_millis(1_700_000_000_123).unwrap();
    let headers = delivery(at, b"x");
    let clock = Moving::new(at);
    let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(clock.clone())
        .with_replay_guard(ReplayGuard::in_memory(100));
    let accepted = verifier
        .verify(&ReceivedRequest::new(&headers, b"x"))
        .unwrap();
    let edge = at.since_epoch() + Duration::from_secs(60);
    assert_eq!(
        accepted.expires_at().since_epoch(),
        edge + Duration::new(60, 1)
    );
    clock.set(Timestamp::from_duration(edge - Duration::from_nanos(1)).unwrap());
    assert_eq!(
        outcome(&verifier, &headers, b"x"),
        Err(ErrorKind::Replayed(ClaimState::InFlight))
    );
    clock.set(Timestamp::from_duration(edge).unwrap());
    assert_eq!(
        outcome(&verifier, &headers, b"x"),
        Err(ErrorKind::Replayed(ClaimState::InFlight))
    );
    clock.set(Timestamp::from_duration(edge + Duration::from_nanos(1)).unwrap());
    assert!(matches!(
        outcome(&verifier, &headers, b"x"),
        Err(ErrorKind::Expired { .. })
    ));
}

#[test]
fn the_year_9999_edge_does_not_shorten_a_claim() {
    let max_secs = Timestamp::MAX.unix_secs();
    let t = Timestamp::from_unix_secs(max_secs - 10).unwrap();
    let clock = Moving::new(Timestamp::from_unix_secs(max_secs - 5).unwrap());
    let guard = ReplayGuard::in_memory(100);
    let verifier = kitopay_webhook_verifier(clock.clone(), guard.clone());
    let delivery = kitopay_webhook_delivery(t, b"x");
    outcome(&verifier, &delivery, b"x").unwrap();
    // The system clock reads MAX from the last nanosecond of 9999 on.
    clock.set(Timestamp::MAX);
    assert_eq!(
        outcome(&verifier, &delivery, b"x"),
        Err(ErrorKind::Replayed(ClaimState::InFlight)),
        "the delivery (10 s old, fresh) was accepted a second time"
    );
}

#[test]
fn a_lagging_instance_sharing_the_guard_cannot_accept_a_replay() {
    // Instance A (on time) accepts at t; B lags by max_future (60 s) and accepts the same
    // timestamp until its clock reads t+60 s, i.e. A's t+120 s. Meanwhile A's later claims
    // evict every expired claim: the first claim must still be held then.
    let t = Timestamp::from_unix_millis(1_700_000_000_000).unwrap();
    let guard = ReplayGuard::in_memory(100);
    let base = Moving::new(t);
    let a = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(base.clone())
        .with_replay_guard(guard.clone());
    let b = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(base.skewed(-60_000))
        .with_replay_guard(guard.clone());
    let headers = delivery(t, b"x");
    a.verify(&ReceivedRequest::new(&headers, b"x")).unwrap();
    let last = t.since_epoch() + Duration::from_secs(120);
    base.set(Timestamp::from_duration(last).unwrap());
    // A claims something else at this time: eviction runs on A's clock.
    let other = delivery(Timestamp::from_duration(last).unwrap(), b"y");
    a.verify(&ReceivedRequest::new(&other, b"y")).unwrap();
    assert_eq!(
        outcome(&b, &headers, b"x"),
        Err(ErrorKind::Replayed(ClaimState::InFlight))
    );
    base.set(Timestamp::from_duration(last + Duration::from_nanos(1)).unwrap());
    a.verify(&ReceivedRequest::new(
        &delivery(Timestamp::from_duration(last).unwrap(), b"z"),
        b"z",
    ))
    .unwrap();
    assert!(matches!(
        outcome(&b, &headers, b"x"),
        Err(ErrorKind::Expired { .. })
    ));
}

#[test]
fn kitopay_fleet_split_either_side_of_true_time_cannot_accept_a_replay() {
    // A runs 30 s ahead, B 30 s behind (60 s apart = max_future). A's claims evict on A's
    // clock; B, whose whole-second "now" lags, must still find the claim at its last
    // accepting instant, for every sub-second phase of the sender's clock.
    for phase_ms in [0u64, 1, 499, 999] {
        let t = at_ms(1_700_000_000_000); // Kitopay signs whole seconds
        let base = Moving::new(at_ms(1_700_000_000_000 + phase_ms));
        let guard = ReplayGuard::in_memory(100);
        let a = kitopay_webhook_verifier(base.skewed(30_000), guard.clone());
        let b = kitopay_webhook_verifier(base.skewed(-30_000), guard.clone());
        let first = kitopay_webhook_delivery(t, b"x");
        outcome(&a, &first, b"x").unwrap();
        // B accepts t while its truncated clock is <= t+60 s: until true time t+91 s - 1 ns.
        let last = at_ms(1_700_000_000_000 + 91_000).since_epoch() - Duration::from_nanos(1);
        base.set(Timestamp::from_duration(last).unwrap());
        // Something else is claimed on A's clock first (eviction runs).
        let other_at = Timestamp::from_unix_secs(1_700_000_000 + 120).unwrap();
        outcome(&a, &kitopay_webhook_delivery(other_at, b"y"), b"y").unwrap();
        assert_eq!(
            outcome(&b, &first, b"x"),
            Err(ErrorKind::Replayed(ClaimState::InFlight)),
            "phase {phase_ms} ms"
        );
        base.set(at_ms(1_700_000_000_000 + 91_000));
        assert!(
            matches!(outcome(&b, &first, b"x"), Err(ErrorKind::Expired { .. })),
            "phase {phase_ms} ms"
        );
    }
}

#[test]
fn a_clock_jumping_forward_by_max_future_and_back_cannot_let_a_replay_in() {
    for kamiokash in [false, true] {
        let t = at_ms(1_700_000_000_000);
        let clock = Moving::new(t);
        let guard = ReplayGuard::in_memory(100);
        let (verifier, first, other): (Verifier, _, _) = if kamiokash {
            let sign = |at: Timestamp, body: &str| signed(body, at);
            (
                Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap())
                    .with_clock(clock.clone())
                    .with_replay_guard(guard.clone()),
                sign(t, "x"),
                sign(at_ms(1_700_000_120_000), "y"),
            )
        } else {
            (
                kitopay_webhook_verifier(clock.clone(), guard.clone()),
                kitopay_webhook_delivery(t, b"x"),
                kitopay_webhook_delivery(at_ms(1_700_000_120_000), b"y"),
            )
        };
        outcome(&verifier, &first, b"x").unwrap();
        // Late in the window, NTP steps the clock forward by max_future, a delivery is
        // claimed (eviction runs), and the clock steps back.
        clock.set(at_ms(1_700_000_060_000 + 60_000));
        outcome(&verifier, &other, b"y").unwrap();
        clock.set(at_ms(1_700_000_060_000));
        assert_eq!(
            outcome(&verifier, &first, b"x"),
            Err(ErrorKind::Replayed(ClaimState::InFlight)),
            "kamiokash {kamiokash}"
        );
        // And a jump backwards only holds claims longer.
        clock.set(at_ms(1_700_000_000_000 - 45_000));
        assert_eq!(
            outcome(&verifier, &first, b"x"),
            Err(ErrorKind::Replayed(ClaimState::InFlight))
        );
    }
}

#[test]
fn done_duplicates_are_told_apart_from_in_flight_ones() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let v = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(FixedClock::new(at))
        .with_replay_guard(ReplayGuard::in_memory(10));
    let h = delivery(at, b"x");
    let first = v.verify(&ReceivedRequest::new(&h, b"x")).unwrap();
    assert_eq!(
        outcome(&v, &h, b"x"),
        Err(ErrorKind::Replayed(ClaimState::InFlight))
    );
    v.complete(&first).unwrap();
    assert_eq!(
        outcome(&v, &h, b"x"),
        Err(ErrorKind::Replayed(ClaimState::Done))
    );
    // A done claim is never released: the event is not processed twice.
    v.release(&first).unwrap();
    assert_eq!(
        outcome(&v, &h, b"x"),
        Err(ErrorKind::Replayed(ClaimState::Done))
    );
}

#[test]
fn release_lets_a_retry_in_and_a_stale_release_does_not_free_the_retry() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let v = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(FixedClock::new(at))
        .with_replay_guard(ReplayGuard::in_memory(10));
    let h = delivery(at, b"x");
    let accepted = v.verify(&ReceivedRequest::new(&h, b"x")).unwrap();
    v.release(&accepted).unwrap();
    let retry = v.verify(&ReceivedRequest::new(&h, b"x")).unwrap();
    // The first attempt's release arrives late (twice): the retry's claim stays.
    v.release(&accepted).unwrap();
    assert_eq!(
        outcome(&v, &h, b"x"),
        Err(ErrorKind::Replayed(ClaimState::InFlight))
    );
    v.complete(&retry).unwrap();
    assert_eq!(
        outcome(&v, &h, b"x"),
        Err(ErrorKind::Replayed(ClaimState::Done))
    );
}

#[test]
fn a_failing_guard_fails_closed_and_only_valid_messages_reach_it() {
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let v = Verifier::kamiokash_webhook(SecretKey::new("whsec").unwrap())
        .with_clock(FixedClock::new(at))
        .with_replay_guard(ReplayGuard::new(Unreachable, "test").unwrap());
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

/// Cases of the model run; `PROPTEST_CASES` overrides.
const MODEL_CASES: u32 = 2_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: MODEL_CASES, ..ProptestConfig::default() })]

    /// The invariant over time: no delivery is accepted twice (unless its claim was
    /// released), duplicates report the state the model holds, and nothing fresh and free
    /// is refused. Virtual time lands exactly on every edge; see test-support/src/replay_model.rs.
    #[test]
    fn model_no_delivery_is_accepted_twice_in_memory(plan in replay_model::plans(60_000, 60_000, 40)) {
        replay_model::now_or_never(replay_model::run(
            &plan,
            ReplayGuard::in_memory(1_000),
            replay_model::By::Signature,
            Freshness::default(),
            replay_model::Time::Virtual,
        ))?;
    }

    /// The same by event: retries signed again are one event; an in-flight claim holds for
    /// the lease (30 s here), a done one for the retention (5 minutes here, never less than
    /// the signature's lifetime), each edge hit exactly.
    #[test]
    fn model_no_event_is_processed_twice_in_memory(plan in replay_model::plans(60_000, 60_000, 40)) {
        replay_model::now_or_never(replay_model::run(
            &plan,
            ReplayGuard::in_memory(1_000),
            replay_model::By::Event { lease: Duration::from_secs(30), retention: Duration::from_secs(300) },
            Freshness::default(),
            replay_model::Time::Virtual,
        ))?;
    }
}
