//! Verifier behaviour: every error kind, key rotation, trailing-slash tolerance, the clock,
//! timestamps at and beyond the representable edges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use countersign::ReplayGuard;
use countersign::{
    CanonicalUrl, Clock, ErrorKind, FixedClock, Freshness, KeyRing, ReceivedRequest, SecretKey,
    SignableRequest, Signer, Timestamp, UrlRule, Verifier,
};
use countersign_test_support::clock::Moving;
use countersign_test_support::sign;
use countersign_test_support::sign::headers as owned;

const MERCHANT: &str = "merchant-1";
const SECRET: &str = "s3cret";

fn at() -> Timestamp {
    Timestamp::from_unix_secs(1_601_234_567).unwrap()
}

fn key(s: &str) -> SecretKey {
    SecretKey::new(s).unwrap()
}

fn webhook_url() -> CanonicalUrl {
    CanonicalUrl::parse("https://shop.example.com/hooks/kitopay").unwrap()
}

fn kitopay_delivery(secret: &str, url: &CanonicalUrl, body: &[u8]) -> Vec<(String, String)> {
    sign::kitopay_webhook(MERCHANT, secret, url.as_str(), body, at())
}

fn kitopay_verifier() -> Verifier {
    Verifier::kitopay_webhook(MERCHANT, key(SECRET), webhook_url())
        .unwrap()
        .with_clock(FixedClock::new(at()))
}

/// A Kitopay webhook verifier reading `clock`, claiming through `guard`.
fn kitopay_webhook_verifier(clock: Moving, guard: ReplayGuard) -> Verifier {
    Verifier::kitopay_webhook(MERCHANT, key(SECRET), webhook_url())
        .unwrap()
        .with_clock(clock)
        .with_replay_guard(guard)
}

fn kind_of(verifier: &Verifier, headers: &[(String, String)], body: &[u8]) -> ErrorKind {
    verifier
        .verify(&ReceivedRequest::new(&headers, body))
        .unwrap_err()
        .into_kind()
}

fn with_header(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case(name) {
                (k.clone(), value.to_owned())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

fn without_header(headers: &[(String, String)], name: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
        .cloned()
        .collect()
}

#[test]
fn valid_delivery_verifies_with_header_names_in_any_case() {
    let headers = kitopay_delivery(SECRET, &webhook_url(), b"{}");
    let upper: Vec<_> = headers
        .iter()
        .map(|(k, v)| (k.to_uppercase(), v.clone()))
        .collect();
    let v = kitopay_verifier();
    assert_eq!(
        v.verify(&ReceivedRequest::new(&upper, b"{}"))
            .unwrap()
            .key_id(),
        "primary"
    );
}

#[test]
fn each_missing_header_is_named() {
    let headers = kitopay_delivery(SECRET, &webhook_url(), b"{}");
    for name in ["x-timestamp", "x-signature", "x-merchant-id"] {
        assert_eq!(
            kind_of(&kitopay_verifier(), &without_header(&headers, name), b"{}"),
            ErrorKind::MissingHeader(name)
        );
    }
}

#[test]
fn identity_mismatch() {
    let headers = with_header(
        &kitopay_delivery(SECRET, &webhook_url(), b"{}"),
        "x-merchant-id",
        "other",
    );
    assert_eq!(
        kind_of(&kitopay_verifier(), &headers, b"{}"),
        ErrorKind::IdentityMismatch("x-merchant-id")
    );

    let signer = Signer::kamiokash("pk_1", key(SECRET)).unwrap();
    let headers = owned(&signer.sign(&SignableRequest::body(b"{}"), at()).unwrap());
    let v = Verifier::kamiokash_request(key(SECRET))
        .with_api_key("pk_2")
        .unwrap()
        .with_clock(FixedClock::new(at()));
    assert_eq!(
        kind_of(&v, &headers, b"{}"),
        ErrorKind::IdentityMismatch("X-API-Key")
    );
}

#[test]
fn malformed_timestamp_and_signature() {
    let headers = kitopay_delivery(SECRET, &webhook_url(), b"{}");
    for bad in ["", "1601234567.0", " 1601234567", "+1", "abc"] {
        let h = with_header(&headers, "x-timestamp", bad);
        assert!(
            matches!(
                kind_of(&kitopay_verifier(), &h, b"{}"),
                ErrorKind::MalformedTimestamp { .. }
            ),
            "{bad:?}"
        );
    }
    for bad in [
        "",
        "00",
        &"g".repeat(64),
        &"a".repeat(63),
        &"a".repeat(65),
        &"é".repeat(32),
    ] {
        let h = with_header(&headers, "x-signature", bad);
        assert!(
            matches!(
                kind_of(&kitopay_verifier(), &h, b"{}"),
                ErrorKind::MalformedSignature { .. }
            ),
            "{bad:?}"
        );
    }
    // Non-UTF-8 timestamp bytes are malformed, not a panic.
    let raw: Vec<(&str, &[u8])> = vec![
        ("x-merchant-id", MERCHANT.as_bytes()),
        ("x-timestamp", b"\xff\xfe"),
        ("x-signature", &[b'a'; 64]),
    ];
    let err = kitopay_verifier()
        .verify(&ReceivedRequest::new(&raw, b"{}"))
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::MalformedTimestamp { .. }));
}

#[test]
fn timestamps_at_and_beyond_the_representable_edges_never_panic() {
    let now = Timestamp::MAX;
    let kamio = Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap())
        .with_clock(FixedClock::new(now));
    let kito = kitopay_webhook_verifier(Moving::new(now), ReplayGuard::in_memory(10));
    let sig = "ab".repeat(32);
    let long_digits = "9".repeat(10_000);
    let long_fraction = format!("9999-12-31T23:59:59.{}Z", "9".repeat(10_000));
    for ts in [
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T23:59:59.9999999999Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:59:59-23:59",
        "0000-01-01T00:00:00Z",
        "0000-01-01T00:00:00+23:59",
        "1970-01-01T00:00:00+00:01",
        "0000-02-29T00:00:00Z",
        "9999-02-29T00:00:00Z",
        "2026-01-27T09:23:07.001Z\0",
        "2026-01-27T09:23:07.Z",
        "2026-01-27T24:00:00Z",
        "2026-01-27T23:59:60Z",
        "253402300799",
        "253402300800",
        "253402300799999",
        "253402300800000",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "",
        "-1",
        "+1601234567",
        "0",
        "00",
        long_digits.as_str(),
        long_fraction.as_str(),
    ] {
        for verifier in [&kamio, &kito] {
            let headers = [
                ("X-Timestamp", ts),
                ("X-Kamio-Signature", sig.as_str()),
                ("x-signature", sig.as_str()),
                ("x-merchant-id", MERCHANT),
            ];
            let result = verifier.verify(&ReceivedRequest::new(&headers, b"{}"));
            assert!(result.is_err(), "{ts:?} verified with a made-up signature");
        }
    }
}

#[test]
fn uppercase_hex_signature_is_the_same_signature() {
    let headers = kitopay_delivery(SECRET, &webhook_url(), b"{}");
    let sig = headers
        .iter()
        .find(|(k, _)| k == "x-signature")
        .unwrap()
        .1
        .to_uppercase();
    let h = with_header(&headers, "x-signature", &sig);
    assert!(
        kitopay_verifier()
            .verify(&ReceivedRequest::new(&h, b"{}"))
            .is_ok()
    );
}

#[test]
fn expired_and_future_carry_distance_and_window() {
    let headers = kitopay_delivery(SECRET, &webhook_url(), b"{}");
    let later = kitopay_verifier().with_clock(FixedClock::new(
        Timestamp::from_unix_secs(1_601_234_567 + 61).unwrap(),
    ));
    assert_eq!(
        kind_of(&later, &headers, b"{}"),
        ErrorKind::Expired {
            age: Duration::from_secs(61),
            max_age: Duration::from_secs(60)
        }
    );
    let earlier = kitopay_verifier().with_clock(FixedClock::new(
        Timestamp::from_unix_secs(1_601_234_567 - 61).unwrap(),
    ));
    assert_eq!(
        kind_of(&earlier, &headers, b"{}"),
        ErrorKind::Future {
            ahead: Duration::from_secs(61),
            max_future: Duration::from_secs(60)
        }
    );
    // Exactly 60 s either way is fresh, and Kitopay compares whole seconds.
    let edge = Timestamp::from_duration(Duration::new(1_601_234_567 + 60, 999_000_000)).unwrap();
    assert!(
        kitopay_verifier()
            .with_clock(FixedClock::new(edge))
            .verify(&ReceivedRequest::new(&headers, b"{}"))
            .is_ok()
    );
    // A custom window.
    let tight = kitopay_verifier()
        .with_freshness(Freshness {
            max_age: Duration::from_secs(5),
            max_future: Duration::ZERO,
        })
        .with_clock(FixedClock::new(
            Timestamp::from_unix_secs(1_601_234_567 + 6).unwrap(),
        ));
    assert!(matches!(
        kind_of(&tight, &headers, b"{}"),
        ErrorKind::Expired { .. }
    ));
}

#[test]
fn freshness_is_checked_before_the_signature() {
    let headers = with_header(
        &kitopay_delivery(SECRET, &webhook_url(), b"{}"),
        "x-signature",
        &"0".repeat(64),
    );
    let later = kitopay_verifier().with_clock(FixedClock::new(
        Timestamp::from_unix_secs(1_601_234_567 + 600).unwrap(),
    ));
    assert!(matches!(
        kind_of(&later, &headers, b"{}"),
        ErrorKind::Expired { .. }
    ));
    assert_eq!(
        kind_of(&kitopay_verifier(), &headers, b"{}"),
        ErrorKind::SignatureMismatch
    );
}

#[test]
fn signature_mismatch_message_leaks_nothing() {
    let headers = kitopay_delivery("wrong secret", &webhook_url(), b"{}");
    let err = kitopay_verifier()
        .verify(&ReceivedRequest::new(&headers, b"{}"))
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::SignatureMismatch);
    let text = format!("{err} {err:?}");
    let url = webhook_url();
    let request = SignableRequest::new("POST", &url, b"{}").unwrap();
    let expected = countersign::StringToSign::new(
        &countersign::kitopay::WEBHOOK,
        Some(MERCHANT),
        "1601234567",
        &request,
    )
    .unwrap()
    .sign(&key(SECRET))
    .to_string();
    assert!(!text.contains(&expected[..16]));
    assert!(!text.contains(SECRET));
}

#[test]
fn key_rotation_reports_the_matching_key_and_a_removed_key_is_rejected() {
    let ring = || KeyRing::new("2026-10", key("old secret")).with("2026-11", key("new secret"));
    let v = Verifier::kitopay_webhook(MERCHANT, ring(), webhook_url())
        .unwrap()
        .with_clock(FixedClock::new(at()));
    for (secret, id) in [("old secret", "2026-10"), ("new secret", "2026-11")] {
        let headers = kitopay_delivery(secret, &webhook_url(), b"{}");
        assert_eq!(
            v.verify(&ReceivedRequest::new(&headers, b"{}"))
                .unwrap()
                .key_id(),
            id
        );
    }
    let mut removed = 0;
    v.keys().update(|ring| removed = ring.remove("2026-10"));
    assert_eq!(removed, 1);
    let headers = kitopay_delivery("old secret", &webhook_url(), b"{}");
    assert_eq!(kind_of(&v, &headers, b"{}"), ErrorKind::SignatureMismatch);
    v.keys().update(|ring| {
        ring.remove("2026-11");
    });
    assert_eq!(kind_of(&v, &headers, b"{}"), ErrorKind::NoKeys);
}

#[test]
fn trailing_slash_tolerance_is_opt_in_and_reported() {
    let with_slash = CanonicalUrl::parse("https://shop.example.com/hooks/kitopay/").unwrap();
    let headers = kitopay_delivery(SECRET, &with_slash, b"{}");
    assert_eq!(
        kind_of(&kitopay_verifier(), &headers, b"{}"),
        ErrorKind::SignatureMismatch
    );
    let tolerant = kitopay_verifier().with_trailing_slash_tolerance(true);
    let verified = tolerant
        .verify(&ReceivedRequest::new(&headers, b"{}"))
        .unwrap();
    assert!(verified.trailing_slash_toggled());
    // Exact matches are not reported as toggled.
    let exact = kitopay_delivery(SECRET, &webhook_url(), b"{}");
    assert!(
        !tolerant
            .verify(&ReceivedRequest::new(&exact, b"{}"))
            .unwrap()
            .trailing_slash_toggled()
    );
    // Tolerance does not extend to other URL changes.
    let other = CanonicalUrl::parse("https://shop.example.com/hooks/kitopay2").unwrap();
    let headers = kitopay_delivery(SECRET, &other, b"{}");
    assert_eq!(
        kind_of(&tolerant, &headers, b"{}"),
        ErrorKind::SignatureMismatch
    );
}

#[test]
fn kitopay_request_verifier_needs_url_and_method_from_the_request() {
    let url = CanonicalUrl::parse("https://api.kitopay.test/v1/payins?x=1").unwrap();
    let signer = Signer::kitopay(MERCHANT, key(SECRET)).unwrap();
    let headers = owned(
        &signer
            .sign(&SignableRequest::new("PATCH", &url, b"{}").unwrap(), at())
            .unwrap(),
    );
    let v = Verifier::kitopay_request(MERCHANT, key(SECRET))
        .unwrap()
        .with_clock(FixedClock::new(at()));
    let full = ReceivedRequest::new(&headers, b"{}")
        .with_method("PATCH")
        .with_url(&url);
    assert!(v.verify(&full).is_ok());
    assert_eq!(
        v.verify(&ReceivedRequest::new(&headers, b"{}").with_method("PATCH"))
            .unwrap_err()
            .into_kind(),
        ErrorKind::MissingUrl
    );
    assert_eq!(
        v.verify(&ReceivedRequest::new(&headers, b"{}").with_url(&url))
            .unwrap_err()
            .into_kind(),
        ErrorKind::InvalidMethod
    );
    assert_eq!(
        v.verify(&full.with_method("POST")).unwrap_err().into_kind(),
        ErrorKind::SignatureMismatch
    );
    // Only the standard upper-case methods: no byte can move between method and URL.
    for method in ["BAD METHOD", "patch", "PURGE", "PATCHh", "GETt", ""] {
        assert_eq!(
            v.verify(&full.with_method(method)).unwrap_err().into_kind(),
            ErrorKind::InvalidMethod,
            "{method:?}"
        );
    }
    // A body on GET/HEAD is refused unless allowed.
    for method in ["GET", "HEAD"] {
        assert_eq!(
            v.verify(&full.with_method(method)).unwrap_err().into_kind(),
            ErrorKind::BodyNotAllowed(method)
        );
    }
    let lenient = Verifier::kitopay_request(MERCHANT, key(SECRET))
        .unwrap()
        .with_clock(FixedClock::new(at()))
        .with_body_on_get(true);
    assert_eq!(
        lenient
            .verify(&full.with_method("GET"))
            .unwrap_err()
            .into_kind(),
        ErrorKind::SignatureMismatch
    );
}

#[test]
fn the_field_boundary_attacks_of_the_review_are_refused() {
    // A signed `GET …?amount=1000` with an empty body must not verify as `…?amount=10`
    // with body `00`.
    let signed_url =
        CanonicalUrl::parse("https://api.kitopay.test/v1/payouts?amount=1000").unwrap();
    let moved_url = CanonicalUrl::parse("https://api.kitopay.test/v1/payouts?amount=10").unwrap();
    let signer = Signer::kitopay(MERCHANT, key(SECRET)).unwrap();
    let headers = owned(
        &signer
            .sign(
                &SignableRequest::new("GET", &signed_url, b"").unwrap(),
                at(),
            )
            .unwrap(),
    );
    let v = Verifier::kitopay_request(MERCHANT, key(SECRET))
        .unwrap()
        .with_clock(FixedClock::new(at()));
    let moved = ReceivedRequest::new(&headers, b"00")
        .with_method("GET")
        .with_url(&moved_url);
    assert_eq!(
        v.verify(&moved).unwrap_err().into_kind(),
        ErrorKind::BodyNotAllowed("GET")
    );
    // With the opt-in, the ambiguity is back: the documented residual risk.
    assert!(v.with_body_on_get(true).verify(&moved).is_ok());

    // Simplified: `GET` + `tx-123` must not verify as `GETt` + `x-123`.
    let simplified = Signer::kitopay_simplified(MERCHANT, key(SECRET)).unwrap();
    let headers = owned(
        &simplified
            .sign(&SignableRequest::simplified("GET", "tx-123").unwrap(), at())
            .unwrap(),
    );
    let v = Verifier::kitopay_simplified(MERCHANT, key(SECRET))
        .unwrap()
        .with_clock(FixedClock::new(at()));
    let honest = ReceivedRequest::new(&headers, b"")
        .with_method("GET")
        .with_transaction_id("tx-123");
    assert!(v.verify(&honest).is_ok());
    let shifted = ReceivedRequest::new(&headers, b"")
        .with_method("GETt")
        .with_transaction_id("x-123");
    assert_eq!(
        v.verify(&shifted).unwrap_err().into_kind(),
        ErrorKind::InvalidMethod
    );
}

#[test]
fn duplicate_headers_are_refused_by_every_lookup() {
    let url = webhook_url();
    let headers = kitopay_delivery(SECRET, &url, b"{}");
    let v = kitopay_verifier();
    assert!(v.verify(&ReceivedRequest::new(&headers, b"{}")).is_ok());
    for name in ["x-signature", "x-timestamp", "x-merchant-id"] {
        // A second value in another spelling (the slice lookup preferred the exact one).
        let mut twice = headers.clone();
        twice.push((name.to_ascii_uppercase(), "other".to_owned()));
        assert_eq!(
            v.verify(&ReceivedRequest::new(&twice, b"{}"))
                .unwrap_err()
                .into_kind(),
            ErrorKind::DuplicateHeader(match name {
                "x-signature" => "x-signature",
                "x-timestamp" => "x-timestamp",
                _ => "x-merchant-id",
            }),
            "{name}"
        );
        // The same through http::HeaderMap (which used to take the first).
        let mut map = http::HeaderMap::new();
        for (k, v) in &twice {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        assert_eq!(
            v.verify(&ReceivedRequest::new(&map, b"{}"))
                .unwrap_err()
                .into_kind(),
            ErrorKind::DuplicateHeader(match name {
                "x-signature" => "x-signature",
                "x-timestamp" => "x-timestamp",
                _ => "x-merchant-id",
            })
        );
    }
    // KamioKash: two X-Kamio-Signature values, and two X-API-Key values.
    let at = Timestamp::parse_rfc3339("2026-01-27T09:23:07.001Z").unwrap();
    let webhook = Verifier::kamiokash_webhook(key("whsec")).with_clock(FixedClock::new(at));
    let webhook_signer = Signer::kamiokash_webhook(key("whsec"));
    let signed = webhook_signer
        .sign(&SignableRequest::body(b"{}"), at)
        .unwrap();
    let mut twice = owned(&signed);
    twice.push(("x-kamio-signature".into(), "0".repeat(64)));
    assert_eq!(
        webhook
            .verify(&ReceivedRequest::new(&twice, b"{}"))
            .unwrap_err()
            .into_kind(),
        ErrorKind::DuplicateHeader("X-Kamio-Signature")
    );
    let request = Verifier::kamiokash_request(key("sk"))
        .with_api_key("pk_1")
        .unwrap()
        .with_clock(FixedClock::new(at));
    let request_signer = countersign::Signer::kamiokash("pk_1", key("sk")).unwrap();
    let signed = request_signer
        .sign(&SignableRequest::body(b"{}"), at)
        .unwrap();
    let mut twice = owned(&signed);
    twice.push(("x-api-key".into(), "pk_1".into()));
    assert_eq!(
        request
            .verify(&ReceivedRequest::new(&twice, b"{}"))
            .unwrap_err()
            .into_kind(),
        ErrorKind::DuplicateHeader("X-API-Key")
    );
    // Maps keyed by name: case-insensitive duplicates too.
    let map: std::collections::HashMap<String, String> = owned(&signed)
        .into_iter()
        .chain([("X-Api-Key".to_owned(), "pk_2".to_owned())])
        .collect();
    assert_eq!(
        request
            .verify(&ReceivedRequest::new(&map, b"{}"))
            .unwrap_err()
            .into_kind(),
        ErrorKind::DuplicateHeader("X-API-Key")
    );
    let single: std::collections::BTreeMap<String, String> = owned(&signed).into_iter().collect();
    assert!(
        request
            .verify(&ReceivedRequest::new(&single, b"{}"))
            .is_ok()
    );
}

#[test]
fn simplified_verifier_needs_the_transaction_id() {
    let signer = Signer::kitopay_simplified(MERCHANT, key(SECRET)).unwrap();
    let headers = owned(
        &signer
            .sign(&SignableRequest::simplified("GET", "tx-1").unwrap(), at())
            .unwrap(),
    );
    assert_eq!(
        headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["x-merchant-id", "x-timestamp", "x-simplified-signature"]
    );
    let v = Verifier::kitopay_simplified(MERCHANT, key(SECRET))
        .unwrap()
        .with_clock(FixedClock::new(at()));
    let r = ReceivedRequest::new(&headers, b"").with_method("GET");
    assert_eq!(
        v.verify(&r).unwrap_err().into_kind(),
        ErrorKind::MissingField("transaction_id")
    );
    assert!(v.verify(&r.with_transaction_id("tx-1")).is_ok());
    assert_eq!(
        v.verify(&r.with_transaction_id("tx-2"))
            .unwrap_err()
            .into_kind(),
        ErrorKind::SignatureMismatch
    );
}

#[test]
fn signer_errors() {
    let url = CanonicalUrl::parse("https://api.kitopay.test/").unwrap();
    assert_eq!(
        SignableRequest::new("", &url, b"").unwrap_err().into_kind(),
        ErrorKind::InvalidMethod
    );
    assert_eq!(
        SignableRequest::new("GE T", &url, b"")
            .unwrap_err()
            .into_kind(),
        ErrorKind::InvalidMethod
    );
    let full = Signer::kitopay(MERCHANT, key(SECRET)).unwrap();
    assert_eq!(
        full.sign(&SignableRequest::body(b""), at())
            .unwrap_err()
            .into_kind(),
        ErrorKind::InvalidMethod
    );
    assert_eq!(
        full.sign(&SignableRequest::simplified("GET", "t").unwrap(), at())
            .unwrap_err()
            .into_kind(),
        ErrorKind::MissingUrl
    );
    let simple = Signer::kitopay_simplified(MERCHANT, key(SECRET)).unwrap();
    assert_eq!(
        simple
            .sign(&SignableRequest::new("GET", &url, b"").unwrap(), at())
            .unwrap_err()
            .into_kind(),
        ErrorKind::MissingField("transaction_id")
    );
    assert_eq!(
        SecretKey::new("").unwrap_err().into_kind(),
        ErrorKind::EmptySecret
    );
    assert_eq!(
        Signer::kitopay("a\r\nb", key(SECRET))
            .unwrap_err()
            .into_kind(),
        ErrorKind::InvalidHeaderValue("x-merchant-id")
    );
    assert_eq!(
        Signer::kamiokash("", key(SECRET)).unwrap_err().into_kind(),
        ErrorKind::InvalidHeaderValue("X-API-Key")
    );
    assert_eq!(
        Timestamp::from_unix_secs(253_402_300_800)
            .unwrap_err()
            .code(),
        "malformed_timestamp"
    );
    assert_eq!(
        CanonicalUrl::parse("mailto:a@b.c").unwrap_err().into_kind(),
        ErrorKind::InvalidUrl(UrlRule::Scheme)
    );
    assert_eq!(
        CanonicalUrl::parse("https://").unwrap_err().into_kind(),
        ErrorKind::InvalidUrl(UrlRule::Syntax)
    );
}

#[test]
fn every_error_message_is_lowercase_and_actionable() {
    let kinds = [
        ErrorKind::MalformedTimestamp { reason: "x" },
        ErrorKind::Expired {
            age: Duration::from_secs(61),
            max_age: Duration::from_secs(60),
        },
        ErrorKind::Future {
            ahead: Duration::from_secs(61),
            max_future: Duration::from_secs(60),
        },
        ErrorKind::SignatureMismatch,
        ErrorKind::MalformedSignature { reason: "x" },
        ErrorKind::MissingHeader("x-signature"),
        ErrorKind::InvalidHeaderValue("x-merchant-id"),
        ErrorKind::IdentityMismatch("x-merchant-id"),
        ErrorKind::InvalidUrl(UrlRule::Syntax),
        ErrorKind::InvalidUrl(UrlRule::Relative),
        ErrorKind::InvalidUrl(UrlRule::Scheme),
        ErrorKind::InvalidUrl(UrlRule::Credentials),
        ErrorKind::InvalidUrl(UrlRule::NotCanonical),
        ErrorKind::InvalidUrl(UrlRule::Host),
        ErrorKind::MissingUrl,
        ErrorKind::InvalidMethod,
        ErrorKind::MissingField("transaction_id"),
        ErrorKind::EmptySecret,
        ErrorKind::NoKeys,
        ErrorKind::UnknownName {
            what: "scheme",
            expected: "a, b",
        },
        ErrorKind::Replayed(countersign::ClaimState::Done),
        ErrorKind::Replayed(countersign::ClaimState::InFlight),
        ErrorKind::DuplicateHeader("x-signature"),
        ErrorKind::BodyNotAllowed("GET"),
        ErrorKind::ReplayGuardUnavailable("timeout".into()),
        ErrorKind::UnbufferedBody,
        ErrorKind::BodyTooLarge {
            limit: 1 << 20,
            declared: None,
        },
        ErrorKind::BodyTimeout {
            timeout: Duration::from_secs(10),
        },
        ErrorKind::BodyUnreadable("connection reset".into()),
    ];
    let mut codes = std::collections::HashSet::new();
    for kind in kinds {
        let text = countersign::Error::from(kind.clone()).to_string();
        assert!(text.chars().next().unwrap().is_lowercase(), "{text}");
        assert!(text.len() > 20, "{text}");
        codes.insert(kind.code());
    }
    assert_eq!(
        codes.len(),
        23,
        "codes are distinct per class (the url rules share one, so do the claim states)"
    );
}

#[test]
fn system_clock_and_fixed_clock() {
    let now = countersign::SystemClock.now();
    assert!(now.unix_secs() > 1_763_000_000);
    assert_eq!(FixedClock::new(at()).now(), at());
    // Verifying against the real clock: a timestamp signed now is fresh.
    let signer = Signer::kamiokash_webhook(key(SECRET));
    let headers = owned(
        &signer
            .sign(
                &SignableRequest::body(b"{}"),
                countersign::SystemClock.now(),
            )
            .unwrap(),
    );
    assert!(
        Verifier::kamiokash_webhook(key(SECRET))
            .verify(&ReceivedRequest::new(&headers, b"{}"))
            .is_ok()
    );
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Verifier>();
    check::<SecretKey>();
    check::<KeyRing>();
    check::<Signer>();
    check::<countersign::Scheme>();
    check::<countersign::StringToSign<'static>>();
    check::<CanonicalUrl>();
    check::<countersign::Error>();
    check::<countersign::SignedRequest<'static>>();
}

#[test]
fn keys_rotate_while_deliveries_are_verified_concurrently_and_none_is_refused() {
    // Rotation of a running verifier: four threads verify deliveries signed with the old
    // or the new secret while the keys go [old] → [old, new] → [new]. A delivery signed
    // with a secret the ring holds at that moment is never refused; the swap is atomic.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};
    let v = Arc::new(
        Verifier::kitopay_webhook(
            MERCHANT,
            KeyRing::new("old", key("old secret")),
            webhook_url(),
        )
        .unwrap()
        .with_clock(FixedClock::new(at())),
    );
    let old = Arc::new(kitopay_delivery("old secret", &webhook_url(), b"{}"));
    let new = Arc::new(kitopay_delivery("new secret", &webhook_url(), b"{}"));
    // 0: [old]; 1: [old, new]; 2: old's removal announced (then done); 3: stop. A key is
    // added before its phase is published and removed after, so a reader that saw the same
    // phase range before and after a verification knows what the ring held throughout.
    let phase = Arc::new(AtomicU8::new(0));
    let keys = v.keys();
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let (v, old, new, phase) = (v.clone(), old.clone(), new.clone(), phase.clone());
            std::thread::spawn(move || {
                let mut checked = 0u32;
                while phase.load(Ordering::SeqCst) < 3 {
                    let (delivery, id) = if i % 2 == 0 {
                        (&old, "old")
                    } else {
                        (&new, "new")
                    };
                    let before = phase.load(Ordering::SeqCst);
                    let outcome = v.verify(&ReceivedRequest::new(&**delivery, b"{}"));
                    let after = phase.load(Ordering::SeqCst);
                    // The ring holds this secret throughout [before, after]: must verify.
                    let held = |p: u8| match id {
                        "old" => p <= 1,
                        _ => p >= 1,
                    };
                    if (before..=after).all(held) {
                        assert_eq!(outcome.unwrap().key_id(), id, "phase {before}..{after}");
                        checked += 1;
                    }
                }
                checked
            })
        })
        .collect();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(100));
    pause();
    keys.update(|ring| ring.add("new", key("new secret")));
    phase.store(1, Ordering::SeqCst);
    pause();
    phase.store(2, Ordering::SeqCst);
    let mut removed = 0;
    keys.update(|ring| removed = ring.remove("old"));
    assert_eq!(removed, 1);
    pause();
    phase.store(3, Ordering::SeqCst);
    let checked: u32 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(
        checked > 100,
        "only {checked} verifications overlapped the rotation"
    );
    assert_eq!(keys.ids(), ["new"]);
    assert_eq!(kind_of(&v, &old, b"{}"), ErrorKind::SignatureMismatch);
}

#[test]
fn displays_honour_width_and_fill() {
    use countersign::Signature;
    assert_eq!(
        format!("{:<20}|", countersign::kitopay::WEBHOOK),
        "kitopay-webhook     |"
    );
    assert_eq!(
        format!("{:*^11}", countersign::kamiokash::REQUEST),
        "*kamiokash*"
    );
    let sig = Signature::from_bytes([0xab; 32]);
    assert_eq!(format!("{sig:.8}"), "abababab");
    assert_eq!(format!("{:>66}", sig.to_hex()).len(), 66);
    assert_eq!(format!("{:>46}", sig.to_base64()).len(), 46);
    let text = Timestamp::from_unix_secs(7).unwrap().to_unix_text();
    assert_eq!(format!("{text:>3}"), "  7");
    let url = CanonicalUrl::parse("https://a.example/").unwrap();
    assert_eq!(format!("{url:>20}"), "  https://a.example/");
}

#[test]
fn accessors_formats_and_method_configuration() {
    use countersign::DuplicateHeader;
    assert_eq!(
        DuplicateHeader.to_string(),
        "the header appears more than once"
    );
    let headers = [("X-A", "b")];
    let request = ReceivedRequest::new(&headers, b"body")
        .with_method("POST")
        .with_transaction_id("tx");
    assert_eq!(request.body(), b"body");
    assert_eq!(request.header("x-a"), Ok(Some(&b"b"[..])));
    assert_eq!(request.header("x-b"), Ok(None));
    let text = format!("{request:?}");
    assert!(
        text.contains("body_len: 4") && text.contains("\"POST\"") && text.contains("\"tx\""),
        "{text}"
    );
    // A webhook's default method must be a standard one.
    let url = webhook_url();
    let v = Verifier::kitopay_webhook(MERCHANT, key(SECRET), url.clone()).unwrap();
    assert_eq!(
        v.with_method("get").unwrap_err().into_kind(),
        ErrorKind::InvalidMethod
    );
    let v = Verifier::kitopay_webhook(MERCHANT, key(SECRET), url)
        .unwrap()
        .with_method("PUT")
        .unwrap();
    let debug = format!("{v:?}");
    assert!(
        debug.contains("default_method: Some(\"PUT\")") && debug.contains("[redacted]"),
        "{debug}"
    );
    assert!(!debug.contains(SECRET));
    let window = Freshness {
        max_age: Duration::from_secs(5),
        max_future: Duration::from_secs(1),
    };
    assert_eq!(
        kitopay_verifier().with_freshness(window).freshness(),
        window
    );
}

// ---------------------------------------------------------------------------------------
// The claim route and identity of the plain verifier (review of the claim path).
// ---------------------------------------------------------------------------------------

#[test]
fn the_plain_verifier_claims_every_spelling_of_a_path_as_one_route_as_the_layer_does() {
    // Found by this review: `Verifier::verify` claimed under the request URL's path as
    // given, while the layer normalises it. KamioKash webhooks do not sign the URL, so the
    // same delivery handed over with `/hooks/` (or `/hooks//`) instead of `/hooks` was a
    // new claim: processed twice.
    let verifier = Verifier::kamiokash_webhook(key("whsec_kk"))
        .with_clock(FixedClock::new(at()))
        .with_replay_guard(ReplayGuard::in_memory(100));
    let body = br#"{"type":"member.new","data":{}}"#;
    let headers = sign::kamiokash_webhook("whsec_kk", body, at());
    let first = CanonicalUrl::parse("https://shop.example.com/hooks").unwrap();
    let accepted = verifier
        .verify(&ReceivedRequest::new(&headers, body).with_url(&first))
        .unwrap();
    verifier.complete(&accepted).unwrap();
    for spelling in [
        "https://shop.example.com/hooks/",
        "https://shop.example.com/hooks//",
        "https://shop.example.com//hooks",
        "https://shop.example.com/hooks?page=2",
        "https://shop.example.com/x/../hooks",
    ] {
        let url = CanonicalUrl::parse(spelling).unwrap();
        let again = verifier.verify(&ReceivedRequest::new(&headers, body).with_url(&url));
        assert_eq!(
            again.unwrap_err().kind(),
            &ErrorKind::Replayed(countersign::ClaimState::Done),
            "{spelling} (parsed as {url})"
        );
    }
}

#[test]
fn the_plain_verifier_claims_a_kitopay_webhook_under_its_configured_url() {
    // Found by this review: a Kitopay webhook verifier signs its configured URL; the route
    // was the path of the URL the caller passed (which the signature does not cover), so
    // the same delivery handed over with any other URL was a new claim.
    let verifier = kitopay_verifier().with_replay_guard(ReplayGuard::in_memory(100));
    let body = br#"{"id":"6956d4fc","status":"success"}"#;
    let headers = kitopay_delivery(SECRET, &webhook_url(), body);
    let accepted = verifier
        .verify(&ReceivedRequest::new(&headers, body))
        .unwrap();
    assert_eq!(accepted.event_id(), Some("6956d4fc/success"));
    verifier.complete(&accepted).unwrap();
    for received in [
        "https://shop.example.com/hooks/kitopay",
        "https://shop.example.com/anything",
        "https://other.example.com/",
    ] {
        let url = CanonicalUrl::parse(received).unwrap();
        let again = verifier.verify(&ReceivedRequest::new(&headers, body).with_url(&url));
        assert_eq!(
            again.unwrap_err().kind(),
            &ErrorKind::Replayed(countersign::ClaimState::Done),
            "{received}"
        );
    }
}

#[test]
fn a_claim_by_signature_is_the_mac_of_the_key_that_matched_so_a_list_trimmed_to_the_other_key_is_new()
 {
    // Left as designed (see the review's report): a claim by signature is held under the
    // MAC that matched, the first key of the ring that matches any listed signature. A
    // provider rotating its secret signs with both; while the receiver holds both keys, a
    // copy whose list is trimmed to the second signature matches the second key: another
    // MAC, another claim. Standard Webhooks claims by `webhook-id` by default and is not
    // affected; only `Identity::Signature` (or a custom identity answering `None`) is.
    use countersign::claim::Identity;
    use countersign::standard_webhooks;
    let (old, new) = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_dGhlIG5ldyBzZWNyZXQgb2YgdGhlIHByb3ZpZGVy",
    );
    let ring = KeyRing::new("old", standard_webhooks::SCHEME.key(old).unwrap())
        .with("new", standard_webhooks::SCHEME.key(new).unwrap());
    let verifier = Verifier::standard_webhooks(ring)
        .with_clock(FixedClock::new(at()))
        .with_replay_guard(ReplayGuard::in_memory(100).with_identity(Identity::Signature));
    let body = b"{}";
    let by_old = sign::standard_webhooks(old, "msg_1", body, at());
    let by_new = sign::standard_webhooks(new, "msg_1", body, at());
    let mut both = by_old.clone();
    both[2].1 = format!("{} {}", by_old[2].1, by_new[2].1);
    let first = verifier.verify(&ReceivedRequest::new(&both, body)).unwrap();
    assert_eq!(first.key_id(), "old");
    verifier.complete(&first).unwrap();
    let trimmed = verifier.verify(&ReceivedRequest::new(&by_new, body));
    assert_eq!(
        trimmed.unwrap().key_id(),
        "new",
        "accepted again: another MAC"
    );
    // By its event id (the default), the trimmed copy is the duplicate it is.
    let by_event = Verifier::standard_webhooks(
        KeyRing::new("old", standard_webhooks::SCHEME.key(old).unwrap())
            .with("new", standard_webhooks::SCHEME.key(new).unwrap()),
    )
    .with_clock(FixedClock::new(at()))
    .with_replay_guard(ReplayGuard::in_memory(100));
    let first = by_event.verify(&ReceivedRequest::new(&both, body)).unwrap();
    by_event.complete(&first).unwrap();
    assert_eq!(
        by_event
            .verify(&ReceivedRequest::new(&by_new, body))
            .unwrap_err()
            .kind(),
        &ErrorKind::Replayed(countersign::ClaimState::Done)
    );
}
