//! A scheme countersign does not ship, defined outside the crate in one file: GitHub's
//! webhook signature, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! Run: `cargo run --all-features --example github_scheme` (exits 0 after its checks).
//!
//! It gets everything the built-in schemes get: signing, verification with key rotation,
//! `explain` (the exact message) and `diagnose` (which mistake broke a signature), the tower
//! layer with its replay guard, and the axum extractors.
//!
//! **GitHub signs no timestamp.** So there is no freshness window: a captured delivery's
//! signature verifies forever. The replay guard keys a claim on the signature, and with no
//! window to bound it, a claim is held for a retention (7 days) after verification; a replay
//! after that is processed again. GitHub's `X-GitHub-Delivery` id is not signed, so it cannot
//! be the claim's key (an attacker could change it freely).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use countersign::diagnose::{Diagnosis, Hypothesis, Inputs, diagnose};
use countersign::extract::VerifiedBody;
use countersign::layer::{WebhookAuth, webhook_router};
use countersign::{
    KeyRing, Part, ReceivedRequest, Scheme, SecretKey, SecretSpec, SignableRequest,
    SignatureFormat, Signer, StringToSign, Timestamp, Verifier,
};
use tower::ServiceExt as _;

/// GitHub: `sha256=` + lower-case hex, over the body alone, no timestamp.
pub static GITHUB: Scheme = Scheme::new(
    "github",
    "GitHub webhook (X-Hub-Signature-256: sha256=<hex> over the body)",
    &[Part::Body],
    SignatureFormat::hex("X-Hub-Signature-256").with_prefix("sha256="),
)
.with_secret(SecretSpec::utf8("GITHUB_WEBHOOK_SECRET"))
.webhook();

const SECRET: &str = "It's a Secret to Everybody";
const PAYLOAD: &[u8] = b"Hello, World!";
/// GitHub's documented example (docs.github.com, "Validating webhook deliveries").
const SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn verifier(keys: impl Into<countersign::SharedKeys>) -> Verifier {
    Verifier::new(&GITHUB, keys).expect("GITHUB is a consistent scheme")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Verify GitHub's own example, with a second (retired) key in the ring.
    let ring =
        KeyRing::new("old", SecretKey::new("retired secret")?).with("2026", GITHUB.key(SECRET)?);
    let headers = [("X-Hub-Signature-256", SIGNATURE)];
    let verified = verifier(ring).verify(&ReceivedRequest::new(&headers, PAYLOAD))?;
    assert_eq!(verified.key_id(), "2026");
    assert_eq!(verified.timestamp(), None);
    println!(
        "GitHub's documented example verifies (key {})",
        verified.key_id()
    );

    // Sign the same: the header is exactly GitHub's.
    let signer = Signer::new(&GITHUB, GITHUB.key(SECRET)?)?;
    let signed = signer.sign(&SignableRequest::body(PAYLOAD), Timestamp::UNIX_EPOCH)?;
    assert_eq!(signed.signature_value(), SIGNATURE);
    let names: Vec<_> = signed.headers().map(|(name, _)| name).collect();
    assert_eq!(names, ["X-Hub-Signature-256"]);

    // A missing prefix, a wrong signature: refused, each with its reason.
    let bare = [("X-Hub-Signature-256", &SIGNATURE[7..])];
    let e = verifier(GITHUB.key(SECRET)?).verify(&ReceivedRequest::new(&bare, PAYLOAD));
    assert_eq!(e.unwrap_err().code(), "malformed_signature");
    let e = verifier(GITHUB.key(SECRET)?).verify(&ReceivedRequest::new(&headers, b"Hello!"));
    assert_eq!(e.unwrap_err().code(), "signature_mismatch");

    // explain: the exact message (the body, nothing else).
    let request = SignableRequest::body(PAYLOAD);
    let message = StringToSign::new(&GITHUB, None, "", &request)?;
    let parts: Vec<_> = message.parts().map(|(name, _)| name).collect();
    assert_eq!(parts, ["body"]);

    // diagnose: the sender signed the JSON pretty-printed but sent it minified.
    let sent = br#"{"action":"opened","number":7}"#;
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(sent)?)?;
    let wrong = signer.sign(&SignableRequest::body(&pretty), Timestamp::UNIX_EPOCH)?;
    let inputs = Inputs {
        secret: SECRET,
        body: sent,
        signature: wrong.signature_value(),
        ..Inputs::new(&GITHUB)
    };
    match diagnose(&inputs)? {
        Diagnosis::Explained(f) => assert_eq!(f.hypothesis, Hypothesis::BodyPrettyPrinted),
        other => panic!("{other:?}"),
    }
    println!(
        "diagnose names the mistake: {}",
        Hypothesis::BodyPrettyPrinted
    );

    // A route behind the layer: accepted once, a replay acknowledged as a duplicate.
    let guard = countersign::claim::ReplayGuard::in_memory(100_000);
    let auth = WebhookAuth::new(verifier(GITHUB.key(SECRET)?)).with_replay_guard(guard);
    let app: axum::Router = webhook_router(
        "/webhooks/github",
        axum::routing::post(|VerifiedBody(body, delivery): VerifiedBody| async move {
            format!(
                "{} delivery of {} bytes processed",
                delivery.scheme(),
                body.len()
            )
        }),
        auth,
    );
    let delivery = || {
        http::Request::post("/webhooks/github")
            .header("X-Hub-Signature-256", SIGNATURE)
            .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .body(axum::body::Body::from(PAYLOAD))
    };
    let body = |r: http::Response<axum::body::Body>| async move {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let first = app.clone().oneshot(delivery()?).await?;
    assert_eq!(first.status(), 200);
    assert_eq!(body(first).await, "github delivery of 13 bytes processed");
    let replay = app.clone().oneshot(delivery()?).await?;
    assert_eq!(replay.status(), 200);
    assert_eq!(
        body(replay).await,
        "duplicate delivery: already processed\n"
    );
    let forged = http::Request::post("/webhooks/github")
        .header("X-Hub-Signature-256", SIGNATURE)
        .body(axum::body::Body::from("Hello, World?"))?;
    assert_eq!(app.oneshot(forged).await?.status(), 401);
    println!(
        "the layer accepts GitHub deliveries once, acknowledges the replay, refuses a forgery"
    );
    Ok(())
}
