//! The properties the fuzz targets assert (`fuzz/fuzz_targets/*.rs`, one target a
//! function), shared with the stable `cargo test` that replays every checked-in corpus file
//! and regression input (`tests/fuzz_replay.rs`).
//!
//! Each function takes the fuzzer's raw bytes, never panics on its own account, and panics
//! (the fuzzer's "crash") only when a property is violated.

use arbitrary::{Arbitrary, Unstructured};
use countersign::{
    CanonicalUrl, ErrorKind, FixedClock, Freshness, ReceivedRequest, Scheme, SecretKey,
    SignableRequest, Signer, Timestamp, TrailingSlash, Verifier, built_in, kamiokash, kitopay,
};

use crate::reference;
use crate::reference::hmac_hex as reference_hex;

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
        let fields = reference::Fields {
            identity: &input.merchant,
            timestamp: &input.timestamp,
            method: "POST",
            url: url.as_str(),
            body: &input.body,
            ..Default::default()
        };
        (
            v,
            &kitopay::WEBHOOK,
            reference::message("kitopay-webhook", &fields),
        )
    } else {
        let fields = reference::Fields {
            timestamp: &input.timestamp,
            body: &input.body,
            ..Default::default()
        };
        (
            Verifier::kamiokash_webhook(key),
            &kamiokash::WEBHOOK,
            reference::message("kamiokash-webhook", &fields),
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
            scheme.timestamp_header().unwrap().to_owned(),
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
                .check(verified.timestamp().unwrap(), now)
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
struct StandardWebhooksInput {
    key: Vec<u8>,
    id: String,
    timestamp: String,
    body: Vec<u8>,
    now_secs: u32,
    /// Signature list entries: `None` = the correct signature, else this raw text.
    entries: Vec<Option<String>>,
    /// Instead of a list of entries, this raw header.
    raw: Option<String>,
}

/// `standard_webhooks`: arbitrary ids, timestamps, bodies (binary too), keys and
/// `webhook-signature` headers never panic; `Ok` exactly when the id is in its domain, the
/// timestamp is fresh (5 minutes) and some `v1,` entry (among at most 8 well-formed ones) is
/// the reference HMAC of `id.timestamp.body`; what the signer writes always verifies.
pub fn standard_webhooks(data: &[u8]) {
    let Ok(input) = StandardWebhooksInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let scheme = &countersign::standard_webhooks::SCHEME;
    let Some(secret) = reference::secret_text(scheme.name(), &input.key) else {
        return;
    };
    let Ok(key) = scheme.key(&secret) else {
        assert!(input.key.is_empty(), "a non-empty key was refused");
        return;
    };
    let now = Timestamp::from_unix_secs(u64::from(input.now_secs)).unwrap();
    let verifier = Verifier::standard_webhooks(key).with_clock(FixedClock::new(now));
    let fields = reference::Fields {
        id: &input.id,
        timestamp: &input.timestamp,
        body: &input.body,
        ..Default::default()
    };
    let correct = reference::signature_value(
        scheme.name(),
        &reference_hex(&input.key, &reference::message(scheme.name(), &fields)),
    );
    let header = match &input.raw {
        Some(raw) => raw.clone(),
        None => input
            .entries
            .iter()
            .map(|e| e.clone().unwrap_or_else(|| correct.clone()))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let headers = [
        ("webhook-id", input.id.as_str()),
        ("webhook-timestamp", input.timestamp.as_str()),
        ("webhook-signature", header.as_str()),
    ];
    let outcome = verifier.verify(&ReceivedRequest::new(&headers, &input.body));
    let id_ok = !input.id.is_empty()
        && input.id.len() <= 256
        && input.id.bytes().all(|b| b.is_ascii_graphic() && b != b'.');
    let fresh = Timestamp::parse_unix(&input.timestamp).is_ok_and(|t| {
        Freshness::symmetric(std::time::Duration::from_secs(300))
            .check(t, now)
            .is_ok()
    });
    let well_formed: Vec<&str> = header
        .split(' ')
        .filter_map(|e| e.strip_prefix("v1,"))
        .filter(|b64| countersign::Signature::from_base64(b64.as_bytes()).is_ok())
        .collect();
    let matches = well_formed.len() <= 8
        && well_formed
            .iter()
            .any(|b64| Some(*b64) == correct.strip_prefix("v1,"));
    assert_eq!(
        outcome.is_ok(),
        id_ok && fresh && matches,
        "id_ok {id_ok} fresh {fresh} matches {matches}: {outcome:?}"
    );
    // What the signer writes verifies (when the id and timestamp are valid).
    if let (true, Ok(at)) = (id_ok, Timestamp::parse_unix(&input.timestamp)) {
        let signer = Signer::standard_webhooks(scheme.key(&secret).unwrap());
        let request = SignableRequest::body(&input.body).with_value("id", &input.id);
        let signed = signer.sign(&request, at).unwrap();
        if signed.timestamp() == Some(input.timestamp.as_str()) {
            assert_eq!(signed.signature_value(), correct);
        }
        let headers: Vec<(&str, &str)> = signed.headers().collect();
        Verifier::standard_webhooks(scheme.key(&secret).unwrap())
            .with_clock(FixedClock::new(at))
            .verify(&ReceivedRequest::new(&headers, &input.body))
            .unwrap();
    } else if !id_ok {
        let signer = Signer::standard_webhooks(scheme.key(&secret).unwrap());
        let request = SignableRequest::body(&input.body).with_value("id", &input.id);
        let refused = signer.sign(&request, now).unwrap_err();
        assert!(
            matches!(refused.kind(), ErrorKind::InvalidField { field: "id", .. }),
            "{refused}"
        );
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

/// The built-in scheme a fuzzer byte selects (the registry's order; the seed providers'
/// five first, as their regression inputs expect).
fn scheme_of(byte: u8) -> &'static Scheme {
    built_in()[usize::from(byte) % built_in().len()]
}

/// The text of a secret for `scheme` from fuzzer text (base64-encoded where the scheme's
/// secrets are), and its key bytes for the reference HMAC.
fn secret_for(scheme: &Scheme, text: &str) -> Option<(String, Vec<u8>)> {
    let secret = reference::secret_text(scheme.name(), text.as_bytes())?;
    let key = reference::key_bytes(scheme.name(), &secret);
    (!key.is_empty()).then_some((secret, key))
}

/// A signer built generically: the scheme value, its key form, its identity if it has one.
fn signer_for(scheme: &'static Scheme, identity: &str, secret: &str) -> Option<Signer> {
    let signer = Signer::new(scheme, scheme.key(secret).ok()?).ok()?;
    match scheme.identity_header() {
        Some(_) => signer.with_identity(identity).ok(),
        None => Some(signer),
    }
}

/// A verifier built generically; webhooks that sign the URL get `url` as their public URL.
fn verifier_for(
    scheme: &'static Scheme,
    identity: &str,
    secret: &str,
    url: &CanonicalUrl,
) -> Option<Verifier> {
    let mut verifier = Verifier::new(scheme, scheme.key(secret).ok()?).ok()?;
    if scheme.identity_header().is_some() {
        verifier = verifier.with_identity(identity).ok()?;
    }
    if scheme.is_webhook() && scheme.signs_url() {
        verifier = verifier.with_url(url.clone());
    }
    Some(verifier)
}

/// A full-scheme Kitopay GET or HEAD with a body is signed (a signer signs what it is given)
/// but refused by default, since its bytes could move into the URL; opted in, it verifies.
fn body_on_get(scheme: &Scheme, method: &str, body: &[u8]) -> bool {
    scheme.signs_url()
        && scheme.signs_body()
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

/// Whether `value` is in the domain of the scheme's named value (transaction id, id).
fn value_ok(scheme: &Scheme, value: &str) -> bool {
    scheme
        .values()
        .all(|v| v.domain().contains(value.as_bytes()))
}

/// `sign_verify_roundtrip`: for every scheme, what is signed verifies; changing any one byte
/// of any signed part, or of the signature, makes verification fail. A named value outside
/// its domain (a transaction id with a `/`) is refused by the signer.
pub fn sign_verify_roundtrip(data: &[u8]) {
    let Ok(input) = RoundTrip::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let scheme = scheme_of(input.scheme);
    let Some((secret, _)) = secret_for(scheme, &input.secret) else {
        return;
    };
    let Some(signer) = signer_for(scheme, &input.identity, &secret) else {
        return;
    };
    let Ok(url) = CanonicalUrl::parse(&input.url) else {
        return;
    };
    let Ok(at) = Timestamp::from_unix_millis(input.millis % 253_402_300_800_000) else {
        return;
    };
    // The one named value each scheme has is given under every name.
    let request = match SignableRequest::new(&input.method, &url, &input.body) {
        Ok(r) => r
            .with_transaction_id(&input.transaction_id)
            .with_value("id", &input.transaction_id),
        Err(_) => return,
    };
    let signed = match signer.sign(&request, at) {
        Ok(signed) => signed,
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::InvalidField { .. })
                    && !value_ok(scheme, &input.transaction_id),
                "{scheme}: signing failed: {e}"
            );
            return;
        }
    };
    assert!(
        value_ok(scheme, &input.transaction_id),
        "{scheme}: signed a value outside its domain"
    );
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
    let verifier = verifier_for(scheme, &input.identity, &secret, &url)
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
    let signs = |part: u8| match part {
        1 => scheme.signs_identity(),
        2 => scheme.time_format().is_some(),
        3 => scheme.signs_method(),
        4 => scheme.signs_url(),
        5 => scheme.signs_body(),
        6 => scheme.values().count() > 0,
        _ => true,
    };
    let part = input.mutate % 8;
    if part == 0 || !signs(part) {
        return;
    }
    let mut identity = input.identity.clone().into_bytes();
    let mut timestamp = signed.timestamp().unwrap_or_default().as_bytes().to_vec();
    let mut method = input.method.clone().into_bytes();
    let mut url_text = url.as_str().as_bytes().to_vec();
    let mut body = input.body.clone();
    let mut value = input.transaction_id.clone().into_bytes();
    let mut mac = *signed.signature().as_bytes();
    let changed = match part {
        1 => flip(&mut identity, input.position, input.xor),
        2 => flip(&mut timestamp, input.position, input.xor),
        3 => flip(&mut method, input.position, input.xor),
        4 => flip(&mut url_text, input.position, input.xor),
        5 => flip(&mut body, input.position, input.xor),
        6 => flip(&mut value, input.position, input.xor),
        _ => flip(&mut mac, input.position, input.xor),
    };
    if !changed {
        return;
    }
    let (Ok(identity), Ok(method), Ok(value)) = (
        String::from_utf8(identity),
        String::from_utf8(method),
        String::from_utf8(value),
    ) else {
        return; // not representable as text; nothing to send
    };
    let mac_hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    let signature = reference::signature_value(scheme.name(), &mac_hex);
    let mut headers = headers.clone();
    for (name, header) in &mut headers {
        if Some(name.as_str()) == scheme.identity_header() {
            *header = identity.clone();
        } else if Some(name.as_str()) == scheme.timestamp_header() {
            *header = String::from_utf8_lossy(&timestamp).into_owned();
        } else if name == scheme.signature_header() {
            *header = signature.clone();
        } else if scheme
            .values()
            .any(|v| v.header_name() == Some(name.as_str()))
        {
            *header = value.clone();
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
    let verifier = if scheme.is_webhook() && scheme.signs_url() {
        verifier_for(scheme, &input.identity, &secret, &tampered_url)
            .unwrap()
            .with_clock(FixedClock::new(at))
            .with_body_on_get(body_on_get)
    } else {
        verifier
    };
    let received = ReceivedRequest::new(&headers, &body)
        .with_method(&method)
        .with_url(&tampered_url)
        .with_transaction_id(&value);
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
    let scheme = scheme_of(input.scheme);
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
    let (secret, _) = secret_for(scheme, "s3cret").unwrap();
    let signer = signer_for(scheme, "merchant-1", &secret).unwrap();
    let options = countersign::http::SignOptions {
        transaction_id: Some("tx-1"),
        values: &[("id", "msg_1")],
        ..Default::default()
    };
    if countersign::http::sign_request_with(&signer, &mut request, at, options).is_err() {
        return;
    }
    let url = CanonicalUrl::parse(&request.uri().to_string()).expect("signed URI is canonical");
    assert_eq!(url.as_str(), request.uri().to_string());
    if scheme.values().any(|v| v.header_name().is_none()) {
        return; // the transaction id is not part of an http::Request
    }
    let mut verifier = verifier_for(scheme, "merchant-1", &secret, &url)
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
    let scheme = scheme_of(input.scheme);
    let Some((secret, key)) = secret_for(scheme, &input.secret) else {
        return;
    };
    let url = CanonicalUrl::parse(&input.url).ok();
    let fields = |url: &'_ str, body: &'_ [u8]| -> Vec<u8> {
        reference::message(
            scheme.name(),
            &reference::Fields {
                identity: &input.merchant,
                timestamp: &input.timestamp,
                method: &input.method,
                url,
                body,
                transaction_id: &input.transaction_id,
                id: &input.transaction_id,
            },
        )
    };
    let mut signature = input.signature.clone();
    if let Some(mistake) = input.mistake {
        // Sign what a sender making a mistake would have signed.
        let mut body = input.body.clone();
        let mut key = key.clone();
        let mut url_text = url
            .as_ref()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default();
        match mistake % 4 {
            0 => body.push(b'\n'),
            1 if scheme.secret().form() == countersign::KeyForm::Utf8 => key.push(b'\n'),
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
        signature = reference::signature_value(
            scheme.name(),
            &reference_hex(&key, &fields(&url_text, &body)),
        );
    }
    let values = [
        ("transaction_id", input.transaction_id.as_str()),
        ("id", input.transaction_id.as_str()),
    ];
    let inputs = Inputs {
        secret: &secret,
        identity: &input.merchant,
        timestamp: &input.timestamp,
        method: &input.method,
        url: url.as_ref(),
        body: &input.body,
        values: &values,
        signature: &signature,
        ..Inputs::new(scheme)
    };
    let Ok(diagnosis) = countersign::diagnose::diagnose(&inputs) else {
        return;
    };
    let signed_by = |key: &[u8], message: &[u8]| {
        reference::signature_value(scheme.name(), &reference_hex(key, message))
    };
    let offered: Vec<String> = match scheme.signature().separator() {
        Some(_) => signature.split(' ').map(str::to_owned).collect(),
        None => vec![signature.to_ascii_lowercase()],
    };
    match diagnosis {
        Diagnosis::Valid => {
            let url_text = url.as_ref().map(CanonicalUrl::as_str).unwrap_or_default();
            let expected = fields(url_text, &input.body);
            assert!(
                offered.contains(&signed_by(&key, &expected)),
                "Valid, but it does not verify"
            );
        }
        Diagnosis::Explained(finding) => {
            if finding.hypothesis == Hypothesis::SecretWhitespace {
                let t = secret.trim();
                let candidates = [
                    t.to_owned(),
                    format!("{t}\n"),
                    format!("{t}\r\n"),
                    format!(" {t}"),
                    format!("{t} "),
                ];
                assert!(
                    candidates.iter().any(|s| {
                        std::panic::catch_unwind(|| reference::key_bytes(scheme.name(), s))
                            .is_ok_and(|k| offered.contains(&signed_by(&k, &finding.signed)))
                    }),
                    "reported a secret-whitespace hypothesis that does not verify"
                );
            } else if finding.hypothesis == Hypothesis::SecretConfusable {
                // Another key (a look-alike swapped), the message expected.
                assert_eq!(finding.signed, finding.expected);
                assert!(
                    secret
                        .chars()
                        .any(|c| "ABCEHKMOPTXYacepxyijsАВСЕНКМОРТХУасерхуіјѕ".contains(c))
                );
            } else {
                assert!(
                    offered.contains(&signed_by(&key, &finding.signed)),
                    "{:?} does not verify",
                    finding.hypothesis
                );
                assert_ne!(finding.signed, finding.expected);
            }
        }
        _ => {}
    }
}

/// A property check over the fuzzer's raw bytes.
pub type Property = fn(&[u8]);

/// Every target, by name, for the replay test.
pub const TARGETS: [(&str, Property); 8] = [
    ("signature_hex", signature_hex),
    ("canonical_url", canonical_url),
    ("timestamp", timestamp),
    ("verify_webhook", verify_webhook),
    ("sign_verify_roundtrip", sign_verify_roundtrip),
    ("http_adapter", http_adapter),
    ("diagnose", diagnose),
    ("standard_webhooks", standard_webhooks),
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
