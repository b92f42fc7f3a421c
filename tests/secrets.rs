//! No secret byte ever appears in `Debug`, `Display` or an error message of any public type
//! that holds one, nor in any error produced while a secret is in scope.
#![cfg(feature = "diagnose")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign::diagnose::Inputs;
use countersign::{
    CanonicalUrl, FixedClock, KeyRing, ReceivedRequest, SecretKey, SignableRequest, Signer,
    Timestamp, Verifier,
};

const SECRET: &str = "sk_live_TOPSECRET_9f8e7d6c5b4a";

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} prints the secret: {text}");
    assert!(
        !text.contains("TOPSECRET"),
        "{what} prints part of the secret: {text}"
    );
}

/// `SecretKey` must not be `Clone` (one copy to wipe): this only compiles if exactly one of
/// the two impls applies, i.e. if `SecretKey: !Clone`.
#[test]
fn secret_key_is_not_clone() {
    trait AmbiguousIfClone<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfClone<()> for T {}
    #[allow(dead_code)]
    struct IsClone;
    impl<T: Clone> AmbiguousIfClone<IsClone> for T {}
    <SecretKey as AmbiguousIfClone<_>>::check();
}

#[test]
fn no_public_type_prints_the_secret() {
    let key = || SecretKey::new(SECRET).unwrap();
    let url = CanonicalUrl::parse("https://api.example.com/x").unwrap();
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();

    assert_clean("SecretKey", &format!("{:?} {:#?}", key(), key()));
    assert_clean(
        "SecretKey::from_string",
        &format!("{:?}", SecretKey::from_string(SECRET.to_owned()).unwrap()),
    );
    let ring = KeyRing::new("a", key()).with("b", key());
    assert_clean("KeyRing", &format!("{ring:?} {ring:#?}"));

    let kitopay = Signer::kitopay("m", key()).unwrap();
    let simplified = Signer::kitopay_simplified("m", key()).unwrap();
    let kamio = Signer::kamiokash("pk", key()).unwrap();
    let hook = Signer::kamiokash_webhook(key());
    let signers: [&Signer; 4] = [&kitopay, &simplified, &kamio, &hook];
    for s in signers {
        assert_clean("signer", &format!("{s:?} {s:#?}"));
        let request = SignableRequest::new("POST", &url, b"{}")
            .unwrap()
            .with_transaction_id("t");
        let signed = s.sign(&request, at).unwrap();
        assert_clean("SignedRequest", &format!("{signed:?}"));
        // Errors produced by a signer holding the secret.
        if let Err(e) = s.sign(&SignableRequest::body(b""), at) {
            assert_clean("signer error", &format!("{e} {e:?}"));
        }
    }
    let stream = kitopay
        .begin(&SignableRequest::new("POST", &url, b"").unwrap(), at)
        .unwrap();
    assert_clean("BodySigner", &format!("{stream:?}"));

    let verifiers = [
        Verifier::kitopay_request("m", key()).unwrap(),
        Verifier::kitopay_webhook("m", KeyRing::new("k", key()), url.clone()).unwrap(),
        Verifier::kitopay_simplified("m", key()).unwrap(),
        Verifier::kamiokash_request(key()),
        Verifier::kamiokash_webhook(key()),
    ];
    for v in &verifiers {
        assert_clean("Verifier", &format!("{v:?} {v:#?}"));
        // Every kind of rejection, with the secret in scope.
        let scheme = v.scheme();
        let wrong = "0".repeat(64);
        let sets: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![
                (scheme.timestamp_header().unwrap_or("x-none"), "garbage"),
                (scheme.signature_header(), "zz"),
            ],
            vec![
                (scheme.timestamp_header().unwrap_or("x-none"), "1700000000"),
                (scheme.signature_header(), wrong.as_str()),
                ("x-merchant-id", "m"),
            ],
            vec![
                (
                    scheme.timestamp_header().unwrap_or("x-none"),
                    "2023-11-14T22:13:20.000Z",
                ),
                (scheme.signature_header(), wrong.as_str()),
                ("X-API-Key", "pk"),
            ],
        ];
        for headers in &sets {
            let r = ReceivedRequest::new(headers, b"{}")
                .with_method("POST")
                .with_url(&url)
                .with_transaction_id("t");
            let e = v.verify(&r).unwrap_err();
            assert_clean("verification error", &format!("{e} {e:?}"));
        }
        let v2 = Verifier::kamiokash_webhook(key()).with_clock(FixedClock::new(at));
        assert_clean("Verifier with clock", &format!("{v2:?}"));
    }

    let inputs = Inputs {
        secret: SECRET,
        identity: "m",
        timestamp: "1",
        method: "GET",
        url: Some(&url),
        signature: "00",
        ..Inputs::new(&countersign::kitopay::FULL)
    };
    assert_clean("diagnose::Inputs", &format!("{inputs:?}"));
    let e = countersign::diagnose::diagnose(&inputs).unwrap_err();
    assert_clean("diagnose error", &format!("{e} {e:?}"));
    let outcome = countersign::diagnose::diagnose(&Inputs {
        signature: &"ab".repeat(32),
        ..inputs
    })
    .unwrap();
    assert_clean("Diagnosis", &format!("{outcome:?}"));
}
