//! `countersign demo`: the documented examples, signed and verified with built-in example
//! credentials, and one failing verification explained.

use std::process::ExitCode;

use countersign::diagnose::{Diagnosis, Inputs, diagnose};
use countersign::{
    CanonicalUrl, FixedClock, ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp,
    Verifier, kitopay,
};

use crate::inputs::Usage;
use crate::render;

// Example credentials from the providers' documentation (test values, not secrets).
const KITOPAY_MERCHANT: &str = "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148";
/// Kitopay's sample secret from its documentation. Its `У` is a Cyrillic letter (U+0423),
/// kept on purpose: a key is the secret's UTF-8 bytes, so a retyped Latin `Y` gives
/// different signatures.
const KITOPAY_SECRET: &str =
    "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9";
const KITOPAY_URL: &str = "https://api.dev.kitopay.com/api/v1/merchants/payins/";
const KITOPAY_BODY: &str = r#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"},"customer":{"id":"1","first_name":"John","last_name":"Doe"}}"#;
const KAMIOKASH_API_KEY: &str = "kk_test_pk_8c1f0b2e";
const KAMIOKASH_SECRET: &str = "kk_test_sk_3b9d7f51a2c64e0e9f7d";
const KAMIOKASH_BODY: &str = r#"{"wallet_id":"w_123"}"#;

fn headers_of(signed: &countersign::SignedRequest<'_>) -> Vec<(String, String)> {
    signed
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn show(out: &mut String, headers: &[(String, String)]) {
    for (k, v) in headers {
        out.push_str(&format!("    {k}: {v}\n"));
    }
}

pub(crate) fn run() -> Result<ExitCode, Usage> {
    let mut out = String::new();

    // 1. Kitopay: the documentation's payin request.
    let at = Timestamp::from_unix_secs(1_601_234_567)?;
    let url = CanonicalUrl::parse(KITOPAY_URL)?;
    let signer = Signer::kitopay(KITOPAY_MERCHANT, SecretKey::new(KITOPAY_SECRET)?)?;
    let signed = signer.sign(
        &SignableRequest::new("POST", &url, KITOPAY_BODY.as_bytes())?,
        at,
    )?;
    let headers = headers_of(&signed);
    out.push_str(&format!(
        "1. kitopay: POST {url}\n   body: {KITOPAY_BODY}\n"
    ));
    show(&mut out, &headers);
    let verifier = Verifier::kitopay_request(KITOPAY_MERCHANT, SecretKey::new(KITOPAY_SECRET)?)?
        .with_clock(FixedClock::new(at));
    let received = ReceivedRequest::new(&headers, KITOPAY_BODY.as_bytes())
        .with_method("POST")
        .with_url(&url);
    let verified = verifier.verify(&received)?;
    out.push_str(&format!("   verified: yes (key {})\n\n", verified.key_id()));

    // 2. KamioKash: the documentation's wallet request.
    let at_kk = Timestamp::parse_rfc3339("2026-01-27T09:23:06.658Z")?;
    let kk = Signer::kamiokash(KAMIOKASH_API_KEY, SecretKey::new(KAMIOKASH_SECRET)?)?;
    let signed = kk.sign(&SignableRequest::body(KAMIOKASH_BODY.as_bytes()), at_kk)?;
    let kk_headers = headers_of(&signed);
    out.push_str(&format!("2. kamiokash: body {KAMIOKASH_BODY}\n"));
    show(&mut out, &kk_headers);
    let kk_verifier = Verifier::kamiokash_request(SecretKey::new(KAMIOKASH_SECRET)?)
        .with_api_key(KAMIOKASH_API_KEY)?
        .with_clock(FixedClock::new(at_kk));
    let verified = kk_verifier.verify(&ReceivedRequest::new(
        &kk_headers,
        KAMIOKASH_BODY.as_bytes(),
    ))?;
    out.push_str(&format!("   verified: yes (key {})\n\n", verified.key_id()));

    // 3. The classic mistake: the client signed ".../payins" (no trailing slash) but the
    //    request went to ".../payins/".
    let signed_url = CanonicalUrl::parse(KITOPAY_URL.trim_end_matches('/'))?;
    let wrong = signer.sign(
        &SignableRequest::new("POST", &signed_url, KITOPAY_BODY.as_bytes())?,
        at,
    )?;
    let wrong_headers = headers_of(&wrong);
    out.push_str(&format!(
        "3. kitopay, signed for {signed_url}\n   but sent to        {url}\n"
    ));
    let received = ReceivedRequest::new(&wrong_headers, KITOPAY_BODY.as_bytes())
        .with_method("POST")
        .with_url(&url);
    match verifier.verify(&received) {
        Ok(_) => {
            return Err(Usage(
                "demo: the mistaken request unexpectedly verified".into(),
            ));
        }
        Err(e) => out.push_str(&format!("   verified: no ({}): {e}\n", e.code())),
    }
    let diagnosis = diagnose(&Inputs {
        secret: KITOPAY_SECRET,
        identity: KITOPAY_MERCHANT,
        timestamp: wrong.timestamp().unwrap_or_default(),
        method: "POST",
        url: Some(&url),
        body: KITOPAY_BODY.as_bytes(),
        signature: wrong.signature_value(),
        ..Inputs::new(&kitopay::FULL)
    })?;
    match diagnosis {
        Diagnosis::Explained(finding) => {
            out.push_str(&format!("   diagnose: {}\n", finding.hypothesis));
            for line in render::side_by_side(
                "we expect",
                &finding.expected,
                "sender signed",
                &finding.signed,
            )
            .lines()
            {
                out.push_str(&format!("   {line}\n"));
            }
        }
        other => return Err(Usage(format!("demo: diagnosis failed: {other:?}"))),
    }
    out.push_str("\nall examples behaved as documented.\n");
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
