//! End to end on loopback: the reqwest middleware signs, an axum server behind the tower
//! layer verifies; duplicates are acknowledged, tampering, a wrong trailing slash, stale
//! timestamps and oversized bodies are refused. (Redis: tests/redis.rs; the layer's edges:
//! tests/layer.rs.)
#![cfg(all(feature = "axum", feature = "reqwest"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Extension, Json, Router};
use countersign::claim::ReplayGuard;
use countersign::extract::VerifiedJson;
use countersign::layer::{VerifyLayer, WebhookAuth};
use countersign::middleware::{SigningMiddleware, signing_error};
use countersign::{
    CanonicalUrl, Clock, ErrorKind, FixedClock, SecretKey, Signer, SystemClock, Timestamp,
    Verified, Verifier,
};
use countersign_test_support::sign;
use serde_json::{Value, json};

const MERCHANT: &str = "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148";
const KITOPAY_SECRET: &str =
    "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9";
const KAMIOKASH_SECRET: &str = "whsec_kk_5e2a91c07d3b4f68";
const BODY: &str = r#"{"id":"6956d4fc-d7b7-4514-9759-c699fc029b25","reference_id":"id-in-merchant-system-485","status":"new"}"#;

async fn received(Extension(delivery): Extension<Verified>) -> Json<Value> {
    Json(json!({ "received": true, "key": delivery.key_id() }))
}

async fn typed(
    VerifiedJson(event, _): VerifiedJson<countersign::kamiokash::WebhookEvent>,
) -> Json<Value> {
    Json(json!({ "received": true, "type": event.event_type() }))
}

/// A receiver on a loopback port: Kitopay webhooks verified for its public URL (routed with
/// and without a trailing slash, to show the slash matters), KamioKash via the layer and via
/// the extractor.
async fn start_server(guard: ReplayGuard) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let public = CanonicalUrl::parse(&format!("http://{addr}/webhooks/kitopay")).unwrap();
    let kitopay = WebhookAuth::new(
        Verifier::kitopay_webhook(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap(), public)
            .unwrap(),
    )
    .with_replay_guard(guard.clone());
    let kamiokash = WebhookAuth::new(Verifier::kamiokash_webhook(
        SecretKey::new(KAMIOKASH_SECRET).unwrap(),
    ))
    .with_replay_guard(guard);
    let app = Router::new()
        .route(
            "/webhooks/kitopay",
            post(received).layer(VerifyLayer::new(kitopay.clone())),
        )
        .route(
            "/webhooks/kitopay/",
            post(received).layer(VerifyLayer::new(kitopay)),
        )
        .route(
            "/webhooks/kamiokash",
            post(received).layer(VerifyLayer::new(kamiokash.clone())),
        )
        .route(
            "/typed/kamiokash",
            post(typed).layer(VerifyLayer::new(kamiokash)),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client(signer: Signer, clock: impl Clock + 'static) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SigningMiddleware::new(signer).with_clock(clock))
        .build()
}

fn kitopay_signer() -> Signer {
    Signer::kitopay_webhook(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap()).unwrap()
}

async fn post_status(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
    body: &str,
) -> u16 {
    client
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn middleware_to_layer_end_to_end() {
    let addr = start_server(ReplayGuard::in_memory(10_000)).await;
    let url = format!("http://{addr}/webhooks/kitopay");
    let now = SystemClock.now();

    // A valid delivery is accepted, and the handler sees which key matched.
    let signed = client(kitopay_signer(), FixedClock::new(now));
    let response = signed.post(&url).body(BODY).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(reply, json!({"received": true, "key": "primary"}));

    // The same signed delivery again (same clock, same bytes, same signature): it was
    // processed, so it is acknowledged as a duplicate, without calling the handler.
    let again = signed.post(&url).body(BODY).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.text().await.unwrap(),
        "duplicate delivery: already processed\n"
    );

    // A tampered body under valid headers.
    let headers = sign::kitopay_webhook(MERCHANT, KITOPAY_SECRET, &url, BODY, SystemClock.now());
    let mut tampered = reqwest::Client::new()
        .post(&url)
        .body(BODY.replace("new", "paid"));
    for (k, v) in &headers {
        tampered = tampered.header(k, v);
    }
    let response = tampered.send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.text().await.unwrap(),
        "unauthorized\n",
        "the reason is never told to the client"
    );

    // The sender signed (and sent to) the URL with a trailing slash; the webhook was
    // registered without one. (Another body: Kitopay timestamps are whole seconds, so the
    // same body again within the same second is the same signed message, i.e. a replay.)
    let fresh = client(kitopay_signer(), SystemClock);
    let other = BODY.replace("new", "processing");
    assert_eq!(post_status(&fresh, &format!("{url}/"), &other).await, 401);
    assert_eq!(post_status(&fresh, &url, &other).await, 200);

    // Stale and future timestamps.
    for offset in [-120i64, 120] {
        let at =
            Timestamp::from_unix_secs(now.unix_secs().checked_add_signed(offset).unwrap()).unwrap();
        assert_eq!(
            post_status(&client(kitopay_signer(), FixedClock::new(at)), &url, BODY).await,
            401,
            "offset {offset}"
        );
    }

    // Oversized: 413 before verification.
    let big = "x".repeat(2 << 20);
    assert_eq!(post_status(&fresh, &url, &big).await, 413);

    // KamioKash through the layer and through the typed extractor.
    let kamio = client(
        Signer::kamiokash_webhook(SecretKey::new(KAMIOKASH_SECRET).unwrap()),
        SystemClock,
    );
    let event = r#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500}}"#;
    assert_eq!(
        post_status(&kamio, &format!("http://{addr}/webhooks/kamiokash"), event).await,
        200
    );
    let response = kamio
        .post(format!("http://{addr}/typed/kamiokash"))
        .body(r#"{"type":"member.new","data":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(reply["type"], "member.new");
    // A verified body that is not the expected JSON: 400, after verification.
    assert_eq!(
        post_status(&kamio, &format!("http://{addr}/typed/kamiokash"), "[1,2]").await,
        400
    );
    // Unsigned: 401.
    let plain = reqwest::Client::new()
        .post(format!("http://{addr}/typed/kamiokash"))
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
}

#[tokio::test]
async fn a_handler_failure_releases_the_claim_so_the_retry_is_accepted() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(
        SecretKey::new(KAMIOKASH_SECRET).unwrap(),
    ))
    .with_replay_guard(ReplayGuard::in_memory(100));
    let handler = {
        let failures = failures.clone();
        move || async move {
            if failures.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "try later")
            } else {
                (axum::http::StatusCode::OK, "ok")
            }
        }
    };
    let app = Router::new().route("/hook", post(handler).layer(VerifyLayer::new(auth)));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let kamio = client(
        Signer::kamiokash_webhook(SecretKey::new(KAMIOKASH_SECRET).unwrap()),
        FixedClock::new(SystemClock.now()),
    );
    let url = format!("http://{addr}/hook");
    assert_eq!(post_status(&kamio, &url, "{}").await, 503);
    assert_eq!(
        post_status(&kamio, &url, "{}").await,
        200,
        "the provider's retry is accepted"
    );
    assert_eq!(
        post_status(&kamio, &url, "{}").await,
        200,
        "and then it is an acknowledged duplicate"
    );
}

#[tokio::test]
async fn url_from_host_is_opt_in_and_simplified_signing_takes_the_transaction_id() {
    // A mock of Kitopay itself: full-scheme requests, URL rebuilt from the Host header
    // (opted in), and simplified-scheme requests carrying their transaction id.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let full = WebhookAuth::new(
        Verifier::kitopay_request(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap()).unwrap(),
    );
    let app = Router::new()
        .route(
            "/api/v1/payins",
            post(received).layer(VerifyLayer::new(full.clone().with_url_from_host("http"))),
        )
        .route("/no-opt-in", post(received).layer(VerifyLayer::new(full)));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let signer = Signer::kitopay(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap()).unwrap();
    let kitopay = client(signer, SystemClock);
    assert_eq!(
        post_status(&kitopay, &format!("http://{addr}/api/v1/payins?x=1"), BODY).await,
        200
    );
    assert_eq!(
        post_status(&kitopay, &format!("http://{addr}/no-opt-in"), BODY).await,
        401,
        "no URL to verify without the opt-in"
    );

    // The middleware passes the transaction id extension to the simplified signer.
    let simplified = client(
        countersign::Signer::kitopay_simplified(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap())
            .unwrap(),
        FixedClock::new(Timestamp::from_unix_secs(1_601_234_567).unwrap()),
    );
    let seen = Arc::new(std::sync::Mutex::new(None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = listener.local_addr().unwrap();
    let store = seen.clone();
    let echo = Router::new().route(
        "/status",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let store = store.clone();
            async move {
                *store.lock().unwrap() = headers
                    .get("x-simplified-signature")
                    .map(|v| v.to_str().unwrap().to_owned());
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, echo).await.unwrap() });
    let response = simplified
        .get(format!("http://{echo_addr}/status"))
        .with_extension(countersign::middleware::TransactionId(
            "6956d4fc-d7b7-4514-9759-c699fc029b25".into(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The simplified vector: merchant, 1601234567, GET, that transaction id.
    assert_eq!(
        seen.lock().unwrap().as_deref(),
        Some("edc52401a849b0b6efb377a51c85e7be883d28f186646c209aceba2c19e84085")
    );
    // Without the extension the request is not sent at all.
    let err = simplified
        .get(format!("http://{echo_addr}/status"))
        .send()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`transaction_id`"), "{err}");
    assert_eq!(
        signing_error(&err).map(countersign::Error::kind),
        Some(&ErrorKind::MissingField("transaction_id"))
    );
    // A streaming body cannot be read before it is sent, so it cannot be signed: refused,
    // never sent unsigned.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        vec![Ok(bytes::Bytes::from_static(b"{}"))];
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let err = kitopay
        .post(format!("http://{addr}/api/v1/payins"))
        .body(stream)
        .send()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stream"), "{err}");
    assert_eq!(
        signing_error(&err).map(countersign::Error::kind),
        Some(&ErrorKind::UnbufferedBody)
    );
    // A URL that is not http(s) is refused before sending.
    let err = kitopay
        .post("ftp://example.com/x")
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("http or https"), "{err}");
    // A transport error is reqwest's, not a signing refusal.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    let err = kitopay
        .post(format!("http://{nowhere}/api/v1/payins"))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(signing_error(&err).is_none(), "{err}");
}

/// Runs futures concurrently on the current runtime (no extra dependency).
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// Load: concurrent clients against the layer on loopback, bounded in count and time.
/// `cargo test --release --all-features --test integration load -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test, run by hand; prints requests/s and latency"]
async fn load() {
    let clients = 32;
    let per_client = 500;
    let addr = start_server(ReplayGuard::in_memory(1_000_000)).await;
    let url = format!("http://{addr}/webhooks/kamiokash");
    let started = Instant::now();
    let tasks = (0..clients).map(|c| {
        let url = url.clone();
        async move {
            let kamio = client(
                Signer::kamiokash_webhook(SecretKey::new(KAMIOKASH_SECRET).unwrap()),
                SystemClock,
            );
            let mut latencies = Vec::with_capacity(per_client);
            let mut errors = 0;
            for i in 0..per_client {
                let body = format!(
                    r#"{{"type":"transaction.successful","data":{{"client":{c},"n":{i}}}}}"#
                );
                let t = Instant::now();
                let status = kamio
                    .post(&url)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                latencies.push(t.elapsed());
                if !matches!(status, Ok(200)) {
                    errors += 1;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    break;
                }
            }
            (latencies, errors)
        }
    });
    let results = futures_join_all(tasks).await;
    let elapsed = started.elapsed();
    let errors: usize = results.iter().map(|(_, e)| e).sum();
    let mut all: Vec<Duration> = results.into_iter().flat_map(|(l, _)| l).collect();
    all.sort();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize];
    println!(
        "load: {} requests from {clients} clients in {:.2?}: {:.0} requests/s, p50 {:.2?}, p99 {:.2?}, max {:.2?}, errors {errors}",
        all.len(),
        elapsed,
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        all[all.len() - 1],
    );
    assert_eq!(errors, 0);
}
