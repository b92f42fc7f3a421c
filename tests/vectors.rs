//! Every case of `tests/vectors/*.json` (copied unchanged from `../shared/vectors`): signatures
//! are signed *and* verified, every freshness and URL case is checked. A failure names the case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use countersign::{
    CanonicalUrl, ErrorKind, FixedClock, Freshness, KamioKashSigner, KamioKashWebhookSigner,
    KitopaySigner, KitopaySimplifiedSigner, ReceivedRequest, Scheme, SecretKey, SignableRequest,
    Signer, StringToSign, Timestamp, TrailingSlash, UrlRule, Verifier,
};

fn signer_for(case: &common::SignatureCase) -> Box<dyn Signer> {
    let key = SecretKey::new(&case.secret).unwrap();
    let merchant = case.merchant_id.as_deref().unwrap_or_default();
    match case.scheme.as_str() {
        "kitopay" => Box::new(KitopaySigner::new(merchant, key).unwrap()),
        "kitopay-webhook" => Box::new(KitopaySigner::for_webhooks(merchant, key).unwrap()),
        "kitopay-simplified" => Box::new(KitopaySimplifiedSigner::new(merchant, key).unwrap()),
        "kamiokash" => {
            Box::new(KamioKashSigner::new(case.api_key.as_deref().unwrap(), key).unwrap())
        }
        "kamiokash-webhook" => Box::new(KamioKashWebhookSigner::new(key)),
        other => panic!("{}: unknown scheme {other}", case.name),
    }
}

fn verifier_for(case: &common::SignatureCase, now: Timestamp) -> Verifier {
    let key = SecretKey::new(&case.secret).unwrap();
    let merchant = case.merchant_id.as_deref().unwrap_or_default();
    let v = match case.scheme.as_str() {
        "kitopay" => Verifier::kitopay_request(merchant, key).unwrap(),
        "kitopay-webhook" => Verifier::kitopay_webhook(
            merchant,
            key,
            CanonicalUrl::parse(case.url.as_deref().unwrap()).unwrap(),
        )
        .unwrap(),
        "kitopay-simplified" => Verifier::kitopay_simplified(merchant, key).unwrap(),
        "kamiokash" => Verifier::kamiokash_request(key)
            .with_api_key(case.api_key.as_deref().unwrap())
            .unwrap(),
        "kamiokash-webhook" => Verifier::kamiokash_webhook(key),
        other => panic!("{}: unknown scheme {other}", case.name),
    };
    v.with_clock(FixedClock::new(now))
}

fn timestamp_of(case: &common::SignatureCase) -> Timestamp {
    let scheme: Scheme = case.scheme.parse().unwrap();
    scheme.parse_timestamp(&case.timestamp).unwrap()
}

#[test]
fn every_signature_case_signs_to_the_expected_headers() {
    let cases = common::signatures();
    assert!(cases.len() >= 10);
    for case in &cases {
        let signer = signer_for(case);
        let body = case.body_bytes();
        let url = case.url.as_deref().map(|u| CanonicalUrl::parse(u).unwrap());
        let request = match (&case.method, &url) {
            (Some(method), Some(url)) => SignableRequest::new(method, url, &body).unwrap(),
            (Some(method), None) => {
                SignableRequest::simplified(method, case.transaction_id.as_deref().unwrap())
                    .unwrap()
            }
            _ => SignableRequest::body(&body),
        };
        let signed = signer.sign(&request, timestamp_of(case)).unwrap();
        assert_eq!(signed.signature_hex(), case.signature, "case {}", case.name);
        assert_eq!(
            signed.timestamp(),
            case.timestamp,
            "case {}: timestamp text",
            case.name
        );
        let headers: std::collections::BTreeMap<String, String> = signed
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(headers, case.headers, "case {}: headers", case.name);
    }
}

fn string_to_sign<'a>(
    case: &'a common::SignatureCase,
    url: Option<&'a CanonicalUrl>,
    body: &'a [u8],
) -> StringToSign<'a> {
    let merchant = case.merchant_id.as_deref().unwrap_or_default();
    let method = case.method.as_deref().unwrap_or_default();
    match case.scheme.as_str() {
        "kitopay" | "kitopay-webhook" => {
            StringToSign::kitopay(merchant, &case.timestamp, method, url.unwrap(), body)
        }
        "kitopay-simplified" => StringToSign::kitopay_simplified(
            merchant,
            &case.timestamp,
            method,
            case.transaction_id.as_deref().unwrap(),
        ),
        "kamiokash" => StringToSign::kamiokash_request(body, &case.timestamp),
        _ => StringToSign::kamiokash_webhook(&case.timestamp, body),
    }
}

#[test]
fn every_signature_case_has_the_expected_string_to_sign() {
    for case in &common::signatures() {
        let body = case.body_bytes();
        let url = case.url.as_deref().map(|u| CanonicalUrl::parse(u).unwrap());
        let message = string_to_sign(case, url.as_ref(), &body);
        match &case.string_to_sign {
            Some(expected) => assert_eq!(
                message.to_bytes(),
                expected.as_bytes(),
                "case {}",
                case.name
            ),
            None => assert!(
                std::str::from_utf8(&message.to_bytes()).is_err(),
                "case {}",
                case.name
            ),
        }
        let key = SecretKey::new(&case.secret).unwrap();
        assert_eq!(
            message.sign(&key).to_string(),
            case.signature,
            "case {}",
            case.name
        );
    }
}

#[test]
fn every_signature_case_verifies_and_tampering_is_rejected() {
    for case in &common::signatures() {
        let at = timestamp_of(case);
        let verifier = verifier_for(case, at);
        let body = case.body_bytes();
        let url = case.url.as_deref().map(|u| CanonicalUrl::parse(u).unwrap());
        let headers: Vec<(String, String)> = case
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut received = ReceivedRequest::new(&headers, &body);
        if let Some(method) = &case.method {
            received = received.with_method(method);
        }
        if let Some(url) = &url {
            received = received.with_url(url);
        }
        if let Some(id) = &case.transaction_id {
            received = received.with_transaction_id(id);
        }
        let verified = verifier
            .verify(&received)
            .unwrap_or_else(|e| panic!("case {}: {e}", case.name));
        assert_eq!(verified.key_id(), "primary", "case {}", case.name);

        // The same delivery with the body one byte longer is rejected.
        let mut longer = body.clone();
        longer.push(b' ');
        let mut tampered = ReceivedRequest::new(&headers, &longer);
        if let Some(method) = &case.method {
            tampered = tampered.with_method(method);
        }
        if let Some(url) = &url {
            tampered = tampered.with_url(url);
        }
        if let Some(id) = &case.transaction_id {
            tampered = tampered.with_transaction_id(id);
        }
        let outcome = verifier.verify(&tampered);
        if case.scheme == "kitopay-simplified" {
            assert!(
                outcome.is_ok(),
                "case {}: the simplified scheme does not sign the body",
                case.name
            );
        } else if case.method.as_deref() == Some("GET") && case.scheme.starts_with("kitopay") {
            // A body on a GET is refused before the MAC (it could shift query bytes).
            assert_eq!(
                outcome.unwrap_err().kind(),
                &ErrorKind::BodyNotAllowed("GET"),
                "case {}",
                case.name
            );
        } else {
            assert_eq!(
                outcome.unwrap_err().kind(),
                &ErrorKind::SignatureMismatch,
                "case {}",
                case.name
            );
        }
    }
}

#[test]
fn every_freshness_case() {
    let cases = common::freshness();
    assert!(cases.len() >= 20);
    for case in &cases {
        let scheme = if case.provider == "kitopay" {
            Scheme::Kitopay
        } else {
            Scheme::KamioKash
        };
        let now = scheme.parse_timestamp(&case.now).unwrap();
        let outcome = scheme
            .parse_timestamp(&case.timestamp)
            .and_then(|t| Freshness::default().check(t, now).map(|()| t));
        let label = format!("{} {:?} at {:?}", case.provider, case.timestamp, case.now);
        match (case.expect.as_str(), outcome) {
            ("fresh", Ok(_)) => {}
            // "expired" in the vectors means outside the window either way; countersign
            // tells the two directions apart.
            ("expired", Err(e)) => {
                let t = scheme.parse_timestamp(&case.timestamp).unwrap();
                let expected = if t > now { "future" } else { "expired" };
                assert_eq!(e.code(), expected, "{label}");
            }
            ("malformed", Err(e)) => {
                assert!(
                    matches!(e.kind(), ErrorKind::MalformedTimestamp { .. }),
                    "{label}: {e}"
                )
            }
            (expect, got) => panic!("{label}: expected {expect}, got {got:?}"),
        }
    }
}

#[test]
fn freshness_cases_through_the_verifier_clock() {
    // The same cases, end to end: a real signature, the verifier's injected clock.
    for case in common::freshness()
        .iter()
        .filter(|c| c.expect != "malformed")
    {
        let scheme = if case.provider == "kitopay" {
            Scheme::KitopaySimplified
        } else {
            Scheme::KamioKashWebhook
        };
        let message = if scheme == Scheme::KitopaySimplified {
            StringToSign::kitopay_simplified("m", &case.timestamp, "GET", "t")
        } else {
            StringToSign::kamiokash_webhook(&case.timestamp, b"{}")
        };
        let sig = message.sign(&SecretKey::new("k").unwrap()).to_string();
        let headers = [
            (scheme.timestamp_header(), case.timestamp.as_str()),
            (scheme.signature_header(), sig.as_str()),
            ("x-merchant-id", "m"),
        ];
        let now = scheme.parse_timestamp(&case.now).unwrap();
        let verifier = if scheme == Scheme::KitopaySimplified {
            Verifier::kitopay_simplified("m", SecretKey::new("k").unwrap()).unwrap()
        } else {
            Verifier::kamiokash_webhook(SecretKey::new("k").unwrap())
        }
        .with_clock(FixedClock::new(now));
        let received = ReceivedRequest::new(&headers, b"{}")
            .with_method("GET")
            .with_transaction_id("t");
        let outcome = verifier.verify(&received);
        assert_eq!(
            outcome.is_ok(),
            case.expect == "fresh",
            "{case:?}: {outcome:?}"
        );
    }
}

#[test]
fn every_url_case() {
    let cases = common::urls();
    assert!(cases.len() >= 25);
    for case in &cases {
        let policy: TrailingSlash = case.trailing_slash.parse().unwrap();
        let outcome = CanonicalUrl::parse_with(&case.url, policy);
        let label = format!("{:?} ({})", case.url, case.trailing_slash);
        match (&case.canonical, &case.error, outcome) {
            (Some(expected), None, Ok(url)) => {
                assert_eq!(url.as_str(), expected, "{label}");
                // Canonical output is a fixed point.
                assert_eq!(
                    CanonicalUrl::parse_with(url.as_str(), policy).unwrap(),
                    url,
                    "{label}"
                );
            }
            (None, Some(class), Err(e)) => {
                let ok = matches!(
                    (class.as_str(), e.kind()),
                    (
                        "invalid",
                        ErrorKind::InvalidUrl(UrlRule::Syntax | UrlRule::Relative)
                    ) | ("scheme", ErrorKind::InvalidUrl(UrlRule::Scheme))
                        | ("credentials", ErrorKind::InvalidUrl(UrlRule::Credentials))
                );
                assert!(ok, "{label}: expected {class}, got {e:?}");
            }
            (canonical, error, got) => {
                panic!("{label}: expected {canonical:?}/{error:?}, got {got:?}")
            }
        }
    }
}

#[test]
fn vectors_are_identical_to_the_shared_copies() {
    // When the shared vectors are beside the repository (developer machines, CI), the copies
    // must not have drifted.
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors");
    if !shared.exists() {
        return;
    }
    for name in ["signatures.json", "freshness.json", "urls.json"] {
        let ours = std::fs::read(format!(
            "{}/tests/vectors/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let theirs = std::fs::read(shared.join(name)).unwrap();
        assert!(
            ours == theirs,
            "tests/vectors/{name} differs from ../shared/vectors/{name}"
        );
    }
}
