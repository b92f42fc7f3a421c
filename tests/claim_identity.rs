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
