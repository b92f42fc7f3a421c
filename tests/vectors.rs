//! Every case of `tests/vectors/*.json` (copied unchanged from `../shared/vectors`): signatures
//! are signed *and* verified, every freshness and URL case is checked. A failure names the case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use countersign::{
    CanonicalUrl, ErrorKind, FixedClock, Freshness, ReceivedRequest, Scheme, SecretKey,
    SignableRequest, Signer, StringToSign, Timestamp, TrailingSlash, UrlRule, Verifier, kamiokash,
    kitopay, standard_webhooks,
};
use countersign_test_support::vectors::{self, SignatureCase};

/// This package's copies of the vector files.
fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// The scheme a case names, from the registry.
fn scheme_of(case: &SignatureCase) -> &'static Scheme {
    Scheme::named(&case.scheme).unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

/// The case's signer, built generically: the scheme value, its key form, its identity.
fn signer_for(case: &SignatureCase) -> Signer {
    let scheme = scheme_of(case);
    let signer = Signer::new(scheme, scheme.key(&case.secret).unwrap()).unwrap();
    match case.merchant_id.as_deref().or(case.api_key.as_deref()) {
        Some(identity) => signer.with_identity(identity).unwrap(),
        None => signer,
    }
}

/// The case's verifier, built generically; webhooks that sign the URL get the case's URL
/// as their configured public URL.
fn verifier_for(case: &SignatureCase, now: Timestamp) -> Verifier {
    let scheme = scheme_of(case);
    let mut v = Verifier::new(scheme, scheme.key(&case.secret).unwrap()).unwrap();
    if let Some(identity) = case.merchant_id.as_deref().or(case.api_key.as_deref()) {
        v = v.with_identity(identity).unwrap();
    }
    if scheme.is_webhook() && scheme.signs_url() {
        v = v.with_url(CanonicalUrl::parse(case.url.as_deref().unwrap()).unwrap());
    }
    v.with_clock(FixedClock::new(now))
}

fn timestamp_of(case: &SignatureCase) -> Timestamp {
    scheme_of(case).parse_timestamp(&case.timestamp).unwrap()
}

#[test]
fn every_signature_case_signs_to_the_expected_headers() {
    let cases = vectors::signatures(&dir());
    assert!(cases.len() >= 10);
    for case in &cases {
        let signer = signer_for(case);
        let body = case.body_bytes();
        let url = case.url.as_deref().map(|u| CanonicalUrl::parse(u).unwrap());
        let request = request_of(case, url.as_ref(), &body);
        let signed = signer.sign(&request, timestamp_of(case)).unwrap();
        assert_eq!(signed.signature_hex(), case.signature, "case {}", case.name);
        assert_eq!(
            signed.timestamp(),
            Some(case.timestamp.as_str()),
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

fn string_to_sign<'a>(case: &'a SignatureCase, request: &SignableRequest<'a>) -> StringToSign<'a> {
    let identity = case.merchant_id.as_deref();
    StringToSign::new(scheme_of(case), identity, &case.timestamp, request).unwrap()
}

/// The case's request view: method, URL and transaction id where given.
fn request_of<'a>(
    case: &'a SignatureCase,
    url: Option<&'a CanonicalUrl>,
    body: &'a [u8],
) -> SignableRequest<'a> {
    let mut request = SignableRequest::body(body);
    if let Some(method) = &case.method {
        request = request.with_method(method).unwrap();
    }
    if let Some(url) = url {
        request = request.with_url(url);
    }
    if let Some(id) = &case.transaction_id {
        request = request.with_transaction_id(id);
    }
    request
}

#[test]
fn every_signature_case_has_the_expected_string_to_sign() {
    for case in &vectors::signatures(&dir()) {
        let body = case.body_bytes();
        let url = case.url.as_deref().map(|u| CanonicalUrl::parse(u).unwrap());
        let request = request_of(case, url.as_ref(), &body);
        let message = string_to_sign(case, &request);
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
    for case in &vectors::signatures(&dir()) {
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
    let cases = vectors::freshness(&dir());
    assert!(cases.len() >= 20);
    for case in &cases {
        let scheme = if case.provider == "kitopay" {
            &kitopay::FULL
        } else {
            &kamiokash::REQUEST
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
    for case in vectors::freshness(&dir())
        .iter()
        .filter(|c| c.expect != "malformed")
    {
        let scheme = if case.provider == "kitopay" {
            &kitopay::SIMPLIFIED
        } else {
            &kamiokash::WEBHOOK
        };
        let request = SignableRequest::simplified("GET", "t").unwrap();
        let identity = (scheme == &kitopay::SIMPLIFIED).then_some("m");
        let message =
            StringToSign::new(scheme, identity, &case.timestamp, &request.with_body(b"{}"))
                .unwrap();
        let sig = message.sign(&SecretKey::new("k").unwrap()).to_string();
        let headers = [
            (scheme.timestamp_header().unwrap(), case.timestamp.as_str()),
            (scheme.signature_header(), sig.as_str()),
            ("x-merchant-id", "m"),
        ];
        let now = scheme.parse_timestamp(&case.now).unwrap();
        let verifier = if scheme == &kitopay::SIMPLIFIED {
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
    let cases = vectors::urls(&dir());
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
    for name in [
        "signatures.json",
        "freshness.json",
        "urls.json",
        "standard_webhooks.json",
    ] {
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

#[test]
fn every_standard_webhooks_case_signs_and_verifies_as_the_official_package_says() {
    let cases = vectors::standard_webhooks(&dir());
    assert!(cases.len() >= 20);
    let scheme = &standard_webhooks::SCHEME;
    let mut signed_cases = 0;
    for case in &cases {
        let key = scheme.key(&case.secret).unwrap();
        let body = case.body_bytes();
        let at = scheme.parse_timestamp(&case.timestamp).unwrap();
        // Verification, at the signing instant (freshness aside, as the vectors say).
        let verifier = Verifier::standard_webhooks(scheme.key(&case.secret).unwrap())
            .with_clock(FixedClock::new(at));
        let headers = [
            ("webhook-id", case.id.as_str()),
            ("webhook-timestamp", case.timestamp.as_str()),
            ("webhook-signature", case.signature.as_str()),
        ];
        let outcome = verifier.verify(&ReceivedRequest::new(&headers, &body));
        assert_eq!(
            outcome.is_ok(),
            case.valid,
            "case {}: {outcome:?}",
            case.name
        );
        if let Err(e) = &outcome {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::SignatureMismatch | ErrorKind::MalformedSignature { .. }
                ),
                "case {}: {e}",
                case.name
            );
        }
        // Signing: a header holding a single v1 signature is exactly what we sign.
        if case.valid && !case.signature.contains(' ') {
            let signer = Signer::standard_webhooks(key);
            let request = SignableRequest::body(&body).with_value("id", &case.id);
            let signed = signer.sign(&request, at).unwrap();
            assert_eq!(
                signed.signature_value(),
                case.signature,
                "case {}",
                case.name
            );
            signed_cases += 1;
        }
    }
    assert!(signed_cases >= 14, "{signed_cases}");
}
