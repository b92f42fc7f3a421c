//! The diagnose hypothesis search, one direction of each mistake per case; and what it
//! refuses to do.
#![cfg(feature = "diagnose")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign::diagnose::{Diagnosis, Hypothesis, Inputs, diagnose};
use countersign::{CanonicalUrl, ErrorKind, Scheme, SecretKey, StringToSign};

const SECRET: &str = "s3cret";

fn sig(message: &[u8], secret: &str) -> String {
    StringToSign::kamiokash_webhook("", message)
        .sign(&SecretKey::new(secret).unwrap())
        .to_string()
}

fn kitopay<'a>(
    url: &'a CanonicalUrl,
    body: &'a [u8],
    method: &'a str,
    ts: &'a str,
    signature: &'a str,
) -> Inputs<'a> {
    Inputs {
        scheme: Scheme::Kitopay,
        secret: SECRET,
        merchant_id: "m",
        timestamp: ts,
        method,
        url: Some(url),
        body,
        transaction_id: "",
        signature,
    }
}

fn found(inputs: &Inputs<'_>) -> Hypothesis {
    match diagnose(inputs).unwrap() {
        Diagnosis::Explained(f) => {
            assert!(f.hypothesis.to_string().len() > 20);
            f.hypothesis
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_remaining_direction_is_named() {
    let http = CanonicalUrl::parse("http://api.example.com/x").unwrap();
    let signed = sig(b"m1601234567POSThttps://api.example.com/x{}", SECRET);
    assert_eq!(
        found(&kitopay(&http, b"{}", "POST", "1601234567", &signed)),
        Hypothesis::HttpsInsteadOfHttp
    );

    let url = CanonicalUrl::parse("https://api.example.com/x").unwrap();
    let signed = sig(b"m1601234567POSThttps://api.example.com/x{}", SECRET);
    assert_eq!(
        found(&kitopay(&url, b"{}\r\n", "POST", "1601234567", &signed)),
        Hypothesis::BodyTrailingNewlineRemoved
    );
    assert_eq!(
        found(&kitopay(&url, b"{}", "post", "1601234567", &signed)),
        Hypothesis::MethodUppercase
    );
    assert_eq!(
        found(&kitopay(&url, b"{}", "POST", "1601234567000", &signed)),
        Hypothesis::TimestampSeconds
    );
    let spaced = sig(b"m1601234567POSThttps://api.example.com/x{}", " s3cret");
    assert_eq!(
        found(&kitopay(&url, b"{}", "POST", "1601234567", &spaced)),
        Hypothesis::SecretWhitespace
    );

    // KamioKash timestamps with and without milliseconds, and the two message orders.
    let kamio = |ts: &'static str, body: &'static [u8], scheme, signature: &str| -> Hypothesis {
        let signature = signature.to_owned();
        let inputs = Inputs {
            scheme,
            secret: SECRET,
            merchant_id: "",
            timestamp: ts,
            method: "",
            url: None,
            body,
            transaction_id: "",
            signature: &signature,
        };
        found(&inputs)
    };
    assert_eq!(
        kamio(
            "2026-01-27T09:23:06.658Z",
            b"{}",
            Scheme::KamioKash,
            &sig(b"{}:2026-01-27T09:23:06Z", SECRET)
        ),
        Hypothesis::TimestampSeconds
    );
    assert_eq!(
        kamio(
            "2026-01-27T09:23:06Z",
            b"{}",
            Scheme::KamioKash,
            &sig(b"{}:2026-01-27T09:23:06.000Z", SECRET)
        ),
        Hypothesis::TimestampMillis
    );
    assert_eq!(
        kamio("T", b"{}", Scheme::KamioKashWebhook, &sig(b"{}:T", SECRET)),
        Hypothesis::KamioKashRequestOrder
    );
    assert_eq!(
        kamio("T", b"{}", Scheme::KamioKash, &sig(b"T{}", SECRET)),
        Hypothesis::KamioKashWebhookOrder
    );

    // Simplified scheme: method case only applies to what it signs.
    let inputs = Inputs {
        scheme: Scheme::KitopaySimplified,
        secret: SECRET,
        merchant_id: "m",
        timestamp: "1",
        method: "GET",
        url: None,
        body: b"",
        transaction_id: "t",
        signature: &sig(b"m1gett", SECRET),
    };
    assert_eq!(found(&inputs), Hypothesis::MethodLowercase);
}

#[test]
fn valid_unexplained_and_refusals() {
    let url = CanonicalUrl::parse("https://api.example.com/x").unwrap();
    let good = sig(b"m1POSThttps://api.example.com/x", SECRET);
    assert_eq!(
        diagnose(&kitopay(&url, b"", "POST", "1", &good)).unwrap(),
        Diagnosis::Valid
    );
    assert_eq!(
        diagnose(&kitopay(&url, b"", "POST", "1", &"0".repeat(64))).unwrap(),
        Diagnosis::Unexplained
    );
    let err = diagnose(&kitopay(&url, b"", "POST", "1", "nothex")).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::MalformedSignature { .. }));
    let no_url = Inputs {
        url: None,
        ..kitopay(&url, b"", "POST", "1", &good)
    };
    assert_eq!(
        diagnose(&no_url).unwrap_err().into_kind(),
        ErrorKind::MissingUrl
    );
    let no_secret = Inputs {
        secret: "",
        ..kitopay(&url, b"", "POST", "1", &good)
    };
    assert_eq!(
        diagnose(&no_secret).unwrap_err().into_kind(),
        ErrorKind::EmptySecret
    );
}
