//! The Redis claim store, through the replay guard, against a real redis-server: claims
//! with tokens, states, leases and retentions (and one held until the end of time); a fleet
//! of two instances; the model-based invariant in real time (by signature and by event);
//! and faults: Redis stalled with `DEBUG SLEEP` (while a claim is taken, completed or
//! released), killed mid-load, restarted with and without persistence, dead, black-holed,
//! filled until it would evict, and failed over to an asynchronous replica (a documented
//! limit, measured); its password is never printed.
//!
//! Each fault test prints what was accepted, refused and retried (`--nocapture`).
#![cfg(all(feature = "axum", feature = "redis"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use countersign::claim::redis::RedisStore;
use countersign::claim::{Claim, ClaimKey, ClaimStore, FailurePolicy, Outcome, ReplayGuard};
use countersign::{
    ClaimState, Clock, ErrorKind, Freshness, ReceivedRequest, Signature, SystemClock, Timestamp,
    Verified,
};
use countersign_test_support::redis_server::{Redis, guard, unique_prefix};
use countersign_test_support::replay_model;
use countersign_test_support::server::{
    Log, auth, capturing_subscriber, deliver, deliver_and_lose_the_response, deliver_settled,
    deliver_with, serve, signed,
};
use proptest::test_runner::{Config, TestRunner};

fn later(now: Timestamp, ms: u64) -> Timestamp {
    Timestamp::from_duration(now.since_epoch() + Duration::from_millis(ms)).unwrap()
}

/// A delivery as the guard sees it (claimed by signature `[n; 32]`), and its request.
fn delivery(n: u8) -> Verified {
    Verified::dangerous_assume(
        &countersign::kitopay::FULL,
        "primary",
        Some(SystemClock.now()),
        Signature::from_bytes([n; 32]),
    )
}

fn no_request() -> ReceivedRequest<'static> {
    static NO_HEADERS: [(&str, &str); 0] = [];
    ReceivedRequest::new(&NO_HEADERS, b"")
}

/// The guard's claim of `delivery(n)` at `now`.
async fn claim(guard: &ReplayGuard, n: u8, now: Timestamp) -> Result<Option<Claim>, ErrorKind> {
    guard
        .claim(&delivery(n), &no_request(), "/hook", now)
        .await
        .map(|admission| admission.claim())
        .map_err(countersign::Error::into_kind)
}

fn int(value: redis::Value) -> i64 {
    match value {
        redis::Value::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// A guard over the Redis at `url`, with key prefix `prefix`.
async fn on(url: &str, prefix: &str) -> ReplayGuard {
    let store = RedisStore::connect(url).await.unwrap().with_prefix(prefix);
    ReplayGuard::new(store, "attacks").unwrap()
}

#[tokio::test]
async fn completions_in_one_pipeline_answer_each_claim_and_survive_a_script_flush() {
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("pipeline");
    let store = RedisStore::connect(&redis.url)
        .await
        .unwrap()
        .with_prefix(&prefix);
    let now = SystemClock.now();
    let claim = |n: u8| {
        let key = ClaimKey::new("t", "/hook", &countersign::kitopay::FULL, "event", &[n]);
        Claim::new(
            key,
            u128::from(n),
            now,
            later(now, 60_000),
            later(now, 600_000),
        )
    };
    let held = |outcome: Outcome| matches!(outcome, Outcome::Held(ClaimState::Done));
    for n in [1, 2] {
        assert!(matches!(
            store.claim(&claim(n)).await.unwrap(),
            Outcome::Claimed(_)
        ));
    }
    // Two held by their tokens, one never claimed: answered in order.
    let batch = [claim(1), claim(3), claim(2)];
    assert_eq!(
        store.complete_all(&batch).await.unwrap(),
        [true, false, true]
    );
    assert!(held(store.claim(&claim(1)).await.unwrap()));
    assert!(held(store.claim(&claim(2)).await.unwrap()));
    // A restarted or flushed Redis has forgotten the script (NOSCRIPT): loaded again.
    assert!(matches!(
        store.claim(&claim(4)).await.unwrap(),
        Outcome::Claimed(_)
    ));
    redis.command(&["SCRIPT", "FLUSH"]);
    assert_eq!(store.complete_all(&[claim(4)]).await.unwrap(), [true]);
    assert!(held(store.claim(&claim(4)).await.unwrap()));
}

#[tokio::test]
async fn claims_carry_tokens_and_states_and_the_ttl_is_rounded_up() {
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("states");
    let store = RedisStore::connect(&redis.url)
        .await
        .unwrap()
        .with_prefix(&prefix);
    let key = ClaimKey::new(
        "test",
        "/hook",
        &countersign::kitopay::FULL,
        "signature",
        &[9; 32],
    );
    let now = SystemClock.now();
    // A 60 s and half a millisecond lease, 600 s retention: PX rounded up, never down.
    let until = Timestamp::from_duration(now.since_epoch() + Duration::new(60, 500_000)).unwrap();
    let retain = later(now, 600_000);
    let claim = |token| Claim::new(key, token, now, until, retain);
    let held = |outcome: Outcome| match outcome {
        Outcome::Held(state) => Some(state),
        _ => None,
    };
    let first = claim(1);
    assert_eq!(held(store.claim(&first).await.unwrap()), None);
    let redis_key = format!("{prefix}{key}");
    let pttl = int(redis.command(&["PTTL", &redis_key]));
    assert!((59_900..=60_001).contains(&pttl), "PTTL {pttl}");
    assert_eq!(
        held(store.claim(&claim(2)).await.unwrap()),
        Some(ClaimState::InFlight)
    );
    store.release(&first).await.unwrap();
    let second = claim(3);
    assert_eq!(held(store.claim(&second).await.unwrap()), None);
    // A late release or completion of the first claim must not touch the second.
    store.release(&first).await.unwrap();
    assert!(!store.complete(&first).await.unwrap());
    assert_eq!(
        held(store.claim(&claim(4)).await.unwrap()),
        Some(ClaimState::InFlight)
    );
    assert!(store.complete(&second).await.unwrap());
    assert_eq!(
        held(store.claim(&claim(5)).await.unwrap()),
        Some(ClaimState::Done)
    );
    // Done: held for the retention (not the lease); a done claim is never released.
    let pttl = int(redis.command(&["PTTL", &redis_key]));
    assert!((599_000..=600_000).contains(&pttl), "PTTL {pttl}");
    store.release(&second).await.unwrap();
    assert_eq!(
        held(store.claim(&claim(6)).await.unwrap()),
        Some(ClaimState::Done)
    );
    // A claim held for good has no expiry.
    let forever = ClaimKey::new(
        "test",
        "/hook",
        &countersign::kitopay::FULL,
        "signature",
        &[11; 32],
    );
    let kept = Claim::new(forever, 7, now, Timestamp::MAX, Timestamp::MAX);
    assert_eq!(held(store.claim(&kept).await.unwrap()), None);
    assert_eq!(
        int(redis.command(&["PTTL", &format!("{prefix}{forever}")])),
        -1
    );
    assert!(store.complete(&kept).await.unwrap());
    assert_eq!(
        int(redis.command(&["PTTL", &format!("{prefix}{forever}")])),
        -1
    );

    // The key expires with the lease: a 50 ms claim is gone after 150 ms.
    let other = ClaimKey::new(
        "test",
        "/hook",
        &countersign::kitopay::FULL,
        "signature",
        &[10; 32],
    );
    let short = Claim::new(other, 8, now, later(now, 50), later(now, 50));
    assert_eq!(held(store.claim(&short).await.unwrap()), None);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(held(store.claim(&short).await.unwrap()), None);
}

#[tokio::test]
async fn a_claim_held_until_the_end_of_time_is_accepted_by_redis_not_refused_as_an_outage() {
    // Freshness { max_age: Duration::MAX, .. } makes expires_at saturate to Timestamp::MAX:
    // the TTL (about 2.5e14 ms) must still be a valid PX, or every delivery would be 503.
    let Some(redis) = Redis::start() else { return };
    let g = guard(&redis, "forever")
        .await
        .with_timeout(Duration::from_millis(1_000));
    let now = SystemClock.now();
    // No timestamp: held for good (lease and retention Timestamp::MAX).
    let forever = Verified::dangerous_assume(
        &countersign::kamiokash::WEBHOOK,
        "primary",
        None,
        countersign::Signature::from_bytes([0x77; 32]),
    );
    let no_headers: [(&str, &str); 0] = [];
    let request = ReceivedRequest::new(&no_headers, b"");
    let admission = g.claim(&forever, &request, "/hook", now).await.unwrap();
    let claim = admission.claim().unwrap();
    assert_eq!(claim.retain_until(), Timestamp::MAX);
    assert!(g.complete(&claim).await.unwrap());
    assert_eq!(
        g.claim(&forever, &request, "/hook", now)
            .await
            .unwrap_err()
            .into_kind(),
        ErrorKind::Replayed(ClaimState::Done)
    );
}

#[tokio::test]
async fn unreachable_redis_fails_closed_unless_told_otherwise() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    if !redis.owned() {
        return;
    }
    let guard = guard(&redis, "closed").await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let now = SystemClock.now();
    let closed = guard.clone().with_timeout(Duration::from_millis(300));
    assert!(matches!(
        claim(&closed, 11, now).await,
        Err(ErrorKind::ReplayGuardUnavailable(_))
    ));
    let open = guard
        .with_timeout(Duration::from_millis(300))
        .with_failure_policy(FailurePolicy::Open);
    assert_eq!(claim(&open, 11, now).await, Ok(None), "accepted unguarded");
    // Connecting to nothing is a clean, distinct error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "replay_guard_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_is_503_with_retry_after_never_401_and_answers_in_bounded_time() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    if !redis.owned() {
        return;
    }
    let log = Log::default();
    let addr = serve(
        auth(
            guard(&redis, "dead")
                .await
                .with_timeout(Duration::from_millis(300)),
        ),
        log.clone(),
    )
    .await;
    redis.kill();
    let body = "dead-redis";
    let headers = signed(body, SystemClock.now());
    let started = std::time::Instant::now();
    let (status, _, retry) = deliver(addr, &headers, body).await;
    assert_eq!((status, retry.is_some()), (503, true));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(log.calls(body), 0);
    // A forged delivery is still 401 (verification comes first), not 503.
    let mut forged = headers.clone();
    forged[1].1 = "00".repeat(32);
    assert_eq!(deliver(addr, &forged, body).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_process_a_delivery_exactly_once() {
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("fleet");
    let log = Log::default();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::connect(&redis.url)
            .await
            .unwrap()
            .with_prefix(&prefix);
        servers.push(serve(auth(ReplayGuard::new(store, "fleet").unwrap()), log.clone()).await);
    }
    // One delivery, signed once, sent 64 times concurrently to both instances.
    let body = r#"{"type":"wallet.new","data":{"slow":true}}"#;
    let headers = signed(body, SystemClock.now());
    let client = reqwest::Client::new();
    let attempts = (0..64).map(|i| {
        let (addr, headers, client) = (servers[i % 2], headers.clone(), client.clone());
        tokio::spawn(async move { deliver_with(&client, addr, &headers, body).await })
    });
    let attempts: Vec<_> = attempts.collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    assert_eq!(log.calls(body), 1, "the handler ran once");
    let processed = outcomes
        .iter()
        .filter(|(s, b, _)| *s == 200 && b == "processed")
        .count();
    let in_flight = outcomes
        .iter()
        .filter(|(s, _, r)| *s == 409 && r.is_some())
        .count();
    let duplicate = outcomes
        .iter()
        .filter(|(s, b, _)| *s == 200 && b.starts_with("duplicate"))
        .count();
    assert_eq!(processed, 1, "{outcomes:?}");
    assert_eq!(processed + in_flight + duplicate, 64, "{outcomes:?}");
    println!(
        "fleet: 64 concurrent copies → 1 processed, {in_flight} × 409 in flight, {duplicate} × 200 duplicate"
    );
    // Once done, a late copy is acknowledged by either instance.
    for addr in &servers {
        let (status, text, _) = deliver_settled(*addr, &headers, body).await;
        assert_eq!(
            (status, text.as_str()),
            (200, "duplicate delivery: already processed\n")
        );
    }
    assert_eq!(log.calls(body), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_is_acknowledged_by_the_other_instance_without_a_second_call() {
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("lost");
    let (log_a, log_b) = (Log::default(), Log::default());
    let instance = || async {
        let store = RedisStore::connect(&redis.url)
            .await
            .unwrap()
            .with_prefix(&prefix);
        auth(ReplayGuard::new(store, "shop").unwrap())
    };
    let a = serve(instance().await, log_a.clone()).await;
    let b = serve(instance().await, log_b.clone()).await;
    let body = r#"{"type":"transaction.successful","data":{"walletId":"w_lost"}}"#;
    let headers = signed(body, SystemClock.now());
    deliver_and_lose_the_response(a, &headers, body, &log_a).await;
    let (status, text, _) = deliver_settled(b, &headers, body).await;
    println!(
        "lost response (redis, two instances): handler calls A={} B={}, A answered {:?} (never read), B answered {:?} {status} {text:?}",
        log_a.calls(body),
        log_b.calls(body),
        log_a.statuses(),
        log_b.statuses()
    );
    assert_eq!(
        (status, text.as_str()),
        (200, "duplicate delivery: already processed\n")
    );
    assert_eq!(log_a.statuses(), [200]);
    assert_eq!(log_a.calls(body) + log_b.calls(body), 1);
}

#[test]
fn model_no_delivery_or_event_is_accepted_twice_with_redis_in_real_time() {
    let Some(redis) = Redis::start() else { return };
    // Multi-threaded: instance 0 claims through the blocking path, whose operation runs on
    // the runtime while the test's thread waits.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A short window so claims really expire in Redis during the run: 1.5 s back, 0.5 s
    // ahead; claims last 2 s plus a nanosecond (KamioKash) or a second (Kitopay).
    let freshness = Freshness {
        max_age: Duration::from_millis(1_500),
        max_future: Duration::from_millis(500),
    };
    let cases: u32 = std::env::var("REDIS_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let store = runtime.block_on(RedisStore::connect(&redis.url)).unwrap();
    for by in [
        replay_model::By::Signature,
        replay_model::By::Event {
            lease: Duration::from_millis(1_000),
            retention: Duration::from_millis(2_500),
        },
    ] {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let totals = std::sync::Mutex::new(replay_model::Tally::default());
        runner
            .run(&replay_model::plans(1_500, 500, 14), |plan| {
                let store = store.clone().with_prefix(&unique_prefix("model"));
                let guard = ReplayGuard::new(store, "model").unwrap();
                let tally = runtime.block_on(replay_model::run(
                    &plan,
                    guard,
                    by,
                    freshness,
                    replay_model::Time::Real {
                        max_sleep: Duration::from_millis(1_200),
                    },
                ))?;
                let mut totals = totals.lock().unwrap();
                totals.accepted += tally.accepted;
                totals.duplicates_done += tally.duplicates_done;
                totals.duplicates_in_flight += tally.duplicates_in_flight;
                totals.stale += tally.stale;
                Ok(())
            })
            .unwrap();
        println!(
            "redis model ({by:?}): {cases} cases, {:?}",
            totals.lock().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_times_out_during_debug_sleep_is_cleaned_up_so_the_retry_gets_in() {
    let Some(redis) = Redis::start() else { return };
    if !redis.owned() {
        return;
    }
    let log = Log::default();
    let guard = guard(&redis, "sleep")
        .await
        .with_timeout(Duration::from_millis(200));
    let addr = serve(
        auth(guard).with_retry_after(Duration::from_secs(1)),
        log.clone(),
    )
    .await;
    let body = r#"{"type":"order.successful","data":{"id":"o_1"}}"#;
    let headers = signed(body, SystemClock.now());
    redis.stall(1.0);
    let (status, _, retry_after) = deliver(addr, &headers, body).await;
    assert_eq!(
        status, 503,
        "an undecided claim is an outage, not an authentication failure"
    );
    // The SET still lands when Redis wakes up; the guard's clean-up deletes it (it holds
    // this claim's token), so nothing is left to refuse the provider's retry.
    tokio::time::sleep(Duration::from_millis(1_300)).await; // the stall is over
    redis.command(&["PING"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        redis.command(&["KEYS", "countersign-test:sleep:*"]),
        redis::Value::Array(Vec::new()),
        "the timed-out claim was left in Redis"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(log.calls(body), 0);
    // The provider retries after Retry-After; by then Redis has run the SET and the clean-up.
    let mut retries = 0;
    let started = Instant::now();
    let status = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        retries += 1;
        let (status, _, _) = deliver(addr, &headers, body).await;
        if status != 503 || started.elapsed() > Duration::from_secs(5) {
            break status;
        }
    };
    println!(
        "debug sleep 1 s, 200 ms timeout: first attempt 503 (Retry-After 1), retried {retries}× → {status}; handler calls {}",
        log.calls(body)
    );
    assert_eq!(
        status, 200,
        "the retry was refused: the timed-out claim was not cleaned up"
    );
    assert_eq!(log.calls(body), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stalling_while_a_delivery_is_completed_never_lets_it_be_processed_twice() {
    let Some(redis) = Redis::start() else { return };
    if !redis.owned() {
        return;
    }
    let log = Log::default();
    let addr = serve(
        auth(
            guard(&redis, "stall-complete")
                .await
                .with_timeout(Duration::from_millis(200)),
        ),
        log.clone(),
    )
    .await;
    let body = r#"{"type":"slow","data":{"id":"complete"}}"#; // the handler sleeps 1 s
    let headers = signed(body, SystemClock.now());
    let first = tokio::spawn({
        let headers = headers.clone();
        async move { deliver(addr, &headers, body).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await; // claimed, handler sleeping
    redis.stall(1.5); // the completion will time out
    let during = deliver(addr, &headers, body).await;
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!((during.0, during.2.is_some()), (503, true), "{during:?}");
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the stall is over
    let mut after = Vec::new();
    for _ in 0..3 {
        after.push(deliver(addr, &headers, body).await);
    }
    assert_eq!(log.calls(body), 1, "processed twice: {after:?}");
    for (status, text, _) in &after {
        assert!(
            (*status == 200 && text.starts_with("duplicate")) || *status == 409,
            "{status} {text:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stalling_while_a_failed_delivery_is_released_still_lets_the_retry_in_once() {
    let Some(redis) = Redis::start() else { return };
    if !redis.owned() {
        return;
    }
    let log = Log::default();
    let prefix = unique_prefix("stall-release");
    let guard = on(&redis.url, &prefix)
        .await
        .with_timeout(Duration::from_millis(200));
    let addr = serve(auth(guard), log.clone()).await;
    let body = r#"{"type":"slow fail","data":{"id":"release"}}"#; // sleeps 1 s, then 500
    let headers = signed(body, SystemClock.now());
    let first = tokio::spawn({
        let headers = headers.clone();
        async move { deliver(addr, &headers, body).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.stall(1.5); // the release will time out
    assert_eq!(first.await.unwrap().0, 500);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    redis.command(&["PING"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        redis.command(&["KEYS", &format!("{prefix}*")]),
        redis::Value::Array(Vec::new()),
        "the timed-out release was not finished in the background"
    );
    let (status, _, _) = deliver(addr, &headers, body).await;
    assert_eq!(
        (status, log.calls(body)),
        (500, 2),
        "the retry was processed as new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_then_restarted_every_delivery_is_processed_exactly_once() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    if !redis.owned() {
        return;
    }
    let log = Log::default();
    let guard = guard(&redis, "kill")
        .await
        .with_timeout(Duration::from_millis(300));
    let addr = serve(auth(guard), log.clone()).await;
    let now = SystemClock.now();
    let deliveries: Vec<(String, Vec<(String, String)>)> = (0..40)
        .map(|i| {
            let body = format!(r#"{{"type":"member.new","data":{{"n":{i}}}}}"#);
            let headers = signed(&body, now);
            (body, headers)
        })
        .collect();
    let (mut accepted, mut refused, mut retried) = (0, 0, 0);
    let mut pending = Vec::new();
    for (i, (body, headers)) in deliveries.iter().enumerate() {
        if i == 15 {
            redis.kill();
        }
        if i == 30 {
            redis.restart();
        }
        let (status, _, _) = deliver(addr, headers, body).await;
        match status {
            200 => accepted += 1,
            503 => {
                refused += 1;
                pending.push(i);
            }
            other => panic!("delivery {i}: unexpected {other}"),
        }
    }
    // The provider retries every refused delivery until it is accepted.
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Some(&i) = pending.first() {
        assert!(
            Instant::now() < deadline,
            "retries never got in: {pending:?}"
        );
        let (body, headers) = &deliveries[i];
        let (status, _, _) = deliver(addr, headers, body).await;
        retried += 1;
        match status {
            200 => {
                pending.remove(0);
            }
            503 => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("retry of {i}: unexpected {other}"),
        }
    }
    println!(
        "kill -9 at delivery 15, restart at 30: {accepted} accepted at once, {refused} refused with 503, {retried} retries until all were in; handler calls {}",
        log.total_calls()
    );
    for (body, _) in &deliveries {
        assert_eq!(log.calls(body), 1, "{body}");
    }
    assert!(refused >= 15, "the outage refused only {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_survive_a_crash_only_with_persistence() {
    // Measured for the durability note in the docs: a claimed delivery replayed after
    // `kill -9` + restart.
    for (persistence, args) in [
        ("none", &["--save", "", "--appendonly", "no"][..]),
        (
            "aof always",
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ][..],
        ),
    ] {
        let Some(mut redis) = Redis::start_with(args) else {
            return;
        };
        if !redis.owned() {
            return;
        }
        let log = Log::default();
        let prefix = unique_prefix("crash");
        let store = RedisStore::connect(&redis.url)
            .await
            .unwrap()
            .with_prefix(&prefix);
        let guard = ReplayGuard::new(store, "crash")
            .unwrap()
            .with_timeout(Duration::from_millis(500));
        let addr = serve(auth(guard), log.clone()).await;
        let body = r#"{"type":"voucher_code.used","data":{"code":"V1"}}"#;
        let headers = signed(body, SystemClock.now());
        assert_eq!(deliver(addr, &headers, body).await.0, 200);
        // The completion follows the answer; crash once Redis has it.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let keys = redis.command(&["KEYS", &format!("{prefix}*")]);
            let done = match keys {
                redis::Value::Array(keys) => keys.iter().any(|k| match k {
                    redis::Value::BulkString(k) => matches!(
                        redis.command(&["GET", std::str::from_utf8(k).unwrap()]),
                        redis::Value::BulkString(v) if v.starts_with(b"d:")
                    ),
                    _ => false,
                }),
                _ => false,
            };
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the completion never reached Redis"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        redis.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (status, text) = loop {
            let (status, text, _) = deliver(addr, &headers, body).await;
            if status != 503 || Instant::now() > deadline {
                break (status, text);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!(
            "crash with persistence {persistence}: replay after kill -9 + restart → {status} {text:?}, handler calls {}",
            log.calls(body)
        );
        match persistence {
            "none" => assert_eq!(log.calls(body), 2, "without persistence the claim is lost"),
            _ => {
                assert_eq!(
                    (status, text.as_str()),
                    (200, "duplicate delivery: already processed\n")
                );
                assert_eq!(log.calls(body), 1);
            }
        }
    }
}

/// The documented limit (README, `redis_guard` docs): replication is asynchronous, so a
/// failover can lose the last claims the old primary acknowledged. This measures it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_over_to_an_async_replica_can_lose_a_done_claim_as_documented() {
    let Some(mut primary) = Redis::start() else {
        return;
    };
    if !primary.owned() {
        return;
    }
    let port = primary
        .url
        .trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/')
        .to_owned();
    let Some(replica) = Redis::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--replicaof",
        "127.0.0.1",
        &port,
    ]) else {
        return;
    };
    // Wait for the replica to be in sync.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = match replica.command(&["INFO", "replication"]) {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            redis::Value::VerbatimString { text, .. } => text,
            other => format!("{other:?}"),
        };
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let prefix = unique_prefix("failover");
    let log = Log::default();
    let primary_guard = on(&primary.url, &prefix).await;
    let addr = serve(auth(primary_guard), log.clone()).await;
    let body = "replicated-claim";
    let headers = signed(body, SystemClock.now());
    // A network hiccup drops the replication link (the replica reconnects within about a
    // second); meanwhile the delivery is claimed and completed on the primary, which
    // acknowledges it and then dies before the replica is back.
    // (Simulated: the primary starts requiring a password the replica does not have, and
    // its replication link is cut, so the replica cannot reconnect.)
    let admin = redis::Client::open(primary.url.as_str()).unwrap();
    let mut admin = admin.get_connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("partition")
        .query(&mut admin)
        .unwrap();
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut admin)
        .unwrap();
    assert_eq!(deliver(addr, &headers, body).await.0, 200);
    primary.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    replica.command(&["REPLICAOF", "NO", "ONE"]); // failover
    let promoted = on(&replica.url, &prefix).await;
    let addr = serve(auth(promoted), log.clone()).await;
    let (status, text, _) = deliver(addr, &headers, body).await;
    assert_eq!(
        (log.calls(body), status, text.as_str()),
        (2, 200, "processed"),
        "the documented failover limit changed: update the docs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_future_dropped_before_redis_answers_is_cleaned_up() {
    let Some(redis) = Redis::start() else { return };
    if !redis.owned() {
        return;
    }
    let guard = guard(&redis, "dropped")
        .await
        .with_timeout(Duration::from_secs(5));
    let now = SystemClock.now();
    redis.stall(0.5);
    // The client goes away while the claim is queued behind the stall.
    let dropped = claim(&guard, 12, now);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), dropped)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let retry = claim(&guard, 12, SystemClock.now()).await;
    assert!(
        matches!(retry, Ok(Some(_))),
        "the dropped claim was left behind: {retry:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_releases_its_redis_claim_in_the_background() {
    use bytes::Bytes;
    use countersign::layer::VerifyLayer;
    use http_body_util::Full;
    use tower::{Layer, ServiceExt, service_fn};
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("panicked");
    let store = RedisStore::connect(&redis.url)
        .await
        .unwrap()
        .with_prefix(&prefix);
    let service = VerifyLayer::new(auth(ReplayGuard::new(store, "panicked").unwrap())).layer(
        service_fn(|_: http::Request<Full<Bytes>>| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if std::hint::black_box(true) {
                panic!("handler bug");
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from("")))
        }),
    );
    let headers = signed("{}", SystemClock.now());
    let mut request = http::Request::post("/hook");
    for (k, v) in &headers {
        request = request.header(k, v);
    }
    let call = tokio::spawn(service.oneshot(request.body(Full::<Bytes>::from("{}")).unwrap()));
    assert!(
        call.await.unwrap_err().is_panic(),
        "the panic reaches the caller"
    );
    // The claim (in Redis while the handler ran) is released in the background.
    let deadline = Instant::now() + Duration::from_secs(3);
    while redis.command(&["KEYS", &format!("{prefix}*")]) != redis::Value::Array(Vec::new()) {
        assert!(
            Instant::now() < deadline,
            "the panicked request's claim was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn debug_shows_settings_and_the_open_policy_warns_when_it_accepts_unguarded() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    if !redis.owned() {
        return;
    }
    let store = RedisStore::connect(&redis.url)
        .await
        .unwrap()
        .with_prefix("app:");
    let text = format!("{store:?}");
    for part in ["RedisStore", "prefix: \"app:\""] {
        assert!(text.contains(part), "{part}: {text}");
    }
    let guard = ReplayGuard::new(store, "app")
        .unwrap()
        .with_timeout(Duration::from_millis(250))
        .with_failure_policy(FailurePolicy::Open);
    let text = format!("{guard:?}");
    for part in [
        "ReplayGuard",
        "namespace: \"app\"",
        "timeout: 250ms",
        "policy: Open",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    redis.kill();
    let (captured, subscriber) = capturing_subscriber();
    let _default = tracing::subscriber::set_default(subscriber);
    let now = SystemClock.now();
    assert_eq!(claim(&guard, 13, now).await, Ok(None));
    let log = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
    assert!(log.contains("without replay protection"), "{log}");
}

#[tokio::test]
async fn redis_credentials_never_appear_in_errors_or_debug_output() {
    let Some(redis) = Redis::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        "right-redis-pw-4c2a",
    ]) else {
        return;
    };
    if !redis.owned() {
        return;
    }
    let port = redis
        .url
        .trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/');
    let mut texts = Vec::new();
    for url in [
        format!("redis://:wrong-redis-pw-9f1e@127.0.0.1:{port}/"),
        format!("redis://user:wrong-redis-pw-9f1e@127.0.0.1:{port}/"),
        "redis://:wrong-redis-pw-9f1e@127.0.0.1:notaport/".to_owned(),
        format!("redis://:wrong-redis-pw-9f1e@127.0.0.1:{port}/notadb"),
        format!("rediss://:wrong-redis-pw-9f1e@127.0.0.1:{port}/"),
        "redis://:wrong-redis-pw-9f1e@[::1/".to_owned(),
    ] {
        if let Err(e) = RedisStore::connect(&url).await {
            texts.push(format!("{e} {e:?}"));
        }
    }
    assert!(!texts.is_empty());
    let ok = RedisStore::connect(&format!("redis://:right-redis-pw-4c2a@127.0.0.1:{port}/"))
        .await
        .unwrap();
    texts.push(format!("{ok:?}"));
    for text in texts {
        assert!(
            !text.contains("redis-pw"),
            "a Redis password is printed: {text}"
        );
    }
}

#[tokio::test]
async fn connecting_to_a_server_that_never_answers_gives_up_within_twice_the_timeout() {
    // A TCP listener that accepts and never speaks Redis.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let mut sockets = Vec::new();
        for socket in listener.incoming().take(8) {
            sockets.push(socket);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let started = Instant::now();
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.code(), "replay_guard_unavailable");
    // Not before the 2 s connect timeout, and not after twice it (plus scheduling slack).
    assert!(
        waited >= Duration::from_millis(1_900) && waited < Duration::from_millis(4_600),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_black_holed_redis_does_not_hang_connect() {
    // Accepts TCP connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(8) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let started = std::time::Instant::now();
    let outcome = RedisStore::connect(&format!("redis://127.0.0.1:{port}/")).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.unwrap_err().code(), "replay_guard_unavailable");
    drop(holder);
}

#[tokio::test]
async fn a_server_that_cannot_run_the_guards_commands_is_refused_at_connect() {
    // An ACL user that may connect and read, but not SET or run scripts (as an old Redis
    // cannot run SET NX GET): every delivery would fail later; connect says so now.
    let Some(redis) = Redis::start() else { return };
    if !redis.owned() {
        return;
    }
    redis.command(&[
        "ACL",
        "SETUSER",
        "reader",
        "on",
        ">reader-pw",
        "~*",
        "-@all",
        "+@connection",
        "+config|get",
        "+get",
    ]);
    let port = redis
        .url
        .trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/');
    let err = RedisStore::connect(&format!("redis://reader:reader-pw@127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "replay_guard_unavailable");
    assert!(err.to_string().contains("cannot run the commands"), "{err}");
    assert!(!err.to_string().contains("reader-pw"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_command_timeout_is_honoured() {
    // The connection's own limit used to cap every command at 1 s.
    let Some(redis) = Redis::start() else { return };
    if !redis.owned() {
        return;
    }
    let guard = guard(&redis, "long-timeout")
        .await
        .with_timeout(Duration::from_secs(4));
    redis.stall(1.5);
    let now = SystemClock.now();
    let started = Instant::now();
    assert!(matches!(claim(&guard, 14, now).await, Ok(Some(_))));
    assert!(
        started.elapsed() >= Duration::from_millis(1_200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn only_a_redis_that_never_evicts_claims_is_accepted() {
    // A memory limit with an evicting policy could drop a claim: refused. No limit, or
    // noeviction: accepted.
    for (args, accepted) in [
        (
            &["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"][..],
            false,
        ),
        (
            &["--maxmemory", "64mb", "--maxmemory-policy", "volatile-ttl"][..],
            false,
        ),
        (
            &["--maxmemory", "64mb", "--maxmemory-policy", "noeviction"][..],
            true,
        ),
        (
            &["--maxmemory", "0", "--maxmemory-policy", "allkeys-lru"][..],
            true,
        ),
    ] {
        let mut all = vec!["--save", "", "--appendonly", "no"];
        all.extend_from_slice(args);
        let Some(redis) = Redis::start_with(&all) else {
            return;
        };
        if !redis.owned() {
            return;
        }
        let connected = RedisStore::connect(&redis.url).await;
        assert_eq!(connected.is_ok(), accepted, "{args:?}");
        if let Err(e) = connected {
            assert!(e.to_string().contains("noeviction"), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_on_redis_cannot_evict_a_claim_and_let_a_replay_in() {
    // allkeys-lru: a cache sharing the Redis. volatile-lru: only keys with a TTL are
    // evicted, i.e. exactly the claims. Such a Redis is refused at connect; with
    // noeviction a full Redis refuses writes (503), and a done claim stays.
    for policy in ["allkeys-lru", "volatile-lru", "noeviction"] {
        let Some(redis) = Redis::start_with(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            "4mb",
            "--maxmemory-policy",
            policy,
        ]) else {
            return;
        };
        if !redis.owned() {
            return;
        }
        let connected = RedisStore::connect(&redis.url).await;
        if policy != "noeviction" {
            let err = connected.unwrap_err();
            assert_eq!(err.code(), "replay_guard_unavailable");
            assert!(err.to_string().contains("noeviction"), "{err}");
            continue;
        }
        let log = Log::default();
        let store = connected.unwrap().with_prefix(&unique_prefix("evict"));
        let addr = serve(auth(ReplayGuard::new(store, "evict").unwrap()), log.clone()).await;
        let body = "evicted-claim";
        let headers = signed(body, SystemClock.now());
        assert_eq!(deliver(addr, &headers, body).await.0, 200);
        // Something else on the same Redis (a cache, a session store) fills memory.
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let mut connection = client.get_connection().unwrap();
        let filler = "f".repeat(4 * 1024);
        for i in 0..4_000 {
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("cache:{i}"))
                .arg(&filler)
                .query(&mut connection);
        }
        let (status, text, _) = deliver(addr, &headers, body).await;
        assert_eq!(
            log.calls(body),
            1,
            "{policy}: replay answered {status} {text:?}"
        );
        // Full for sure (used memory hovers around the limit as client buffers come and go).
        redis.command(&["CONFIG", "SET", "maxmemory", "1mb"]);
        // A new delivery cannot be claimed in a full Redis: an outage, not a 401.
        let other = signed("another", SystemClock.now());
        assert_eq!(deliver(addr, &other, "another").await.0, 503);
    }
}

#[tokio::test]
async fn the_blocking_verifier_on_a_current_thread_runtime_fails_in_bounded_time_and_leaves_no_claim()
 {
    // Attack of the review: `Verifier::verify` (blocking) called from the one thread of a
    // current-thread runtime, the guard's runtime, over Redis. The store's operation cannot
    // run while the thread waits: the wait must end at the timeout with an outage (a 503
    // for the provider to retry), never hang or panic, and the claim that lands once the
    // thread is free again must be cleaned up so that the retry gets in.
    let Some(redis) = Redis::start() else { return };
    let guard = guard(&redis, "current-thread")
        .await
        .with_timeout(Duration::from_millis(200));
    let verifier = countersign::Verifier::kamiokash_webhook(
        countersign::SecretKey::new(countersign_test_support::server::SECRET).unwrap(),
    )
    .with_replay_guard(guard);
    let body = r#"{"type":"member.new","data":{}}"#;
    let headers = signed(body, SystemClock.now());
    let request = ReceivedRequest::new(&headers, body.as_bytes());
    let started = Instant::now();
    let refused = verifier.verify(&request).unwrap_err();
    let waited = started.elapsed();
    assert_eq!(refused.code(), "replay_guard_unavailable", "{refused}");
    assert!(waited < Duration::from_secs(1), "{waited:?}");
    // The thread is free: the stranded claim lands and is cleaned up; the retry gets in.
    let deadline = Instant::now() + Duration::from_secs(5);
    let accepted = loop {
        match verifier.verify_async(&request).await {
            Ok(accepted) => break accepted,
            Err(e) if e.kind() == &ErrorKind::Replayed(ClaimState::InFlight) => {
                assert!(
                    Instant::now() < deadline,
                    "the stranded claim was never cleaned up"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(accepted.claim().is_some());
}
