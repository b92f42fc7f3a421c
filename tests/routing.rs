//! The documented axum set-up (`layer::webhook_router`) over a real server on loopback, as a
//! provider meets it in production: a delivery to the other trailing-slash form of the
//! configured URL reaches the verifier and is refused with a log line naming the slash
//! (a plain route answered `404` with an empty body and logged nothing); a wrong method is
//! `405` (the layer on the method router answered `401`).
#![cfg(all(feature = "axum", feature = "reqwest"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

use std::net::SocketAddr;

use axum::Router;
use axum::routing::post;
use countersign::claim::ReplayGuard;
use countersign::layer::{VerifyLayer, WebhookAuth, webhook_router};
use countersign::{CanonicalUrl, Clock, SecretKey, SystemClock, Verifier};
use countersign_test_support::server::capturing_subscriber;
use countersign_test_support::sign;

const MERCHANT: &str = "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148";
const SECRET: &str = "kitopay-secret";
const BODY: &str = r#"{"id":"6956d4fc","reference_id":"order-485","status":"success"}"#;

/// How the app is put together: the documented helper, or the plain route it replaces.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SetUp {
    Helper,
    Plain,
}

/// A Kitopay webhook verifier for `http://{addr}{path}` (the URL "registered"), behind
/// `set_up`, served on `listener`.
fn app(addr: SocketAddr, path: &str, set_up: SetUp) -> Router {
    let url = CanonicalUrl::parse(&format!("http://{addr}{path}")).unwrap();
    let verifier =
        Verifier::kitopay_webhook(MERCHANT, SecretKey::new(SECRET).unwrap(), url).unwrap();
    let auth = WebhookAuth::new(verifier).with_replay_guard(ReplayGuard::in_memory(100));
    let handler = post(|| async { "processed" });
    match set_up {
        SetUp::Helper => Router::new().merge(webhook_router(path, handler, auth)),
        SetUp::Plain => Router::new().route(path, handler.layer(VerifyLayer::new(auth))),
    }
}

/// Kitopay's headers for a delivery of [`BODY`] to `url`.
fn signed_for(url: &str) -> Vec<(String, String)> {
    sign::kitopay_webhook(MERCHANT, SECRET, url, BODY, SystemClock.now())
}

/// One request over loopback: status, `Allow`, body.
async fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> (u16, Option<String>, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new().request(method, url).body(BODY);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, allow, response.text().await.unwrap())
}

/// Runs `exchange` against a server for `registered` (the path in the verifier's URL)
/// built by `set_up`, on a single-threaded runtime, capturing the events it logs.
fn with_server<F, Fut, T>(registered: &str, set_up: SetUp, exchange: F) -> (T, String)
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: Future<Output = T>,
{
    let (captured, subscriber) = capturing_subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = app(addr, registered, set_up);
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            exchange(addr).await
        })
    });
    let log = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
    (out, log)
}

#[test]
fn a_delivery_to_the_other_slash_form_reaches_the_verifier_and_the_log_names_the_slash() {
    // The webhook is configured without the slash; the provider was given the URL with it
    // (and signs what it posts to), and the other way round.
    for (registered, posted_to, hypothesis) in [
        (
            "/webhooks/kitopay",
            "/webhooks/kitopay/",
            "trailing_slash_added",
        ),
        (
            "/webhooks/kitopay/",
            "/webhooks/kitopay",
            "trailing_slash_removed",
        ),
    ] {
        for set_up in [SetUp::Plain, SetUp::Helper] {
            let ((answer, right), log) = with_server(registered, set_up, |addr| async move {
                let wrong = format!("http://{addr}{posted_to}");
                let answer = send("POST", &wrong, &signed_for(&wrong)).await;
                let right = format!("http://{addr}{registered}");
                (answer, send("POST", &right, &signed_for(&right)).await.0)
            });
            println!(
                "{set_up:?}, registered {registered}, posted to {posted_to}: {answer:?}\n{log}"
            );
            assert_eq!(right, 200, "the configured form is processed");
            let (status, _, body) = answer;
            match set_up {
                // The failure the helper removes: a silent 404.
                SetUp::Plain => {
                    assert_eq!((status, body.as_str()), (404, ""));
                    assert!(!log.contains("webhook refused"), "{log}");
                }
                SetUp::Helper => {
                    assert_eq!((status, body.as_str()), (401, "unauthorized\n"));
                    let line = log
                        .lines()
                        .find(|line| line.contains("webhook refused"))
                        .unwrap_or_else(|| panic!("no refusal logged: {log}"));
                    assert!(line.contains(" WARN "), "{line}");
                    assert!(line.contains(r#"reason="signature_mismatch""#), "{line}");
                    assert!(
                        line.contains(&format!(r#"hypothesis="{hypothesis}""#)),
                        "{line}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_wrong_method_is_405_without_verification() {
    for set_up in [SetUp::Plain, SetUp::Helper] {
        let (answers, log) = with_server("/webhooks/kitopay", set_up, |addr| async move {
            let mut answers = Vec::new();
            for (method, path) in [
                ("GET", "/webhooks/kitopay"),
                ("PUT", "/webhooks/kitopay"),
                ("GET", "/webhooks/kitopay/"),
            ] {
                answers.push(send(method, &format!("http://{addr}{path}"), &[]).await);
            }
            answers
        });
        println!("{set_up:?}: {answers:?}\n{log}");
        let statuses: Vec<u16> = answers.iter().map(|answer| answer.0).collect();
        match set_up {
            // The layer on the method router refused a GET for its missing headers (and the
            // other slash form was not routed at all).
            SetUp::Plain => assert_eq!(statuses, [401, 401, 404]),
            SetUp::Helper => {
                for (status, allow, _) in answers {
                    assert_eq!((status, allow.as_deref()), (405, Some("POST")));
                }
            }
        }
        if set_up == SetUp::Helper {
            assert!(!log.contains("webhook refused"), "not verified: {log}");
        }
    }
}
