//! The PostgreSQL claim stores against a real server (started by the test; `.ci/run`
//! installs it): the plain store's tokens, states and instants; one winner among
//! concurrent claims; lapsed rows swept without a cron job; the transactional store's
//! claim inside the handler's transaction, with crashes before and after the commit (the
//! transaction dropped, its connection killed, the server killed and restarted); and the
//! model-based invariant in real time through both verifier paths.
#![cfg(feature = "postgres")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::Duration;

use countersign::claim::postgres::{PgClaim, PgStore};
use countersign::claim::{Claim, ClaimKey, ClaimStore, Outcome, ReplayGuard};
use countersign::{ClaimState, Clock, Freshness, SystemClock, Timestamp, kitopay};
use countersign_test_support::postgres_server::Postgres;
use countersign_test_support::replay_model;
use proptest::test_runner::{Config, TestRunner};

fn key(n: u8) -> ClaimKey {
    ClaimKey::new("test", "/hooks", &kitopay::WEBHOOK, "event", &[n])
}

fn at(ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + ms).unwrap()
}

/// A claim of `key` by `token` at `now` ms, leased for `lease` ms, kept `retain` ms.
fn claim(key: ClaimKey, token: u128, now: u64, lease: u64, retain: u64) -> Claim {
    Claim::new(key, token, at(now), at(now + lease), at(now + retain))
}

async fn outcome(store: &impl ClaimStore, claim: &Claim) -> Option<ClaimState> {
    match store.claim(claim).await.unwrap() {
        Outcome::Claimed(_) => None,
        Outcome::Held(state) => Some(state),
        other => panic!("{other:?}"),
    }
}

async fn rows(store: &PgStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM countersign_claims")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_plain_store_holds_claims_by_token_state_and_instant() {
    let Some(pg) = Postgres::start() else { return };
    let store = PgStore::connect(&pg.database("plain").await).await.unwrap();
    let first = claim(key(1), 1, 0, 60_000, 600_000);
    assert_eq!(outcome(&store, &first).await, None);
    assert_eq!(
        outcome(&store, &claim(key(1), 2, 59_999, 60_000, 600_000)).await,
        Some(ClaimState::InFlight),
        "one millisecond before the lease ends"
    );
    store.release(&first).await.unwrap();
    let second = claim(key(1), 3, 1_000, 60_000, 600_000);
    assert_eq!(
        outcome(&store, &second).await,
        None,
        "released: the retry gets in"
    );
    // A late release or completion of the first claim does nothing to the second.
    store.release(&first).await.unwrap();
    assert!(!store.complete(&first).await.unwrap());
    assert_eq!(
        outcome(&store, &claim(key(1), 4, 2_000, 60_000, 600_000)).await,
        Some(ClaimState::InFlight)
    );
    assert!(store.complete(&second).await.unwrap());
    assert!(!store.complete(&second).await.unwrap(), "done once");
    // Done: held for the retention (600 s after 1 s), past the lease; never released.
    store.release(&second).await.unwrap();
    for (now, held) in [
        (61_000, Some(ClaimState::Done)),
        (600_999, Some(ClaimState::Done)),
        (601_000, None),
    ] {
        assert_eq!(
            outcome(
                &store,
                &claim(key(1), 10 + u128::from(now), now, 60_000, 600_000)
            )
            .await,
            held,
            "at {now} ms"
        );
    }
}

#[tokio::test]
async fn a_lapsed_lease_lets_the_event_in_again_and_the_old_token_cannot_complete() {
    let Some(pg) = Postgres::start() else { return };
    let store = PgStore::connect(&pg.database("lapsed").await)
        .await
        .unwrap();
    let first = claim(key(2), 1, 0, 60_000, 600_000);
    assert_eq!(outcome(&store, &first).await, None);
    let second = claim(key(2), 2, 60_000, 60_000, 600_000);
    assert_eq!(
        outcome(&store, &second).await,
        None,
        "the lease ended at 60 s"
    );
    assert!(!store.complete(&first).await.unwrap(), "presumed dead");
    assert!(store.complete(&second).await.unwrap());
    // A claim held for good never lapses.
    let forever = Claim::new(key(3), 5, at(0), Timestamp::MAX, Timestamp::MAX);
    assert_eq!(outcome(&store, &forever).await, None);
    let late = Claim::new(key(3), 6, Timestamp::MAX, Timestamp::MAX, Timestamp::MAX);
    assert_eq!(outcome(&store, &late).await, Some(ClaimState::InFlight));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_sixty_four_concurrent_claims_of_one_key_exactly_one_wins() {
    let Some(pg) = Postgres::start() else { return };
    let store = Arc::new(PgStore::connect(&pg.database("race").await).await.unwrap());
    let tasks: Vec<_> = (0..64u128)
        .map(|token| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                outcome(&*store, &claim(key(4), token, 0, 60_000, 600_000)).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            None => won += 1,
            Some(state) => assert_eq!(state, ClaimState::InFlight),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn lapsed_rows_are_swept_without_a_cron_job() {
    let Some(pg) = Postgres::start() else { return };
    let store = PgStore::connect(&pg.database("sweep").await).await.unwrap();
    for n in 0..50 {
        assert_eq!(
            outcome(&store, &claim(key(n), 1, 0, 1_000, 1_000)).await,
            None
        );
    }
    assert_eq!(rows(&store).await, 50);
    // 59 s later by the claims' clock: not yet (one sweep a minute at most).
    assert_eq!(
        outcome(&store, &claim(key(100), 1, 59_000, 1_000, 1_000)).await,
        None
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rows(&store).await, 51);
    // 61 s: the claim starts a sweep of every lapsed row, in the background.
    assert_eq!(
        outcome(&store, &claim(key(101), 1, 61_000, 1_000, 1_000)).await,
        None
    );
    let mut left = rows(&store).await;
    for _ in 0..50 {
        if left == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = rows(&store).await;
    }
    assert_eq!(left, 1, "only the live claim is left");
}

/// The transactional store's claim, the transaction it hands over, and the row.
async fn claim_in_transaction(
    store: &countersign::claim::postgres::PgTransactionalStore,
    claim: &Claim,
) -> Result<Arc<dyn countersign::claim::Attachment>, Option<ClaimState>> {
    match store.claim(claim).await.unwrap() {
        Outcome::Claimed(Some(attachment)) => Ok(attachment),
        Outcome::Held(state) => Err(Some(state)),
        other => panic!("{other:?}"),
    }
}

fn transaction(attachment: &Arc<dyn countersign::claim::Attachment>) -> &PgClaim {
    attachment.as_any().downcast_ref::<PgClaim>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_claim_commits_with_the_side_effect_or_not_at_all() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("transactional").await;
    let store = PgStore::connect(&url).await.unwrap().transactional();
    let pool = store.pool().clone();
    sqlx::query("CREATE TABLE processed_events (event text PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    let effects = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM processed_events")
            .fetch_one(&pool)
            .await
            .unwrap()
    };

    // Rolled back (the handler failed, or dropped the transaction): neither the side
    // effect nor the claim; the retry is processed.
    let first = claim(key(5), 1, 0, 60_000, 600_000);
    let attachment = claim_in_transaction(&store, &first).await.unwrap();
    let mut tx = transaction(&attachment).take().unwrap();
    sqlx::query("INSERT INTO processed_events VALUES ('5')")
        .execute(&mut *tx)
        .await
        .unwrap();
    // While it is open, a duplicate waits on the row lock and is told: in flight.
    let waiting = claim_in_transaction(&store, &claim(key(5), 2, 10, 60_000, 600_000)).await;
    assert_eq!(waiting.err(), Some(Some(ClaimState::InFlight)));
    drop(tx);
    assert_eq!(effects().await, 0);

    // Committed: the side effect and "done" together; the retry is a duplicate.
    let retry = claim(key(5), 3, 1_000, 60_000, 600_000);
    let attachment = claim_in_transaction(&store, &retry).await.unwrap();
    let mut tx = transaction(&attachment).take().unwrap();
    assert!(transaction(&attachment).take().is_none(), "taken once");
    sqlx::query("INSERT INTO processed_events VALUES ('5')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(effects().await, 1);
    let duplicate = claim_in_transaction(&store, &claim(key(5), 4, 2_000, 60_000, 600_000)).await;
    assert_eq!(duplicate.err(), Some(Some(ClaimState::Done)));
    // The layer's settlement after a handler that took it: nothing left to do.
    assert!(attachment.settle(true).await.unwrap());

    // A handler that did not take it: settled by the answer (commit on 2xx).
    let left = claim_in_transaction(&store, &claim(key(6), 5, 0, 60_000, 600_000))
        .await
        .unwrap();
    assert!(!left.settle(false).await.unwrap());
    assert_eq!(
        claim_in_transaction(&store, &claim(key(6), 6, 10, 60_000, 600_000))
            .await
            .map(|_| ())
            .err(),
        None,
        "rolled back on a failed answer: free"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_before_the_commit_leaves_neither_and_a_crash_after_it_leaves_both() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    if !pg.owned() {
        return;
    }
    let url = pg.database("crash").await;
    let store = PgStore::connect(&url).await.unwrap().transactional();
    let pool = store.pool().clone();
    sqlx::query("CREATE TABLE processed_events (event text PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();

    // Before the commit: the handler's connection is killed (as a process abort closes it).
    let attachment = claim_in_transaction(&store, &claim(key(7), 1, 0, 60_000, 600_000))
        .await
        .unwrap();
    let mut tx = transaction(&attachment).take().unwrap();
    sqlx::query("INSERT INTO processed_events VALUES ('7')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(killed);
    assert!(tx.commit().await.is_err(), "the connection is gone");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 0);
    let retry = claim_in_transaction(&store, &claim(key(7), 2, 1_000, 60_000, 600_000))
        .await
        .unwrap();
    let mut tx = transaction(&retry).take().unwrap();
    sqlx::query("INSERT INTO processed_events VALUES ('7')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // After the commit: the server crashes (SIGKILL) and restarts; both are there.
    pool.close().await;
    drop(store);
    pg.restart();
    let store = PgStore::connect(&url).await.unwrap().transactional();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(events, 1);
    let duplicate = claim_in_transaction(&store, &claim(key(7), 3, 2_000, 60_000, 600_000)).await;
    assert_eq!(duplicate.err(), Some(Some(ClaimState::Done)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_database_is_unavailable_only_a_lock_timeout_is_in_flight() {
    // Only PostgreSQL's lock timeout (55P03: another copy holds the row) means "in
    // flight" (409); any other failure (here the claims table is gone) is an outage (503),
    // never a claim that looks held.
    let Some(pg) = Postgres::start() else { return };
    let store = PgStore::connect(&pg.database("failing").await)
        .await
        .unwrap()
        .transactional();
    sqlx::query("DROP TABLE countersign_claims")
        .execute(store.pool())
        .await
        .unwrap();
    let refused = store
        .claim(&claim(key(9), 1, 0, 60_000, 600_000))
        .await
        .expect_err("a claim without its table fails");
    assert_eq!(refused.code(), "replay_guard_unavailable", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handler_is_cut_off_after_the_lease_and_the_retry_gets_in() {
    let Some(pg) = Postgres::start() else { return };
    let store = PgStore::connect(&pg.database("stalled").await)
        .await
        .unwrap()
        .transactional();
    // A 500 ms lease: the transaction idles past it.
    let attachment = claim_in_transaction(&store, &claim(key(8), 1, 0, 500, 600_000))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        claim_in_transaction(&store, &claim(key(8), 2, 1_500, 500, 600_000))
            .await
            .is_ok(),
        "the stalled transaction was cut off: the retry is claimed"
    );
    let tx = transaction(&attachment).take().unwrap();
    assert!(tx.commit().await.is_err());
}

#[test]
fn model_no_delivery_or_event_is_accepted_twice_on_postgres_in_real_time() {
    let Some(pg) = Postgres::start() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(pg.database("model"));
    let store = runtime.block_on(PgStore::connect(&url)).unwrap();
    let freshness = Freshness {
        max_age: Duration::from_millis(1_500),
        max_future: Duration::from_millis(500),
    };
    let cases = std::env::var("MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    let namespace = std::sync::atomic::AtomicUsize::new(0);
    for by in [
        replay_model::By::Signature,
        replay_model::By::Event {
            lease: Duration::from_millis(1_000),
            retention: Duration::from_millis(2_500),
        },
    ] {
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        runner
            .run(&replay_model::plans(1_500, 500, 14), |plan| {
                let n = namespace.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let guard = runtime
                    .block_on(async { ReplayGuard::new(store.clone(), &format!("model-{n}")) })
                    .unwrap();
                runtime.block_on(replay_model::run(
                    &plan,
                    guard,
                    by,
                    freshness,
                    replay_model::Time::Real {
                        max_sleep: Duration::from_millis(800),
                    },
                ))?;
                Ok(())
            })
            .unwrap();
    }
    let _ = SystemClock.now();
}

// ---------------------------------------------------------------------------------------
// The transactional store behind the layer, attacked (review of the claim path): what the
// handler does with its transaction, a copy while it is open, an exhausted pool.
// ---------------------------------------------------------------------------------------

#[cfg(feature = "axum")]
mod behind_the_layer {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use countersign::claim::postgres::{ClaimTransaction, PgTransactionalStore};
    use countersign::extract::VerifiedBody;
    use countersign::layer::{VerifyLayer, WebhookAuth};
    use countersign::{Verifier, standard_webhooks};
    use countersign_test_support::sign;
    use http_body_util::BodyExt as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt as _;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// The app: one route whose handler does what the body says with its transaction.
    fn app(
        store: PgTransactionalStore,
        calls: Arc<AtomicUsize>,
        gate: Arc<tokio::sync::Notify>,
    ) -> Router {
        let auth = WebhookAuth::new(Verifier::standard_webhooks(
            standard_webhooks::SCHEME.key(SECRET).unwrap(),
        ))
        .with_replay_guard(ReplayGuard::new(store, "shop").unwrap());
        let plain_calls = Arc::clone(&calls);
        Router::new()
            .route(
                "/plain",
                // Never takes the transaction: the layer commits it on a 2xx answer.
                post(move |VerifiedBody(body, _): VerifiedBody| {
                    let calls = Arc::clone(&plain_calls);
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        match &body[..] {
                            b"leave" => http::StatusCode::OK,
                            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
                        }
                    }
                })
                .layer(VerifyLayer::new(auth.clone())),
            )
            .route(
                "/hooks",
                post(
                    move |tx: Option<ClaimTransaction>,
                          VerifiedBody(body, delivery): VerifiedBody| {
                        let (calls, gate) = (Arc::clone(&calls), Arc::clone(&gate));
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let mode = String::from_utf8(body.to_vec()).unwrap();
                            let insert = "INSERT INTO effects VALUES ($1)";
                            let event = delivery.event_id().unwrap().to_owned();
                            match (mode.as_str(), tx) {
                                // Extracted and dropped on an early answer: rolled back.
                                ("extract-and-answer", _) => http::StatusCode::OK,
                                (mode, Some(ClaimTransaction(mut tx))) => {
                                    sqlx::query(insert)
                                        .bind(&event)
                                        .execute(&mut *tx)
                                        .await
                                        .unwrap();
                                    match mode {
                                        "drop" => {
                                            drop(tx);
                                            http::StatusCode::OK
                                        }
                                        "commit-500" => {
                                            tx.commit().await.unwrap();
                                            http::StatusCode::INTERNAL_SERVER_ERROR
                                        }
                                        "panic" => {
                                            panic!("the handler panics holding its transaction")
                                        }
                                        "wait" => {
                                            gate.notified().await;
                                            tx.commit().await.unwrap();
                                            http::StatusCode::OK
                                        }
                                        _ => {
                                            tx.commit().await.unwrap();
                                            http::StatusCode::OK
                                        }
                                    }
                                }
                                (_, None) => http::StatusCode::IM_A_TEAPOT,
                            }
                        }
                    },
                )
                .layer(VerifyLayer::new(auth)),
            )
    }

    /// Event `id` with `mode` as its body, signed `ago` seconds ago: the status.
    async fn deliver(app: &Router, id: &str, mode: &str, ago: u64) -> (u16, String) {
        let at = Timestamp::from_unix_secs(SystemClock.now().unix_secs() - ago).unwrap();
        let path = if mode.starts_with("leave") {
            "/plain"
        } else {
            "/hooks"
        };
        let mut request = http::Request::post(path);
        for (k, v) in sign::standard_webhooks(SECRET, id, mode, at) {
            request = request.header(k, v);
        }
        let request = request
            .body(axum::body::Body::from(mode.to_owned()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let text = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(text.to_vec()).unwrap())
    }

    async fn effects(pool: &sqlx::PgPool, id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM effects WHERE event = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
    }

    const DUPLICATE: &str = "duplicate delivery: already processed\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_handler_does_with_its_transaction_decides_the_retry() {
        let Some(pg) = Postgres::start() else { return };
        let store = PgStore::connect(&pg.database("layer_tx").await)
            .await
            .unwrap()
            .transactional();
        let pool = store.pool().clone();
        sqlx::query("CREATE TABLE effects (event text)")
            .execute(&pool)
            .await
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let app = app(store, Arc::clone(&calls), Arc::default());
        // (mode, the first answer, the re-signed retry processed?, effects recorded)
        for (mode, first, retried, recorded) in [
            ("commit", 200, false, 1),
            ("leave", 200, false, 0),
            ("drop", 200, true, 0),
            ("extract-and-answer", 200, true, 0),
            ("leave-500", 500, true, 0),
            ("commit-500", 500, false, 1),
        ] {
            let id = format!("msg_{mode}");
            let before = calls.load(Ordering::SeqCst);
            assert_eq!(deliver(&app, &id, mode, 30).await.0, first, "{mode}");
            let retry = deliver(&app, &id, mode, 0).await;
            let processed = calls.load(Ordering::SeqCst) - before;
            assert_eq!(processed, 1 + usize::from(retried), "{mode}: {retry:?}");
            if !retried {
                assert_eq!(retry, (200, DUPLICATE.to_owned()), "{mode}");
            }
            // An effect is recorded by a committed transaction only.
            assert_eq!(effects(&pool, &id).await, recorded, "{mode}");
        }
        // A panic holding the transaction rolls it back; the retry is processed.
        let request_app = app.clone();
        let panicked =
            tokio::spawn(async move { deliver(&request_app, "msg_panic", "panic", 30).await })
                .await;
        assert!(panicked.is_err());
        let retry = deliver(&app, "msg_panic", "commit", 0).await;
        assert_eq!(retry.0, 200, "{retry:?}");
        assert_eq!(effects(&pool, "msg_panic").await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_while_the_transaction_is_open_is_409_and_acknowledged_after_the_commit() {
        let Some(pg) = Postgres::start() else { return };
        let store = PgStore::connect(&pg.database("layer_open").await)
            .await
            .unwrap()
            .transactional();
        let pool = store.pool().clone();
        sqlx::query("CREATE TABLE effects (event text)")
            .execute(&pool)
            .await
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let app = app(store, Arc::clone(&calls), Arc::clone(&gate));
        let first_app = app.clone();
        let first = tokio::spawn(async move { deliver(&first_app, "msg_open", "wait", 10).await });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..3 {
            assert_eq!(deliver(&app, "msg_open", "commit", 0).await.0, 409);
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap().0, 200);
        assert_eq!(
            deliver(&app, "msg_open", "commit", 0).await,
            (200, DUPLICATE.to_owned())
        );
        assert_eq!(
            (
                calls.load(Ordering::SeqCst),
                effects(&pool, "msg_open").await
            ),
            (1, 1)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exhausted_pool_is_503_at_the_guards_timeout_not_a_hang() {
        let Some(pg) = Postgres::start() else { return };
        let url = pg.database("layer_pool").await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE effects (event text)")
            .execute(&pool)
            .await
            .unwrap();
        let store = PgStore::from_pool(pool.clone(), "countersign_claims")
            .await
            .unwrap()
            .transactional();
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let app = app(store, Arc::clone(&calls), Arc::clone(&gate));
        let first_app = app.clone();
        let first = tokio::spawn(async move { deliver(&first_app, "msg_holds", "wait", 0).await });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The one connection is the first delivery's transaction: another event waits for a
        // connection at most the guard's timeout (1 s), then is refused as an outage.
        let started = std::time::Instant::now();
        let other = deliver(&app, "msg_other", "commit", 0).await;
        let took = started.elapsed();
        assert_eq!(other.0, 503, "{other:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        gate.notify_one();
        assert_eq!(first.await.unwrap().0, 200);
        assert_eq!(
            deliver(&app, "msg_other", "commit", 0).await.0,
            200,
            "the retry gets in"
        );
    }
}
