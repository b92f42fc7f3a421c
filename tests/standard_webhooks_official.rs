//! Standard Webhooks against its oracle, the official `standardwebhooks` package (PyPI), in
//! both directions, on random ids, timestamps, bodies (binary too) and secrets, including
//! headers with several signatures (a key rotation):
//!
//! - countersign signs, the official package verifies (`tests/official/standard_webhooks.py
//!   verify`), and both agree on every tampered copy too;
//! - the official package signs (some cases tampered, with other signature versions mixed
//!   in), countersign verifies, and both agree on every verdict.
//!
//! Needs `python3` with `standardwebhooks` installed (`pip install standardwebhooks==1.1.0`;
//! `.ci/run` does it). Without it the test prints a notice and passes, unless `CI` is set:
//! then it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use base64::Engine as _;
use countersign::standard_webhooks::SCHEME;
use countersign::{FixedClock, ReceivedRequest, SignableRequest, Signer, Timestamp, Verifier};
use serde::{Deserialize, Serialize};

/// Cases per direction.
const CASES: usize = 500;

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official/standard_webhooks.py")
}

/// Whether the oracle can run here; outside CI a missing oracle is a notice.
fn oracle_available() -> bool {
    let ok = script().exists()
        && std::process::Command::new("python3")
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Standard Webhooks agreement test: install python3 and `pip install standardwebhooks==1.1.0`"
        );
        eprintln!("NOTICE: python3 with standardwebhooks not found: agreement test skipped");
    }
    ok
}

fn python(args: &[&str]) {
    let out = std::process::Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[derive(Serialize)]
struct OursCase {
    secrets: Vec<String>,
    id: String,
    timestamp: String,
    body_base64: String,
    signature: String,
}

#[derive(Deserialize)]
struct OracleVerdicts {
    accepted: Vec<bool>,
}

#[derive(Deserialize)]
struct OfficialCase {
    secret: String,
    id: String,
    timestamp: String,
    body_base64: String,
    signature: String,
    valid: bool,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn random_id(rng: &mut Rng) -> String {
    // The id's domain: visible ASCII without '.'.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:~!";
    let len = 1 + rng.below(40) as usize;
    let tail: String = (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect();
    format!("msg_{tail}")
}

fn random_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(4) {
        0 => {
            let len = rng.below(300) as usize;
            rng.bytes(len)
        }
        1 => "{\"type\":\"invoice.paid\",\"note\":\"ü€😀 У\"}"
            .as_bytes()
            .to_vec(),
        2 => format!("{{\n  \"amount\": {}\n}}\n", rng.below(1_000_000)).into_bytes(),
        _ => Vec::new(),
    }
}

fn verify_ours(case_secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Ok(key) = SCHEME.key(case_secret) else {
        return false;
    };
    let Ok(at) = SCHEME.parse_timestamp(timestamp) else {
        return false;
    };
    let headers = [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", header),
    ];
    Verifier::standard_webhooks(key)
        .with_clock(FixedClock::new(at))
        .verify(&ReceivedRequest::new(&headers, body))
        .is_ok()
}

#[test]
fn countersign_signs_and_the_official_package_verifies() {
    if !oracle_available() {
        return;
    }
    let mut rng = Rng(0x005e_ed0f_5741_4e44);
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..CASES {
        let keys: Vec<Vec<u8>> = (0..1 + rng.below(3))
            .map(|_| {
                let len = 24 + rng.below(41) as usize;
                rng.bytes(len)
            })
            .collect();
        let secrets: Vec<String> = keys
            .iter()
            .map(|k| format!("whsec_{}", b64().encode(k)))
            .collect();
        let id = random_id(&mut rng);
        let at = Timestamp::from_unix_secs(1 + rng.below(4_102_444_800)).unwrap();
        let body = random_body(&mut rng);
        // One signature per key, space-separated (a rotation), in a random order.
        let mut entries: Vec<String> = secrets
            .iter()
            .map(|s| {
                let signer = Signer::standard_webhooks(SCHEME.key(s).unwrap());
                let request = SignableRequest::body(&body).with_value("id", &id);
                signer
                    .sign(&request, at)
                    .unwrap()
                    .signature_value()
                    .to_owned()
            })
            .collect();
        let shift = rng.below(entries.len() as u64) as usize;
        entries.rotate_left(shift);
        let header = entries.join(" ");
        let timestamp = at.unix_secs().to_string();
        // The receiver holds one of the secrets; every third case is tampered.
        let receiver = secrets[rng.below(secrets.len() as u64) as usize].clone();
        let (id, body) = match rng.below(3) {
            0 => (format!("{id}x"), body),
            1 => (id, [&body[..], b"!"].concat()),
            _ => (id, body),
        };
        ours.push(verify_ours(&receiver, &id, &timestamp, &body, &header));
        cases.push(OursCase {
            secrets: vec![receiver],
            id,
            timestamp,
            body_base64: b64().encode(&body),
            signature: header,
        });
    }
    let dir = std::env::temp_dir().join(format!("countersign-sw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("ours.json"), dir.join("verdicts.json"));
    std::fs::write(&input, serde_json::to_vec(&cases).unwrap()).unwrap();
    python(&["verify", input.to_str().unwrap(), output.to_str().unwrap()]);
    let verdicts: OracleVerdicts =
        serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    assert_eq!(verdicts.accepted.len(), CASES);
    let mut valid = 0;
    for (i, (official, ours)) in verdicts.accepted.iter().zip(&ours).enumerate() {
        assert_eq!(
            official, ours,
            "case {i}: official {official}, countersign {ours}"
        );
        valid += usize::from(*ours);
    }
    // Untampered cases verify (a third of them, give or take), tampered ones do not.
    assert!(valid > CASES / 5 && valid < CASES / 2, "{valid}");
    eprintln!("agreement, countersign → official: {CASES} of {CASES} ({valid} valid)");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_official_package_signs_and_countersign_verifies() {
    if !oracle_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("countersign-sw-official-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("official.json");
    python(&[
        "sign",
        &CASES.to_string(),
        "20261130",
        output.to_str().unwrap(),
    ]);
    let cases: Vec<OfficialCase> =
        serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    assert_eq!(cases.len(), CASES);
    let (mut valid, mut binary, mut rotated) = (0, 0, 0);
    for (i, case) in cases.iter().enumerate() {
        let body = b64().decode(&case.body_base64).unwrap();
        let ours = verify_ours(
            &case.secret,
            &case.id,
            &case.timestamp,
            &body,
            &case.signature,
        );
        assert_eq!(
            ours, case.valid,
            "case {i}: official {}, countersign {ours}",
            case.valid
        );
        valid += usize::from(ours);
        binary += usize::from(std::str::from_utf8(&body).is_err());
        rotated += usize::from(case.signature.contains(' '));
    }
    assert!(valid > CASES / 4, "{valid}");
    assert!(
        binary > 20 && rotated > 50,
        "{binary} binary, {rotated} rotated"
    );
    eprintln!(
        "agreement, official → countersign: {CASES} of {CASES} ({valid} valid, {binary} binary bodies, {rotated} headers with several signatures)"
    );
    std::fs::remove_dir_all(&dir).ok();
}
