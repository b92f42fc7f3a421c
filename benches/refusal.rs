//! What a refused request costs the tower layer, with and without naming its likely mistake
//! (the `hypothesis` of the refusal event), measured in the same run.
//!
//! Each iteration sends one forged request (a fresh timestamp, a signature of zeros) through
//! `VerifyLayer` around a trivial service, on a current-thread runtime, with a `tracing`
//! subscriber that records and formats the `WARN` event (to a sink), as in production:
//! - `not_searched`: the search turned off (`with_diagnosis_rate(0)`);
//! - `searched`: every refusal searched (no rate limit): the variants' MACs;
//! - `over_budget`: the rate spent, so each refusal takes the not-searched path after the
//!   bucket says no.
//!
//! `cargo bench --features tower --bench refusal`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use countersign::layer::{VerifyLayer, WebhookAuth};
use countersign::{
    CanonicalUrl, FixedClock, SecretKey, SignableRequest, Signer, Timestamp, Verifier,
};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use tower::{Layer, ServiceExt, service_fn};

const MERCHANT: &str = "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148";
const SECRET: &str = "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9";
/// A ~290-byte minified JSON body (as in `benches/signing.rs`).
const BODY: &str = r#"{"reference_id":"tx-123456789","payment":{"amount":49.23,"currency":"EUR","method":"card"},"customer":{"id":"cust_000123","first_name":"John","last_name":"Doe","email":"john.doe@example.com","phone":"+35712345678"},"redirect_url":"https://shop.example.com/return","note":"thank you, bye!"}"#;

/// A scheme's verifier for the bench, and the headers of a forged delivery of [`BODY`].
fn case(kitopay: bool) -> (Verifier, Vec<(String, String)>) {
    let at = Timestamp::from_unix_secs(1_601_234_567).unwrap();
    let clock = FixedClock::new(at);
    let url = CanonicalUrl::parse("https://shop.example.com/webhooks/kitopay").unwrap();
    let forge = |signed: countersign::SignedRequest<'_>| -> Vec<(String, String)> {
        let signature = signed.signature_value().to_owned();
        signed
            .headers()
            .map(|(k, v)| {
                let v = if v == signature {
                    "0".repeat(64)
                } else {
                    v.to_owned()
                };
                (k.to_owned(), v)
            })
            .collect()
    };
    let (verifier, headers) = if kitopay {
        let signer = Signer::kitopay_webhook(MERCHANT, SecretKey::new(SECRET).unwrap()).unwrap();
        let request = SignableRequest::new("POST", &url, BODY.as_bytes()).unwrap();
        let verifier =
            Verifier::kitopay_webhook(MERCHANT, SecretKey::new(SECRET).unwrap(), url.clone())
                .unwrap();
        (verifier, forge(signer.sign(&request, at).unwrap()))
    } else {
        let signer = Signer::kamiokash_webhook(SecretKey::new(SECRET).unwrap());
        let verifier = Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap());
        let request = SignableRequest::body(BODY.as_bytes());
        (verifier, forge(signer.sign(&request, at).unwrap()))
    };
    (verifier.with_clock(clock), headers)
}

fn refused_request(c: &mut Criterion) {
    // The refusal event is recorded and formatted, to nowhere.
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(std::io::sink)
            .finish(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, kitopay) in [
        ("refused_kamiokash_webhook_290B", false),
        ("refused_kitopay_webhook_290B", true),
    ] {
        let mut group = c.benchmark_group(name);
        for (label, rate) in [
            ("not_searched", 0),
            ("searched", u32::MAX),
            ("over_budget", 1),
        ] {
            let (verifier, headers) = case(kitopay);
            let auth = WebhookAuth::new(verifier).with_diagnosis_rate(rate);
            let service =
                VerifyLayer::new(auth).layer(service_fn(|_: http::Request<Full<Bytes>>| async {
                    Ok::<_, Infallible>(http::Response::new(Full::<Bytes>::from("processed")))
                }));
            let request = || {
                let mut builder = http::Request::post("/webhooks/kitopay");
                for (k, v) in &headers {
                    builder = builder.header(k, v);
                }
                builder
                    .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                    .unwrap()
            };
            // The case is what it says: refused, and searched or not.
            let response = runtime
                .block_on(service.clone().oneshot(request()))
                .unwrap();
            assert_eq!(response.status(), 401);
            group.bench_function(label, |b| {
                b.iter(|| {
                    let response = runtime
                        .block_on(service.clone().oneshot(black_box(request())))
                        .unwrap();
                    black_box(response.status())
                });
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = refused_request
}
criterion_main!(benches);
