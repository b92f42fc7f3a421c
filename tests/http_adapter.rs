//! The `http` feature: signing rewrites the URI and sets sensitive headers; verifying reads
//! headers, body, method and (for requests) the URI.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign::http::{SignOptions, sign_request, sign_request_with, verify_request};
use countersign::{
    CanonicalUrl, ErrorKind, FixedClock, SecretKey, Signer, Timestamp, TrailingSlash, Verifier,
};

fn at() -> Timestamp {
    Timestamp::from_unix_secs(1_601_234_567).unwrap()
}

#[test]
fn docs_payin_over_http_matches_the_vector() {
    let signer = Signer::kitopay(
        "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148",
        SecretKey::new("dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9")
            .unwrap(),
    )
    .unwrap();
    let body = br#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"},"customer":{"id":"1","first_name":"John","last_name":"Doe"}}"#;
    let mut request =
        http::Request::post("https://API.dev.kitopay.com:443/api/v1/merchants/payins/#x")
            .body(body.to_vec())
            .unwrap();
    let sig = sign_request(&signer, &mut request, at()).unwrap();
    assert_eq!(
        sig.to_string(),
        "656b4d8be9283517dd5e521f157ab52fbe187cd6cbda197a3af1e58958d41f5c"
    );
    assert_eq!(
        request.uri(),
        "https://api.dev.kitopay.com/api/v1/merchants/payins/"
    );
    let h = request.headers();
    assert_eq!(
        h["x-merchant-id"],
        "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148"
    );
    assert_eq!(h["x-timestamp"], "1601234567");
    assert!(h["x-signature"].is_sensitive());
    assert!(!h["x-timestamp"].is_sensitive());
    assert!(!format!("{request:?}").contains("656b4d8b"));
}

#[test]
fn trailing_slash_policy_rewrites_what_is_sent() {
    let signer = Signer::kitopay("m", SecretKey::new("s").unwrap()).unwrap();
    let mut request = http::Request::get("https://api.example.com/a/?q=1")
        .body(Vec::<u8>::new())
        .unwrap();
    let options = SignOptions {
        trailing_slash: TrailingSlash::Strip,
        ..SignOptions::default()
    };
    sign_request_with(&signer, &mut request, at(), options).unwrap();
    assert_eq!(request.uri(), "https://api.example.com/a?q=1");
    let verifier = Verifier::kitopay_request("m", SecretKey::new("s").unwrap())
        .unwrap()
        .with_clock(FixedClock::new(at()));
    assert!(verify_request(&verifier, &request).is_ok());
}

#[test]
fn round_trip_for_each_request_scheme_and_tamper_detection() {
    let kamio = Signer::kamiokash("pk", SecretKey::new("sk").unwrap()).unwrap();
    let mut request = http::Request::post("https://api.kamiokash.test/wallets")
        .body(b"{\"a\":1}".to_vec())
        .unwrap();
    sign_request(&kamio, &mut request, at()).unwrap();
    assert_eq!(request.headers()["x-api-key"], "pk");
    let verifier = Verifier::kamiokash_request(SecretKey::new("sk").unwrap())
        .with_clock(FixedClock::new(at()));
    assert!(verify_request(&verifier, &request).is_ok());
    *request.body_mut() = b"{\"a\":2}".to_vec();
    assert_eq!(
        verify_request(&verifier, &request).unwrap_err().into_kind(),
        ErrorKind::SignatureMismatch
    );

    let simple = Signer::kitopay_simplified("m", SecretKey::new("s").unwrap()).unwrap();
    let mut request = http::Request::get("https://api.kitopay.test/v1/payins/tx-9")
        .body(Vec::<u8>::new())
        .unwrap();
    let options = SignOptions {
        transaction_id: Some("tx-9"),
        ..SignOptions::default()
    };
    sign_request_with(&simple, &mut request, at(), options).unwrap();
    assert!(request.headers()["x-simplified-signature"].is_sensitive());
}

#[test]
fn kitopay_webhook_uses_the_configured_public_url_not_the_request_uri() {
    let public = CanonicalUrl::parse("https://shop.example.com/hooks/kitopay").unwrap();
    let signer = Signer::kitopay_webhook("m", SecretKey::new("s").unwrap()).unwrap();
    let mut sent = http::Request::post(public.as_str())
        .body(b"{}".to_vec())
        .unwrap();
    sign_request(&signer, &mut sent, at()).unwrap();
    // Behind a proxy the server sees another scheme, host and port.
    let mut received = http::Request::post("http://10.0.0.7:8080/hooks/kitopay")
        .body(b"{}".to_vec())
        .unwrap();
    *received.headers_mut() = sent.headers().clone();
    let verifier = Verifier::kitopay_webhook("m", SecretKey::new("s").unwrap(), public)
        .unwrap()
        .with_clock(FixedClock::new(at()));
    assert!(verify_request(&verifier, &received).is_ok());
}

#[test]
fn non_http_uri_is_rejected_before_signing() {
    let signer = Signer::kitopay("m", SecretKey::new("s").unwrap()).unwrap();
    let mut request = http::Request::get("/relative")
        .body(Vec::<u8>::new())
        .unwrap();
    let err = sign_request(&signer, &mut request, at()).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidUrl(_)));
    assert!(request.headers().is_empty());
}

#[test]
fn verify_request_refuses_a_uri_that_is_not_exactly_canonical() {
    // A signature for /v1/refunds must not verify on a URI a router dispatches elsewhere.
    let signer = Signer::kitopay("m", SecretKey::new("s").unwrap()).unwrap();
    let mut signed = http::Request::post("https://api.example.com/v1/refunds")
        .body(b"{}".to_vec())
        .unwrap();
    sign_request(&signer, &mut signed, at()).unwrap();
    let verifier = Verifier::kitopay_request("m", SecretKey::new("s").unwrap())
        .unwrap()
        .with_clock(FixedClock::new(at()));
    assert!(verify_request(&verifier, &signed).is_ok());
    for uri in [
        "https://api.example.com/v1/payouts/../refunds",
        "https://api.example.com/v1/payouts/%2e%2e/refunds",
        "https://api.example.com/v1/payouts/%2E%2E/refunds",
        "https://api.example.com/v1/./refunds",
        "https://api.example.com:443/v1/refunds",
        "https://API.example.com/v1/refunds",
        "https://api.example.com/v1/refunds?",
    ] {
        let mut request = http::Request::post(uri).body(b"{}".to_vec()).unwrap();
        *request.headers_mut() = signed.headers().clone();
        assert_eq!(
            verify_request(&verifier, &request).unwrap_err().kind(),
            &ErrorKind::InvalidUrl(countersign::UrlRule::NotCanonical),
            "{uri}"
        );
    }
}
