//! What a delivery is claimed under, through the layer on loopback: events by their id
//! (a provider's retry signed again is the same event), kept apart by route and by service
//! (two routers sharing one store each process the same event), a custom identity, the
//! fallback to the signature, and a shared store refused without a namespace. Each case is
//! one of the failures reported in issue 19, kept as a test.
#![cfg(all(feature = "axum", feature = "redis"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use countersign::claim::redis::RedisStore;
use countersign::claim::{Identity, InMemoryStore, ReplayGuard};
use countersign::extract::VerifiedBody;
use countersign::layer::{VerifyLayer, WebhookAuth};
use countersign::{
    CanonicalUrl, Clock, SecretKey, SystemClock, Timestamp, Verifier, standard_webhooks,
};
use countersign_test_support::redis_server::{Redis, unique_prefix};
use countersign_test_support::sign;

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KAMIOKASH_SECRET: &str = "whsec_kk_5e2a91c07d3b4f68";
const MERCHANT: &str = "m-1";
const KITOPAY_SECRET: &str = "kitopay-secret";

/// Serves `routes` (path, auth) with one handler that counts its calls per path and
/// answers with the event id it was given.
async fn serve(routes: Vec<(&'static str, WebhookAuth)>) -> (SocketAddr, Arc<[AtomicUsize; 4]>) {
    let calls: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    let mut app = Router::new();
    for (i, (path, auth)) in routes.into_iter().enumerate() {
        let calls = Arc::clone(&calls);
        app = app.route(
            path,
            post(move |VerifiedBody(_, delivery): VerifiedBody| async move {
                calls[i].fetch_add(1, Ordering::SeqCst);
                delivery.event_id().unwrap_or("-").to_owned()
            })
            .layer(VerifyLayer::new(auth)),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, calls)
}

async fn post_to(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .body(body.to_owned());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A Standard Webhooks delivery of event `id`, signed `ago` seconds ago.
fn standard(id: &str, body: &str, ago: u64) -> Vec<(String, String)> {
    let at = Timestamp::from_unix_secs(SystemClock.now().unix_secs() - ago).unwrap();
    sign::standard_webhooks(SW_SECRET, id, body, at)
}

fn kamiokash_delivery(body: &str, at: Timestamp) -> Vec<(String, String)> {
    sign::kamiokash_webhook(KAMIOKASH_SECRET, body, at)
}

/// Settles a `409` (the original's completion not yet recorded) as a provider would.
async fn settled(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String) {
    for _ in 0..100 {
        let answer = post_to(addr, path, headers, body).await;
        if answer.0 != 409 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still in flight after 2 s");
}

#[tokio::test]
async fn a_retry_signed_again_is_the_same_event_and_is_not_processed_twice() {
    // Reported: "first: 200, re-signed retry: 200, handler calls: 2".
    let auth = WebhookAuth::new(Verifier::standard_webhooks(
        standard_webhooks::SCHEME.key(SW_SECRET).unwrap(),
    ))
    .with_replay_guard(ReplayGuard::in_memory(100));
    let (addr, calls) = serve(vec![("/webhooks/standard", auth)]).await;
    let body = r#"{"type":"invoice.paid"}"#;
    let first = post_to(
        addr,
        "/webhooks/standard",
        &standard("msg_2Kx", body, 90),
        body,
    )
    .await;
    let retry = settled(
        addr,
        "/webhooks/standard",
        &standard("msg_2Kx", body, 0),
        body,
    )
    .await;
    println!(
        "standard webhooks: first {first:?}, re-signed retry {retry:?}, handler calls {}",
        calls[0].load(Ordering::SeqCst)
    );
    assert_eq!(first, (200, "msg_2Kx".to_owned()));
    assert_eq!(
        retry,
        (200, "duplicate delivery: already processed\n".to_owned())
    );
    assert_eq!(calls[0].load(Ordering::SeqCst), 1);
    // Another event is processed.
    let other = post_to(
        addr,
        "/webhooks/standard",
        &standard("msg_3Ly", body, 0),
        body,
    )
    .await;
    assert_eq!(other, (200, "msg_3Ly".to_owned()));
}

#[tokio::test]
async fn a_kitopay_status_change_is_one_event_however_often_it_is_signed() {
    let url = CanonicalUrl::parse("https://shop.example.com/webhooks/kitopay").unwrap();
    let verifier = Verifier::kitopay_webhook(
        MERCHANT,
        SecretKey::new(KITOPAY_SECRET).unwrap(),
        url.clone(),
    )
    .unwrap();
    let auth = WebhookAuth::new(verifier).with_replay_guard(ReplayGuard::in_memory(100));
    let (addr, calls) = serve(vec![("/webhooks/kitopay", auth)]).await;
    let send = |status: &'static str, ago: u64| {
        let body = format!(r#"{{"id":"6956d4fc","reference_id":"order-7","status":"{status}"}}"#);
        let at = Timestamp::from_unix_secs(SystemClock.now().unix_secs() - ago).unwrap();
        let headers = sign::kitopay_webhook(MERCHANT, KITOPAY_SECRET, url.as_str(), &body, at);
        (headers, body)
    };
    let (h, b) = send("new", 50);
    assert_eq!(
        post_to(addr, "/webhooks/kitopay", &h, &b).await,
        (200, "6956d4fc/new".to_owned())
    );
    let (h, b) = send("new", 0);
    assert_eq!(
        settled(addr, "/webhooks/kitopay", &h, &b).await.1,
        "duplicate delivery: already processed\n"
    );
    // The next status is an event of its own.
    let (h, b) = send("success", 0);
    assert_eq!(
        post_to(addr, "/webhooks/kitopay", &h, &b).await,
        (200, "6956d4fc/success".to_owned())
    );
    assert_eq!(calls[0].load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn two_routers_sharing_one_redis_each_process_the_same_event() {
    // Reported: two routers with the same KamioKash secret and default settings on one
    // Redis: "orders: 200, handler calls 1; analytics: 200, handler calls 0".
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("routes");
    let mut routes = Vec::new();
    for path in ["/hooks/orders", "/hooks/analytics"] {
        let store = RedisStore::connect(&redis.url)
            .await
            .unwrap()
            .with_prefix(&prefix);
        let auth = WebhookAuth::new(Verifier::kamiokash_webhook(
            SecretKey::new(KAMIOKASH_SECRET).unwrap(),
        ))
        .with_replay_guard(ReplayGuard::new(store, "shop").unwrap());
        routes.push((path, auth));
    }
    let (addr, calls) = serve(routes).await;
    let body = r#"{"type":"order.successful","data":{"id":"o_1"}}"#;
    let headers = kamiokash_delivery(body, SystemClock.now());
    let orders = post_to(addr, "/hooks/orders", &headers, body).await;
    let analytics = post_to(addr, "/hooks/analytics", &headers, body).await;
    println!(
        "one Redis, two routes: orders {} (calls {}), analytics {} (calls {})",
        orders.0,
        calls[0].load(Ordering::SeqCst),
        analytics.0,
        calls[1].load(Ordering::SeqCst)
    );
    assert_eq!((orders.0, analytics.0), (200, 200));
    assert_eq!(calls[0].load(Ordering::SeqCst), 1);
    assert_eq!(calls[1].load(Ordering::SeqCst), 1);
    // Each route still refuses its own replay.
    assert_eq!(
        settled(addr, "/hooks/orders", &headers, body).await.1,
        "duplicate delivery: already processed\n"
    );
    assert_eq!(
        settled(addr, "/hooks/analytics", &headers, body).await.1,
        "duplicate delivery: already processed\n"
    );
    assert_eq!(
        calls[0].load(Ordering::SeqCst) + calls[1].load(Ordering::SeqCst),
        2
    );

    // Two services with the same route on one Redis: apart by namespace.
    let mut services = Vec::new();
    for namespace in ["orders-service", "analytics-service"] {
        let store = RedisStore::connect(&redis.url)
            .await
            .unwrap()
            .with_prefix(&prefix);
        let auth = WebhookAuth::new(Verifier::kamiokash_webhook(
            SecretKey::new(KAMIOKASH_SECRET).unwrap(),
        ))
        .with_replay_guard(ReplayGuard::new(store, namespace).unwrap());
        services.push(serve(vec![("/webhooks", auth)]).await);
    }
    for (addr, calls) in &services {
        assert_eq!(post_to(*addr, "/webhooks", &headers, body).await.0, 200);
        assert_eq!(calls[0].load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_shared_store_without_a_namespace_is_refused() {
    let Some(redis) = Redis::start() else { return };
    let store = RedisStore::connect(&redis.url).await.unwrap();
    let refused = ReplayGuard::new(store, "").unwrap_err();
    assert_eq!(refused.code(), "invalid_guard");
    assert!(refused.to_string().contains("namespace"), "{refused}");
    // A store of this process alone may do without.
    assert!(ReplayGuard::new(InMemoryStore::new(1), "").is_ok());
}

#[tokio::test]
async fn path_spellings_of_one_route_share_its_claims() {
    // A wildcard route answers several spellings of a path: a replay to another spelling is
    // still the same delivery (by matched route; and by the normalised path without axum).
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(
        SecretKey::new(KAMIOKASH_SECRET).unwrap(),
    ))
    .with_replay_guard(ReplayGuard::in_memory(100));
    let (addr, calls) = serve(vec![("/webhooks/{provider}", auth)]).await;
    let body = r#"{"type":"member.new","data":{"id":"m_1"}}"#;
    let headers = kamiokash_delivery(body, SystemClock.now());
    let mut answers = Vec::new();
    for path in [
        "/webhooks/kamiokash",
        "/webhooks/%6Bamiokash",
        "/webhooks/kamiokash%20",
    ] {
        answers.push(settled(addr, path, &headers, body).await);
    }
    assert_eq!(calls[0].load(Ordering::SeqCst), 1, "{answers:?}");
}

#[tokio::test]
async fn a_custom_identity_and_the_fallback_to_the_signature() {
    // KamioKash events carry no id of their own: the service chooses `data.id`.
    let by_data_id = Identity::Custom(Arc::new(|_, request| {
        let body: serde_json::Value = serde_json::from_slice(request.body()).ok()?;
        Some(body["data"]["id"].as_str()?.to_owned())
    }));
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(
        SecretKey::new(KAMIOKASH_SECRET).unwrap(),
    ))
    .with_replay_guard(ReplayGuard::in_memory(100).with_identity(by_data_id));
    let (addr, calls) = serve(vec![("/webhooks/kamiokash", auth)]).await;
    let now = SystemClock.now();
    let earlier = Timestamp::from_unix_millis(now.unix_millis() - 30_000).unwrap();
    let body = r#"{"type":"wallet.new","data":{"id":"w_9"}}"#;
    assert_eq!(
        post_to(
            addr,
            "/webhooks/kamiokash",
            &kamiokash_delivery(body, earlier),
            body
        )
        .await,
        (200, "w_9".to_owned())
    );
    let resent = settled(
        addr,
        "/webhooks/kamiokash",
        &kamiokash_delivery(body, now),
        body,
    )
    .await;
    assert_eq!(resent.1, "duplicate delivery: already processed\n");
    // No `data.id`: claimed by signature; the same bytes are a duplicate, new bytes are not.
    let plain = r#"{"type":"wallet.new","data":{}}"#;
    let headers = kamiokash_delivery(plain, now);
    assert_eq!(
        post_to(addr, "/webhooks/kamiokash", &headers, plain).await,
        (200, "-".to_owned())
    );
    assert_eq!(
        settled(addr, "/webhooks/kamiokash", &headers, plain)
            .await
            .1,
        "duplicate delivery: already processed\n"
    );
    assert_eq!(
        post_to(
            addr,
            "/webhooks/kamiokash",
            &kamiokash_delivery(plain, earlier),
            plain
        )
        .await
        .0,
        200
    );
    assert_eq!(calls[0].load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn both_slash_forms_mounted_by_webhook_router_are_one_route() {
    // webhook_router mounts `/webhooks/kamiokash` and `/webhooks/kamiokash/` (two axum
    // routes); KamioKash does not sign the URL, so the same delivery verifies at both: it
    // must still be processed once.
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(
        SecretKey::new(KAMIOKASH_SECRET).unwrap(),
    ))
    .with_replay_guard(ReplayGuard::in_memory(100));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app: Router = countersign::layer::webhook_router(
        "/webhooks/kamiokash",
        post(move || async move {
            counted.fetch_add(1, Ordering::SeqCst);
            "processed"
        }),
        auth,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let body = r#"{"type":"member.new","data":{}}"#;
    let headers = kamiokash_delivery(body, SystemClock.now());
    let first = post_to(addr, "/webhooks/kamiokash", &headers, body).await;
    let other = settled(addr, "/webhooks/kamiokash/", &headers, body).await;
    assert_eq!(first, (200, "processed".to_owned()));
    assert_eq!(
        other,
        (200, "duplicate delivery: already processed\n".to_owned())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Attacks on the identity a delivery is claimed under (review of the claim path). Each
// goes through the layer as a tower service (no socket), with a handler that counts.
// ---------------------------------------------------------------------------------------

type Body = http_body_util::Full<bytes::Bytes>;

/// The layer around a handler that counts its calls and answers the event id it was given.
fn counted(
    auth: WebhookAuth,
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<Body>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    use tower::Layer as _;
    VerifyLayer::new(auth).layer(tower::service_fn(move |request: http::Request<Body>| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let id = request
                .extensions()
                .get::<countersign::Verified>()
                .and_then(|v| v.event_id().map(str::to_owned))
                .unwrap_or_else(|| "-".to_owned());
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(id)))
        }
    }))
}

/// Sends `body` with `headers` to `path` through `service`: the status and the body.
async fn send<S>(service: &S, path: &str, headers: &[(String, String)], body: &str) -> (u16, String)
where
    S: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone,
{
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut request = http::Request::post(path).header("host", "shop.example.com");
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(text.to_vec()).unwrap())
}

const DUPLICATE: &str = "duplicate delivery: already processed\n";

fn kitopay_url() -> CanonicalUrl {
    CanonicalUrl::parse("https://shop.example.com/webhooks/kitopay").unwrap()
}

fn kitopay_auth(guard: ReplayGuard) -> WebhookAuth {
    let verifier = Verifier::kitopay_webhook(
        MERCHANT,
        SecretKey::new(KITOPAY_SECRET).unwrap(),
        kitopay_url(),
    )
    .unwrap();
    WebhookAuth::new(verifier).with_replay_guard(guard)
}

/// A Kitopay webhook of `body`, signed `ago` seconds ago for the configured URL.
fn kitopay_delivery(body: &str, ago: u64) -> Vec<(String, String)> {
    let at = Timestamp::from_unix_secs(SystemClock.now().unix_secs() - ago).unwrap();
    sign::kitopay_webhook(MERCHANT, KITOPAY_SECRET, kitopay_url().as_str(), body, at)
}

fn kitopay_event_id(body: &str) -> Option<String> {
    let no_headers: [(&str, &str); 0] = [];
    countersign::kitopay::WEBHOOK.event_id(&countersign::ReceivedRequest::new(
        &no_headers,
        body.as_bytes(),
    ))
}

#[tokio::test]
async fn kitopay_fields_holding_the_join_never_collide_they_fall_back_to_the_signature() {
    // `a/b` + `c` and `a` + `b/c` would both join to `a/b/c`: neither is an event id.
    let split_one = r#"{"id":"a/b","status":"c"}"#;
    let split_two = r#"{"id":"a","status":"b/c"}"#;
    assert_eq!(kitopay_event_id(split_one), None);
    assert_eq!(kitopay_event_id(split_two), None);
    // An escaped solidus is a solidus.
    assert_eq!(kitopay_event_id(r#"{"id":"a\/b","status":"c"}"#), None);
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counted(
        kitopay_auth(ReplayGuard::in_memory(100)),
        Arc::clone(&calls),
    );
    for body in [split_one, split_two] {
        let answer = send(
            &service,
            "/webhooks/kitopay",
            &kitopay_delivery(body, 0),
            body,
        )
        .await;
        assert_eq!(answer, (200, "-".to_owned()), "claimed by signature");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "two events, two calls");
}

#[tokio::test]
async fn a_numeric_and_a_textual_kitopay_id_name_one_event() {
    // The body is signed: only the provider writes it. `1` and `"1"` are read as the same
    // text, so a provider switching the id's JSON type between retries is still one event.
    assert_eq!(
        kitopay_event_id(r#"{"id":1,"status":"success"}"#).as_deref(),
        Some("1/success")
    );
    assert_eq!(
        kitopay_event_id(r#"{"id":"1","status":"success"}"#).as_deref(),
        Some("1/success")
    );
    // Other types and empty text are not ids.
    for body in [
        r#"{"id":true,"status":"s"}"#,
        r#"{"id":null,"status":"s"}"#,
        r#"{"id":["1"],"status":"s"}"#,
        r#"{"id":{"a":1},"status":"s"}"#,
        r#"{"id":"","status":"s"}"#,
        r#"{"id":"1"}"#,
        r#"["id","status"]"#,
        r#""1/success""#,
        "",
    ] {
        assert_eq!(kitopay_event_id(body), None, "{body}");
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counted(
        kitopay_auth(ReplayGuard::in_memory(100)),
        Arc::clone(&calls),
    );
    let numeric = r#"{"id":1,"status":"success"}"#;
    let textual = r#"{"id":"1","status":"success"}"#;
    assert_eq!(
        send(
            &service,
            "/webhooks/kitopay",
            &kitopay_delivery(numeric, 5),
            numeric
        )
        .await,
        (200, "1/success".to_owned())
    );
    assert_eq!(
        send(
            &service,
            "/webhooks/kitopay",
            &kitopay_delivery(textual, 0),
            textual
        )
        .await,
        (200, DUPLICATE.to_owned())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_duplicated_or_escaped_json_key_is_read_as_the_handler_reads_it() {
    // serde_json keeps the last of duplicated keys; the event id reads the same field the
    // handler's `serde_json::Value` does, so the claimed event is the one processed.
    let duplicated = r#"{"id":"first","id":"last","status":"new"}"#;
    assert_eq!(kitopay_event_id(duplicated).as_deref(), Some("last/new"));
    let value: serde_json::Value = serde_json::from_str(duplicated).unwrap();
    assert_eq!(value["id"], "last");
    // A key spelled with a unicode escape is the same key.
    let escaped = r#"{"\u0069d":"6956d4fc","st\u0061tus":"new"}"#;
    assert_eq!(kitopay_event_id(escaped).as_deref(), Some("6956d4fc/new"));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counted(
        kitopay_auth(ReplayGuard::in_memory(100)),
        Arc::clone(&calls),
    );
    let plain = r#"{"id":"6956d4fc","status":"new"}"#;
    assert_eq!(
        send(
            &service,
            "/webhooks/kitopay",
            &kitopay_delivery(plain, 5),
            plain
        )
        .await,
        (200, "6956d4fc/new".to_owned())
    );
    assert_eq!(
        send(
            &service,
            "/webhooks/kitopay",
            &kitopay_delivery(escaped, 0),
            escaped
        )
        .await,
        (200, DUPLICATE.to_owned()),
        "the escaped spelling is the same event"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn deeply_nested_or_wide_bodies_cost_bounded_time_to_read_an_event_id() {
    // The layer's body limit is 1 MiB; json_fields parses the whole body once.
    let nested = "[".repeat(1 << 20);
    let wide = {
        let mut body = String::from("{");
        let mut n = 0;
        while body.len() < (1 << 20) - 64 {
            body.push_str(&format!("\"k{n}\":{n},"));
            n += 1;
        }
        body.push_str(r#""id":"x","status":"y"}"#);
        body
    };
    let deep_object = format!("{}{}", r#"{"a":"#.repeat(100_000), "1");
    for (what, body, expected) in [
        ("nested", nested.as_str(), None),
        ("wide", wide.as_str(), Some("x/y")),
        ("deep object", deep_object.as_str(), None),
    ] {
        let started = std::time::Instant::now();
        assert_eq!(kitopay_event_id(body).as_deref(), expected, "{what}");
        let took = started.elapsed();
        println!("{what}: {} bytes, {took:?}", body.len());
        assert!(took < Duration::from_secs(2), "{what}: {took:?}");
    }
}

#[tokio::test]
async fn an_identity_of_a_megabyte_is_held_under_a_fixed_size_key() {
    let long = "e".repeat(1 << 20);
    let chosen = long.clone();
    let identity = Identity::Custom(Arc::new(move |_, _| Some(chosen.clone())));
    let memory = Arc::new(InMemoryStore::new(10));
    let guard = ReplayGuard::new(Arc::clone(&memory), "")
        .unwrap()
        .with_identity(identity);
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(
        SecretKey::new(KAMIOKASH_SECRET).unwrap(),
    ))
    .with_replay_guard(guard);
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counted(auth, Arc::clone(&calls));
    let body = r#"{"type":"member.new","data":{}}"#;
    let first = send(
        &service,
        "/hooks",
        &kamiokash_delivery(body, SystemClock.now()),
        body,
    )
    .await;
    assert_eq!((first.0, first.1.len()), (200, long.len()));
    let earlier = Timestamp::from_unix_millis(SystemClock.now().unix_millis() - 1_000).unwrap();
    let again = send(&service, "/hooks", &kamiokash_delivery(body, earlier), body).await;
    assert_eq!(again, (200, DUPLICATE.to_owned()));
    assert_eq!((calls.load(Ordering::SeqCst), memory.len()), (1, 1));
}

#[tokio::test]
async fn an_empty_custom_identity_is_no_event_id_and_falls_back_to_the_signature() {
    // Found by this review: a custom identity answering `Some("")` for deliveries without
    // the field (`unwrap_or_default()`) held every such delivery under one key, so the
    // second distinct event was acknowledged `200` as a duplicate and never processed. An
    // empty identity now counts as none, as an empty JSON field already did.
    let by_data_id = Identity::Custom(Arc::new(|_, request| {
        let body: serde_json::Value = serde_json::from_slice(request.body()).ok()?;
        Some(body["data"]["id"].as_str().unwrap_or_default().to_owned())
    }));
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(
        SecretKey::new(KAMIOKASH_SECRET).unwrap(),
    ))
    .with_replay_guard(ReplayGuard::in_memory(100).with_identity(by_data_id));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counted(auth, Arc::clone(&calls));
    let now = SystemClock.now();
    let member = r#"{"type":"member.new","data":{}}"#;
    let wallet = r#"{"type":"wallet.new","data":{}}"#;
    assert_eq!(
        send(&service, "/hooks", &kamiokash_delivery(member, now), member).await,
        (200, "-".to_owned())
    );
    assert_eq!(
        send(&service, "/hooks", &kamiokash_delivery(wallet, now), wallet).await,
        (200, "-".to_owned()),
        "another event without the field is processed, not acknowledged as a duplicate"
    );
    // Each is still held by its signature: a copy is a duplicate.
    assert_eq!(
        send(&service, "/hooks", &kamiokash_delivery(wallet, now), wallet).await,
        (200, DUPLICATE.to_owned())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn standard_webhooks_ids_at_the_256_byte_edge_with_odd_bytes_are_events_of_their_own() {
    let key = || standard_webhooks::SCHEME.key(SW_SECRET).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counted(
        WebhookAuth::new(Verifier::standard_webhooks(key()))
            .with_replay_guard(ReplayGuard::in_memory(100)),
        Arc::clone(&calls),
    );
    // Every visible byte but `.`, cycled to 256: `/`, `%`, `\`, `"`, `:` included.
    let visible: Vec<u8> = (0x21..=0x7e).filter(|&b| b != b'.').collect();
    let id: String = visible
        .iter()
        .cycle()
        .take(256)
        .map(|&b| b as char)
        .collect();
    let mut other = id.clone().into_bytes();
    other[255] = if other[255] == b'a' { b'b' } else { b'a' };
    let other = String::from_utf8(other).unwrap();
    let body = "{}";
    for (event, ago) in [(&id, 10), (&other, 10)] {
        let answer = send(&service, "/hooks", &standard(event, body, ago), body).await;
        assert_eq!(answer, (200, event.clone()));
    }
    // Re-signed retries of both: duplicates.
    for event in [&id, &other] {
        let answer = send(&service, "/hooks", &standard(event, body, 0), body).await;
        assert_eq!(answer, (200, DUPLICATE.to_owned()));
    }
    // One byte more, or a `.`, is refused before any claim (401, not a duplicate).
    let long = format!("{id}x");
    let signer = countersign::Signer::standard_webhooks(key());
    let request = countersign::SignableRequest::body(body.as_bytes()).with_value("id", &long);
    assert!(
        signer.sign(&request, SystemClock.now()).is_err(),
        "the signer refuses it"
    );
    let mut forged = standard("x", body, 0);
    forged[0].1 = long;
    assert_eq!(send(&service, "/hooks", &forged, body).await.0, 401);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn one_id_in_two_schemes_on_one_named_route_is_two_events() {
    // A Standard Webhooks id that reads like a Kitopay event (`6956d4fc/new`), both schemes
    // claiming through one guard under one named route: the scheme is part of the key.
    let guard = ReplayGuard::in_memory(100);
    let sw_calls = Arc::new(AtomicUsize::new(0));
    let kp_calls = Arc::new(AtomicUsize::new(0));
    let standard_service = counted(
        WebhookAuth::new(Verifier::standard_webhooks(
            standard_webhooks::SCHEME.key(SW_SECRET).unwrap(),
        ))
        .with_replay_guard(guard.clone())
        .with_route("/hooks"),
        Arc::clone(&sw_calls),
    );
    let kitopay_service = counted(
        kitopay_auth(guard).with_route("/hooks"),
        Arc::clone(&kp_calls),
    );
    let body = r#"{"id":"6956d4fc","status":"new"}"#;
    assert_eq!(
        send(
            &standard_service,
            "/hooks",
            &standard("6956d4fc/new", body, 0),
            body
        )
        .await,
        (200, "6956d4fc/new".to_owned())
    );
    assert_eq!(
        send(&kitopay_service, "/hooks", &kitopay_delivery(body, 0), body).await,
        (200, "6956d4fc/new".to_owned())
    );
    assert_eq!(
        (
            sw_calls.load(Ordering::SeqCst),
            kp_calls.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn a_kitopay_webhook_behind_a_plain_service_is_claimed_under_its_signed_urls_path() {
    // Found by this review: without a router's matched route, the claim's route was the
    // path received. A Kitopay webhook verifier signs the URL it is configured with, not
    // the one received, so the same delivery verified at any path that reached the service
    // (`/anything`) and was a new claim there: processed again per path. It is now claimed
    // under the configured URL's path.
    let calls = Arc::new(AtomicUsize::new(0));
    let service = counted(
        kitopay_auth(ReplayGuard::in_memory(100)),
        Arc::clone(&calls),
    );
    let body = r#"{"id":"6956d4fc","status":"success"}"#;
    let headers = kitopay_delivery(body, 0);
    assert_eq!(
        send(&service, "/webhooks/kitopay", &headers, body).await,
        (200, "6956d4fc/success".to_owned())
    );
    for path in ["/anything", "/webhooks/kitopay2", "/WEBHOOKS/KITOPAY", "/"] {
        assert_eq!(
            send(&service, path, &headers, body).await,
            (200, DUPLICATE.to_owned()),
            "{path}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_plain_service_never_claims_unsigned_url_webhooks_by_the_path_received() {
    // The review's attack: KamioKash and Standard Webhooks do not sign the URL, and a
    // service without a router's matched route (a plain tower service, a fallback handler)
    // answers every path: keyed by the path received, the same event was processed once per
    // path an attacker chose. Without a matched, named or configured route there is no
    // route: every path is one.
    let body = "{}";
    let headers = standard("msg_plain", body, 0);
    let by_path = Arc::new(AtomicUsize::new(0));
    let service = counted(
        WebhookAuth::new(Verifier::standard_webhooks(
            standard_webhooks::SCHEME.key(SW_SECRET).unwrap(),
        ))
        .with_replay_guard(ReplayGuard::in_memory(100)),
        Arc::clone(&by_path),
    );
    for path in [
        "/hooks",
        "/hooks/",
        "//hooks",
        "/hooks?x=1",
        "/x/../hooks",
        "/Hooks",
        "/other",
    ] {
        send(&service, path, &headers, body).await;
    }
    assert_eq!(
        by_path.load(Ordering::SeqCst),
        1,
        "every path is one route: processed once"
    );
    let named = Arc::new(AtomicUsize::new(0));
    let service = counted(
        WebhookAuth::new(Verifier::standard_webhooks(
            standard_webhooks::SCHEME.key(SW_SECRET).unwrap(),
        ))
        .with_replay_guard(ReplayGuard::in_memory(100))
        .with_route("/hooks"),
        Arc::clone(&named),
    );
    for path in ["/hooks", "/Hooks", "/other"] {
        send(&service, path, &headers, body).await;
    }
    assert_eq!(named.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn one_kitopay_verifier_mounted_at_two_axum_routes_claims_under_its_configured_url() {
    // The review's attack: one Kitopay webhook verifier mounted at two routes (a legacy
    // path kept beside the new one) verifies the URL it is configured with at both, so a
    // copy replayed to the other route was processed again when the matched route came
    // first. The configured URL's path comes first: one route.
    use tower::ServiceExt as _;
    let guard = ReplayGuard::in_memory(100);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut app = Router::new();
    for path in ["/webhooks/kitopay", "/legacy/kitopay"] {
        let calls = Arc::clone(&calls);
        app = app.route(
            path,
            post(move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                "processed"
            })
            .layer(VerifyLayer::new(kitopay_auth(guard.clone()))),
        );
    }
    let body = r#"{"id":"6956d4fc","status":"success"}"#;
    let headers = kitopay_delivery(body, 0);
    for path in ["/webhooks/kitopay", "/legacy/kitopay", "/legacy/kitopay"] {
        let mut request = http::Request::post(path);
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        let request = request.body(axum::body::Body::from(body)).unwrap();
        assert_eq!(app.clone().oneshot(request).await.unwrap().status(), 200);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one configured URL, one route"
    );
}
