//! No secret is left behind: not on the stack after keying a long secret (SHA-256 of the
//! key is a key-equivalent; the key's tail goes through the hash buffer), and not in freed
//! heap blocks after `diagnose` (which builds whitespace variants of the secret).
//!
//! Each check runs a control first: the same scan finds a planted copy, so a pass means
//! "not there", not "not looked for".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign::diagnose::{Diagnosis, Inputs, diagnose};
use countersign::{CanonicalUrl, SecretKey, Signer};
use countersign_residue::{Scanner, stack_contains};
use countersign_test_support::pads;
use sha2::Digest;

#[global_allocator]
static SCANNER: Scanner = Scanner::new();

/// The scanner and the stack are per process and per thread: one check at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A real Kitopay secret is longer than a SHA-256 block (64 bytes).
const LONG_SECRET: &str = "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9_with_a_longer_tail_0123456789";

const PAD: usize = 16 * 1024;
const DEPTH: usize = 64 * 1024;

/// Keys the secret with `PAD` bytes of stack between the caller and the key schedule, so
/// the caller's scan (which skips its own frame) covers every frame the schedule used.
#[inline(never)]
fn key_below_a_pad(secret: &str) {
    let pad = [0u8; PAD];
    std::hint::black_box(&pad);
    let key = SecretKey::new(secret).unwrap();
    std::hint::black_box(&key);
}

/// The control: leaves `bytes` in a local of a returned frame, below the same pad.
#[inline(never)]
fn leave_below_a_pad(bytes: &[u8]) {
    let pad = [0u8; PAD];
    std::hint::black_box(&pad);
    leave(bytes);
}

#[inline(never)]
fn leave(bytes: &[u8]) {
    let mut local = [0u8; 64];
    local[..bytes.len()].copy_from_slice(bytes);
    std::hint::black_box(&local);
}

#[test]
fn keying_a_long_secret_leaves_no_key_equivalent_on_the_stack() {
    let _serial = one_at_a_time();
    let secret = LONG_SECRET.as_bytes();
    assert!(secret.len() > 64);
    let digest: [u8; 32] = sha2::Sha256::digest(secret).into();
    let tail = &secret[64..];

    leave_below_a_pad(&digest);
    assert!(
        stack_contains(&digest, 1024, DEPTH),
        "control: the scan must find a planted copy"
    );

    key_below_a_pad(LONG_SECRET);
    assert!(
        !stack_contains(&digest, 1024, DEPTH),
        "SHA-256(key) left on the stack"
    );
    assert!(
        !stack_contains(&tail[..16], 1024, DEPTH),
        "the key's tail left on the stack"
    );
}

#[test]
fn diagnose_leaves_no_copy_of_the_secret_in_freed_heap_blocks() {
    let _serial = one_at_a_time();
    // Whitespace around the secret makes diagnose try every whitespace variant.
    let secret = format!(" {LONG_SECRET}\n");
    let needle = &LONG_SECRET.as_bytes()[8..40];

    // Control: a plain copy, freed, is found.
    SCANNER.arm(needle);
    drop(std::hint::black_box(secret.clone()));
    assert_eq!(
        SCANNER.disarm(),
        1,
        "control: the scanner must see a freed copy"
    );

    let url = CanonicalUrl::parse("https://api.dev.kitopay.com/api/v1/merchants/payins/").unwrap();
    let signature = "ab".repeat(32);
    let inputs = Inputs {
        secret: &secret,
        identity: "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148",
        timestamp: "1601234567",
        method: "POST",
        url: Some(&url),
        body: br#"{"reference_id":"tx-123"}"#,
        signature: &signature,
        ..Inputs::new(&countersign::kitopay::FULL)
    };
    SCANNER.arm(needle);
    let diagnosis = diagnose(&inputs).unwrap();
    let hits = SCANNER.disarm();
    assert_eq!(diagnosis, Diagnosis::Unexplained);
    assert_eq!(hits, 0, "freed heap blocks still held the secret");
}

#[test]
fn a_dropped_signer_leaves_no_key_state_in_its_freed_block() {
    let _serial = one_at_a_time();
    // A Kitopay signer keeps the pad states and a state resumed after the merchant id (the
    // "prefix"); both are key-equivalents and must be wiped when the signer is dropped.
    let secret = "kk_short_secret_0123456789";
    // The inner pad state, as the words sit in memory: a key-equivalent.
    let needle = pads::in_memory(pads::pad_states(secret.as_bytes()).0);

    // Control: a plain copy of the state, freed, is found.
    SCANNER.arm(&needle);
    drop(std::hint::black_box(needle.clone().into_boxed_slice()));
    assert_eq!(
        SCANNER.disarm(),
        1,
        "control: the scanner must see a freed copy"
    );

    let signer =
        Box::new(Signer::kitopay("dev_pub_fb1dad5f", SecretKey::new(secret).unwrap()).unwrap());
    std::hint::black_box(&signer);
    SCANNER.arm(&needle);
    drop(signer);
    assert_eq!(SCANNER.disarm(), 0, "a freed signer still held a key state");
}
