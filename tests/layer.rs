//! The tower layer at its edges, as an attacker and an unlucky provider would find them:
//!
//! - claims: every path that does not end in a 2xx releases the claim (non-2xx, inner
//!   error, panic), and a client hanging up mid-handler releases nothing (the handler runs
//!   to its end: the delivery is never processed twice);
//! - duplicates are acknowledged (done), deferred (in flight) or processed (released): once
//!   under copies racing completion and release, whatever the case of the signature's hex,
//!   across endpoints sharing a guard; a replay after its key was rotated out is refused;
//! - an undecided guard is 503 with a `Retry-After` (even an extreme one), never 401;
//! - signature headers sent twice, in any spelling or shape, never reach the handler;
//! - bodies: a stalled or trickled body is 408 at a total deadline, an oversized one 413
//!   (the limit exact, declared or streamed), and a runtime without timers does not panic;
//! - the URL verified is exactly the URL received (Host header, absolute-form targets,
//!   percent-encoding, dot segments, `Router::nest`, no body on GET/HEAD, one claim for both
//!   trailing-slash forms), and only standard methods verify;
//! - each decision is one tracing event, a refusal names the likely mistake within bounds;
//! - the extractors share the layer's semantics.
#![cfg(all(feature = "axum", feature = "reqwest"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use countersign::claim::ReplayGuard;
use countersign::extract::{VerifiedBody, VerifiedJson};
use countersign::layer::{VerifyLayer, WebhookAuth};
use countersign::middleware::SigningMiddleware;
use countersign::{
    Clock, ReceivedRequest, SecretKey, SignableRequest, Signer, SystemClock, Timestamp, Verified,
    Verifier,
};
use countersign_test_support::server::{
    self, Log, Memory, SECRET, auth, capturing_subscriber, deliver, deliver_and_lose_the_response,
    raw_exchange, raw_request, request_with, serve, signed, status_line,
};
use countersign_test_support::sign;
use countersign_test_support::store::Unreachable;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, Service, ServiceExt, service_fn};

const MERCHANT: &str = "m-1";
const KITOPAY_SECRET: &str = "kitopay-secret";

type Response = http::Response<Full<Bytes>>;

/// A signed KamioKash webhook as an `http::Request`.
fn request(body: &str) -> http::Request<Full<Bytes>> {
    request_with(body, &signed(body, SystemClock.now()))
}

/// A layered service whose inner service answers with `status` and counts its calls.
fn answering(
    guard: impl Into<ReplayGuard>,
    status: u16,
    calls: Arc<AtomicUsize>,
) -> impl Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible, Future: Send>
+ Clone {
    VerifyLayer::new(auth(guard)).layer(service_fn(move |_: http::Request<Full<Bytes>>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let mut response = Response::new(Full::from("handler"));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        }
    }))
}

fn counting(
    auth: WebhookAuth,
    calls: Arc<AtomicUsize>,
) -> impl Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible, Future: Send>
+ Clone {
    VerifyLayer::new(auth).layer(service_fn(move |_: http::Request<Full<Bytes>>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Response::new(Full::from("processed")))
        }
    }))
}

async fn status(
    service: impl Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible>,
    request: http::Request<Full<Bytes>>,
) -> (u16, String, Option<String>) {
    let response = service.oneshot(request).await.unwrap();
    let code = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8(body.to_vec()).unwrap(), retry)
}

#[tokio::test]
async fn only_a_2xx_answer_completes_the_claim_every_other_releases_it() {
    for (answer, retried_is_processed) in [
        (200, false),
        (204, false),
        (302, true),
        (400, true),
        (404, true),
        (500, true),
        (503, true),
    ] {
        let guard = Memory::new(10);
        let calls = Arc::new(AtomicUsize::new(0));
        let service = answering(guard.clone(), answer, calls.clone());
        let headers = signed("{}", SystemClock.now());
        assert_eq!(
            status(service.clone(), request_with("{}", &headers))
                .await
                .0,
            answer
        );
        let (again, body, _) = status(service, request_with("{}", &headers)).await;
        if retried_is_processed {
            assert_eq!(
                (again, calls.load(Ordering::SeqCst)),
                (answer, 2),
                "{answer}: released"
            );
        } else {
            assert_eq!(
                (again, body.as_str(), calls.load(Ordering::SeqCst)),
                (200, "duplicate delivery: already processed\n", 1),
                "{answer}: done"
            );
        }
    }
}

#[tokio::test]
async fn an_inner_service_error_releases_the_claim() {
    let guard = Memory::new(10);
    let service = VerifyLayer::new(auth(guard.clone())).layer(service_fn(
        |_: http::Request<Full<Bytes>>| async { Err::<Response, _>("inner failure") },
    ));
    let headers = signed("{}", SystemClock.now());
    assert!(
        service
            .clone()
            .oneshot(request_with("{}", &headers))
            .await
            .is_err()
    );
    assert_eq!(guard.len(), 0, "the claim is released");
}

#[tokio::test]
async fn a_handler_panic_releases_the_claim() {
    let guard = Memory::new(10);
    let service = VerifyLayer::new(auth(guard.clone())).layer(service_fn(
        |_: http::Request<Full<Bytes>>| async {
            if std::hint::black_box(true) {
                panic!("handler bug");
            }
            Ok::<Response, Infallible>(Response::new(Full::from("")))
        },
    ));
    let headers = signed("{}", SystemClock.now());
    let task = tokio::spawn(service.clone().oneshot(request_with("{}", &headers)));
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(guard.len(), 0, "the claim is released");
    let calls = Arc::new(AtomicUsize::new(0));
    let retry = answering(guard, 200, calls.clone());
    assert_eq!(status(retry, request_with("{}", &headers)).await.0, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the retry was processed");
}

#[tokio::test]
async fn a_client_hanging_up_does_not_cancel_the_handler_whose_answer_settles_the_claim() {
    // hyper drops the request future when the client goes away. Releasing the claim then
    // (the handler may have done its side effects) would let the delivery be processed
    // twice; the handler runs to its end instead, and its answer settles the claim.
    for (answer, claims_left) in [(200u16, 1usize), (500, 0)] {
        let guard = Memory::new(10);
        let calls = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let background = auth(guard.clone());
        let service = {
            let (calls, finished) = (calls.clone(), finished.clone());
            VerifyLayer::new(background.clone()).layer(service_fn(
                move |_: http::Request<Full<Bytes>>| {
                    let (calls, finished) = (calls.clone(), finished.clone());
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                        let mut response = Response::new(Full::from("processed"));
                        *response.status_mut() = http::StatusCode::from_u16(answer).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                },
            ))
        };
        let headers = signed("{}", SystemClock.now());
        let call = service.clone().oneshot(request_with("{}", &headers));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), call)
                .await
                .is_err()
        );
        assert_eq!(guard.len(), 1, "in flight while the handler runs");
        assert_eq!(background.in_background(), 1, "finished in the background");
        let waited = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(2), background.background_finished())
            .await
            .expect("the background handler finishes");
        assert!(
            waited.elapsed() >= Duration::from_millis(100),
            "waited for the handler"
        );
        assert_eq!(background.in_background(), 0);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the handler ran to its end"
        );
        assert_eq!(
            guard.len(),
            claims_left,
            "{answer}: settled by the handler's answer"
        );
        let (code, body, _) = status(service, request_with("{}", &headers)).await;
        if answer == 200 {
            assert_eq!(
                (code, body.as_str()),
                (200, "duplicate delivery: already processed\n")
            );
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        } else {
            assert_eq!(
                (code, calls.load(Ordering::SeqCst)),
                (500, 2),
                "released: the retry is processed"
            );
        }
    }
}

/// A server whose handler records the delivery as processed (its side effect), then does
/// more async work (`after_ms`) before answering 200.
async fn serve_side_effect_then_await(
    auth: WebhookAuth,
    processed: Arc<AtomicUsize>,
    after_ms: u64,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = move |_body: Bytes| {
        let processed = processed.clone();
        async move {
            processed.fetch_add(1, Ordering::SeqCst); // e.g. the payment is credited
            tokio::time::sleep(Duration::from_millis(after_ms)).await; // e.g. an email is sent
            "processed"
        }
    };
    let app = Router::new().route("/hook", post(handler).layer(VerifyLayer::new(auth)));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn a_client_disconnecting_mid_handler_cannot_get_a_delivery_processed_twice() {
    let processed = Arc::new(AtomicUsize::new(0));
    let addr =
        serve_side_effect_then_await(auth(ReplayGuard::in_memory(100)), processed.clone(), 300)
            .await;
    let body = r#"{"type":"transaction.successful","data":{"amount":500}}"#;
    let headers = signed(body, SystemClock.now());
    // The attacker (holding a copy of a fresh delivery) sends it and hangs up as soon as the
    // handler has started, i.e. after its side effect.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(raw_request(&addr.to_string(), &headers, body, "").as_bytes())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while processed.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the handler never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(socket);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The provider's own copy (or the attacker's second one) arrives.
    let (status, text, _) = server::deliver(addr, &headers, body).await;
    assert_eq!(
        processed.load(Ordering::SeqCst),
        1,
        "processed twice; second answer {status} {text:?}"
    );
}

#[tokio::test]
async fn a_duplicate_in_flight_gets_409_with_retry_after_and_never_reaches_the_handler() {
    let guard = Memory::new(10);
    let gate = Arc::new(tokio::sync::Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let service = {
        let (gate, calls) = (gate.clone(), calls.clone());
        VerifyLayer::new(auth(guard).with_retry_after(Duration::from_millis(2_500))).layer(
            service_fn(move |_: http::Request<Full<Bytes>>| {
                let (gate, calls) = (gate.clone(), calls.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Ok::<_, Infallible>(Response::new(Full::from("processed")))
                }
            }),
        )
    };
    let headers = signed("{}", SystemClock.now());
    let first = tokio::spawn(service.clone().oneshot(request_with("{}", &headers)));
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let response = service
        .clone()
        .oneshot(request_with("{}", &headers))
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["retry-after"],
        "3",
        "rounded up to whole seconds"
    );
    gate.notify_one();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    let (code, body, _) = status(service, request_with("{}", &headers)).await;
    assert_eq!(
        (code, body.as_str()),
        (200, "duplicate delivery: already processed\n")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

type Stats = Arc<std::sync::Mutex<std::collections::HashMap<String, (usize, usize, usize, usize)>>>;

/// A handler that tracks, per body: (successes, running now, most running at once, calls);
/// odd-numbered calls fail with 500.
fn racing_handler(
    stats: Stats,
) -> impl Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible, Future: Send>
+ Clone {
    service_fn(move |request: http::Request<Full<Bytes>>| {
        let stats = stats.clone();
        async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let key = String::from_utf8(body.to_vec()).unwrap();
            let call = {
                let mut s = stats.lock().unwrap();
                let e = s.entry(key.clone()).or_default();
                e.1 += 1;
                e.2 = e.2.max(e.1);
                e.3 += 1;
                e.3
            };
            tokio::time::sleep(Duration::from_millis(2)).await;
            let fail = call % 2 == 1;
            let mut s = stats.lock().unwrap();
            let e = s.get_mut(&key).unwrap();
            e.1 -= 1;
            if !fail {
                e.0 += 1;
            }
            drop(s);
            let mut response = Response::new(Full::from(if fail { "failed" } else { "processed" }));
            if fail {
                *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            }
            Ok::<_, Infallible>(response)
        }
    })
}

async fn hammer<S>(service: S, stats: Stats, deliveries: usize, copies: usize)
where
    S: Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let mut tasks = Vec::new();
    for d in 0..deliveries {
        let body = format!("race-{d}");
        let headers = signed(&body, SystemClock.now());
        for _ in 0..copies {
            let (service, body, headers) = (service.clone(), body.clone(), headers.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..2_000 {
                    let (code, text, _) =
                        status(service.clone(), request_with(&body, &headers)).await;
                    match code {
                        200 => return text,
                        409 | 500 | 503 => tokio::task::yield_now().await,
                        other => panic!("unexpected {other} {text:?}"),
                    }
                }
                panic!("never settled");
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    for (body, (successes, running, most, calls)) in stats.lock().unwrap().iter() {
        assert_eq!(running, &0);
        assert_eq!(
            *successes, 1,
            "{body}: processed {successes} times ({calls} calls)"
        );
        assert_eq!(*most, 1, "{body}: two handler runs at once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_racing_release_and_complete_are_processed_once() {
    let stats: Stats = Arc::default();
    let service =
        VerifyLayer::new(auth(ReplayGuard::in_memory(10_000))).layer(racing_handler(stats.clone()));
    hammer(service, stats.clone(), 24, 12).await;
    assert_eq!(stats.lock().unwrap().len(), 24);
}

#[tokio::test]
async fn a_guard_that_cannot_decide_is_an_outage_503_not_an_authentication_failure() {
    let service = VerifyLayer::new(
        WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap()))
            .with_replay_guard(ReplayGuard::new(Unreachable, "test").unwrap()),
    )
    .layer(service_fn(|_: http::Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::from("processed")))
    }));
    let response = service.clone().oneshot(request("{}")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    // A forged request is still 401: the guard is only asked about verified deliveries.
    let forged = http::Request::post("/hook")
        .header("X-Timestamp", SystemClock.now().to_iso_text().as_str())
        .header("X-Kamio-Signature", "0".repeat(64))
        .body(Full::<Bytes>::from("{}"))
        .unwrap();
    assert_eq!(service.oneshot(forged).await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_guard_that_cannot_decide_answers_503_with_retry_after_and_the_handler_is_not_called() {
    // Capacity 1, held by a live claim: the next delivery cannot be claimed.
    let guard = ReplayGuard::in_memory(1);
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counting(auth(guard.clone()), calls.clone());
    let first = signed("first", SystemClock.now());
    let held = Verified::dangerous_assume(
        &countersign::kamiokash::WEBHOOK,
        "primary",
        None,
        countersign::Signature::from_bytes([0x42; 32]),
    );
    let no_headers: [(&str, &str); 0] = [];
    guard
        .claim_blocking(
            &held,
            &ReceivedRequest::new(&no_headers, b""),
            "/hook",
            SystemClock.now(),
        )
        .unwrap();
    let (code, _, retry) = status(service.clone(), request_with("first", &first)).await;
    assert_eq!((code, retry.as_deref()), (503, Some("5")));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_extreme_retry_after_never_panics() {
    let guard = ReplayGuard::in_memory(0);
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counting(auth(guard).with_retry_after(Duration::MAX), calls);
    let headers = signed("{}", SystemClock.now());
    let answer =
        tokio::spawn(async move { status(service, request_with("{}", &headers)).await }).await;
    let (code, _, retry) = answer.expect("the layer panicked");
    assert_eq!(code, 503);
    assert_ne!(retry.as_deref(), Some("1"), "Retry-After wrapped around");
}

#[tokio::test]
async fn the_same_guard_on_the_verifier_and_the_auth_claims_once() {
    // Used to make every first delivery 401: the verifier claimed, then the layer found
    // the delivery claimed.
    let guard = Memory::new(10);
    let verifier = Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap())
        .with_replay_guard(guard.guard.clone());
    for auth in [
        WebhookAuth::new(verifier),
        WebhookAuth::new(
            Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap())
                .with_replay_guard(guard.guard.clone()),
        )
        .with_replay_guard(guard.guard.clone()),
    ] {
        let service =
            VerifyLayer::new(auth).layer(service_fn(|_: http::Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::from("processed")))
            }));
        let body = format!("{{\"n\":{}}}", guard.len());
        let headers = signed(&body, SystemClock.now());
        assert_eq!(
            status(service.clone(), request_with(&body, &headers))
                .await
                .0,
            200
        );
        let (code, text, _) = status(service, request_with(&body, &headers)).await;
        assert_eq!(
            (code, text.as_str()),
            (200, "duplicate delivery: already processed\n")
        );
    }
}

#[tokio::test]
async fn an_upper_case_copy_of_the_signature_is_the_same_delivery_for_the_replay_guard() {
    let (addr, log) = kamiokash_server().await;
    let body = "upper-case-replay";
    let headers = signed(body, SystemClock.now());
    let (status, _, _) = server::deliver(addr, &headers, body).await;
    assert_eq!(status, 200);
    let upper: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("x-kamio-signature") {
                (k.to_ascii_uppercase(), v.to_ascii_uppercase())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let (status, text, _) = server::deliver(addr, &upper, body).await;
    assert_eq!(
        (status, text.as_str()),
        (200, "duplicate delivery: already processed\n")
    );
    assert_eq!(log.calls(body), 1);
}

#[tokio::test]
async fn a_replay_after_the_signing_key_is_rotated_out_is_refused_not_processed() {
    let old = "whsec_attack_old_3c1d";
    let keys = countersign::SharedKeys::new(countersign::KeyRing::new(
        "old",
        SecretKey::new(old).unwrap(),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counting(
        WebhookAuth::new(Verifier::kamiokash_webhook(keys.clone()))
            .with_replay_guard(ReplayGuard::in_memory(100)),
        calls.clone(),
    );
    let headers: Vec<(String, String)> =
        countersign::Signer::kamiokash_webhook(SecretKey::new(old).unwrap())
            .sign(&SignableRequest::body(b"{}"), SystemClock.now())
            .unwrap()
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    // In flight while the rotation happens: the claim is the guard's, not the key's.
    assert_eq!(
        status(service.clone(), request_with("{}", &headers))
            .await
            .0,
        200
    );
    keys.update(|ring| {
        ring.add("new", SecretKey::new("whsec_attack_new_9e8f").unwrap());
        ring.remove("old");
    });
    assert_eq!(
        status(service.clone(), request_with("{}", &headers))
            .await
            .0,
        401
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_kamiokash_request_replayed_to_another_endpoint_sharing_the_guard_is_a_duplicate() {
    // KamioKash request signatures cover neither method nor URL (README): a shared guard is
    // the defence. The same signed bytes to a second route are acknowledged, not processed.
    let guard = ReplayGuard::in_memory(100);
    let secret = "kk_attack_sk_71";
    let make = |calls: Arc<AtomicUsize>| {
        counting(
            WebhookAuth::new(Verifier::kamiokash_request(SecretKey::new(secret).unwrap()))
                .with_replay_guard(guard.clone()),
            calls,
        )
    };
    let (calls_a, calls_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, b) = (make(calls_a.clone()), make(calls_b.clone()));
    let headers: Vec<(String, String)> =
        countersign::Signer::kamiokash("pk_1", SecretKey::new(secret).unwrap())
            .unwrap()
            .sign(
                &SignableRequest::body(br#"{"wallet_id":"w_1"}"#),
                SystemClock.now(),
            )
            .unwrap()
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let body = r#"{"wallet_id":"w_1"}"#;
    assert_eq!(status(a, request_with(body, &headers)).await.0, 200);
    let (code, text, _) = status(b, request_with(body, &headers)).await;
    assert_eq!(
        (code, text.as_str()),
        (200, "duplicate delivery: already processed\n")
    );
    assert_eq!(
        (
            calls_a.load(Ordering::SeqCst),
            calls_b.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
}

#[tokio::test]
async fn a_request_replayed_to_another_route_is_a_duplicate_but_a_webhook_fanned_out_to_two_routes_is_not()
 {
    // Claims are kept per route only for webhook schemes (a provider may deliver one event
    // to several of your endpoints). A request scheme's signature is the request's: the same
    // signed bytes to another route of an API sharing the guard are a replay, refused.
    let guard = ReplayGuard::in_memory(100);
    let secret = "kk_attack_sk_71";
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counting(
        WebhookAuth::new(Verifier::kamiokash_request(SecretKey::new(secret).unwrap()))
            .with_replay_guard(guard.clone()),
        calls.clone(),
    );
    let body = r#"{"wallet_id":"w_1","amount":100}"#;
    let headers: Vec<(String, String)> =
        countersign::Signer::kamiokash("pk_1", SecretKey::new(secret).unwrap())
            .unwrap()
            .sign(&SignableRequest::body(body.as_bytes()), SystemClock.now())
            .unwrap()
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let to = |path: &str| {
        let mut builder = http::Request::post(path);
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        builder.body(Full::<Bytes>::from(body)).unwrap()
    };
    assert_eq!(status(service.clone(), to("/v1/transfers")).await.0, 200);
    let (code, text, _) = status(service.clone(), to("/v1/refunds")).await;
    assert_eq!(
        (code, text.as_str()),
        (200, "duplicate delivery: already processed\n")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A webhook scheme: each route processes the event once (routes named here: a plain
    // tower service has no router to match one, and the path received is never a route).
    let webhook_calls = Arc::new(AtomicUsize::new(0));
    let route = |name: &str| counting(auth(guard.clone()).with_route(name), webhook_calls.clone());
    let (orders, analytics) = (route("orders"), route("analytics"));
    let event = r#"{"type":"member.new","data":{}}"#;
    let delivery = signed(event, SystemClock.now());
    let to = |path: &str| {
        let mut builder = http::Request::post(path);
        for (k, v) in &delivery {
            builder = builder.header(k, v);
        }
        builder.body(Full::<Bytes>::from(event)).unwrap()
    };
    assert_eq!(status(orders.clone(), to("/hooks/orders")).await.0, 200);
    assert_eq!(
        status(analytics.clone(), to("/hooks/analytics")).await.0,
        200
    );
    let (code, text, _) = status(orders, to("/hooks/orders")).await;
    assert_eq!(
        (code, text.as_str()),
        (200, "duplicate delivery: already processed\n")
    );
    // A replay of the orders delivery to another path of the orders service is the same
    // route: a duplicate.
    let (code, _, _) = status(route("orders"), to("/anything/else")).await;
    assert_eq!(code, 200);
    assert_eq!(webhook_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn duplicate_signature_headers_are_refused_by_the_layer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = answering(ReplayGuard::in_memory(10), 200, calls.clone());
    let mut headers = signed("{}", SystemClock.now());
    headers.push(("x-kamio-signature".into(), "f".repeat(64)));
    assert_eq!(status(service, request_with("{}", &headers)).await.0, 401);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

async fn kamiokash_server() -> (std::net::SocketAddr, server::Log) {
    let log = server::Log::default();
    let addr = server::serve(auth(ReplayGuard::in_memory(1_000)), log.clone()).await;
    (addr, log)
}

#[tokio::test]
async fn duplicate_signed_headers_in_any_spelling_or_shape_never_reach_the_handler() {
    let (addr, log) = kamiokash_server().await;
    let body = "dup-headers";
    let good = signed(body, SystemClock.now());
    let ts = good[0].1.clone();
    let sig = good[1].1.clone();
    let older = Timestamp::from_duration(SystemClock.now().since_epoch() - Duration::from_secs(5))
        .unwrap()
        .to_iso_text()
        .as_str()
        .to_owned();
    let cases: Vec<(&str, String)> = vec![
        // the same header twice, case variants
        (
            "case variants",
            format!("X-Timestamp: {ts}\r\nx-timestamp: {ts}\r\nX-Kamio-Signature: {sig}\r\n"),
        ),
        // an empty second value
        (
            "empty second value",
            format!("X-Timestamp: {ts}\r\nX-Timestamp:\r\nX-Kamio-Signature: {sig}\r\n"),
        ),
        // an empty first value
        (
            "empty first value",
            format!("X-Kamio-Signature:\r\nX-Timestamp: {ts}\r\nX-Kamio-Signature: {sig}\r\n"),
        ),
        // two different timestamps (only one signed)
        (
            "two timestamps",
            format!("X-Timestamp: {older}\r\nX-Timestamp: {ts}\r\nX-Kamio-Signature: {sig}\r\n"),
        ),
        // one header line with two comma-joined values
        (
            "comma-joined",
            format!("X-Timestamp: {ts}, {ts}\r\nX-Kamio-Signature: {sig}\r\n"),
        ),
        // obs-fold: a continuation line
        (
            "obs-fold",
            format!(
                "X-Timestamp: {ts}\r\nX-Kamio-Signature: {}\r\n {}\r\n",
                &sig[..32],
                &sig[32..]
            ),
        ),
        // a signature with a non-UTF-8 byte appended
        (
            "non-utf8",
            format!("X-Timestamp: {ts}\r\nX-Kamio-Signature: {sig}\u{00ff}\r\n"),
        ),
        // whitespace inside the value
        (
            "inner space",
            format!(
                "X-Timestamp: {ts}\r\nX-Kamio-Signature: {} {}\r\n",
                &sig[..32],
                &sig[32..]
            ),
        ),
        // the signature sent in the trailer of a chunked body instead of the head
        ("trailer", format!("X-Timestamp: {ts}\r\n")),
    ];
    for (name, head) in cases {
        let request = if name == "trailer" {
            format!(
                "POST /hook HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\ntrailer: X-Kamio-Signature\r\n{head}\r\n{:x}\r\n{body}\r\n0\r\nX-Kamio-Signature: {sig}\r\n\r\n",
                body.len()
            )
        } else {
            format!(
                "POST /hook HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n{head}\r\n{body}",
                body.len()
            )
        };
        let mut bytes = request.into_bytes();
        if name == "non-utf8" {
            // Replace the UTF-8 encoding of U+00FF (c3 bf) by the single byte ff.
            let at = bytes.windows(2).position(|w| w == [0xc3, 0xbf]).unwrap();
            bytes.splice(at..at + 2, [0xff]);
        }
        let answer = raw_exchange(addr, &bytes).await;
        let code = status_line(&answer);
        assert!(
            code == 400 || code == 401,
            "{name}: answered {code}: {answer:?}"
        );
    }
    assert_eq!(
        log.calls(body),
        0,
        "a duplicate-header request reached the handler"
    );
    // Control: the honest request is processed.
    let honest = raw_exchange(
        addr,
        raw_request("x", &good, body, "connection: close\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_line(&honest), 200, "{honest:?}");
    assert_eq!(log.calls(body), 1);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_at_the_deadline() {
    let calls = Arc::new(AtomicUsize::new(0));
    let auth = auth(ReplayGuard::in_memory(10)).with_body_timeout(Duration::from_millis(200));
    let service = VerifyLayer::new(auth).layer(service_fn(move |_: http::Request<Full<Bytes>>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Response::new(Full::from("processed")))
        }
    }));
    // One chunk, then nothing: a stalled chunked body.
    let chunks = futures_util::stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
        Bytes::from("{"),
    ))])
    .chain(futures_util::stream::pending());
    let stalled = http::Request::post("/hook")
        .body(StreamBody::new(chunks))
        .unwrap();
    let started = std::time::Instant::now();
    let response = service.oneshot(stalled).await.unwrap();
    assert_eq!(response.status(), 408);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_short_content_length_over_a_socket_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let log = Log::default();
    let addr = serve(
        auth(ReplayGuard::in_memory(10)).with_body_timeout(Duration::from_millis(300)),
        log.clone(),
    )
    .await;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Declares 100 bytes, sends 10, then waits.
    socket
        .write_all(b"POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut answer))
        .await
        .expect("the server held the connection past its deadline")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(log.total_calls(), 0);
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_total_deadline_not_an_idle_timeout() {
    let log = server::Log::default();
    let addr = server::serve(
        auth(ReplayGuard::in_memory(100)).with_body_timeout(Duration::from_millis(400)),
        log.clone(),
    )
    .await;
    let body = "t".repeat(100);
    let headers = signed(&body, SystemClock.now());
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = raw_request("x", &headers, "", "connection: close\r\n").replace(
        "content-length: 0",
        &format!("content-length: {}", body.len()),
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 50 ms: never idle for long, 5 s in total.
    let writer = tokio::spawn(async move {
        let (mut read, mut write) = socket.into_split();
        let sender = async {
            for _ in 0..100 {
                if write.write_all(b"t").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let mut out = Vec::new();
        let reader = read.read_to_end(&mut out);
        tokio::select! {
            _ = sender => {}
            _ = reader => {}
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let answer = tokio::time::timeout(Duration::from_secs(4), writer)
        .await
        .expect("no answer within 4 s: the deadline is not a total deadline")
        .unwrap();
    assert_eq!(status_line(&answer), 408, "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(log.total_calls(), 0);
}

#[tokio::test]
async fn an_unsigned_request_with_a_stalled_body_is_held_until_the_deadline_then_408() {
    // Observation (not a broken guarantee): the body is read before any header is looked
    // at, so a request without a single signature header still costs a connection and up
    // to the body limit in memory for the whole deadline, and is answered 408, not 401.
    let log = server::Log::default();
    let addr = server::serve(
        auth(ReplayGuard::in_memory(10)).with_body_timeout(Duration::from_millis(300)),
        log.clone(),
    )
    .await;
    let started = std::time::Instant::now();
    let answer = raw_exchange(
        addr,
        b"POST /hook HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 10\r\n\r\nabc",
    )
    .await;
    assert_eq!(status_line(&answer), 408, "{answer:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(log.total_calls(), 0);
}

/// A Kitopay *request* verifier behind the layer with the URL rebuilt from Host.
fn kitopay_service(
    calls: Arc<AtomicUsize>,
) -> impl Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible> + Clone {
    let verifier =
        Verifier::kitopay_request(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap()).unwrap();
    VerifyLayer::new(WebhookAuth::new(verifier).with_url_from_host("http")).layer(service_fn(
        move |_: http::Request<Full<Bytes>>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Response::new(Full::from("processed")))
            }
        },
    ))
}

fn kitopay_request_service(
    calls: Arc<AtomicUsize>,
    slash_tolerance: bool,
) -> impl Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible, Future: Send>
+ Clone {
    let verifier = Verifier::kitopay_request(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap())
        .unwrap()
        .with_trailing_slash_tolerance(slash_tolerance)
        .with_replay_guard(ReplayGuard::in_memory(1_000));
    counting(WebhookAuth::new(verifier).with_url_from_host("http"), calls)
}

/// A Kitopay request's headers: `method` to `url` with `body`, signed at `at`.
fn kitopay_signed(method: &str, url: &str, body: &str, at: Timestamp) -> Vec<(String, String)> {
    sign::kitopay(MERCHANT, KITOPAY_SECRET, method, url, body, at)
}

fn kitopay_to(
    method: &str,
    target: &str,
    host: Option<&str>,
    headers: &[(String, String)],
    body: &str,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::builder().method(method).uri(target);
    if let Some(host) = host {
        builder = builder.header("host", host);
    }
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    builder.body(Full::from(body.to_owned())).unwrap()
}

fn kitopay_request(
    path: &str,
    host: &str,
    headers: &[(String, String)],
    body: &str,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post(path).header("host", host);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    builder.body(Full::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn the_url_verified_is_exactly_the_url_received() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = kitopay_service(calls.clone());
    let refunds = kitopay_signed(
        "POST",
        "http://api.example.com/v1/refunds?x=1",
        "{}",
        SystemClock.now(),
    );
    // The honest request verifies.
    let honest = kitopay_request("/v1/refunds?x=1", "api.example.com", &refunds, "{}");
    assert_eq!(status(service.clone(), honest).await.0, 200);
    // The review's Host attack: the path and query pasted in through Host.
    let attack = kitopay_request(
        "/v1/payouts",
        "api.example.com/v1/refunds?x=1#",
        &refunds,
        "{}",
    );
    assert_eq!(status(service.clone(), attack).await.0, 401);
    for host in [
        "user@api.example.com",
        "api.example.com?x",
        "api.example.com#",
        "api.example.com\\x",
        "",
    ] {
        let signed = kitopay_signed(
            "POST",
            "http://api.example.com/v1/a",
            "{}",
            SystemClock.now(),
        );
        let request = kitopay_request("/v1/a", host, &signed, "{}");
        assert_eq!(status(service.clone(), request).await.0, 401, "{host:?}");
    }
    // Dot segments: a refunds signature on a payouts path that resolves to refunds.
    let refunds = kitopay_signed(
        "POST",
        "http://api.example.com/v1/refunds",
        "{\"a\":1}",
        SystemClock.now(),
    );
    for path in [
        "/v1/payouts/../refunds",
        "/v1/payouts/%2e%2e/refunds",
        "/v1/./refunds",
        "/v1/refunds?",
    ] {
        let request = kitopay_request(path, "api.example.com", &refunds, "{\"a\":1}");
        assert_eq!(status(service.clone(), request).await.0, 401, "{path}");
    }
    // Not canonical either: a default port or an upper-case host.
    for host in ["api.example.com:80", "API.example.com"] {
        let request = kitopay_request("/v1/refunds", host, &refunds, "{\"a\":1}");
        assert_eq!(status(service.clone(), request).await.0, 401, "{host}");
    }
    // A Host carrying a path and query, for a URL whose text is still canonical: the
    // authority check alone refuses it.
    let odd = kitopay_signed(
        "POST",
        "http://api.example.com/v1/refunds?x=1/v1/payouts",
        "{\"a\":1}",
        SystemClock.now(),
    );
    let request = kitopay_request(
        "/v1/payouts",
        "api.example.com/v1/refunds?x=1",
        &odd,
        "{\"a\":1}",
    );
    assert_eq!(status(service.clone(), request).await.0, 401);
    // Two Host headers.
    let mut request = kitopay_request("/v1/refunds", "api.example.com", &refunds, "{\"a\":1}");
    request
        .headers_mut()
        .append("host", http::HeaderValue::from_static("api.example.com"));
    assert_eq!(status(service, request).await.0, 401);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the honest request reached the handler"
    );
}

#[tokio::test]
async fn hostile_host_headers_never_verify_a_url_other_than_the_one_received() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = kitopay_request_service(calls.clone(), false);
    let signed = kitopay_signed(
        "POST",
        "http://api.example.com/v1/a",
        "{}",
        SystemClock.now(),
    );
    // Every Host that *means* api.example.com but is not written canonically, and hosts
    // that smuggle syntax: none may verify as http://api.example.com/v1/a.
    for host in [
        "API.EXAMPLE.COM",
        "api.example.com.",
        "api.example.com:",
        "api.example.com:080",
        "api.example.com:80",
        "api%2eexample.com",
        "api.example.com%00",
        "api.example.com:80@api.example.com",
        "@api.example.com",
        "api.example.com/",
        "api.example.com\t",
        " api.example.com",
        "xn--api.example.com",
        "api.example.com:65616",
        "api.example.com:-1",
        "[::ffff:api.example.com]",
    ] {
        let Ok(value) = http::HeaderValue::from_str(host) else {
            continue;
        };
        let mut request = kitopay_to("POST", "/v1/a", None, &signed, "{}");
        request.headers_mut().insert("host", value);
        assert_eq!(
            status(service.clone(), request).await.0,
            401,
            "Host {host:?}"
        );
    }
    // Numeric hosts that WHATWG rewrites are refused, not canonicalised into a match.
    let signed_ip = kitopay_signed("POST", "http://127.0.0.1/v1/a", "{}", SystemClock.now());
    for host in ["127.1", "0x7f.0.0.1", "2130706433", "127.000.000.001"] {
        let request = kitopay_to("POST", "/v1/a", Some(host), &signed_ip, "{}");
        assert_eq!(
            status(service.clone(), request).await.0,
            401,
            "Host {host:?}"
        );
    }
    let signed_v6 = kitopay_signed("POST", "http://[::1]/v1/a", "{}", SystemClock.now());
    for host in ["[0:0::1]", "[0000::1]", "[::0:1]"] {
        let request = kitopay_to("POST", "/v1/a", Some(host), &signed_v6, "{}");
        assert_eq!(
            status(service.clone(), request).await.0,
            401,
            "Host {host:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Controls: the honest forms verify.
    let request = kitopay_to("POST", "/v1/a", Some("api.example.com"), &signed, "{}");
    assert_eq!(status(service.clone(), request).await.0, 200);
    let request = kitopay_to("POST", "/v1/a", Some("[::1]"), &signed_v6, "{}");
    assert_eq!(status(service.clone(), request).await.0, 200);
}

#[tokio::test]
async fn absolute_form_targets_are_verified_by_their_own_authority_not_the_host_header() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = kitopay_request_service(calls.clone(), false);
    let now = SystemClock.now();
    // Signed for the victim host; sent HTTP/2-style with another authority and the signed
    // host in the Host header: the authority of the target is what the router sees.
    let for_b = kitopay_signed("POST", "http://b.example.com/v1/a", "{}", now);
    let request = kitopay_to(
        "POST",
        "http://a.example.com/v1/a",
        Some("b.example.com"),
        &for_b,
        "{}",
    );
    assert_eq!(status(service.clone(), request).await.0, 401);
    // Non-canonical absolute targets: upper-case host, default port, dot segments,
    // userinfo, an empty query.
    let for_a = kitopay_signed("POST", "http://a.example.com/v1/a", "{}", now);
    for target in [
        "http://A.example.com/v1/a",
        "http://a.example.com:80/v1/a",
        "http://a.example.com/v1/x/../a",
        "http://a.example.com/v1/./a",
        "http://u@a.example.com/v1/a",
        "http://a.example.com/v1/a?",
        "http://a.example.com/v1//a",
    ] {
        let request = kitopay_to("POST", target, Some("a.example.com"), &for_a, "{}");
        assert_eq!(status(service.clone(), request).await.0, 401, "{target}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Control: the honest absolute-form request verifies (the Host header is ignored).
    let request = kitopay_to(
        "POST",
        "http://a.example.com/v1/a",
        Some("b.example.com"),
        &for_a,
        "{}",
    );
    assert_eq!(status(service, request).await.0, 200);
}

#[tokio::test]
async fn percent_encoding_tricks_do_not_move_a_signature_to_another_path() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = kitopay_request_service(calls.clone(), false);
    let now = SystemClock.now();
    let cases = [
        // (signed URL, path sent)
        ("http://api.example.com/v1/refunds", "/v1/%72efunds"),
        ("http://api.example.com/v1/refunds", "/v1/refunds%2F"),
        ("http://api.example.com/v1/a%2Fb", "/v1/a/b"),
        ("http://api.example.com/v1/a%2Fb", "/v1/a%2fb"),
        ("http://api.example.com/v1/a/b", "/v1/a%2Fb"),
        ("http://api.example.com/v1/%7B%7D", "/v1/%7b%7d"),
        ("http://api.example.com/v1/a?x=%41", "/v1/a?x=A"),
        ("http://api.example.com/v1/a?x=1", "/v1/a?x=1&"),
        // (A `#fragment` in the target is dropped by `http` before the router and the layer
        // both see the URI, so it verifies: what is verified is what is dispatched.)
        ("http://api.example.com/v1/a", "/v1/a;"),
        ("http://api.example.com/v1/a", "/v1/a/%2e"),
        ("http://api.example.com/v1/a", "/v1/a/%2E%2E/a"),
        ("http://api.example.com/v1/a", "/v1/a/.%2e/a"),
    ];
    for (url, path) in cases {
        let headers = kitopay_signed("POST", url, "{}", now);
        let Ok(request) = std::panic::catch_unwind(|| {
            kitopay_to("POST", path, Some("api.example.com"), &headers, "{}")
        }) else {
            continue; // `http` refuses the target itself
        };
        assert_eq!(
            status(service.clone(), request).await.0,
            401,
            "{url} sent as {path}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_body_on_get_or_head_is_refused_so_query_bytes_cannot_move_into_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = kitopay_request_service(calls.clone(), false);
    let now = SystemClock.now();
    // Signed: GET ?amount=1000 with no body. Sent: GET ?amount=10 with body "00".
    let signed = kitopay_signed("GET", "http://api.example.com/v1/pay?amount=1000", "", now);
    for method in ["GET", "HEAD"] {
        let signed = kitopay_signed(method, "http://api.example.com/v1/pay?amount=1000", "", now);
        let request = kitopay_to(
            method,
            "/v1/pay?amount=10",
            Some("api.example.com"),
            &signed,
            "00",
        );
        assert_eq!(status(service.clone(), request).await.0, 401, "{method}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let request = kitopay_to(
        "GET",
        "/v1/pay?amount=1000",
        Some("api.example.com"),
        &signed,
        "",
    );
    assert_eq!(status(service, request).await.0, 200, "control");
}

#[tokio::test]
async fn trailing_slash_tolerance_does_not_open_a_second_replay_key() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = kitopay_request_service(calls.clone(), true);
    let signed = kitopay_signed(
        "POST",
        "http://api.example.com/v1/a/",
        "{}",
        SystemClock.now(),
    );
    // The same signed bytes, to both forms of the path, several times each.
    let mut answers = Vec::new();
    for path in ["/v1/a", "/v1/a/", "/v1/a", "/v1/a/"] {
        let request = kitopay_to("POST", path, Some("api.example.com"), &signed, "{}");
        answers.push(status(service.clone(), request).await);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "{answers:?}");
    for (code, body, _) in &answers[1..] {
        assert_eq!(
            (*code, body.as_str()),
            (200, "duplicate delivery: already processed\n")
        );
    }
}

#[tokio::test]
async fn non_standard_or_lower_case_methods_are_refused_by_the_layer() {
    // A Kitopay request verifier (method signed) behind the layer, called directly.
    let calls = Arc::new(AtomicUsize::new(0));
    let service = kitopay_request_service(calls.clone(), false);
    let url = "http://api.example.com/v1/a";
    for method in ["post", "Post", "POSTX", "PROPFIND"] {
        let headers = kitopay_signed("POST", url, "{}", SystemClock.now());
        let mut request = http::Request::builder()
            .method(http::Method::from_bytes(method.as_bytes()).unwrap())
            .uri("/v1/a")
            .header("host", "api.example.com");
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        let request = request.body(Full::from("{}")).unwrap();
        assert_eq!(status(service.clone(), request).await.0, 401, "{method}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn under_router_nest_the_original_uri_is_verified() {
    // Every correctly signed request under a nest prefix used to be refused: the layer saw
    // the path without the prefix.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let verifier =
        Verifier::kitopay_request(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap()).unwrap();
    let auth = WebhookAuth::new(verifier).with_url_from_host("http");
    let api = Router::new().route(
        "/v1/payins",
        post(|axum::Extension(d): axum::Extension<Verified>| async move { d.key_id().to_owned() })
            .layer(VerifyLayer::new(auth)),
    );
    let app = Router::new().nest("/api", api);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SigningMiddleware::new(
            Signer::kitopay(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap()).unwrap(),
        ))
        .build();
    let response = client
        .post(format!("http://{addr}/api/v1/payins?page=2"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "primary");
}

#[tokio::test]
async fn a_lost_response_is_acknowledged_without_a_second_handler_call() {
    let log = Log::default();
    let addr = serve(auth(ReplayGuard::in_memory(100)), log.clone()).await;
    let body = r#"{"type":"transaction.successful","data":{"walletId":"w_1","amount":500}}"#;
    let headers = signed(body, SystemClock.now());
    deliver_and_lose_the_response(addr, &headers, body, &log).await;
    let (status, text, _) = deliver(addr, &headers, body).await;
    println!(
        "lost response (in-memory): handler calls {}, server answered {:?}, the provider's retry got {status} {text:?}",
        log.calls(body),
        log.statuses()
    );
    assert_eq!(
        (status, text.as_str()),
        (200, "duplicate delivery: already processed\n")
    );
    assert_eq!(log.statuses(), [200, 200]);
    assert_eq!(log.calls(body), 1);
}

#[derive(serde::Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
}

#[tokio::test]
async fn the_extractors_share_the_layers_claim_semantics() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicUsize::new(1));
    let json = {
        let (calls, failing) = (calls.clone(), failing.clone());
        move |VerifiedJson(event, delivery): VerifiedJson<Event>| {
            let (calls, failing) = (calls.clone(), failing.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if failing.fetch_sub(1, Ordering::SeqCst) > 0 {
                    return (http::StatusCode::INTERNAL_SERVER_ERROR, String::new());
                }
                (
                    http::StatusCode::OK,
                    format!("{} {}", event.kind, delivery.key_id()),
                )
            }
        }
    };
    let guard = Memory::new(100);
    let app = Router::new()
        .route(
            "/hook",
            post(json).layer(VerifyLayer::new(auth(guard.clone()))),
        )
        .route(
            "/bytes",
            post(|VerifiedBody(bytes, _): VerifiedBody| async move { bytes.len().to_string() })
                .layer(VerifyLayer::new(auth(guard))),
        )
        .route(
            "/unlayered",
            post(|VerifiedBody(bytes, _): VerifiedBody| async move { bytes.len().to_string() }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The handler fails once: the provider's retry is processed, then acknowledged.
    let body = r#"{"type":"wallet.new"}"#;
    let headers = signed(body, SystemClock.now());
    assert_eq!(deliver(addr, &headers, body).await.0, 500);
    let (code, text, _) = deliver(addr, &headers, body).await;
    assert_eq!((code, text.as_str()), (200, "wallet.new primary"));
    assert_eq!(
        deliver(addr, &headers, body).await.1,
        "duplicate delivery: already processed\n"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A verified body that is not the expected JSON: 400, and its claim is not burnt.
    let odd = "[1,2]";
    let headers = signed(odd, SystemClock.now());
    assert_eq!(deliver(addr, &headers, odd).await.0, 400);
    assert_eq!(
        deliver(addr, &headers, odd).await.0,
        400,
        "released, so not a duplicate"
    );

    // VerifiedBody through the layer; without the layer it refuses to hand out anything.
    let client = reqwest::Client::new();
    let mut request = client.post(format!("http://{addr}/bytes")).body(body);
    for (k, v) in signed(body, SystemClock.now()) {
        request = request.header(k, v);
    }
    assert_eq!(
        request.send().await.unwrap().text().await.unwrap(),
        body.len().to_string()
    );
    let unlayered = client
        .post(format!("http://{addr}/unlayered"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unlayered.status(), 500);
}

#[tokio::test]
async fn the_body_limit_is_exact_for_declared_and_streamed_lengths() {
    let limit = 64;
    let calls = Arc::new(AtomicUsize::new(0));
    let service = {
        let calls = calls.clone();
        VerifyLayer::new(auth(ReplayGuard::in_memory(100)).with_body_limit(limit)).layer(
            service_fn(move |_: http::Request<Full<Bytes>>| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(Full::from("processed")))
                }
            }),
        )
    };
    for (case, (len, declared, expected)) in [
        (limit, true, 200),
        (limit + 1, true, 413),
        (limit, false, 200),
        (limit + 1, false, 413),
        (limit - 1, false, 200),
    ]
    .into_iter()
    .enumerate()
    {
        // A different body per case, so none is a duplicate of another.
        let filler = char::from(b'a' + case as u8).to_string();
        let body = format!("{{\"p\":\"{}\"}}", filler.repeat(len - 8));
        assert_eq!(body.len(), len);
        let headers = signed(&body, SystemClock.now());
        let mut builder = http::Request::post("/hook");
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        let request = if declared {
            builder
                .header("content-length", len)
                .body(http_body_util::Either::Left(Full::from(body.clone())))
                .unwrap()
        } else {
            // No length known in advance: the limit applies to the bytes read.
            let stream = futures_util::stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
                Bytes::from(body.clone()),
            ))]);
            builder
                .body(http_body_util::Either::Right(StreamBody::new(stream)))
                .unwrap()
        };
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            expected,
            "{len} bytes, declared {declared}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn oversized_bodies_declared_or_streamed_are_413_before_verification() {
    let (addr, log) = kamiokash_server().await;
    let headers = signed("{}", SystemClock.now());
    // A declared length far beyond the limit (u64::MAX), nothing sent.
    let mut head = raw_request("x", &headers, "", "connection: close\r\n");
    head = head.replace("content-length: 0", "content-length: 18446744073709551615");
    let answer = raw_exchange(addr, head.as_bytes()).await;
    // hyper itself refuses a length at u64::MAX (431); anything below, the layer (413).
    assert!(matches!(status_line(&answer), 413 | 431), "{answer:?}");
    let mut head = raw_request("x", &headers, "", "connection: close\r\n");
    head = head.replace("content-length: 0", "content-length: 1048577");
    let answer = raw_exchange(addr, head.as_bytes()).await;
    assert_eq!(status_line(&answer), 413, "{answer:?}");
    // A chunked body that grows past 1 MiB, chunk by chunk.
    let mut request =
        "POST /hook HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n"
            .to_owned();
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let chunk = "a".repeat(64 * 1024);
    for _ in 0..17 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let answer = raw_exchange(addr, request.as_bytes()).await;
    assert_eq!(
        status_line(&answer),
        413,
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(log.total_calls(), 0);
}

#[test]
fn every_decision_is_one_tracing_event_with_outcome_reason_key_and_age() {
    use countersign::FixedClock;
    let now = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let at = |offset: i64| {
        Timestamp::from_unix_secs(now.unix_secs().checked_add_signed(offset).unwrap()).unwrap()
    };
    let sign = |body: &str, t: Timestamp| signed(body, t);
    let verifier = Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap())
        .with_clock(FixedClock::new(now));
    let service =
        VerifyLayer::new(WebhookAuth::new(verifier).with_replay_guard(ReplayGuard::in_memory(10)))
            .layer(service_fn(|_: http::Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::from("processed")))
            }));
    let mut mismatch = sign("{}", at(-5));
    mismatch[1].1 = "0".repeat(64);
    let cases = [
        (
            request_with("{}", &sign("{}", at(-2))),
            r#"outcome="accepted""#,
            "key_id=primary age_ms=2000",
        ),
        (
            request_with("{}", &sign("{}", at(-2))),
            r#"outcome="duplicate""#,
            "age_ms=2000",
        ),
        (
            request_with("{\"ahead\":1}", &sign("{\"ahead\":1}", at(2))),
            r#"outcome="accepted""#,
            "key_id=primary age_ms=-2000",
        ),
        (
            request_with("{}", &sign("{}", at(-120))),
            r#"reason="expired""#,
            "age_ms=120000",
        ),
        (
            request_with("{}", &sign("{}", at(90))),
            r#"reason="future""#,
            "age_ms=-90000",
        ),
        (
            request_with("{}", &mismatch),
            r#"reason="signature_mismatch""#,
            "age_ms=5000",
        ),
    ];
    let (captured, subscriber) = capturing_subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for (request, outcome, fields) in cases {
            let before = captured.lock().unwrap().len();
            runtime.block_on(service.clone().oneshot(request)).unwrap();
            let log = String::from_utf8(captured.lock().unwrap()[before..].to_vec()).unwrap();
            assert_eq!(log.lines().count(), 1, "one event per decision: {log}");
            assert!(
                log.contains(outcome) && log.contains(fields),
                "{outcome} {fields}: {log}"
            );
            assert!(
                !log.contains(&"0".repeat(64)),
                "a signature was logged: {log}"
            );
        }
        // Without a timestamp header there is no age to report.
        let before = captured.lock().unwrap().len();
        let unsigned = http::Request::post("/hook")
            .body(Full::<Bytes>::from("{}"))
            .unwrap();
        runtime.block_on(service.clone().oneshot(unsigned)).unwrap();
        let log = String::from_utf8(captured.lock().unwrap()[before..].to_vec()).unwrap();
        assert!(
            log.contains(r#"reason="missing_header""#) && !log.contains("age_ms"),
            "{log}"
        );
    });
}

#[test]
fn an_acknowledged_duplicate_logs_at_info_a_refusal_at_warn() {
    let service = answering(
        ReplayGuard::in_memory(10),
        200,
        Arc::new(AtomicUsize::new(0)),
    );
    let headers = signed("{}", SystemClock.now());
    let mut forged = headers.clone();
    forged[1].1 = "0".repeat(64);
    let (captured, subscriber) = capturing_subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for (request, level, outcome) in [
            (
                request_with("{}", &headers),
                " INFO ",
                r#"outcome="accepted""#,
            ),
            (
                request_with("{}", &headers),
                " INFO ",
                r#"outcome="duplicate""#,
            ),
            (
                request_with("{}", &forged),
                " WARN ",
                r#"outcome="refused""#,
            ),
        ] {
            let before = captured.lock().unwrap().len();
            runtime.block_on(service.clone().oneshot(request)).unwrap();
            let log = String::from_utf8(captured.lock().unwrap()[before..].to_vec()).unwrap();
            assert!(
                log.contains(level) && log.contains(outcome),
                "{level}{outcome}: {log}"
            );
        }
    });
}

/// The refusal events `requests` cause through `service`, one line each.
fn refusal_lines(
    service: impl Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible> + Clone,
    requests: Vec<http::Request<Full<Bytes>>>,
) -> Vec<String> {
    let (captured, subscriber) = capturing_subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for request in requests {
            let response = runtime.block_on(service.clone().oneshot(request)).unwrap();
            assert_eq!(response.status(), 401);
        }
    });
    let log = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
    log.lines().map(str::to_owned).collect()
}

/// The `hypothesis` field of a log line.
fn hypothesis(line: &str) -> &str {
    line.split("hypothesis=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no hypothesis: {line}"))
}

#[test]
fn a_refusal_names_the_likely_mistake_and_nothing_secret() {
    let minified =
        r#"{"type":"transaction.successful","data":{"walletId":"w_secretive","amount":500}}"#;
    let pretty = "{\n  \"type\": \"transaction.successful\",\n  \"data\": {\n    \"walletId\": \"w_secretive\",\n    \"amount\": 500\n  }\n}";
    let now = SystemClock.now();
    let other_secret = sign::kamiokash_webhook("another secret", minified, now);
    // (what was signed, what was sent, the mistake named)
    let cases = [
        (
            format!("{minified}\n"),
            minified.to_owned(),
            "body_trailing_newline_added",
        ),
        (
            minified.to_owned(),
            format!("{minified}\r\n"),
            "body_trailing_newline_removed",
        ),
        (minified.to_owned(), pretty.to_owned(), "body_minified"),
        (
            pretty.to_owned(),
            minified.to_owned(),
            "body_pretty_printed",
        ),
        (minified.to_owned(), minified.replace("500", "501"), "none"),
    ];
    let mut requests: Vec<_> = cases
        .iter()
        .map(|(signed_body, sent, _)| request_with(sent, &signed(signed_body, now)))
        .collect();
    requests.push(request_with(minified, &other_secret));
    let service = answering(
        ReplayGuard::in_memory(10),
        200,
        Arc::new(AtomicUsize::new(0)),
    );
    let lines = refusal_lines(service, requests);
    assert_eq!(lines.len(), cases.len() + 1, "{lines:#?}");
    for ((_, _, expected), line) in cases.iter().zip(&lines) {
        assert_eq!(hypothesis(line), *expected, "{line}");
    }
    assert_eq!(hypothesis(&lines[cases.len()]), "none", "another secret");
    for line in &lines {
        assert!(line.contains(r#"reason="signature_mismatch""#), "{line}");
        for secret in [
            SECRET,
            "w_secretive",
            "transaction.successful",
            &signed(minified, now)[1].1,
        ] {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
    // Refusals that are not a mismatch say their reason, and search nothing.
    let service = answering(
        ReplayGuard::in_memory(10),
        200,
        Arc::new(AtomicUsize::new(0)),
    );
    let unsigned = http::Request::post("/hook")
        .body(Full::<Bytes>::from("{}"))
        .unwrap();
    let lines = refusal_lines(service, vec![unsigned]);
    assert!(!lines[0].contains("hypothesis"), "{}", lines[0]);
}

#[test]
fn the_search_is_bounded_per_refusal_and_overall() {
    let now = SystemClock.now();
    let forged = |n: usize| {
        let mut headers = signed(&format!("{{\"n\":{n}}}"), now);
        headers[1].1 = "0".repeat(64);
        request_with(&format!("{{\"n\":{n}}}"), &headers)
    };
    let layered = |auth: WebhookAuth| {
        VerifyLayer::new(auth).layer(service_fn(|_: http::Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::from("processed")))
        }))
    };
    let key = || SecretKey::new(SECRET).unwrap();
    // Overall: 3 searches a second; a flood of forged requests gets 3, the rest are not
    // searched.
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(key())).with_diagnosis_rate(3);
    let lines = refusal_lines(layered(auth.clone()), (0..10).map(forged).collect());
    let searched: Vec<&str> = lines.iter().map(|line| hypothesis(line)).collect();
    assert_eq!(searched[..3], ["none"; 3]);
    assert_eq!(searched[3..], ["not_searched"; 7]);
    // Shared by clones: the budget spent above is spent for every clone.
    let lines = refusal_lines(layered(auth), vec![forged(10)]);
    assert_eq!(hypothesis(&lines[0]), "not_searched");
    // Off.
    let off = WebhookAuth::new(Verifier::kamiokash_webhook(key())).with_diagnosis_rate(0);
    assert_eq!(
        hypothesis(&refusal_lines(layered(off), vec![forged(0)])[0]),
        "not_searched"
    );
    // Per refusal: a body over 16 KiB, or more keys than 16 MACs cover, is not searched.
    let large = "x".repeat((16 << 10) + 1);
    let mut headers = signed(&large, now);
    headers[1].1 = "0".repeat(64);
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(key()));
    assert_eq!(
        hypothesis(&refusal_lines(layered(auth), vec![request_with(&large, &headers)])[0]),
        "not_searched"
    );
    let mut ring = countersign::KeyRing::new("k0", key());
    for i in 1..9 {
        ring.add(format!("k{i}"), SecretKey::new(&format!("s{i}")).unwrap());
    }
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(ring));
    assert_eq!(
        hypothesis(&refusal_lines(layered(auth), vec![forged(0)])[0]),
        "not_searched"
    );
}

#[test]
fn nothing_is_searched_when_the_refusal_is_not_logged() {
    let now = SystemClock.now();
    let mut headers = signed("{}", now);
    headers[1].1 = "0".repeat(64);
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap()))
        .with_diagnosis_rate(1);
    let service = VerifyLayer::new(auth).layer(service_fn(|_: http::Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::from("processed")))
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Only errors recorded: the refusal (WARN) is not, and the one search a second is kept.
    let quiet = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(quiet, || {
        for _ in 0..3 {
            let response = runtime
                .block_on(service.clone().oneshot(request_with("{}", &headers)))
                .unwrap();
            assert_eq!(response.status(), 401);
        }
    });
    let lines = refusal_lines(service, vec![request_with("{}", &headers)]);
    assert_eq!(hypothesis(&lines[0]), "none", "the token was still there");
}

/// An inner service that is never ready.
#[derive(Clone)]
struct Unready;

impl Service<http::Request<Full<Bytes>>> for Unready {
    type Response = Response;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Response, &'static str>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Err("inner service overloaded"))
    }
    fn call(&mut self, _: http::Request<Full<Bytes>>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::from(""))))
    }
}

#[tokio::test]
async fn readiness_is_the_inner_services() {
    let mut service = VerifyLayer::new(auth(ReplayGuard::in_memory(10))).layer(Unready);
    let ready = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut service).await;
    assert_eq!(ready.err(), Some("inner service overloaded"));
}

#[tokio::test]
async fn an_unbounded_body_timeout_reads_without_a_deadline_and_never_panics() {
    // `started + Duration::MAX` overflowed (a panic) when the body was not all there at once.
    let calls = Arc::new(AtomicUsize::new(0));
    let service = {
        let calls = calls.clone();
        VerifyLayer::new(auth(ReplayGuard::in_memory(10)).with_body_timeout(Duration::MAX)).layer(
            service_fn(move |_: http::Request<Full<Bytes>>| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(Full::from("processed")))
                }
            }),
        )
    };
    let headers = signed("{}", SystemClock.now());
    // The body arrives in two frames, the second after a pause: not there at the first poll.
    let frames =
        futures_util::stream::iter([Bytes::from("{"), Bytes::from("}")]).then(|chunk| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, Infallible>(http_body::Frame::data(chunk))
        });
    let mut builder = http::Request::post("/hook");
    for (k, v) in &headers {
        builder = builder.header(k, v);
    }
    let response = service
        .oneshot(builder.body(StreamBody::new(frames)).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_runtime_without_timers_does_not_make_the_layer_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let calls = Arc::new(AtomicUsize::new(0));
            let service = counting(auth(ReplayGuard::in_memory(10)), calls);
            let headers = signed("{}", SystemClock.now());
            status(service, request_with("{}", &headers)).await.0
        })
    }));
    assert_eq!(outcome.ok(), Some(200), "the layer panicked");
}

// ---------------------------------------------------------------------------------------
// The claim's life around the handler, attacked (review of the claim path).
// ---------------------------------------------------------------------------------------

/// An in-memory store whose completions take `delay` (a network store's round trip).
struct SlowCompletion {
    inner: countersign::claim::InMemoryStore,
    delay: Duration,
}

impl countersign::claim::ClaimStore for SlowCompletion {
    fn claim(
        &self,
        claim: &countersign::claim::Claim,
    ) -> countersign::claim::StoreFuture<'_, countersign::claim::Outcome> {
        self.inner.claim(claim)
    }
    fn complete(
        &self,
        claim: &countersign::claim::Claim,
    ) -> countersign::claim::StoreFuture<'_, bool> {
        let claim = *claim;
        countersign::claim::StoreFuture::pending(async move {
            tokio::time::sleep(self.delay).await;
            self.inner.complete(&claim).await
        })
    }
    fn release(
        &self,
        claim: &countersign::claim::Claim,
    ) -> countersign::claim::StoreFuture<'_, ()> {
        self.inner.release(claim)
    }
    fn is_shared(&self) -> bool {
        false
    }
}

const DUPLICATE: &str = "duplicate delivery: already processed\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_racing_a_slow_completion_after_the_answer_is_409_never_processed() {
    let store = SlowCompletion {
        inner: countersign::claim::InMemoryStore::new(10),
        delay: Duration::from_millis(400),
    };
    let guard = ReplayGuard::new(store, "").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counting(auth(guard), calls.clone());
    let body = r#"{"type":"member.new","data":{}}"#;
    let headers = signed(body, SystemClock.now());
    assert_eq!(
        status(service.clone(), request_with(body, &headers))
            .await
            .0,
        200
    );
    // The answer is out, its completion still on its way: a copy now is deferred.
    let (code, _, retry) = status(service.clone(), request_with(body, &headers)).await;
    assert_eq!((code, retry.is_some()), (409, true));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (code, text, _) = status(service.clone(), request_with(body, &headers)).await;
    assert_eq!((code, text.as_str()), (200, DUPLICATE));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_full_in_memory_store_refuses_new_events_with_503_and_forgets_no_live_claim() {
    // Claims by event are kept for the retention (7 days): capacity fills with live claims.
    let memory = Memory::new(2);
    let calls = Arc::new(AtomicUsize::new(0));
    let sw = |id: &str, ago: u64| {
        let at = Timestamp::from_unix_secs(SystemClock.now().unix_secs() - ago).unwrap();
        sign::standard_webhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id, "{}", at)
    };
    let service = counting(
        WebhookAuth::new(Verifier::standard_webhooks(
            countersign::standard_webhooks::SCHEME
                .key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap(),
        ))
        .with_replay_guard(memory.guard.clone()),
        calls.clone(),
    );
    for id in ["msg_a", "msg_b"] {
        assert_eq!(
            status(service.clone(), request_with("{}", &sw(id, 30)))
                .await
                .0,
            200
        );
    }
    let (code, _, retry) = status(service.clone(), request_with("{}", &sw("msg_c", 0))).await;
    assert_eq!(
        (code, retry.is_some()),
        (503, true),
        "full: refused, retried later"
    );
    for id in ["msg_a", "msg_b"] {
        let (code, text, _) = status(service.clone(), request_with("{}", &sw(id, 0))).await;
        assert_eq!(
            (code, text.as_str()),
            (200, DUPLICATE),
            "{id} is still held"
        );
    }
    assert_eq!((calls.load(Ordering::SeqCst), memory.len()), (2, 2));
}

#[tokio::test]
async fn an_open_failure_policy_processes_every_copy_during_an_outage() {
    // As documented: availability over safety. Closed (the default) answers 503.
    let calls = Arc::new(AtomicUsize::new(0));
    let open = ReplayGuard::new(Unreachable, "svc")
        .unwrap()
        .with_failure_policy(countersign::claim::FailurePolicy::Open);
    let service = counting(auth(open), calls.clone());
    let body = r#"{"type":"member.new","data":{}}"#;
    let headers = signed(body, SystemClock.now());
    for _ in 0..3 {
        assert_eq!(
            status(service.clone(), request_with(body, &headers))
                .await
                .0,
            200
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "no claim: every copy processed"
    );
    let closed = counting(
        auth(ReplayGuard::new(Unreachable, "svc").unwrap()),
        calls.clone(),
    );
    assert_eq!(status(closed, request_with(body, &headers)).await.0, 503);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_outlasting_its_lease_lets_a_copy_be_processed_beside_it() {
    // As documented: set the lease above the handler's longest run. A copy arriving after
    // the lease lapsed is processed beside the slow first; the first's completion then
    // finds the claim taken over and is reported (not marked done over the copy's claim).
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    // The shortest lease the guard takes (1 s).
    let guard = ReplayGuard::in_memory(10).with_lease(Duration::from_secs(1));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let service = VerifyLayer::new(
        WebhookAuth::new(Verifier::standard_webhooks(
            countersign::standard_webhooks::SCHEME.key(secret).unwrap(),
        ))
        .with_replay_guard(guard),
    )
    .layer(service_fn(move |_: http::Request<Full<Bytes>>| {
        let calls = counted.clone();
        async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(2_000)).await;
            }
            Ok::<_, Infallible>(Response::new(Full::from("processed")))
        }
    }));
    let headers = sign::standard_webhooks(secret, "msg_slow", "{}", SystemClock.now());
    let slow = tokio::spawn(status(service.clone(), request_with("{}", &headers)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        status(service.clone(), request_with("{}", &headers))
            .await
            .0,
        409,
        "within the lease: deferred"
    );
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(
        status(service.clone(), request_with("{}", &headers))
            .await
            .0,
        200,
        "after the lease: processed again"
    );
    assert_eq!(slow.await.unwrap().0, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let (code, text, _) = status(service, request_with("{}", &headers)).await;
    assert_eq!(
        (code, text.as_str()),
        (200, DUPLICATE),
        "the copy's claim is done"
    );
}
