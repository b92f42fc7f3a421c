//! P3: signing and verifying allocate nothing, for every scheme. One test in its own binary,
//! so no other test's allocations are counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::System;

use countersign::{
    CanonicalUrl, FixedClock, KeyRing, ReceivedRequest, SecretKey, SignableRequest, Signer,
    Timestamp, Verifier,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Runs `f` and returns how many allocations it made.
fn allocations<R>(f: impl FnOnce() -> R) -> usize {
    let region = Region::new(GLOBAL);
    let result = f();
    let change = region.change();
    drop(result);
    change.allocations + change.reallocations
}

#[test]
fn sign_and_verify_allocate_nothing() {
    let at = Timestamp::from_unix_millis(1_769_505_786_658).unwrap();
    let url = CanonicalUrl::parse("https://api.example.com/v1/payins/?page=2").unwrap();
    let body = br#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"}}"#.to_vec();
    let request = SignableRequest::new("POST", &url, &body).unwrap();
    let simple = SignableRequest::simplified("GET", "tx-1").unwrap();
    let standard = SignableRequest::body(&body).with_value("id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
    let whsec = |b: u8| {
        use base64::Engine as _;
        let text = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([b; 24])
        );
        countersign::standard_webhooks::SCHEME.key(&text).unwrap()
    };

    let kitopay = Signer::kitopay("merchant-1", SecretKey::new("s1").unwrap()).unwrap();
    let webhook = Signer::kitopay_webhook("merchant-1", SecretKey::new("s1").unwrap()).unwrap();
    let simplified =
        Signer::kitopay_simplified("merchant-1", SecretKey::new("s1").unwrap()).unwrap();
    let kamio = Signer::kamiokash("pk", SecretKey::new("s2").unwrap()).unwrap();
    let kamio_hook = Signer::kamiokash_webhook(SecretKey::new("s3").unwrap());
    let standard_hook = Signer::standard_webhooks(whsec(4));

    let cases: [(&Signer, &SignableRequest<'_>); 6] = [
        (&kitopay, &request),
        (&webhook, &request),
        (&simplified, &simple),
        (&kamio, &request),
        (&kamio_hook, &request),
        (&standard_hook, &standard),
    ];
    for (signer, req) in cases {
        let n = allocations(|| {
            let signed = signer.sign(req, at).unwrap();
            let mut total = 0;
            for (name, value) in signed.headers() {
                total += name.len() + value.len();
            }
            total
        });
        assert_eq!(n, 0, "{:?} sign allocated", signer.scheme());
    }

    // Streaming.
    let n = allocations(|| {
        let mut stream = kitopay
            .begin(&SignableRequest::new("PUT", &url, b"").unwrap(), at)
            .unwrap();
        for chunk in body.chunks(7) {
            stream.update(chunk);
        }
        *stream.finish().signature()
    });
    assert_eq!(n, 0, "streaming allocated");
    let n = allocations(|| {
        let mut stream = kamio.begin(&SignableRequest::body(b""), at).unwrap();
        stream.update(&body);
        *stream.finish().signature()
    });
    assert_eq!(n, 0, "kamiokash streaming allocated");

    // Verification, every scheme, with rotation and trailing-slash tolerance on.
    let clock = FixedClock::new(at);
    let ring = |secret: &str| {
        KeyRing::new("old", SecretKey::new("retired").unwrap())
            .with("new", SecretKey::new(secret).unwrap())
    };
    let verifiers = [
        (
            Verifier::kitopay_request("merchant-1", ring("s1"))
                .unwrap()
                .with_clock(clock),
            &kitopay as &Signer,
            &request,
        ),
        (
            Verifier::kitopay_webhook(
                "merchant-1",
                ring("s1"),
                CanonicalUrl::parse("https://api.example.com/v1/payins?page=2").unwrap(),
            )
            .unwrap()
            .with_trailing_slash_tolerance(true)
            .with_clock(clock),
            &webhook,
            &request,
        ),
        (
            Verifier::kitopay_simplified("merchant-1", ring("s1"))
                .unwrap()
                .with_clock(clock),
            &simplified,
            &simple,
        ),
        (
            Verifier::kamiokash_request(ring("s2"))
                .with_api_key("pk")
                .unwrap()
                .with_clock(clock),
            &kamio,
            &request,
        ),
        (
            Verifier::standard_webhooks(KeyRing::new("old", whsec(9)).with("new", whsec(4)))
                .with_clock(clock),
            &standard_hook,
            &standard,
        ),
        (
            Verifier::kamiokash_webhook(ring("s3")).with_clock(clock),
            &kamio_hook,
            &request,
        ),
    ];
    for (verifier, signer, req) in &verifiers {
        let signed = signer.sign(req, at).unwrap();
        let headers: Vec<(&str, &str)> = signed.headers().collect();
        let received = ReceivedRequest::new(&headers, req.body_bytes())
            .with_method(req.method().unwrap_or("POST"))
            .with_url(&url)
            .with_transaction_id("tx-1");
        let n = allocations(|| verifier.verify(&received).map(|v| v.key_id().len()));
        assert_eq!(n, 0, "{:?} verify allocated", verifier.scheme());
        assert_eq!(verifier.verify(&received).unwrap().key_id(), "new");
        // Rejections do not allocate either.
        let tampered = ReceivedRequest::new(&headers, b"{}")
            .with_method(req.method().unwrap_or("POST"))
            .with_url(&url)
            .with_transaction_id("tx-2");
        let n = allocations(|| verifier.verify(&tampered).is_err());
        assert_eq!(n, 0, "{:?} rejection allocated", verifier.scheme());
    }

    // Parsing an already-canonical URL allocates exactly its one string.
    let n =
        allocations(|| CanonicalUrl::parse("https://api.example.com/v1/payins/?page=2").unwrap());
    assert_eq!(n, 1);
}
