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
    CanonicalUrl, ErrorKind, FixedClock, Freshness, KeyRing, ReceivedRequest, Scheme, SecretKey,
    SignableRequest, Signer, StringToSign, Timestamp, TrailingSlash, Verifier, built_in, kamiokash,
    kitopay,
};
use proptest::prelude::*;

use countersign_test_support::{reference, sign};

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
            let body = SignableRequest::body(&message[at..]);
            prop_assert_eq!(StringToSign::new(&kamiokash::WEBHOOK, None, ts, &body).unwrap().sign(&secret).to_string(), expected.clone());
        }
        let whole = SignableRequest::body(&message);
        prop_assert_eq!(StringToSign::new(&kamiokash::WEBHOOK, None, "", &whole).unwrap().sign(&secret).to_string(), expected);
    }

    #[test]
    fn streaming_equals_signing_whole(body in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..130, secs in 0u64..4_000_000_000) {
        let at = Timestamp::from_unix_secs(secs).unwrap();
        let url = CanonicalUrl::parse("https://api.example.com/upload?x=1").unwrap();
        let kito = Signer::kitopay("m-1", SecretKey::new("s").unwrap()).unwrap();
        let mut stream = kito.begin(&SignableRequest::new("PUT", &url, b"").unwrap(), at).unwrap();
        body.chunks(chunk).for_each(|c| stream.update(c));
        prop_assert_eq!(*stream.finish().signature(), *kito.sign(&SignableRequest::new("PUT", &url, &body).unwrap(), at).unwrap().signature());
        let kk = Signer::kamiokash("pk", SecretKey::new("s").unwrap()).unwrap();
        let mut stream = kk.begin(&SignableRequest::body(b""), at).unwrap();
        body.chunks(chunk).for_each(|c| stream.update(c));
        prop_assert_eq!(*stream.finish().signature(), *kk.sign(&SignableRequest::body(&body), at).unwrap().signature());
        let hook = Signer::kamiokash_webhook(SecretKey::new("s").unwrap());
        let mut stream = hook.begin(&SignableRequest::body(b""), at).unwrap();
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
    scheme: &'static Scheme,
    secret: String,
    identity: String,
    method: String,
    url: CanonicalUrl,
    body: Vec<u8>,
    /// The scheme's named value (Kitopay's transaction id, Standard Webhooks' id), drawn
    /// from both domains (unreserved characters without `.`).
    value: String,
    at: Timestamp,
}

/// Canonical http(s) URLs. A host label never starts with `x`: a label `xn--…` that is not
/// valid punycode is (rightly) refused by WHATWG, and this strategy means to draw URLs.
const URL: &str = "https?://[a-wyz][a-z0-9-]{0,10}(\\.[a-z]{2,4})?(:[1-9][0-9]{0,3})?(/[a-zA-Z0-9._~-]{0,8}){0,3}(\\?[a-z0-9=&]{1,12})?";

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        0usize..built_in().len(),
        "[ -~]{1,40}|\\PC{1,10}",
        "[!-~]([ -~]{0,30}[!-~])?",
        prop::sample::select(countersign::STANDARD_METHODS.to_vec()),
        URL,
        proptest::collection::vec(any::<u8>(), 0..300),
        "[A-Za-z0-9_~-]{1,36}",
        0u64..253_402_300_799_000,
    )
        .prop_map(|(s, secret, identity, method, url, body, value, ms)| {
            let scheme = built_in()[s];
            Case {
                scheme,
                // Standard Webhooks secrets are `whsec_` + base64 of the key.
                secret: reference::secret_text(scheme.name(), secret.as_bytes()).unwrap(),
                identity,
                method: method.to_owned(),
                url: CanonicalUrl::parse(&url).unwrap(),
                // Verifiers refuse a body on GET and HEAD where the URL meets the body.
                body: if scheme.signs_url() && matches!(method, "GET" | "HEAD") {
                    Vec::new()
                } else {
                    body
                },
                value,
                at: Timestamp::from_unix_millis(ms).unwrap(),
            }
        })
}

#[test]
fn the_url_strategy_draws_only_canonical_urls() {
    // The flake this replaces: 67 in 2,000,000 drawn URLs had an `xn--` label that is not
    // punycode, and `CanonicalUrl::parse(..).unwrap()` panicked in the strategy. No label
    // can start `xn--` now (the first letter is never `x`); 30,000 draws (the old strategy
    // failed about once in 30,000) confirm nothing else is drawn that parsing refuses.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = URL;
    for _ in 0..30_000 {
        let url = strategy.new_tree(&mut runner).unwrap().current();
        assert!(CanonicalUrl::parse(&url).is_ok(), "{url}");
    }
    assert!(CanonicalUrl::parse("https://xn--.tg:6/0x").is_err());
}

fn key(case: &Case, secret: &str) -> SecretKey {
    case.scheme.key(secret).unwrap()
}

/// The case's signer, built generically from the scheme value.
fn signer(case: &Case, secret: &str) -> Signer {
    let signer = Signer::new(case.scheme, key(case, secret)).unwrap();
    match case.scheme.identity_header() {
        Some(_) => signer.with_identity(&case.identity).unwrap(),
        None => signer,
    }
}

/// The case's verifier, built generically; webhooks that sign the URL verify `url`.
fn verifier(case: &Case, keys: KeyRing, url: &CanonicalUrl) -> Verifier {
    let mut v = Verifier::new(case.scheme, keys).unwrap();
    if case.scheme.identity_header().is_some() {
        v = v.with_identity(&case.identity).unwrap();
    }
    if case.scheme.is_webhook() && case.scheme.signs_url() {
        v = v.with_url(url.clone());
    }
    v.with_clock(FixedClock::new(case.at))
}

/// The request a case signs: every part, its value under every value name.
fn request<'a>(case: &'a Case, body: &'a [u8], value: &'a str) -> SignableRequest<'a> {
    SignableRequest::new(&case.method, &case.url, body)
        .unwrap()
        .with_transaction_id(value)
        .with_value("id", value)
}

/// The headers a case's signer produces.
fn signed_headers(case: &Case, secret: &str) -> Vec<(String, String)> {
    let s = signer(case, secret);
    let signed = s
        .sign(&request(case, &case.body, &case.value), case.at)
        .unwrap();
    sign::headers(&signed)
}

fn verify(
    case: &Case,
    keys: KeyRing,
    headers: &[(String, String)],
    method: &str,
    url: &CanonicalUrl,
    body: &[u8],
    value: &str,
) -> Result<String, countersign::Error> {
    let v = verifier(case, keys, url);
    let headers = headers.to_vec();
    let received = ReceivedRequest::new(&headers, body)
        .with_method(method)
        .with_url(url)
        .with_transaction_id(value);
    v.verify(&received).map(|ok| ok.key_id().to_owned())
}

/// The signature header's value with one bit of the signature changed, in its encoding.
fn other_signature(scheme: &Scheme, value: &str, at: prop::sample::Index) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let prefix = scheme.signature().prefix();
    let encoded = &value[prefix.len()..];
    let mut bytes = match scheme.signature().encoding() {
        countersign::Encoding::Base64 => b64.decode(encoded).unwrap(),
        _ => hex::decode(encoded).unwrap(),
    };
    let i = at.index(bytes.len());
    bytes[i] ^= 0x10;
    match scheme.signature().encoding() {
        countersign::Encoding::Base64 => format!("{prefix}{}", b64.encode(bytes)),
        _ => format!("{prefix}{}", hex::encode(bytes)),
    }
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
        let keys = KeyRing::new("k", key(&case, &case.secret));
        prop_assert_eq!(verify(&case, keys, &headers, &case.method, &case.url, &case.body, &case.value).unwrap(), "k");
    }

    #[test]
    fn any_single_byte_change_is_rejected(case in case_strategy(), part in 0u8..7, at in any::<prop::sample::Index>()) {
        let headers = signed_headers(&case, &case.secret);
        let keys = || KeyRing::new("k", key(&case, &case.secret));
        let set = |name: &str, value: String| -> Vec<(String, String)> {
            headers.iter().map(|(k, v)| if k == name { (k.clone(), value.clone()) } else { (k.clone(), v.clone()) }).collect()
        };
        let scheme = case.scheme;
        let outcome = match part {
            // merchant id / API key (the sender's identity)
            0 => match (scheme.identity_header(), flip(&case.identity, at)) {
                (Some(name), Some(other)) => verify(&case, keys(), &set(name, other), &case.method, &case.url, &case.body, &case.value),
                _ => return Ok(()),
            },
            1 => {
                let Some(name) = scheme.timestamp_header() else { return Ok(()) };
                let ts = headers.iter().find(|(k, _)| k == name).unwrap().1.clone();
                match flip(&ts, at) { Some(other) => verify(&case, keys(), &set(name, other), &case.method, &case.url, &case.body, &case.value), None => return Ok(()) }
            }
            2 if scheme.signs_method() => match flip(&case.method, at) {
                Some(other) => verify(&case, keys(), &headers, &other, &case.url, &case.body, &case.value),
                None => return Ok(()),
            },
            3 if scheme.signs_url() => {
                let Some(other) = flip(case.url.as_str(), at) else { return Ok(()) };
                match CanonicalUrl::parse(&other) {
                    Ok(u) if u.as_str() == other => verify(&case, keys(), &headers, &case.method, &u, &case.body, &case.value),
                    _ => return Ok(()), // not a different canonical URL; nothing to send
                }
            }
            4 if scheme.signs_body() => {
                if case.body.is_empty() { return Ok(()) }
                let mut body = case.body.clone();
                let i = at.index(body.len());
                body[i] ^= 0x01;
                verify(&case, keys(), &headers, &case.method, &case.url, &body, &case.value)
            }
            5 if scheme.values().count() > 0 => match flip(&case.value, at) {
                // A value sent in a header (Standard Webhooks' id) changes there.
                Some(other) => match scheme.values().find_map(|v| v.header_name()) {
                    Some(name) => verify(&case, keys(), &set(name, other), &case.method, &case.url, &case.body, &case.value),
                    None => verify(&case, keys(), &headers, &case.method, &case.url, &case.body, &other),
                },
                None => return Ok(()),
            },
            6 => {
                let sig = headers.iter().find(|(k, _)| k == scheme.signature_header()).unwrap().1.clone();
                verify(&case, keys(), &set(scheme.signature_header(), other_signature(scheme, &sig, at)), &case.method, &case.url, &case.body, &case.value)
            }
            _ => return Ok(()),
        };
        prop_assert!(outcome.is_err(), "part {} changed, still verified", part);
    }

    #[test]
    fn rotation_accepts_old_and_new_and_rejects_a_removed_key(case in case_strategy()) {
        let old = reference::secret_text(case.scheme.name(), format!("{}-old", case.secret).as_bytes()).unwrap();
        let new = reference::secret_text(case.scheme.name(), format!("{}-new", case.secret).as_bytes()).unwrap();
        let ring = || KeyRing::new("old", key(&case, &old)).with("new", key(&case, &new));
        for (secret, id) in [(&old, "old"), (&new, "new")] {
            let headers = signed_headers(&case, secret);
            prop_assert_eq!(verify(&case, ring(), &headers, &case.method, &case.url, &case.body, &case.value).unwrap(), id);
        }
        let mut without_old = ring();
        without_old.remove("old");
        let headers = signed_headers(&case, &old);
        let err = verify(&case, without_old, &headers, &case.method, &case.url, &case.body, &case.value).unwrap_err();
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
    let get = SignableRequest::new("GET", &url, b"").unwrap();
    let a = StringToSign::new(&kitopay::FULL, Some("m1"), "2345678901", &get).unwrap();
    let b = StringToSign::new(&kitopay::FULL, Some("m12"), "345678901", &get).unwrap();
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
    let r1 = SignableRequest::new("POST", &u1, b"2{}").unwrap();
    let r2 = SignableRequest::new("POST", &u2, b"{}").unwrap();
    assert_eq!(
        StringToSign::new(&kitopay::FULL, Some("m"), "1", &r1)
            .unwrap()
            .to_bytes(),
        StringToSign::new(&kitopay::FULL, Some("m"), "1", &r2)
            .unwrap()
            .to_bytes()
    );

    // KamioKash webhook: timestamp || body. A body that starts with digits can be read as
    // part of a longer timestamp fraction.
    let (c_body, d_body) = (SignableRequest::body(b"{}"), SignableRequest::body(b"Z{}"));
    let c = StringToSign::new(
        &kamiokash::WEBHOOK,
        None,
        "2026-01-27T09:23:07.001Z",
        &c_body,
    )
    .unwrap();
    let d = StringToSign::new(
        &kamiokash::WEBHOOK,
        None,
        "2026-01-27T09:23:07.001",
        &d_body,
    )
    .unwrap();
    assert_eq!(c.to_bytes(), d.to_bytes());
    // ...but the strict RFC 3339 parser refuses the second reading's timestamp.
    assert!(Timestamp::parse_rfc3339("2026-01-27T09:23:07.001").is_err());
}
