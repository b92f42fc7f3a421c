//! The properties the fuzz targets assert, shared with the stable `cargo test` that replays
//! every checked-in corpus file and regression input (`tests/fuzz_replay.rs`).
//!
//! Each function takes the fuzzer's raw bytes, never panics on its own account, and panics
//! (the fuzzer's "crash") only when a property is violated.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arbitrary::{Arbitrary, Unstructured};
use countersign::{
    CanonicalUrl, ErrorKind, FixedClock, Freshness, KamioKashSigner, KamioKashWebhookSigner,
    KitopaySigner, KitopaySimplifiedSigner, ReceivedRequest, Scheme, SecretKey, SignableRequest,
    Signer, StringToSign, Timestamp, TrailingSlash, Verifier,
};

#[path = "reference.rs"]
mod reference;

use reference::hmac_hex as reference_hex;

fn policy(byte: u8) -> TrailingSlash {
    match byte % 3 {
        0 => TrailingSlash::Preserve,
        1 => TrailingSlash::Strip,
        _ => TrailingSlash::Require,
    }
}

/// `canonical_url`: never panics; accepted output is a fixed point, is what the `url` crate
/// produces (fragment and empty query dropped, policy applied), and obeys the policy.
pub fn canonical_url(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    let policy = policy(first);
    match CanonicalUrl::parse_with(input, policy) {
        Ok(url) => {
            let text = url.as_str();
            let again =
                CanonicalUrl::parse_with(text, policy).expect("canonical output must parse");
            assert_eq!(again.as_str(), text, "not idempotent: {input:?}");
            let parsed =
                url::Url::parse(text).expect("canonical output must parse with the url crate");
            assert_eq!(parsed.as_str(), text, "url crate re-serialises {text:?}");
            assert!(parsed.fragment().is_none() && !text.contains('#'));
            assert_ne!(parsed.query(), Some(""));
            let path = url.path();
            match policy {
                TrailingSlash::Preserve => {}
                TrailingSlash::Strip => assert!(path == "/" || !path.ends_with('/'), "{text}"),
                TrailingSlash::Require => assert!(path.ends_with('/'), "{text}"),
            }
            // Setting a stripped path through the url crate can re-encode it; compare only
            // where the url crate's own path setter keeps what it parsed.
            if let Some(expected) = reference::canonical_url(input, policy)
                && url::Url::parse(&expected)
                    .map(|u| u.as_str() == expected)
                    .unwrap_or(false)
                && policy == TrailingSlash::Preserve
            {
                assert_eq!(
                    text, expected,
                    "fast path and url crate disagree on {input:?}"
                );
            }
        }
        Err(e) => {
            assert!(matches!(e.kind(), ErrorKind::InvalidUrl(_)), "{e:?}");
            assert!(
                reference::canonical_url(input, TrailingSlash::Preserve).is_none(),
                "rejected {input:?}, which the url crate accepts as http(s) without credentials: {e}"
            );
        }
    }
}

/// `timestamp`: both parsers and the freshness check never panic; an accepted Kitopay
/// timestamp is ASCII digits and round-trips; an accepted RFC 3339 one survives
/// `toISOString` formatting to the millisecond; freshness is symmetric and exact.
pub fn timestamp(data: &[u8]) {
    let (now_bytes, rest) = data.split_at(data.len().min(8));
    let mut now_raw = [0u8; 8];
    now_raw[..now_bytes.len()].copy_from_slice(now_bytes);
    let now =
        Timestamp::from_unix_millis(u64::from_le_bytes(now_raw) % 253_402_300_800_000).unwrap();
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(t) = Timestamp::parse_unix(text) {
        assert!(
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
            "{text:?}"
        );
        assert_eq!(t.to_unix_text().as_str(), text);
        check_freshness(t, now);
    }
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        let iso = t.to_iso_text();
        let back = Timestamp::parse_rfc3339(iso.as_str()).unwrap();
        assert_eq!(back.unix_millis(), t.unix_millis(), "{text:?} -> {iso}");
        assert!(text.is_ascii());
        check_freshness(t, now);
    }
}

fn check_freshness(t: Timestamp, now: Timestamp) {
    let window = Freshness::default();
    let outcome = window.check(t, now);
    let (lo, hi) = (t.min(now), t.max(now));
    let distance = hi.since_epoch() - lo.since_epoch();
    let allowed = if t <= now {
        window.max_age
    } else {
        window.max_future
    };
    assert_eq!(
        outcome.is_ok(),
        distance <= allowed,
        "{t:?} vs {now:?}: {outcome:?}"
    );
}

#[derive(Debug, Arbitrary)]
struct WebhookInput {
    kitopay: bool,
    secret: Vec<u8>,
    merchant: String,
    timestamp: String,
    signature: String,
    /// Sign correctly (possibly uppercase), so the accepting path is explored too.
    sign_correctly: Option<bool>,
    body: Vec<u8>,
    url: String,
    now_millis: u64,
    extra_headers: Vec<(String, Vec<u8>)>,
}

/// `verify_webhook`: arbitrary headers, body, URL and clock never panic; `Ok` only when the
/// signature header is the reference HMAC of the exact message and the timestamp is fresh.
pub fn verify_webhook(data: &[u8]) {
    let Ok(input) = WebhookInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let Ok(key) = SecretKey::from_bytes(&input.secret) else {
        return;
    };
    let now = Timestamp::from_unix_millis(input.now_millis % 253_402_300_800_000).unwrap();
    let (verifier, scheme, message) = if input.kitopay {
        let Ok(url) = CanonicalUrl::parse(&input.url) else {
            return;
        };
        let Ok(v) = Verifier::kitopay_webhook(&input.merchant, key, url.clone()) else {
            return;
        };
        let mut message = input.merchant.as_bytes().to_vec();
        message.extend_from_slice(input.timestamp.as_bytes());
        message.extend_from_slice(b"POST");
        message.extend_from_slice(url.as_str().as_bytes());
        message.extend_from_slice(&input.body);
        (v, Scheme::KitopayWebhook, message)
    } else {
        let mut message = input.timestamp.as_bytes().to_vec();
        message.extend_from_slice(&input.body);
        (
            Verifier::kamiokash_webhook(key),
            Scheme::KamioKashWebhook,
            message,
        )
    };
    let verifier = verifier.with_clock(FixedClock::new(now));
    let reference = reference_hex(&input.secret, &message);
    let signature = match input.sign_correctly {
        Some(true) => reference.to_uppercase(),
        Some(false) => reference.clone(),
        None => input.signature.clone(),
    };
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        (
            scheme.timestamp_header().to_owned(),
            input.timestamp.as_bytes().to_vec(),
        ),
        (
            scheme.signature_header().to_owned(),
            signature.as_bytes().to_vec(),
        ),
        (
            "x-merchant-id".to_owned(),
            input.merchant.as_bytes().to_vec(),
        ),
    ];
    headers.extend(input.extra_headers.iter().cloned());
    let outcome = verifier.verify(&ReceivedRequest::new(&headers, &input.body));
    if let Ok(verified) = outcome {
        assert_eq!(
            signature.to_ascii_lowercase(),
            reference,
            "accepted a wrong signature"
        );
        // Kitopay timestamps are whole seconds and are compared with now in whole seconds.
        let now = if input.kitopay {
            now.truncate_to_secs()
        } else {
            now
        };
        assert!(
            Freshness::default()
                .check(verified.timestamp(), now)
                .is_ok(),
            "accepted a stale timestamp"
        );
    } else if input.sign_correctly.is_some() {
        // A correct signature may only be refused for a reason other than the MAC.
        let e = outcome.unwrap_err();
        assert_ne!(e.kind(), &ErrorKind::SignatureMismatch, "{input:?}");
    }
}

#[derive(Debug, Arbitrary)]
struct RoundTrip {
    scheme: u8,
    secret: String,
    identity: String,
    method: String,
    url: String,
    body: Vec<u8>,
    transaction_id: String,
    millis: u64,
    /// Which signed part to change (0 = none), where, and how.
    mutate: u8,
    position: usize,
    xor: u8,
}

fn signer_for(scheme: Scheme, identity: &str, key: SecretKey) -> Option<Box<dyn Signer>> {
    Some(match scheme {
        Scheme::Kitopay => Box::new(KitopaySigner::new(identity, key).ok()?),
        Scheme::KitopayWebhook => Box::new(KitopaySigner::for_webhooks(identity, key).ok()?),
        Scheme::KitopaySimplified => Box::new(KitopaySimplifiedSigner::new(identity, key).ok()?),
        Scheme::KamioKash => Box::new(KamioKashSigner::new(identity, key).ok()?),
        _ => Box::new(KamioKashWebhookSigner::new(key)),
    })
}

fn verifier_for(
    scheme: Scheme,
    identity: &str,
    secret: &str,
    url: &CanonicalUrl,
) -> Option<Verifier> {
    let key = SecretKey::new(secret).ok()?;
    Some(match scheme {
        Scheme::Kitopay => Verifier::kitopay_request(identity, key).ok()?,
        Scheme::KitopayWebhook => Verifier::kitopay_webhook(identity, key, url.clone()).ok()?,
        Scheme::KitopaySimplified => Verifier::kitopay_simplified(identity, key).ok()?,
        Scheme::KamioKash => Verifier::kamiokash_request(key)
            .with_api_key(identity)
            .ok()?,
        _ => Verifier::kamiokash_webhook(key),
    })
}

/// A full-scheme Kitopay GET or HEAD with a body is signed (a signer signs what it is given)
/// but refused by default, since its bytes could move into the URL; opted in, it verifies.
fn body_on_get(scheme: Scheme, method: &str, body: &[u8]) -> bool {
    matches!(scheme, Scheme::Kitopay | Scheme::KitopayWebhook)
        && matches!(method, "GET" | "HEAD")
        && !body.is_empty()
}

fn expect_body_not_allowed<T: std::fmt::Debug>(outcome: Result<T, countersign::Error>) {
    match outcome {
        Err(e) if matches!(e.kind(), ErrorKind::BodyNotAllowed(_)) => {}
        other => panic!("a GET/HEAD with a body was not refused as such: {other:?}"),
    }
}

fn flip(bytes: &mut [u8], position: usize, xor: u8) -> bool {
    if bytes.is_empty() || xor == 0 {
        return false;
    }
    let i = position % bytes.len();
    bytes[i] ^= xor;
    true
}

/// `sign_verify_roundtrip`: for every scheme, what is signed verifies; changing any one byte
/// of any signed part, or of the signature, makes verification fail.
pub fn sign_verify_roundtrip(data: &[u8]) {
    let Ok(input) = RoundTrip::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let scheme = Scheme::ALL[usize::from(input.scheme) % Scheme::ALL.len()];
    let Ok(key) = SecretKey::new(&input.secret) else {
        return;
    };
    let Some(signer) = signer_for(scheme, &input.identity, key) else {
        return;
    };
    let Ok(url) = CanonicalUrl::parse(&input.url) else {
        return;
    };
    let Ok(at) = Timestamp::from_unix_millis(input.millis % 253_402_300_800_000) else {
        return;
    };
    let request = match SignableRequest::new(&input.method, &url, &input.body) {
        Ok(r) => r.with_transaction_id(&input.transaction_id),
        Err(_) => return,
    };
    let signed = signer.sign(&request, at).unwrap();
    let headers: Vec<(String, String)> = signed
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (_, value) in &headers {
        assert!(
            http::HeaderValue::from_str(value).is_ok(),
            "invalid header value {value:?}"
        );
    }
    let verifier = verifier_for(scheme, &input.identity, &input.secret, &url)
        .unwrap()
        .with_clock(FixedClock::new(at));
    let received = ReceivedRequest::new(&headers, &input.body)
        .with_method(&input.method)
        .with_url(&url)
        .with_transaction_id(&input.transaction_id);
    let body_on_get = body_on_get(scheme, &input.method, &input.body);
    let verifier = if body_on_get {
        expect_body_not_allowed(verifier.verify(&received));
        verifier.with_body_on_get(true)
    } else {
        verifier
    };
    verifier
        .verify(&received)
        .unwrap_or_else(|e| panic!("{scheme:?} round trip failed: {e}"));

    // One changed byte in one signed part.
    let signs = |part: u8| match scheme {
        Scheme::Kitopay | Scheme::KitopayWebhook => matches!(part, 1..=5 | 7),
        Scheme::KitopaySimplified => matches!(part, 1..=3 | 6 | 7),
        Scheme::KamioKash => matches!(part, 2 | 5 | 7),
        _ => matches!(part, 2 | 5 | 7),
    };
    let part = input.mutate % 8;
    if part == 0 || !signs(part) {
        return;
    }
    let mut identity = input.identity.clone().into_bytes();
    let mut timestamp = signed.timestamp().as_bytes().to_vec();
    let mut method = input.method.clone().into_bytes();
    let mut url_text = url.as_str().as_bytes().to_vec();
    let mut body = input.body.clone();
    let mut transaction_id = input.transaction_id.clone().into_bytes();
    let mut signature = signed.signature_hex().as_bytes().to_vec();
    let changed = match part {
        1 => flip(&mut identity, input.position, input.xor),
        2 => flip(&mut timestamp, input.position, input.xor),
        3 => flip(&mut method, input.position, input.xor),
        4 => flip(&mut url_text, input.position, input.xor),
        5 => flip(&mut body, input.position, input.xor),
        6 => flip(&mut transaction_id, input.position, input.xor),
        _ => {
            // Another hex digit (not just another case of the same one).
            let i = input.position % signature.len();
            let digit = (signature[i] as char).to_digit(16).unwrap();
            let other = (digit + 1 + u32::from(input.xor) % 15) % 16;
            signature[i] = char::from_digit(other, 16).unwrap() as u8;
            true
        }
    };
    if !changed {
        return;
    }
    let (Ok(identity), Ok(method), Ok(transaction_id)) = (
        String::from_utf8(identity),
        String::from_utf8(method),
        String::from_utf8(transaction_id),
    ) else {
        return; // not representable as text; nothing to send
    };
    let mut headers = headers.clone();
    for (name, value) in &mut headers {
        if Some(name.as_str()) == scheme.identity_header() {
            *value = identity.clone();
        } else if name == scheme.timestamp_header() {
            *value = String::from_utf8_lossy(&timestamp).into_owned();
        } else if name == scheme.signature_header() {
            *value = String::from_utf8_lossy(&signature).into_owned();
        }
    }
    // A changed URL must still be a URL, and a different one, to be sent at all.
    let tampered_url = match std::str::from_utf8(&url_text)
        .ok()
        .and_then(|t| CanonicalUrl::parse(t).ok())
    {
        Some(u) if u.as_str().as_bytes() == url_text.as_slice() => u,
        _ if part == 4 => return,
        _ => url.clone(),
    };
    let verifier = if scheme == Scheme::KitopayWebhook {
        verifier_for(scheme, &input.identity, &input.secret, &tampered_url)
            .unwrap()
            .with_clock(FixedClock::new(at))
            .with_body_on_get(body_on_get)
    } else {
        verifier
    };
    let received = ReceivedRequest::new(&headers, &body)
        .with_method(&method)
        .with_url(&tampered_url)
        .with_transaction_id(&transaction_id);
    assert!(
        verifier.verify(&received).is_err(),
        "{scheme:?}: changing part {part} still verified"
    );
}

#[derive(Debug, Arbitrary)]
struct HttpInput {
    scheme: u8,
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    secs: u32,
}

/// `http_adapter`: signing and verifying arbitrary `http::Request`s never panics, and what
/// is signed verifies.
pub fn http_adapter(data: &[u8]) {
    let Ok(input) = HttpInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let scheme = Scheme::ALL[usize::from(input.scheme) % Scheme::ALL.len()];
    let mut builder = http::Request::builder()
        .method(input.method.as_str())
        .uri(input.uri.as_str());
    for (k, v) in &input.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let Ok(mut request) = builder.body(input.body.clone()) else {
        return;
    };
    let at = Timestamp::from_unix_secs(u64::from(input.secs)).unwrap();
    let signer = signer_for(scheme, "merchant-1", SecretKey::new("s3cret").unwrap()).unwrap();
    let options = countersign::http::SignOptions {
        transaction_id: Some("tx-1"),
        ..Default::default()
    };
    if countersign::http::sign_request_with(&*signer, &mut request, at, options).is_err() {
        return;
    }
    let url = CanonicalUrl::parse(&request.uri().to_string()).expect("signed URI is canonical");
    assert_eq!(url.as_str(), request.uri().to_string());
    if scheme == Scheme::KitopaySimplified {
        return; // the transaction id is not part of an http::Request
    }
    let mut verifier = verifier_for(scheme, "merchant-1", "s3cret", &url)
        .unwrap()
        .with_clock(FixedClock::new(at));
    if body_on_get(scheme, request.method().as_str(), request.body()) {
        expect_body_not_allowed(countersign::http::verify_request(&verifier, &request));
        verifier = verifier.with_body_on_get(true);
    }
    countersign::http::verify_request(&verifier, &request)
        .unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
}

#[derive(Debug, Arbitrary)]
struct DiagnoseInput {
    scheme: u8,
    secret: String,
    merchant: String,
    timestamp: String,
    method: String,
    url: String,
    body: Vec<u8>,
    transaction_id: String,
    signature: String,
    /// Sign a variant (so explained paths are reached): which mistake to make.
    mistake: Option<u8>,
}

/// `diagnose`: never panics, and every reported hypothesis really verifies.
pub fn diagnose(data: &[u8]) {
    use countersign::diagnose::{Diagnosis, Hypothesis, Inputs};
    let Ok(input) = DiagnoseInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let scheme = Scheme::ALL[usize::from(input.scheme) % Scheme::ALL.len()];
    let url = CanonicalUrl::parse(&input.url).ok();
    let mut signature = input.signature.clone();
    if let (Some(mistake), Ok(_)) = (input.mistake, SecretKey::new(&input.secret)) {
        // Sign what a sender making a mistake would have signed.
        let mut body = input.body.clone();
        let mut secret = input.secret.clone();
        let mut url_text = url
            .as_ref()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default();
        match mistake % 4 {
            0 => body.push(b'\n'),
            1 => secret.push('\n'),
            2 => {
                if let Some(u) = &url {
                    let policy = if u.path().ends_with('/') {
                        TrailingSlash::Strip
                    } else {
                        TrailingSlash::Require
                    };
                    url_text = u.with_policy(policy).as_str().to_owned();
                }
            }
            _ => {}
        }
        let message: Vec<u8> = match scheme {
            Scheme::Kitopay | Scheme::KitopayWebhook => [
                input.merchant.as_bytes(),
                input.timestamp.as_bytes(),
                input.method.as_bytes(),
                url_text.as_bytes(),
                &body,
            ]
            .concat(),
            Scheme::KitopaySimplified => [
                input.merchant.as_bytes(),
                input.timestamp.as_bytes(),
                input.method.as_bytes(),
                input.transaction_id.as_bytes(),
            ]
            .concat(),
            Scheme::KamioKash => [&body[..], b":", input.timestamp.as_bytes()].concat(),
            _ => [input.timestamp.as_bytes(), &body[..]].concat(),
        };
        signature = reference_hex(secret.as_bytes(), &message);
    }
    let inputs = Inputs {
        scheme,
        secret: &input.secret,
        merchant_id: &input.merchant,
        timestamp: &input.timestamp,
        method: &input.method,
        url: url.as_ref(),
        body: &input.body,
        transaction_id: &input.transaction_id,
        signature: &signature,
    };
    let Ok(diagnosis) = countersign::diagnose::diagnose(&inputs) else {
        return;
    };
    match diagnosis {
        Diagnosis::Valid => {
            let expected = match (scheme, &url) {
                (Scheme::Kitopay | Scheme::KitopayWebhook, Some(url)) => StringToSign::kitopay(
                    &input.merchant,
                    &input.timestamp,
                    &input.method,
                    url,
                    &input.body,
                )
                .to_bytes(),
                (Scheme::KitopaySimplified, _) => StringToSign::kitopay_simplified(
                    &input.merchant,
                    &input.timestamp,
                    &input.method,
                    &input.transaction_id,
                )
                .to_bytes(),
                (Scheme::KamioKash, _) => {
                    StringToSign::kamiokash_request(&input.body, &input.timestamp).to_bytes()
                }
                (Scheme::KamioKashWebhook, _) => {
                    StringToSign::kamiokash_webhook(&input.timestamp, &input.body).to_bytes()
                }
                _ => unreachable!("diagnose errors without a URL"),
            };
            assert_eq!(
                reference_hex(input.secret.as_bytes(), &expected),
                signature.to_ascii_lowercase()
            );
        }
        Diagnosis::Explained(finding) => {
            let lower = signature.to_ascii_lowercase();
            if finding.hypothesis == Hypothesis::SecretWhitespace {
                let t = input.secret.trim();
                let candidates = [
                    t.to_owned(),
                    format!("{t}\n"),
                    format!("{t}\r\n"),
                    format!(" {t}"),
                    format!("{t} "),
                ];
                assert!(
                    candidates
                        .iter()
                        .any(|s| reference_hex(s.as_bytes(), &finding.signed) == lower),
                    "reported a secret-whitespace hypothesis that does not verify"
                );
            } else {
                assert_eq!(
                    reference_hex(input.secret.as_bytes(), &finding.signed),
                    lower,
                    "{:?} does not verify",
                    finding.hypothesis
                );
                assert_ne!(finding.signed, finding.expected);
            }
        }
        Diagnosis::Unexplained => {}
    }
}

/// A property check over the fuzzer's raw bytes.
pub type Property = fn(&[u8]);

/// Every target, by name, for the replay test.
pub const TARGETS: [(&str, Property); 7] = [
    ("signature_hex", signature_hex),
    ("canonical_url", canonical_url),
    ("timestamp", timestamp),
    ("verify_webhook", verify_webhook),
    ("sign_verify_roundtrip", sign_verify_roundtrip),
    ("http_adapter", http_adapter),
    ("diagnose", diagnose),
];

/// `signature_hex`: decoding arbitrary header bytes never panics (debug assertions catch
/// overflow), accepts exactly 64 hex digits of either case, and round-trips to lowercase.
pub fn signature_hex(data: &[u8]) {
    let outcome = countersign::Signature::from_hex_bytes(data);
    let is_hex = data.len() == 64 && data.iter().all(u8::is_ascii_hexdigit);
    assert_eq!(outcome.is_ok(), is_hex, "{data:?}");
    if let Ok(sig) = outcome {
        assert_eq!(
            sig.to_hex().as_str().as_bytes(),
            data.to_ascii_lowercase().as_slice()
        );
    }
}
