//! The hot paths against baselines measured in the same run. Compare ratios, not times:
//! `scripts/bench-report` prints the P1–P7 ratios from criterion's estimates.
//!
//! Baselines:
//! - `physical`: the hardware limit: only the SHA-256 compressions the message needs, from
//!   pre-keyed inner/outer states, over the message already padded into blocks (one
//!   `compress256` call), one compression for the outer hash, and a stack hex encode.
//!   Nothing can sign with less work on this CPU.
//! - `floor`: a pre-keyed `Hmac<Sha256>` (RustCrypto) cloned per message, one `update` over the
//!   pre-concatenated message, hex into a stack buffer — the least work any signer can do.
//! - `naive`: what a hand-written signer usually does: `format!` the message, key per call,
//!   `hex::encode` to a `String`.
//! - `ring`: ring's HMAC with a prepared key over the pre-concatenated message.
//! - `standardwebhooks`: the official Standard Webhooks crate (what a user would pick
//!   instead), verifying the same delivery from the same `http::HeaderMap`, both sides
//!   reading the system clock.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use countersign::{
    CanonicalUrl, FixedClock, ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp,
    Verifier,
};
use countersign_test_support::pads;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use sha2::block_api::compress256;
use sha2::{Digest, Sha256};

const MERCHANT: &str = "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148"; // 44 B
const SECRET: &str = "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9";
const URL: &str = "https://api.dev.kitopay.com/api/v1/merchants/payins/?page=12"; // 60 B

/// A ~290-byte minified JSON body.
fn body_290() -> Vec<u8> {
    let body = br#"{"reference_id":"tx-123456789","payment":{"amount":49.23,"currency":"EUR","method":"card"},"customer":{"id":"cust_000123","first_name":"John","last_name":"Doe","email":"john.doe@example.com","phone":"+35712345678"},"redirect_url":"https://shop.example.com/return","note":"thank you, bye!"}"#;
    body.to_vec()
}

fn hex_into(tag: &[u8], out: &mut [u8; 64]) {
    hex::encode_to_slice(tag, out).unwrap();
}

/// The floor: clone the pre-keyed MAC, one update over the pre-concatenated message, hex
/// into a stack buffer.
fn floor(keyed: &Hmac<Sha256>, message: &[u8]) -> [u8; 64] {
    let mut mac = keyed.clone();
    mac.update(message);
    let mut out = [0u8; 64];
    hex_into(&mac.finalize().into_bytes(), &mut out);
    out
}

/// Pre-keyed HMAC states and a message already padded into blocks: what `physical` needs.
struct Physical {
    inner: [u32; 8],
    outer: [u32; 8],
    blocks: Vec<[u8; 64]>,
}

impl Physical {
    fn new(key: &[u8], message: &[u8]) -> Self {
        let (inner, outer) = pads::pad_states(key);
        // Inner message: the ipad block (already absorbed) + the message, padded.
        let mut padded = message.to_vec();
        padded.push(0x80);
        while padded.len() % 64 != 56 {
            padded.push(0);
        }
        padded.extend_from_slice(&((64 + message.len()) as u64 * 8).to_be_bytes());
        let blocks = padded
            .chunks_exact(64)
            .map(|c| <[u8; 64]>::try_from(c).unwrap())
            .collect();
        Physical {
            inner,
            outer,
            blocks,
        }
    }

    /// One call over the inner blocks, one for the outer hash, hex on the stack.
    #[inline(never)]
    fn sign(&self) -> [u8; 64] {
        let mut inner = self.inner;
        compress256(&mut inner, &self.blocks);
        let mut block = [0u8; 64];
        for (chunk, word) in block[..32].chunks_exact_mut(4).zip(inner) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        block[32] = 0x80;
        block[56..].copy_from_slice(&(96u64 * 8).to_be_bytes());
        let mut outer = self.outer;
        compress256(&mut outer, &[block]);
        let mut tag = [0u8; 32];
        for (chunk, word) in tag.chunks_exact_mut(4).zip(outer) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        let mut out = [0u8; 64];
        hex_into(&tag, &mut out);
        out
    }
}

fn sign_kitopay_400b(c: &mut Criterion) {
    let body = body_290();
    let url = CanonicalUrl::parse(URL).unwrap();
    assert_eq!(url.as_str().len(), 60);
    let ts = "1601234567";
    let message = [
        MERCHANT.as_bytes(),
        ts.as_bytes(),
        b"POST",
        URL.as_bytes(),
        &body,
    ]
    .concat();
    assert!((395..=410).contains(&message.len()), "{}", message.len());

    let signer = Signer::kitopay(MERCHANT, SecretKey::new(SECRET).unwrap()).unwrap();
    let at = Timestamp::from_unix_secs(1_601_234_567).unwrap();
    let request = SignableRequest::new("POST", &url, &body).unwrap();
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    let ring_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());

    // All four compute the same signature.
    let expected = signer
        .sign(&request, at)
        .unwrap()
        .signature_hex()
        .to_owned();
    assert_eq!(
        hex::encode(keyed.clone().chain_update(&message).finalize().into_bytes()),
        expected
    );
    assert_eq!(hex::encode(ring::hmac::sign(&ring_key, &message)), expected);
    let physical = Physical::new(SECRET.as_bytes(), &message);
    assert_eq!(physical.sign(), expected.as_bytes());

    let mut g = c.benchmark_group("sign_kitopay_400B");
    g.throughput(Throughput::Bytes(message.len() as u64));
    g.bench_function("countersign", |b| {
        b.iter(|| {
            // The signed request holds the hex signature in a stack buffer, as the floor's
            // output does; converting it to `&str` is left to the caller, as for the floor.
            black_box(signer.sign(black_box(&request), black_box(at)).unwrap())
        })
    });
    g.bench_function("physical", |b| {
        b.iter(|| black_box(black_box(&physical).sign()))
    });
    g.bench_function("floor", |b| {
        b.iter(|| black_box(floor(&keyed, black_box(&message))))
    });
    g.bench_function("naive", |b| {
        b.iter(|| {
            let body = std::str::from_utf8(black_box(&body)).unwrap();
            let msg = format!("{MERCHANT}{ts}POST{URL}{body}");
            let mut mac = Hmac::<Sha256>::new_from_slice(black_box(SECRET).as_bytes()).unwrap();
            mac.update(msg.as_bytes());
            black_box(hex::encode(mac.finalize().into_bytes()))
        })
    });
    g.bench_function("ring", |b| {
        b.iter(|| {
            let tag = ring::hmac::sign(&ring_key, black_box(&message));
            let mut out = [0u8; 64];
            hex_into(tag.as_ref(), &mut out);
            black_box(out)
        })
    });
    g.finish();
}

fn sign_kamiokash_64b(c: &mut Criterion) {
    let body = br#"{"wallet_id":"w_123","owner":"cust_abc1234567","currency":"EUR"}"#;
    assert_eq!(body.len(), 64);
    let ts = "2026-01-27T09:23:06.658Z";
    let at = Timestamp::parse_rfc3339(ts).unwrap();
    let secret = "kk_test_sk_3b9d7f51a2c64e0e9f7d";
    let signer = Signer::kamiokash("kk_test_pk_8c1f0b2e", SecretKey::new(secret).unwrap()).unwrap();
    let request = SignableRequest::body(body);
    let message = [&body[..], b":", ts.as_bytes()].concat();
    let keyed = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    assert_eq!(
        hex::encode(keyed.clone().chain_update(&message).finalize().into_bytes()),
        signer.sign(&request, at).unwrap().signature_hex()
    );
    let physical = Physical::new(secret.as_bytes(), &message);
    assert_eq!(
        physical.sign(),
        signer
            .sign(&request, at)
            .unwrap()
            .signature_hex()
            .as_bytes()
    );

    let mut g = c.benchmark_group("sign_kamiokash_64B");
    g.bench_function("physical", |b| {
        b.iter(|| black_box(black_box(&physical).sign()))
    });
    g.bench_function("countersign", |b| {
        b.iter(|| {
            // The signed request holds the hex signature in a stack buffer, as the floor's
            // output does; converting it to `&str` is left to the caller, as for the floor.
            black_box(signer.sign(black_box(&request), black_box(at)).unwrap())
        })
    });
    g.bench_function("floor", |b| {
        b.iter(|| black_box(floor(&keyed, black_box(&message))))
    });
    g.finish();
}

fn verify_kamiokash_webhook_300b(c: &mut Criterion) {
    let secret = "whsec_kk_5e2a91c07d3b4f68";
    let ts = "2026-01-27T09:23:07.001Z";
    let mut body = br#"{"type":"transaction.successful","data":{"walletId":"w_123","amount":500,"currency":"EUR","memberId":"m_0001","transactionId":"t_0002","createdAt":"2026-01-27T09:23:06.900Z","merchant":{"id":"mer_1","name":"Coffee Shop","city":"Limassol"},"points":50,"tier":"gold"}}"#.to_vec();
    body.resize(300, b' ');
    let message = [ts.as_bytes(), &body].concat();
    let keyed = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    let sig_hex = hex::encode(keyed.clone().chain_update(&message).finalize().into_bytes());
    let headers = [("X-Timestamp", ts), ("X-Kamio-Signature", sig_hex.as_str())];
    let verifier = Verifier::kamiokash_webhook(SecretKey::new(secret).unwrap()).with_clock(
        FixedClock::new(Timestamp::parse_rfc3339("2026-01-27T09:23:30Z").unwrap()),
    );
    assert!(
        verifier
            .verify(&ReceivedRequest::new(&headers, &body))
            .is_ok()
    );

    let physical = Physical::new(secret.as_bytes(), &message);
    assert_eq!(physical.sign(), sig_hex.as_bytes());

    let mut g = c.benchmark_group("verify_kamiokash_webhook_300B");
    g.bench_function("physical", |b| {
        b.iter(|| black_box(black_box(&physical).sign()))
    });
    g.bench_function("countersign", |b| {
        b.iter(|| {
            let received = ReceivedRequest::new(black_box(&headers), black_box(&body));
            black_box(verifier.verify(&received).is_ok())
        })
    });
    g.bench_function("floor", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(black_box(&message));
            let mut expected = [0u8; 32];
            hex::decode_to_slice(black_box(&sig_hex), &mut expected).unwrap();
            black_box(mac.verify_slice(&expected).is_ok())
        })
    });
    g.finish();
}

/// A Standard Webhooks delivery of a 1 KiB JSON body, signed now, its signature header
/// holding `wrong` other signatures first (key rotation: the match last).
fn standard_webhooks_delivery(wrong: usize) -> (http::HeaderMap, Vec<u8>, Vec<u8>, Vec<u8>) {
    use base64::Engine as _;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret[6..])
        .unwrap();
    let mut body = body_290();
    while body.len() < 1024 {
        body.extend_from_slice(br#","note":"padding to one kibibyte""#);
    }
    body.truncate(1023);
    body.push(b'}');
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let message = [id.as_bytes(), b".", ts.as_bytes(), b".", &body].concat();
    let tag = Hmac::<Sha256>::new_from_slice(&key)
        .unwrap()
        .chain_update(&message)
        .finalize()
        .into_bytes();
    let mut list: Vec<String> = (0..wrong)
        .map(|i| {
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode([i as u8 + 1; 32])
            )
        })
        .collect();
    list.push(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    ));
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", id.parse().unwrap());
    headers.insert("webhook-timestamp", ts.parse().unwrap());
    headers.insert("webhook-signature", list.join(" ").parse().unwrap());
    (headers, body, key, message)
}

fn verify_standard_webhooks(c: &mut Criterion, group: &str, wrong: usize) {
    let (headers, body, key, message) = standard_webhooks_delivery(wrong);
    let verifier = Verifier::standard_webhooks(
        countersign::standard_webhooks::SCHEME
            .key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap(),
    );
    let peer = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    // Both accept it, and both refuse a changed body.
    assert!(
        verifier
            .verify(&ReceivedRequest::new(&headers, &body))
            .is_ok()
    );
    assert!(peer.verify(&body, &headers).is_ok());
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(
        verifier
            .verify(&ReceivedRequest::new(&headers, &tampered))
            .is_err()
    );
    assert!(peer.verify(&tampered, &headers).is_err());
    let physical = Physical::new(&key, &message);

    let mut g = c.benchmark_group(group);
    g.bench_function("physical", |b| {
        b.iter(|| black_box(black_box(&physical).sign()))
    });
    g.bench_function("countersign", |b| {
        b.iter(|| {
            let received = ReceivedRequest::new(black_box(&headers), black_box(&body));
            black_box(verifier.verify(&received).is_ok())
        })
    });
    g.bench_function("standardwebhooks", |b| {
        b.iter(|| black_box(peer.verify(black_box(&body), black_box(&headers)).is_ok()))
    });
    g.finish();
}

fn verify_standard_webhooks_1kib(c: &mut Criterion) {
    verify_standard_webhooks(c, "verify_standard_webhooks_1KiB", 0);
}

fn verify_standard_webhooks_3sigs_1kib(c: &mut Criterion) {
    verify_standard_webhooks(c, "verify_standard_webhooks_3sigs_1KiB", 2);
}

fn canonical_url(c: &mut Criterion) {
    let canonical = URL;
    let needs_work = "https://API.Dev.Kitopay.com:443/api/v1/merchants/payins/?page=12#section";
    assert_eq!(CanonicalUrl::parse(needs_work).unwrap().as_str(), canonical);
    let mut g = c.benchmark_group("canonical_url");
    g.bench_function("countersign_already_canonical", |b| {
        b.iter(|| black_box(CanonicalUrl::parse(black_box(canonical)).unwrap()))
    });
    g.bench_function("countersign_needs_work", |b| {
        b.iter(|| black_box(CanonicalUrl::parse(black_box(needs_work)).unwrap()))
    });
    g.bench_function("url_parse", |b| {
        b.iter(|| {
            let url = url::Url::parse(black_box(needs_work)).unwrap();
            black_box(url.as_str().len())
        })
    });
    g.finish();
}

fn sign_stream_1mib(c: &mut Criterion) {
    let body: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let url = CanonicalUrl::parse(URL).unwrap();
    let signer = Signer::kitopay(MERCHANT, SecretKey::new(SECRET).unwrap()).unwrap();
    let at = Timestamp::from_unix_secs(1_601_234_567).unwrap();
    let whole = signer
        .sign(&SignableRequest::new("PUT", &url, &body).unwrap(), at)
        .unwrap();
    let mut g = c.benchmark_group("sign_stream_1MiB");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("countersign", |b| {
        b.iter(|| {
            let mut stream = signer
                .begin(&SignableRequest::new("PUT", &url, b"").unwrap(), at)
                .unwrap();
            for chunk in black_box(&body).chunks(16 * 1024) {
                stream.update(chunk);
            }
            let signed = stream.finish();
            assert_eq!(signed.signature(), whole.signature());
            black_box(*signed.signature())
        })
    });
    g.bench_function("sha2_raw", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&body))))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = sign_kitopay_400b, sign_kamiokash_64b, verify_kamiokash_webhook_300b,
        verify_standard_webhooks_1kib, verify_standard_webhooks_3sigs_1kib, canonical_url,
        sign_stream_1mib
}
criterion_main!(benches);
