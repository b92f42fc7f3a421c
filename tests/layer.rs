//! The tower layer at its edges, as an attacker and an unlucky provider would find them:
//! every path that does not end in a 2xx releases the claim (non-2xx, inner error, panic,
//! dropped future); duplicates are acknowledged (done), deferred (in flight) or processed
//! (released); an undecided guard is 503, never 401; a stalled body is 408; the URL verified
//! is exactly the URL received (Host header, dot segments, `Router::nest`); the extractors
//! share the layer's semantics.
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
use countersign::{Clock, SecretKey, Signer, SystemClock, Timestamp, Verified, Verifier};
use countersign_test_support::server::{
    Log, Memory, SECRET, auth, capturing_subscriber, deliver, deliver_and_lose_the_response,
    request_with, serve, signed,
};
use countersign_test_support::sign;
use countersign_test_support::store::Unreachable;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
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

async fn status(
    service: impl Service<http::Request<Full<Bytes>>, Response = Response, Error = Infallible>,
    request: http::Request<Full<Bytes>>,
) -> (u16, String) {
    let response = service.oneshot(request).await.unwrap();
    let code = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8(body.to_vec()).unwrap())
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
        let (again, body) = status(service, request_with("{}", &headers)).await;
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
        let (code, body) = status(service, request_with("{}", &headers)).await;
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
    let (code, body) = status(service, request_with("{}", &headers)).await;
    assert_eq!(
        (code, body.as_str()),
        (200, "duplicate delivery: already processed\n")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
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
        let (code, text) = status(service, request_with(&body, &headers)).await;
        assert_eq!(
            (code, text.as_str()),
            (200, "duplicate delivery: already processed\n")
        );
    }
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

fn kitopay_signed(url: &str, body: &str) -> Vec<(String, String)> {
    sign::kitopay(
        MERCHANT,
        KITOPAY_SECRET,
        "POST",
        url,
        body,
        SystemClock.now(),
    )
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
    let refunds = kitopay_signed("http://api.example.com/v1/refunds?x=1", "{}");
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
        let signed = kitopay_signed("http://api.example.com/v1/a", "{}");
        let request = kitopay_request("/v1/a", host, &signed, "{}");
        assert_eq!(status(service.clone(), request).await.0, 401, "{host:?}");
    }
    // Dot segments: a refunds signature on a payouts path that resolves to refunds.
    let refunds = kitopay_signed("http://api.example.com/v1/refunds", "{\"a\":1}");
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
        "http://api.example.com/v1/refunds?x=1/v1/payouts",
        "{\"a\":1}",
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
