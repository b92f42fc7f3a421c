//! No key-equivalent is left behind when keys rotate or a request is verified: the HMAC pad
//! states of a secret (what anyone needs to forge signatures, without the secret) are
//! searched for in this process's memory, read through `/proc/self/mem` (safe code, unlike
//! the scanning allocator of `tests/residue.rs`): in freed heap blocks after the README's
//! rotation drops every key, and on a verifying thread's stack. Both once succeeded (moved
//! here from the attacks the review ran); each runs a control first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

use std::sync::Arc;

use countersign::{FixedClock, ReceivedRequest, SecretKey, SignableRequest, Timestamp, Verifier};
use countersign_test_support::pads;

mod memory {
    use std::io::{Read, Seek, SeekFrom};

    const MASK: u8 = 0x5a;

    /// A byte string searched for in memory, kept masked so the search itself holds no copy.
    pub struct Needle(Vec<u8>);

    impl Needle {
        pub fn new(bytes: &mut [u8]) -> Self {
            let masked = bytes.iter().map(|b| b ^ MASK).collect();
            bytes.fill(0);
            std::hint::black_box(&bytes);
            Needle(masked)
        }

        fn count(&self, hay: &[u8]) -> usize {
            let n = self.0.len();
            if hay.len() < n {
                return 0;
            }
            let mut hits = 0;
            for i in 0..=hay.len() - n {
                if hay[i] == self.0[0] ^ MASK
                    && hay[i..i + n]
                        .iter()
                        .zip(&self.0)
                        .all(|(h, m)| *h == m ^ MASK)
                {
                    hits += 1;
                }
            }
            hits
        }
    }

    /// The HMAC-SHA256 pad states of `secret` as `PadStates` holds them (native-endian
    /// words): what anyone needs to forge signatures, without the secret.
    pub fn pad_states(secret: &[u8]) -> (Needle, Needle) {
        let (inner, outer) = super::pads::pad_states(secret);
        let bytes =
            |words: [u32; 8]| -> [u8; 32] { super::pads::in_memory(words).try_into().unwrap() };
        (
            Needle::new(&mut bytes(inner)),
            Needle::new(&mut bytes(outer)),
        )
    }

    /// Writable private mappings: (start, end, name).
    fn writable() -> Vec<(usize, usize, String)> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let range = fields.next()?;
                let perms = fields.next()?;
                let name = fields.nth(3).unwrap_or("").to_owned();
                if !perms.starts_with("rw") || name.starts_with("[v") {
                    return None;
                }
                let (a, b) = range.split_once('-')?;
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                    name,
                ))
            })
            .collect()
    }

    /// The mapping holding the calling thread's stack.
    pub fn own_stack() -> (usize, usize) {
        let marker = 0u8;
        let at = std::hint::black_box(&marker) as *const u8 as usize;
        writable()
            .into_iter()
            .find(|(a, b, _)| (*a..*b).contains(&at))
            .map(|(a, b, _)| (a, b))
            .unwrap()
    }

    fn count_in(needle: &Needle, ranges: &[(usize, usize)]) -> usize {
        let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
        let mut buf = vec![0u8; 1 << 20];
        // Never read the buffer into itself (a self-overlapping copy replicates what it holds).
        let own = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
        let mut pieces = Vec::new();
        for &(start, end) in ranges {
            if own.1 <= start || end <= own.0 {
                pieces.push((start, end));
            } else {
                if start < own.0 {
                    pieces.push((start, own.0));
                }
                if own.1 < end {
                    pieces.push((own.1, end));
                }
            }
        }
        let mut hits = 0;
        for &(start, end) in &pieces {
            let mut at = start;
            while at < end {
                // Overlap chunks by the needle's length so no occurrence straddles a seam.
                let len = (end - at).min(buf.len());
                buf.fill(0);
                if mem.seek(SeekFrom::Start(at as u64)).is_ok() {
                    let mut got = 0;
                    while got < len {
                        match mem.read(&mut buf[got..len]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                    let h = needle.count(&buf[..got]);
                    if h > 0 && std::env::var_os("ATTACK_DEBUG").is_some() {
                        eprintln!("hits {h} in chunk at {at:#x} (mapping {start:#x}-{end:#x})");
                    }
                    hits += h;
                }
                buf.fill(0);
                if at + len >= end {
                    break;
                }
                at += len - 31;
            }
        }
        hits
    }

    /// Occurrences in every writable mapping except the calling thread's stack (heaps,
    /// thread arenas, other stacks).
    pub fn count_off_own_stack(needle: &Needle) -> usize {
        let own = own_stack();
        let ranges: Vec<_> = writable()
            .into_iter()
            .map(|(a, b, _)| (a, b))
            .filter(|r| *r != own)
            .collect();
        count_in(needle, &ranges)
    }

    /// Occurrences in the calling thread's stack mapping.
    pub fn count_on_own_stack(needle: &Needle) -> usize {
        count_in(needle, &[own_stack()])
    }
}

/// One lock: the memory scans must not see each other's keys being built.
static SCAN: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn rotating_keys_leaves_no_pad_state_in_freed_heap_blocks() {
    let _one = SCAN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    const OLD: &str = "attack-residue-OLD-5f1c9e02d7";
    const NEW: &str = "attack-residue-NEW-8a3b6d41c0";
    let (old_inner, old_outer) = memory::pad_states(OLD.as_bytes());
    let (new_inner, new_outer) = memory::pad_states(NEW.as_bytes());

    // Controls: a live key is found on the heap exactly once; once dropped, not at all.
    let boxed = Box::new(SecretKey::new(NEW).unwrap());
    assert_eq!(
        memory::count_off_own_stack(&new_inner),
        1,
        "control: live key"
    );
    drop(boxed);
    assert_eq!(
        memory::count_off_own_stack(&new_inner),
        0,
        "control: wiped key"
    );

    // The README's rotation: both keys, then the old one removed, then the ring dropped.
    let verifier = Verifier::kamiokash_webhook(
        countersign::KeyRing::new("2026-10", SecretKey::new(OLD).unwrap())
            .with("2026-11", SecretKey::new(NEW).unwrap()),
    );
    verifier.keys().update(|ring| {
        ring.remove("2026-10");
    });
    let live_copies = memory::count_off_own_stack(&new_inner);
    drop(verifier);
    let left = [&old_inner, &old_outer, &new_inner, &new_outer].map(memory::count_off_own_stack);
    assert_eq!(
        (live_copies, left),
        (1, [0; 4]),
        "(heap copies of the live key while in use, [old inner, old outer, new inner, new outer] pad states left in freed heap blocks after every key was dropped)"
    );
}

#[inline(never)]
fn verify_once(verifier: &Verifier, headers: &[(String, String)], body: &[u8]) -> bool {
    let pad = [0u8; 4096];
    std::hint::black_box(&pad);
    verifier
        .verify(&ReceivedRequest::new(&headers, body))
        .is_ok()
}

#[inline(never)]
fn plant_on_stack(needle_source: &[u8]) {
    let mut local = [0u8; 64];
    local[..needle_source.len()].copy_from_slice(needle_source);
    std::hint::black_box(&local);
}

#[test]
fn verifying_leaves_no_pad_state_on_the_stack() {
    let _one = SCAN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    const KEY: &str = "attack-residue-STACK-2b7e15";
    let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
    let verifier = Arc::new(
        Verifier::kamiokash_webhook(SecretKey::new(KEY).unwrap()).with_clock(FixedClock::new(at)),
    );
    let headers: Vec<(String, String)> =
        countersign::Signer::kamiokash_webhook(SecretKey::new(KEY).unwrap())
            .sign(&SignableRequest::body(b"{}"), at)
            .unwrap()
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let (inner, outer) = memory::pad_states(KEY.as_bytes());
    let (inner, outer) = (Arc::new(inner), Arc::new(outer));

    // Control: a copy planted by a returned callee is found on a fresh thread's stack.
    let planted = {
        let (i, o) = memory::pad_states(b"attack-residue-CONTROL");
        let _ = o;
        std::thread::spawn(move || {
            // The control's bytes come from memory (not the needle): recompute them here.
            let bytes: [u8; 32] = pads::in_memory(pads::pad_states(b"attack-residue-CONTROL").0)
                .try_into()
                .unwrap();
            plant_on_stack(&bytes);
            memory::count_on_own_stack(&i)
        })
        .join()
        .unwrap()
    };
    assert!(planted >= 1, "control: the stack scan finds a planted copy");

    // A fresh thread only verifies (the key was built on this one), then scans its stack.
    let (v, i, o) = (verifier.clone(), inner.clone(), outer.clone());
    let (ok, inner_hits, outer_hits) = std::thread::spawn(move || {
        let ok = verify_once(&v, &headers, b"{}");
        (
            ok,
            memory::count_on_own_stack(&i),
            memory::count_on_own_stack(&o),
        )
    })
    .join()
    .unwrap();
    assert!(ok);
    assert_eq!(
        (inner_hits, outer_hits),
        (0, 0),
        "(inner, outer) pad-state copies left on the verifying thread's stack"
    );
}
