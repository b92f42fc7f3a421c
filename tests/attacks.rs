//! Attacks on countersign's claimed guarantees, as an attacker or an unlucky provider would
//! try them, each kept as a test of the secure behaviour. Eight succeeded when the review
//! first ran them (a client hanging up mid-handler, a runtime without timers, key states
//! left in freed blocks on rotation and on the stack after verifying, the year-9999 claim
//! edge, an extreme Retry-After, Redis eviction); they were fixed and their tests pass.
//!
//! Sections: 1 client gone mid-handler; 2 runtime without timers; 4 odd headers over a socket;
//! 5 Kitopay URLs (Host, absolute-form, percent-encoding, GET/HEAD bodies, trailing slash);
//! 6 guard outages, Retry-After; 7 bodies; 8 races;
//! 9 rotation and cross-endpoint replays. (Elsewhere now: section 3, key-equivalents left in
//! memory, in residue/tests/process_memory.rs; the clock cases of section 6 in tests/replay.rs
//! and tests/verifier.rs; the Redis attacks of section 10 in tests/redis.rs.)
#![cfg(all(feature = "axum", feature = "reqwest"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

use countersign_test_support::server;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use countersign::claim::ReplayGuard;
use countersign::layer::{VerifyLayer, WebhookAuth};
use countersign::{
    CanonicalUrl, Clock, ReceivedRequest, SecretKey, SignableRequest, Signer, SystemClock,
    Timestamp, Verified, Verifier,
};
use http_body_util::{BodyExt, Full};
use server::{auth, request_with, signed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, Service, ServiceExt, service_fn};

type Response = http::Response<Full<Bytes>>;

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

/// Raw HTTP/1.1 request text for a signed KamioKash delivery to `/hook`.
fn raw_request(host: &str, headers: &[(String, String)], body: &str, extra: &str) -> String {
    let mut request = format!(
        "POST /hook HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n{extra}",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    request
}

/// Sends raw bytes and reads the whole answer (the server closes: `connection: close`).
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// 1. Client gone mid-handler: the claim is released although the handler's work was done.
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// 2. A Tokio runtime without timers: documented as "no deadline, a warning"; it panics.
// ---------------------------------------------------------------------------------------

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
// 4. Odd headers over a real socket (hyper's parser, then the layer).
// ---------------------------------------------------------------------------------------

async fn kamiokash_server() -> (std::net::SocketAddr, server::Log) {
    let log = server::Log::default();
    let addr = server::serve(auth(ReplayGuard::in_memory(1_000)), log.clone()).await;
    (addr, log)
}

fn status_line(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
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

// ---------------------------------------------------------------------------------------
// 5. Kitopay: URL from Host / absolute-form targets, percent-encoding, GET/HEAD bodies.
// ---------------------------------------------------------------------------------------

const MERCHANT: &str = "m-attack";
const KITOPAY_SECRET: &str = "kitopay-attack-secret";

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

fn kitopay_signed(method: &str, url: &str, body: &str, at: Timestamp) -> Vec<(String, String)> {
    let signer = Signer::kitopay(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap()).unwrap();
    let url = CanonicalUrl::parse(url).unwrap();
    signer
        .sign(
            &SignableRequest::new(method, &url, body.as_bytes()).unwrap(),
            at,
        )
        .unwrap()
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
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

// ---------------------------------------------------------------------------------------
// 6. Guard outages and Retry-After. (The clock cases are in tests/replay.rs and tests/verifier.rs.)
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// 7. Bodies: stalled, trickled, oversized.
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// 8. Races: concurrent duplicates against complete and release.
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// 9. Rotation and cross-endpoint replays.
// ---------------------------------------------------------------------------------------

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
