//! Property tests (proptest): the guarantees, stated once and checked on random inputs.
//!
//! - sign → verify round-trips for every scheme;
//! - a single changed byte in merchant id, timestamp, method, URL, body, transaction id or
//!   signature is rejected;
//! - canonicalisation is idempotent and equals the `url` crate's serialisation without
//!   fragment and empty query, with the trailing-slash policy applied;
//! - freshness is exact at ±max_age / ±max_future;
//! - rotation: [old, new] accepts both and reports the right key; a removed key is rejected;
//! - every header value produced is a valid HTTP header value;
//! - the MAC equals the RustCrypto `hmac` crate's, and streaming equals signing whole;
//! - (a fixed example) the delimiter-free schemes' field-boundary ambiguity.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use countersign::{
    CanonicalUrl, ErrorKind, FixedClock, Freshness, KamioKashSigner, KamioKashWebhookSigner,
    KeyRing, KitopaySigner, KitopaySimplifiedSigner, ReceivedRequest, Scheme, SecretKey,
    SignableRequest, Signer, StringToSign, Timestamp, TrailingSlash, Verifier,
};
use proptest::prelude::*;

#[path = "common/reference.rs"]
mod reference;

fn url_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        // Mostly well-formed URLs, in every shape the canonicaliser meets.
        "(https?|HTTPS?)://([a-zA-Z0-9-]{1,12}\\.){0,3}[a-zA-Z][a-zA-Z0-9-]{0,8}(:[0-9]{1,5})?(/[a-zA-Z0-9._~%!$&'()*+,;=:@ -]{0,10}){0,4}(\\?[a-zA-Z0-9=&%/?'. -]{0,20})?(#[a-z0-9]{0,5})?",
        "https://(\\[::1\\]|127\\.0\\.0\\.1|0x7f\\.1|[0-9]{1,3}\\.[0-9]{1,3})(:[0-9]{1,4})?/[a-z./]{0,12}",
        // And anything at all.
        ".{0,40}",
    ]
}

fn policy_strategy() -> impl Strategy<Value = TrailingSlash> {
    prop_oneof![
        Just(TrailingSlash::Preserve),
        Just(TrailingSlash::Strip),
        Just(TrailingSlash::Require),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn canonicalisation_is_idempotent_and_matches_the_url_crate(input in url_strategy(), policy in policy_strategy()) {
        match CanonicalUrl::parse_with(&input, policy) {
            Ok(url) => {
                let again = CanonicalUrl::parse_with(url.as_str(), policy).unwrap();
                prop_assert_eq!(again.as_str(), url.as_str());
                prop_assert_eq!(Some(url.as_str().to_owned()), reference::canonical_url(&input, policy));
                prop_assert!(!url.as_str().contains('#'));
                match policy {
                    TrailingSlash::Strip => prop_assert!(url.path() == "/" || !url.path().ends_with('/')),
                    TrailingSlash::Require => prop_assert!(url.path().ends_with('/')),
                    TrailingSlash::Preserve => {}
                }
            }
            Err(e) => {
                prop_assert!(matches!(e.kind(), ErrorKind::InvalidUrl(_)));
                prop_assert_eq!(reference::canonical_url(&input, policy), None);
            }
        }
    }

    #[test]
    fn mac_equals_the_reference_hmac(key in proptest::collection::vec(any::<u8>(), 1..150), message in proptest::collection::vec(any::<u8>(), 0..400), split in any::<prop::sample::Index>()) {
        let expected = reference::hmac_hex(&key, &message);
        let at = split.index(message.len() + 1);
        let secret = SecretKey::from_bytes(&key).unwrap();
        // KamioKash webhook message = timestamp || body: put the split point between them.
        let ts = std::str::from_utf8(&message[..at]).ok();
        if let Some(ts) = ts {
            prop_assert_eq!(StringToSign::kamiokash_webhook(ts, &message[at..]).sign(&secret).to_string(), expected.clone());
        }
        prop_assert_eq!(StringToSign::kamiokash_webhook("", &message).sign(&secret).to_string(), expected);
    }

    #[test]
    fn streaming_equals_signing_whole(body in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..130, secs in 0u64..4_000_000_000) {
        let at = Timestamp::from_unix_secs(secs).unwrap();
        let url = CanonicalUrl::parse("https://api.example.com/upload?x=1").unwrap();
        let kito = KitopaySigner::new("m-1", SecretKey::new("s").unwrap()).unwrap();
        let mut stream = kito.begin("PUT", &url, at).unwrap();
        body.chunks(chunk).for_each(|c| stream.update(c));
        prop_assert_eq!(*stream.finish().signature(), *kito.sign(&SignableRequest::new("PUT", &url, &body).unwrap(), at).unwrap().signature());
        let kk = KamioKashSigner::new("pk", SecretKey::new("s").unwrap()).unwrap();
        let mut stream = kk.begin(at);
        body.chunks(chunk).for_each(|c| stream.update(c));
        prop_assert_eq!(*stream.finish().signature(), *kk.sign(&SignableRequest::body(&body), at).unwrap().signature());
        let hook = KamioKashWebhookSigner::new(SecretKey::new("s").unwrap());
        let mut stream = hook.begin(at);
        body.chunks(chunk).for_each(|c| stream.update(c));
        prop_assert_eq!(*stream.finish().signature(), *hook.sign(&SignableRequest::body(&body), at).unwrap().signature());
    }

    #[test]
    fn freshness_is_exact_at_the_boundaries(now_ms in 200_000u64..200_000_000_000_000, age_ms in 0u64..100_000, future_ms in 0u64..100_000) {
        let window = Freshness { max_age: Duration::from_millis(age_ms), max_future: Duration::from_millis(future_ms) };
        let now = Timestamp::from_unix_millis(now_ms).unwrap();
        let at = |ms: u64| Timestamp::from_unix_millis(ms).unwrap();
        let ns = |t: Timestamp, d: i64| Timestamp::from_duration(if d < 0 { t.since_epoch() - Duration::from_nanos(d.unsigned_abs()) } else { t.since_epoch() + Duration::from_nanos(d as u64) }).unwrap();
        prop_assert!(window.check(at(now_ms - age_ms), now).is_ok());
        let expired = matches!(window.check(ns(at(now_ms - age_ms), -1), now).unwrap_err().kind(), ErrorKind::Expired { .. });
        prop_assert!(expired);
        prop_assert!(window.check(at(now_ms + future_ms), now).is_ok());
        let future = matches!(window.check(ns(at(now_ms + future_ms), 1), now).unwrap_err().kind(), ErrorKind::Future { .. });
        prop_assert!(future);
        prop_assert!(window.check(now, now).is_ok());
    }
}

/// Everything a random request of any scheme needs.
#[derive(Debug, Clone)]
struct Case {
    scheme: Scheme,
    secret: String,
    identity: String,
    method: String,
    url: CanonicalUrl,
    body: Vec<u8>,
    transaction_id: String,
    at: Timestamp,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        0usize..5,
        "[ -~]{1,40}|\\PC{1,10}",
        "[!-~]([ -~]{0,30}[!-~])?",
        prop::sample::select(countersign::STANDARD_METHODS.to_vec()),
        "https?://[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,4})?(:[1-9][0-9]{0,3})?(/[a-zA-Z0-9._~-]{0,8}){0,3}(\\?[a-z0-9=&]{1,12})?",
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,36}",
        0u64..253_402_300_799_000,
    )
        .prop_map(|(s, secret, identity, method, url, body, transaction_id, ms)| Case {
            scheme: Scheme::ALL[s],
            secret,
            identity,
            method: method.to_owned(),
            url: CanonicalUrl::parse(&url).unwrap(),
            // Verifiers refuse a body on GET and HEAD where the body is signed.
            body: if Scheme::ALL[s].signs_url() && matches!(method, "GET" | "HEAD") {
                Vec::new()
            } else {
                body
            },
            transaction_id,
            at: Timestamp::from_unix_millis(ms).unwrap(),
        })
}

fn signer(case: &Case, secret: &str) -> Box<dyn Signer> {
    let key = SecretKey::new(secret).unwrap();
    match case.scheme {
        Scheme::Kitopay => Box::new(KitopaySigner::new(&case.identity, key).unwrap()),
        Scheme::KitopayWebhook => {
            Box::new(KitopaySigner::for_webhooks(&case.identity, key).unwrap())
        }
        Scheme::KitopaySimplified => {
            Box::new(KitopaySimplifiedSigner::new(&case.identity, key).unwrap())
        }
        Scheme::KamioKash => Box::new(KamioKashSigner::new(&case.identity, key).unwrap()),
        _ => Box::new(KamioKashWebhookSigner::new(key)),
    }
}

fn verifier(case: &Case, keys: KeyRing, url: &CanonicalUrl) -> Verifier {
    match case.scheme {
        Scheme::Kitopay => Verifier::kitopay_request(&case.identity, keys).unwrap(),
        Scheme::KitopayWebhook => {
            Verifier::kitopay_webhook(&case.identity, keys, url.clone()).unwrap()
        }
        Scheme::KitopaySimplified => Verifier::kitopay_simplified(&case.identity, keys).unwrap(),
        Scheme::KamioKash => Verifier::kamiokash_request(keys)
            .with_api_key(&case.identity)
            .unwrap(),
        _ => Verifier::kamiokash_webhook(keys),
    }
    .with_clock(FixedClock::new(case.at))
}

/// The headers a case's signer produces.
fn signed_headers(case: &Case, secret: &str) -> Vec<(String, String)> {
    let request = SignableRequest::new(&case.method, &case.url, &case.body)
        .unwrap()
        .with_transaction_id(&case.transaction_id);
    let s = signer(case, secret);
    let signed = s.sign(&request, case.at).unwrap();
    signed
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn verify(
    case: &Case,
    keys: KeyRing,
    headers: &[(String, String)],
    method: &str,
    url: &CanonicalUrl,
    body: &[u8],
    txn: &str,
) -> Result<String, countersign::Error> {
    let v = verifier(case, keys, url);
    let headers = headers.to_vec();
    let received = ReceivedRequest::new(&headers, body)
        .with_method(method)
        .with_url(url)
        .with_transaction_id(txn);
    v.verify(&received).map(|ok| ok.key_id().to_owned())
}

fn flip(text: &str, at: prop::sample::Index) -> Option<String> {
    // Change one byte to another printable ASCII byte, keeping the text valid UTF-8.
    let mut bytes = text.as_bytes().to_vec();
    if bytes.is_empty() {
        return None;
    }
    let i = at.index(bytes.len());
    if !bytes[i].is_ascii() {
        return None;
    }
    bytes[i] = if bytes[i] == b'~' { b'!' } else { bytes[i] + 1 };
    String::from_utf8(bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_scheme_round_trips_and_header_values_are_valid(case in case_strategy()) {
        let headers = signed_headers(&case, &case.secret);
        for (name, value) in &headers {
            prop_assert!(http::HeaderName::from_bytes(name.as_bytes()).is_ok());
            prop_assert!(http::HeaderValue::from_str(value).is_ok(), "{:?}", value);
        }
        let keys = KeyRing::new("k", SecretKey::new(&case.secret).unwrap());
        prop_assert_eq!(verify(&case, keys, &headers, &case.method, &case.url, &case.body, &case.transaction_id).unwrap(), "k");
    }

    #[test]
    fn any_single_byte_change_is_rejected(case in case_strategy(), part in 0u8..7, at in any::<prop::sample::Index>()) {
        let headers = signed_headers(&case, &case.secret);
        let keys = || KeyRing::new("k", SecretKey::new(&case.secret).unwrap());
        let set = |name: &str, value: String| -> Vec<(String, String)> {
            headers.iter().map(|(k, v)| if k == name { (k.clone(), value.clone()) } else { (k.clone(), v.clone()) }).collect()
        };
        let scheme = case.scheme;
        let outcome = match part {
            // merchant id / API key (the sender's identity)
            0 => match (scheme.identity_header(), flip(&case.identity, at)) {
                (Some(name), Some(other)) => verify(&case, keys(), &set(name, other), &case.method, &case.url, &case.body, &case.transaction_id),
                _ => return Ok(()),
            },
            1 => {
                let ts = headers.iter().find(|(k, _)| k == scheme.timestamp_header()).unwrap().1.clone();
                match flip(&ts, at) { Some(other) => verify(&case, keys(), &set(scheme.timestamp_header(), other), &case.method, &case.url, &case.body, &case.transaction_id), None => return Ok(()) }
            }
            2 if scheme.is_kitopay() => match flip(&case.method, at) {
                Some(other) => verify(&case, keys(), &headers, &other, &case.url, &case.body, &case.transaction_id),
                None => return Ok(()),
            },
            3 if scheme.signs_url() => {
                let Some(other) = flip(case.url.as_str(), at) else { return Ok(()) };
                match CanonicalUrl::parse(&other) {
                    Ok(u) if u.as_str() == other => verify(&case, keys(), &headers, &case.method, &u, &case.body, &case.transaction_id),
                    _ => return Ok(()), // not a different canonical URL; nothing to send
                }
            }
            4 if scheme != Scheme::KitopaySimplified => {
                if case.body.is_empty() { return Ok(()) }
                let mut body = case.body.clone();
                let i = at.index(body.len());
                body[i] ^= 0x01;
                verify(&case, keys(), &headers, &case.method, &case.url, &body, &case.transaction_id)
            }
            5 if scheme == Scheme::KitopaySimplified => match flip(&case.transaction_id, at) {
                Some(other) => verify(&case, keys(), &headers, &case.method, &case.url, &case.body, &other),
                None => return Ok(()),
            },
            6 => {
                let sig = headers.iter().find(|(k, _)| k == scheme.signature_header()).unwrap().1.clone();
                let mut bytes = sig.into_bytes();
                let i = at.index(64);
                bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
                verify(&case, keys(), &set(scheme.signature_header(), String::from_utf8(bytes).unwrap()), &case.method, &case.url, &case.body, &case.transaction_id)
            }
            _ => return Ok(()),
        };
        prop_assert!(outcome.is_err(), "part {} changed, still verified", part);
    }

    #[test]
    fn rotation_accepts_old_and_new_and_rejects_a_removed_key(case in case_strategy()) {
        let old = format!("{}-old", case.secret);
        let new = format!("{}-new", case.secret);
        let ring = || KeyRing::new("old", SecretKey::new(&old).unwrap()).with("new", SecretKey::new(&new).unwrap());
        for (secret, id) in [(&old, "old"), (&new, "new")] {
            let headers = signed_headers(&case, secret);
            prop_assert_eq!(verify(&case, ring(), &headers, &case.method, &case.url, &case.body, &case.transaction_id).unwrap(), id);
        }
        let mut without_old = ring();
        without_old.remove("old");
        let headers = signed_headers(&case, &old);
        let err = verify(&case, without_old, &headers, &case.method, &case.url, &case.body, &case.transaction_id).unwrap_err();
        prop_assert_eq!(err.kind(), &ErrorKind::SignatureMismatch);
    }
}

/// The Kitopay schemes and KamioKash webhooks concatenate fields without delimiters, so two
/// different inputs can produce the same message, and therefore the same signature.
#[test]
fn field_boundary_ambiguity_of_delimiter_free_schemes() {
    let url = CanonicalUrl::parse("https://api.example.com/x").unwrap();
    // Kitopay: merchant "m1" at 2345678901 and merchant "m12" at 345678901 (both valid
    // timestamps) sign the same bytes.
    let a = StringToSign::kitopay("m1", "2345678901", "GET", &url, b"");
    let b = StringToSign::kitopay("m12", "345678901", "GET", &url, b"");
    assert_eq!(a.to_bytes(), b.to_bytes());
    let key = SecretKey::new("s").unwrap();
    assert_eq!(a.sign(&key), b.sign(&key));
    // The verifier takes the merchant id from its configuration, so the second reading
    // fails: the signature is checked for "m1" only, and "m12"'s header is refused.
    let v = Verifier::kitopay_request("m1", SecretKey::new("s").unwrap())
        .unwrap()
        .with_clock(FixedClock::new(
            Timestamp::from_unix_secs(345_678_901).unwrap(),
        ));
    let sig = a.sign(&key).to_string();
    let forged = [
        ("x-merchant-id", "m12"),
        ("x-timestamp", "345678901"),
        ("x-signature", sig.as_str()),
    ];
    let r = ReceivedRequest::new(&forged, b"")
        .with_method("GET")
        .with_url(&url);
    assert_eq!(
        v.verify(&r).unwrap_err().kind(),
        &ErrorKind::IdentityMismatch("x-merchant-id")
    );

    // Kitopay: the body can also absorb bytes from the URL's end (a query ending in the
    // body's first bytes).
    let u1 = CanonicalUrl::parse("https://api.example.com/x?a=1").unwrap();
    let u2 = CanonicalUrl::parse("https://api.example.com/x?a=12").unwrap();
    assert_eq!(
        StringToSign::kitopay("m", "1", "POST", &u1, b"2{}").to_bytes(),
        StringToSign::kitopay("m", "1", "POST", &u2, b"{}").to_bytes()
    );

    // KamioKash webhook: timestamp || body. A body that starts with digits can be read as
    // part of a longer timestamp fraction.
    let c = StringToSign::kamiokash_webhook("2026-01-27T09:23:07.001Z", b"{}");
    let d = StringToSign::kamiokash_webhook("2026-01-27T09:23:07.001", b"Z{}");
    assert_eq!(c.to_bytes(), d.to_bytes());
    // ...but the strict RFC 3339 parser refuses the second reading's timestamp.
    assert!(Timestamp::parse_rfc3339("2026-01-27T09:23:07.001").is_err());
}
