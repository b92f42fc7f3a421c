//! The diagnose hypothesis search, one direction of each mistake per case; and what it
//! refuses to do.
#![cfg(feature = "diagnose")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign::diagnose::{Diagnosis, Hypothesis, Inputs, diagnose};
use countersign::{CanonicalUrl, ErrorKind, kamiokash, kitopay};
use hmac::{Hmac, KeyInit, Mac};

const SECRET: &str = "s3cret";

/// The reference HMAC (RustCrypto), as hex.
fn sig(message: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn kitopay<'a>(
    url: &'a CanonicalUrl,
    body: &'a [u8],
    method: &'a str,
    ts: &'a str,
    signature: &'a str,
) -> Inputs<'a> {
    Inputs {
        secret: SECRET,
        identity: "m",
        timestamp: ts,
        method,
        url: Some(url),
        body,
        signature,
        ..Inputs::new(&kitopay::FULL)
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
            secret: SECRET,
            timestamp: ts,
            body,
            signature: &signature,
            ..Inputs::new(scheme)
        };
        found(&inputs)
    };
    assert_eq!(
        kamio(
            "2026-01-27T09:23:06.658Z",
            b"{}",
            &kamiokash::REQUEST,
            &sig(b"{}:2026-01-27T09:23:06Z", SECRET)
        ),
        Hypothesis::TimestampSeconds
    );
    assert_eq!(
        kamio(
            "2026-01-27T09:23:06Z",
            b"{}",
            &kamiokash::REQUEST,
            &sig(b"{}:2026-01-27T09:23:06.000Z", SECRET)
        ),
        Hypothesis::TimestampMillis
    );
    assert_eq!(
        kamio("T", b"{}", &kamiokash::WEBHOOK, &sig(b"{}:T", SECRET)),
        Hypothesis::Layout(&kamiokash::REQUEST)
    );
    assert_eq!(
        kamio("T", b"{}", &kamiokash::REQUEST, &sig(b"T{}", SECRET)),
        Hypothesis::Layout(&kamiokash::WEBHOOK)
    );

    // Simplified scheme: method case only applies to what it signs.
    let signature = sig(b"m1gett", SECRET);
    let inputs = Inputs {
        secret: SECRET,
        identity: "m",
        timestamp: "1",
        method: "GET",
        values: &[("transaction_id", "t")],
        signature: &signature,
        ..Inputs::new(&kitopay::SIMPLIFIED)
    };
    assert_eq!(found(&inputs), Hypothesis::MethodLowercase);

    // A secret retyped with a Latin Y for Kitopay's Cyrillic У (either side).
    let cyrillic = "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9";
    let latin = cyrillic.replace('У', "Y");
    let message = b"m1601234567POSThttps://api.example.com/x{}";
    for (ours, theirs) in [(cyrillic, latin.as_str()), (latin.as_str(), cyrillic)] {
        let signature = sig(message, theirs);
        let inputs = Inputs {
            secret: ours,
            ..kitopay(&url, b"{}", "POST", "1601234567", &signature)
        };
        assert_eq!(found(&inputs), Hypothesis::SecretConfusable);
    }
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

#[test]
fn hypothesis_ids_are_stable_and_name_schemes_by_their_ids() {
    assert_eq!(
        Hypothesis::TrailingSlashRemoved.id(),
        "trailing_slash_removed"
    );
    assert_eq!(Hypothesis::SecretConfusable.id(), "secret_confusable");
    assert_eq!(
        Hypothesis::Layout(&kamiokash::WEBHOOK).id(),
        "layout:kamiokash-webhook"
    );
    assert!(
        Hypothesis::Layout(&kamiokash::WEBHOOK)
            .to_string()
            .contains("kamiokash-webhook message layout (timestamp ‖ body)")
    );
}

#[test]
fn the_search_is_bounded_on_a_large_body() {
    // 1 MiB body, timestamp in seconds: the millisecond sweep alone would be 1,000 MACs of
    // the whole message (1 GB). The bound stops it, and says so.
    let url = CanonicalUrl::parse("https://api.example.com/x").unwrap();
    let body = vec![b'x'; 1 << 20];
    let wrong = "0".repeat(64);
    match diagnose(&kitopay(&url, &body, "POST", "1601234567", &wrong)).unwrap() {
        Diagnosis::CutShort { tried, total } => {
            assert!(tried < total, "{tried} of {total}");
            assert!(total > 1000, "{total}");
            let mac_bytes = tried * (body.len() + 64);
            assert!(
                mac_bytes <= countersign::diagnose::WORK_LIMIT,
                "{mac_bytes}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A small body gets every hypothesis.
    assert_eq!(
        diagnose(&kitopay(&url, b"{}", "POST", "1601234567", &wrong)).unwrap(),
        Diagnosis::Unexplained
    );
}
