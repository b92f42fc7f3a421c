//! Cross-scheme forgeries are closed by construction: for every pair of built-in schemes
//! that share a secret, no message of one is a message of the other.
//!
//! The check is a parse, not a collision search: a random message of scheme A (its fields
//! drawn from A's domains, with alphabets chosen to look like B's fields) is read as a
//! message of scheme B in **every** possible way — every split of its bytes into B's parts,
//! each field within B's domain, B's identity the same configured value — and no reading may
//! exist. (A signature over A's message would otherwise be a valid signature of B's, and
//! moving it from one header to another would forge a request; see the scheme module's
//! "Cross-scheme forgeries".)
//!
//! Pairs that do not share a secret are listed with the reason; the one pair that shares a
//! layout by the provider's design (`kitopay`, `kitopay-webhook`) is pinned as such.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign::{
    CanonicalUrl, Part, STANDARD_METHODS, Scheme, SignableRequest, StringToSign, built_in,
    kamiokash, kitopay,
};
use proptest::prelude::*;

/// Every reading of `message` as a message of `scheme` whose identity is `identity`: each
/// as the fields' byte ranges. Exhaustive over split points (messages here are short).
fn readings(scheme: &Scheme, identity: &[u8], message: &[u8]) -> Vec<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    read(
        scheme,
        scheme.message(),
        identity,
        message,
        0,
        &mut Vec::new(),
        &mut out,
    );
    out
}

fn read(
    scheme: &Scheme,
    parts: &[Part],
    identity: &[u8],
    message: &[u8],
    at: usize,
    fields: &mut Vec<(usize, usize)>,
    out: &mut Vec<Vec<(usize, usize)>>,
) {
    let Some((part, rest)) = parts.split_first() else {
        if at == message.len() {
            out.push(fields.clone());
        }
        return;
    };
    let remaining = &message[at..];
    let accepts = |bytes: &[u8]| -> bool {
        match part {
            Part::Identity => bytes == identity,
            Part::Literal(text) => bytes == text.as_bytes(),
            Part::Timestamp => std::str::from_utf8(bytes)
                .ok()
                .is_some_and(|t| scheme.parse_timestamp(t).is_ok()),
            Part::Method => std::str::from_utf8(bytes)
                .ok()
                .is_some_and(|m| STANDARD_METHODS.contains(&m)),
            // A received URL is verified only in its canonical form, byte for byte.
            Part::Url => std::str::from_utf8(bytes)
                .ok()
                .is_some_and(|u| CanonicalUrl::parse(u).is_ok_and(|c| c.as_str() == u)),
            Part::Body => true,
            Part::Value(value) => value.domain().contains(bytes),
            _ => panic!("a part kind this test does not know: {part:?}"),
        }
    };
    // The body is the only field that may be empty; the last part takes what remains.
    let lengths: Box<dyn Iterator<Item = usize>> = if rest.is_empty() {
        Box::new(std::iter::once(remaining.len()))
    } else {
        Box::new(0..=remaining.len())
    };
    for len in lengths {
        if accepts(&remaining[..len]) {
            fields.push((at, at + len));
            read(scheme, rest, identity, message, at + len, fields, out);
            fields.pop();
        }
    }
}

/// Random fields of any scheme: alphabets that look like every scheme's fields (digits,
/// upper-case methods, URLs, unreserved ids), so a reading has every chance to exist.
#[derive(Debug, Clone)]
struct Fields {
    identity: String,
    timestamp: u64,
    method: &'static str,
    url: CanonicalUrl,
    body: Vec<u8>,
    value: String,
}

fn fields() -> impl Strategy<Value = Fields> {
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..60),
        // Bodies that look like the rest of another message: methods, URLs, ids, digits.
        "(GET|POST|PUT)?(https?://[a-w][a-z]{0,6}\\.com(/[a-z0-9._~-]{0,6}){0,2})?[A-Za-z0-9._~{}\":,-]{0,30}"
            .prop_map(String::into_bytes),
        "[0-9]{0,12}(GET|POST|HEAD)?[A-Za-z0-9._~-]{0,30}".prop_map(String::into_bytes),
    ];
    let value = prop_oneof![
        "[A-Za-z0-9._~-]{1,40}",
        // Ids that start like a method, or hold a timestamp-looking run of digits.
        "(GET|POST|https|http)[A-Za-z0-9._~-]{0,20}",
        "[0-9]{1,12}[A-Za-z0-9._~-]{0,20}",
    ];
    (
        "[!-~]([ -~]{0,14}[!-~])?|[a-z0-9_-]{1,12}[0-9]{0,4}",
        1u64..4_102_444_800,
        prop::sample::select(STANDARD_METHODS.to_vec()),
        "https?://[a-w][a-z0-9-]{0,8}(\\.[a-z]{2,4})?(:[1-9][0-9]{0,3})?(/[a-zA-Z0-9._~-]{0,8}){0,3}(\\?[a-z0-9=&]{1,12})?",
        body,
        value,
    )
        .prop_map(|(identity, timestamp, method, url, body, value)| Fields {
            identity,
            timestamp,
            method,
            url: CanonicalUrl::parse(&url).unwrap(),
            body,
            value,
        })
}

/// `scheme`'s message for these fields, laid out by the library, if the fields are in its
/// domains (a value outside them is refused: nothing is signed).
fn message_of(scheme: &'static Scheme, f: &Fields) -> Option<Vec<u8>> {
    let timestamp = countersign::Timestamp::from_unix_secs(f.timestamp).unwrap();
    let text = scheme.format_timestamp(timestamp).unwrap();
    let request = SignableRequest::new(f.method, &f.url, &f.body)
        .unwrap()
        .with_transaction_id(&f.value)
        .with_value("id", &f.value);
    let identity = scheme.signs_identity().then_some(f.identity.as_str());
    StringToSign::new(scheme, identity, text.as_str(), &request)
        .ok()
        .map(|m| m.to_bytes())
}

/// Ordered pairs of distinct built-in schemes sharing a secret, and whether their layouts
/// are the same (by the provider's design).
fn pairs_sharing_a_secret() -> Vec<(&'static Scheme, &'static Scheme)> {
    let mut pairs = Vec::new();
    for a in built_in() {
        for b in built_in() {
            if a != b && a.secret().name() == b.secret().name() {
                pairs.push((*a, *b));
            }
        }
    }
    pairs
}

fn same_layout(a: &Scheme, b: &Scheme) -> bool {
    format!("{:?}", a.message()) == format!("{:?}", b.message())
        && a.time_format() == b.time_format()
}

/// Cases per ordered pair.
const CASES: u32 = 3_000;

#[test]
fn every_pair_of_built_in_schemes_is_accounted_for() {
    // Which secret each scheme uses: the three Kitopay schemes share the merchant's; the
    // KamioKash API secret and webhook secret are separate secrets; Standard Webhooks
    // secrets are issued by other providers.
    let secret = |s: &Scheme| s.secret().name();
    assert_eq!(secret(&kitopay::FULL), "KITOPAY_SECRET");
    assert_eq!(secret(&kitopay::SIMPLIFIED), "KITOPAY_SECRET");
    assert_eq!(secret(&kitopay::WEBHOOK), "KITOPAY_SECRET");
    assert_eq!(secret(&kamiokash::REQUEST), "KAMIOKASH_SECRET");
    assert_eq!(secret(&kamiokash::WEBHOOK), "KAMIOKASH_WEBHOOK_SECRET");
    assert_eq!(
        secret(&countersign::standard_webhooks::SCHEME),
        "STANDARD_WEBHOOKS_SECRET"
    );
    let pairs = pairs_sharing_a_secret();
    assert_eq!(pairs.len(), 6, "{pairs:?}");
    // The one same-layout pair: Kitopay's webhooks are its request scheme over the
    // merchant's URL. A webhook verifier only accepts the public URL it was configured with.
    let same: Vec<_> = pairs
        .iter()
        .filter(|(a, b)| same_layout(a, b))
        .map(|(a, b)| (a.name(), b.name()))
        .collect();
    assert_eq!(
        same,
        [
            ("kitopay", "kitopay-webhook"),
            ("kitopay-webhook", "kitopay")
        ]
    );
}

#[test]
fn no_message_of_one_scheme_is_a_message_of_another_that_shares_its_secret() {
    let mut checked = 0u32;
    for (a, b) in pairs_sharing_a_secret() {
        if same_layout(a, b) {
            continue;
        }
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&fields(), |f| {
                let Some(message) = message_of(a, &f) else {
                    return Ok(());
                };
                let found = readings(b, f.identity.as_bytes(), &message);
                prop_assert!(
                    found.is_empty(),
                    "a {} message reads as a {} message: {:?} as {:?}",
                    a.name(),
                    b.name(),
                    String::from_utf8_lossy(&message),
                    found
                );
                // The parser is not vacuous: the message reads as its own scheme's.
                prop_assert!(!readings(a, f.identity.as_bytes(), &message).is_empty());
                Ok(())
            })
            .unwrap();
        checked += CASES;
    }
    assert_eq!(checked, 4 * CASES);
}

#[test]
fn the_parser_finds_the_forgery_the_attack_review_reproduced() {
    // Without the transaction id's domain, a simplified message is a full-scheme webhook's:
    // merchant ‖ ts ‖ POST ‖ txid = merchant ‖ ts ‖ POST ‖ url ‖ body.
    let txid = r#"https://shop.example.com/webhooks/kitopay{"id":"6956d4fc","reference_id":"order-1337","status":"success"}"#;
    let message = format!("m-11601234567POST{txid}");
    let as_webhook = readings(&kitopay::WEBHOOK, b"m-1", message.as_bytes());
    assert!(!as_webhook.is_empty(), "the parser must see this reading");
    // With it, no simplified message can be read so: the id is not in its domain.
    assert!(readings(&kitopay::SIMPLIFIED, b"m-1", message.as_bytes()).is_empty());
    assert!(!kitopay::TRANSACTION_ID.domain().contains(txid.as_bytes()));
}

/// The attack review's forgery, end to end through `VerifyLayer`: a merchant signs a Kitopay
/// simplified `POST` for a transaction id an attacker influences, and the attacker moves the
/// `x-simplified-signature` value into `x-signature` as a webhook to the merchant. Before
/// transaction ids had a domain, the signer signed it and the handler processed the forged
/// webhook (200, order marked paid); now the signer refuses the id, and so would a
/// simplified verifier.
#[cfg(feature = "axum")]
#[tokio::test]
async fn a_simplified_signature_cannot_be_replayed_as_a_webhook() {
    use countersign::layer::{VerifyLayer, WebhookAuth};
    use countersign::{
        ErrorKind, FixedClock, ReceivedRequest, SecretKey, Signer, Timestamp, Verifier,
    };
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt as _;

    const MERCHANT: &str = "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148";
    const SECRET: &str = "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9";
    let webhook_url = "https://shop.example.com/webhooks/kitopay";
    let body = r#"{"id":"6956d4fc","reference_id":"order-1337","status":"success"}"#;
    let txid = format!("{webhook_url}{body}");
    let at = Timestamp::from_unix_secs(1_601_234_567).unwrap();

    // The merchant's server signs a simplified request with the attacker's "transaction id".
    let signer = Signer::kitopay_simplified(MERCHANT, SecretKey::new(SECRET).unwrap()).unwrap();
    let request = SignableRequest::simplified("POST", &txid).unwrap();
    let outcome = signer.sign(&request, at);

    // The merchant's webhook route.
    let paid = Arc::new(Mutex::new(Vec::<String>::new()));
    let orders = Arc::clone(&paid);
    let verifier = Verifier::kitopay_webhook(
        MERCHANT,
        SecretKey::new(SECRET).unwrap(),
        CanonicalUrl::parse(webhook_url).unwrap(),
    )
    .unwrap()
    .with_clock(FixedClock::new(at));
    let app = axum::Router::new().route(
        "/webhooks/kitopay",
        axum::routing::post(move |body: String| async move {
            orders.lock().unwrap().push(body);
            "order marked paid"
        })
        .layer(VerifyLayer::new(WebhookAuth::new(verifier))),
    );

    match outcome {
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidField {
                    field: "transaction_id",
                    ..
                }
            ),
            "{e}"
        ),
        Ok(signed) => {
            // (The code before the fix.) Move the signature into a webhook.
            let forged = http::Request::post("/webhooks/kitopay")
                .header("x-merchant-id", MERCHANT)
                .header("x-timestamp", signed.timestamp().unwrap())
                .header("x-signature", signed.signature_value())
                .body(axum::body::Body::from(body))
                .unwrap();
            let response = app.clone().oneshot(forged).await.unwrap();
            panic!(
                "the signer signed a URL-shaped transaction id; the forged webhook got {} and the handler ran {} time(s)",
                response.status(),
                paid.lock().unwrap().len()
            );
        }
    }
    // A simplified verifier (Kitopay's side, or a mock of it) refuses the id too, even with
    // a signature that matches.
    let forged_sig = {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{MERCHANT}1601234567POST{txid}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let headers = [
        ("x-merchant-id", MERCHANT),
        ("x-timestamp", "1601234567"),
        ("x-simplified-signature", forged_sig.as_str()),
    ];
    let simplified = Verifier::kitopay_simplified(MERCHANT, SecretKey::new(SECRET).unwrap())
        .unwrap()
        .with_clock(FixedClock::new(at));
    let received = ReceivedRequest::new(&headers, b"")
        .with_method("POST")
        .with_transaction_id(&txid);
    assert!(matches!(
        simplified.verify(&received).unwrap_err().kind(),
        ErrorKind::InvalidField {
            field: "transaction_id",
            ..
        }
    ));
    assert!(paid.lock().unwrap().is_empty());
}
