//! The CLI contract, run as a user would: the binary, its stdout/stderr and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use countersign_test_support::reference;
use serde_json::Value;

/// The reference HMAC (RustCrypto) of `message`, as hex: signatures the CLI refuses to make.
fn reference_hmac(secret: &str, message: &[u8]) -> String {
    reference::hmac_hex(secret.as_bytes(), message)
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
    for var in [
        "KITOPAY_SECRET",
        "KAMIOKASH_SECRET",
        "KAMIOKASH_WEBHOOK_SECRET",
        "STANDARD_WEBHOOKS_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        // A child that does not read its stdin (no --body-file -) may exit first.
        match child.stdin.take().unwrap().write_all(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            result => result.unwrap(),
        }
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/signatures.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn secret_env(scheme: &str) -> &'static str {
    match scheme {
        "kamiokash" => "KAMIOKASH_SECRET",
        "kamiokash-webhook" => "KAMIOKASH_WEBHOOK_SECRET",
        _ => "KITOPAY_SECRET",
    }
}

fn body_of(case: &Value) -> Vec<u8> {
    match (case["body"].as_str(), case["body_base64"].as_str()) {
        (Some(b), _) => b.as_bytes().to_vec(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
        _ => Vec::new(),
    }
}

/// The scheme's inputs as arguments; the body goes through stdin so binary bodies work.
fn input_args(case: &Value) -> Vec<String> {
    let mut args = vec![case["scheme"].as_str().unwrap().to_owned()];
    for (key, flag) in [
        ("merchant_id", "--merchant-id"),
        ("method", "--method"),
        ("url", "--url"),
        ("transaction_id", "--transaction-id"),
    ] {
        if let Some(v) = case[key].as_str() {
            args.extend([flag.to_owned(), v.to_owned()]);
        }
    }
    if case["scheme"] != "kitopay-simplified" {
        args.extend(["--body-file".to_owned(), "-".to_owned()]);
    }
    args
}

#[test]
fn sign_every_vector_in_every_format() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let scheme = case["scheme"].as_str().unwrap();
        let secret = case["secret"].as_str().unwrap();
        let body = body_of(&case);
        let mut base = input_args(&case);
        base.insert(0, "sign".into());
        base.extend([
            "--timestamp".into(),
            case["timestamp"].as_str().unwrap().into(),
        ]);
        if let Some(k) = case["api_key"].as_str() {
            base.extend(["--api-key".into(), k.into()]);
        }
        if case["url"].is_null() {
            base.extend(["--url".into(), "https://api.example.test/endpoint".into()]);
        }

        // headers
        let o = run(
            bin().args(&base).env(secret_env(scheme), secret),
            Some(&body),
        );
        assert!(o.status.success(), "{name}: {}", text(&o));
        let expected: String = case["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", v.as_str().unwrap()))
            .collect();
        let mut got: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
        let mut want: Vec<&str> = expected.lines().collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{name}");

        // json
        let mut args = base.clone();
        args.extend(["--format".into(), "json".into()]);
        let o = run(
            bin().args(&args).env(secret_env(scheme), secret),
            Some(&body),
        );
        let json: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", text(&o)));
        assert_eq!(json["scheme"], scheme, "{name}");
        assert_eq!(json["headers"], case["headers"], "{name}");
        assert_eq!(json["signature"], case["signature"], "{name}");
        if let Some(sts) = case["string_to_sign"].as_str() {
            assert_eq!(json["string_to_sign"], sts, "{name}");
        }
        if scheme == "kitopay" || scheme == "kitopay-webhook" {
            assert_eq!(json["url"], case["url"], "{name}");
        } else {
            assert!(json.get("url").is_none(), "{name}");
        }

        // curl
        let mut args = base.clone();
        args.extend(["--format".into(), "curl".into()]);
        let o = run(
            bin().args(&args).env(secret_env(scheme), secret),
            Some(&body),
        );
        let curl = String::from_utf8(o.stdout).unwrap();
        assert!(curl.contains(case["signature"].as_str().unwrap()), "{name}");
        if case["scheme"] == "kitopay-simplified" {
            assert!(curl.starts_with("curl "), "{name}: {curl}");
        } else {
            // A stdin body is piped in by printf: the command runs as printed.
            assert!(curl.starts_with("printf '"), "{name}: {curl}");
            assert!(curl.contains("| curl "), "{name}: {curl}");
            assert!(curl.ends_with("--data-binary @-\n"), "{name}: {curl}");
        }

        // secrets never printed
        for out in [&curl, &expected] {
            assert!(!out.contains(secret), "{name}");
        }
    }
}

#[test]
fn verify_every_vector_then_tampered_then_json() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let scheme = case["scheme"].as_str().unwrap();
        let secret = case["secret"].as_str().unwrap();
        let ts = case["timestamp"].as_str().unwrap();
        let mut args = vec!["verify".to_owned()];
        args.extend(input_args(&case));
        args.extend([
            "--timestamp".into(),
            ts.into(),
            "--now".into(),
            ts.into(),
            "--signature".into(),
            case["signature"].as_str().unwrap().into(),
        ]);
        let body = body_of(&case);
        let o = run(
            bin().args(&args).env(secret_env(scheme), secret),
            Some(&body),
        );
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
        assert!(
            text(&o).contains(secret_env(scheme)),
            "{name}: reports the key"
        );

        let mut tampered = body.clone();
        tampered.push(b'!');
        let o = run(
            bin()
                .args(&args)
                .arg("--format")
                .arg("json")
                .env(secret_env(scheme), secret),
            Some(&tampered),
        );
        let json: Value = serde_json::from_slice(&o.stdout).unwrap();
        if scheme == "kitopay-simplified" {
            assert_eq!(json["valid"], true, "{name}");
        } else if name.contains("get") && scheme.starts_with("kitopay") {
            assert_eq!(o.status.code(), Some(1), "{name}");
            assert_eq!(json["reason"], "body_not_allowed", "{name}");
        } else {
            assert_eq!(o.status.code(), Some(1), "{name}");
            assert_eq!(json["valid"], false);
            assert_eq!(json["reason"], "signature_mismatch", "{name}");
        }
        assert!(!text(&o).contains(secret));
    }
}

const M: &str = "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148";
const S: &str = "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9";
const URL: &str = "https://api.dev.kitopay.com/api/v1/merchants/payins/";
const BODY: &str = r#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"},"customer":{"id":"1","first_name":"John","last_name":"Doe"}}"#;
const SIG: &str = "656b4d8be9283517dd5e521f157ab52fbe187cd6cbda197a3af1e58958d41f5c";

fn kitopay_verify(extra: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.args([
        "verify",
        "kitopay",
        "--merchant-id",
        M,
        "--method",
        "POST",
        "--url",
        URL,
        "--body",
        BODY,
        "--timestamp",
        "1601234567",
    ])
    .args(extra)
    .env("KITOPAY_SECRET", S);
    cmd
}

#[test]
fn verify_exit_codes_and_reasons() {
    let ok = run(
        &mut kitopay_verify(&["--signature", SIG, "--now", "1601234600"]),
        None,
    );
    assert_eq!(ok.status.code(), Some(0));
    let expired = run(
        &mut kitopay_verify(&[
            "--signature",
            SIG,
            "--now",
            "1601234628",
            "--format",
            "json",
        ]),
        None,
    );
    assert_eq!(expired.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&expired.stdout).unwrap();
    assert_eq!(j["reason"], "expired");
    let future = run(
        &mut kitopay_verify(&[
            "--signature",
            SIG,
            "--now",
            "1601234500",
            "--format",
            "json",
        ]),
        None,
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&future.stdout).unwrap()["reason"],
        "future"
    );
    let wide = run(
        &mut kitopay_verify(&[
            "--signature",
            SIG,
            "--now",
            "1601234500",
            "--max-future",
            "100",
        ]),
        None,
    );
    assert_eq!(wide.status.code(), Some(0));
    let malformed_sig = run(
        &mut kitopay_verify(&[
            "--signature",
            "xyz",
            "--now",
            "1601234567",
            "--format",
            "json",
        ]),
        None,
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&malformed_sig.stdout).unwrap()["reason"],
        "malformed_signature"
    );
    let text_reject = run(
        &mut kitopay_verify(&["--signature", &"0".repeat(64), "--now", "1601234567"]),
        None,
    );
    assert_eq!(text_reject.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text_reject.stderr).contains("signature_mismatch"));

    let mut bad_ts = bin();
    bad_ts
        .args([
            "verify",
            "kitopay",
            "--merchant-id",
            M,
            "--method",
            "POST",
            "--url",
            URL,
            "--timestamp",
            "16O1234567",
            "--now",
            "1601234567",
            "--signature",
            SIG,
            "--format",
            "json",
        ])
        .env("KITOPAY_SECRET", S);
    let o = run(&mut bad_ts, None);
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["reason"],
        "malformed_timestamp"
    );

    // Exit 2: bad URL, missing secret, unreadable file, missing required argument.
    let o = run(
        bin()
            .args([
                "verify",
                "kitopay",
                "--merchant-id",
                M,
                "--method",
                "POST",
                "--url",
                "ftp://x/",
                "--timestamp",
                "1",
                "--signature",
                SIG,
            ])
            .env("KITOPAY_SECRET", S),
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    let o = run(
        bin().args([
            "verify",
            "kitopay",
            "--merchant-id",
            M,
            "--method",
            "POST",
            "--url",
            URL,
            "--timestamp",
            "1",
            "--signature",
            SIG,
        ]),
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("KITOPAY_SECRET"));
    let o = run(
        bin()
            .args([
                "sign",
                "kamiokash",
                "--api-key",
                "pk",
                "--body-file",
                "/nonexistent/body",
            ])
            .env("KAMIOKASH_SECRET", "s"),
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let o = run(
        bin()
            .args(["sign", "kitopay", "--method", "POST", "--url", URL])
            .env("KITOPAY_SECRET", S),
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--merchant-id"));
    let o = run(
        bin()
            .args([
                "sign",
                "kitopay",
                "--merchant-id",
                M,
                "--method",
                "PO ST",
                "--url",
                URL,
            ])
            .env("KITOPAY_SECRET", S),
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    // There is no --secret flag.
    let o = run(
        bin().args(["sign", "kamiokash-webhook", "--secret", "x"]),
        None,
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn rotation_reports_which_key_matched() {
    let o = run(
        kitopay_verify(&[
            "--signature",
            SIG,
            "--now",
            "1601234567",
            "--secret-env",
            "OLD_SECRET",
            "--secret-env",
            "NEW_SECRET",
            "--format",
            "json",
        ])
        .env("OLD_SECRET", "retired")
        .env("NEW_SECRET", S),
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j, serde_json::json!({"valid": true, "key": "NEW_SECRET"}));
    let o = run(
        kitopay_verify(&[
            "--signature",
            SIG,
            "--now",
            "1601234567",
            "--secret-env",
            "OLD_SECRET",
        ])
        .env("OLD_SECRET", "retired"),
        None,
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn secret_file_strips_one_newline_and_binary_stdin_bodies_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("{S}\n")).unwrap();
    let body: &[u8] = &[0x00, 0xff, 0xfe, 0x80, 0x41, 0x0a];
    let o = run(
        bin()
            .args([
                "sign",
                "kitopay",
                "--merchant-id",
                M,
                "--method",
                "PUT",
                "--url",
                "https://api.dev.kitopay.com/api/v1/merchants/files/7",
                "--timestamp",
                "1601234567",
                "--body-file",
                "-",
                "--secret-file",
            ])
            .arg(&path),
        Some(body),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("ad36b7eca809a535684f2c0aecd3763fe5348f108a2727af0960036ee1d37da8")
    );
    let body_path = dir.path().join("body.bin");
    std::fs::write(&body_path, body).unwrap();
    let o = run(
        bin()
            .args([
                "explain",
                "kitopay",
                "--merchant-id",
                M,
                "--method",
                "PUT",
                "--url",
                "https://api.dev.kitopay.com/api/v1/merchants/files/7",
                "--timestamp",
                "1601234567",
                "--body-file",
            ])
            .arg(&body_path)
            .arg("--secret-file")
            .arg(&path),
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains(r"\x00\xff\xfe\x80A\n"), "{out}");
    assert!(out.contains("ad36b7eca809a535684f2c0aecd3763fe5348f108a2727af0960036ee1d37da8"));
    assert!(!out.contains(S));
}

#[test]
fn explain_shows_fields_offsets_and_escapes() {
    let o = run(
        bin()
            .args([
                "explain",
                "kamiokash",
                "--api-key",
                "kk_test_pk_8c1f0b2e",
                "--body",
                "{\"a\":\"ü\"}\n",
                "--timestamp",
                "2026-01-27T09:23:06.658Z",
            ])
            .env("KAMIOKASH_SECRET", "kk_test_sk_3b9d7f51a2c64e0e9f7d"),
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("message: 36 bytes"), "{out}");
    assert!(out.contains("[    0..   11)  body"), "{out}");
    assert!(out.contains(r#"{"a":"\xc3\xbc"}\n"#), "{out}");
    assert!(out.contains("[   11..   12)  delimiter"), "{out}");
    assert!(out.contains("[   12..   36)  timestamp"), "{out}");
}

/// `countersign <subcommand> kitopay` with the documented merchant and the given inputs.
fn kitopay_command(subcommand: &str, url: &str, body: &str, method: &str, ts: &str) -> Command {
    let mut cmd = bin();
    cmd.args([
        subcommand,
        "kitopay",
        "--merchant-id",
        M,
        "--method",
        method,
        "--url",
        url,
        "--body",
        body,
        "--timestamp",
        ts,
    ]);
    cmd
}

fn diagnose_kitopay(
    url: &str,
    body: &str,
    method: &str,
    ts: &str,
    sig: &str,
    secret: &str,
) -> (Option<i32>, Value) {
    let o = run(
        kitopay_command("diagnose", url, body, method, ts)
            .args([
                "--now",
                "1601234567",
                "--signature",
                sig,
                "--format",
                "json",
            ])
            .env("KITOPAY_SECRET", secret),
        None,
    );
    assert!(!text(&o).contains(S));
    (
        o.status.code(),
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
    )
}

fn sign_kitopay(url: &str, body: &str, method: &str, ts: &str, secret: &str) -> String {
    let o = run(
        kitopay_command("sign", url, body, method, ts)
            .args(["--format", "json"])
            .env("KITOPAY_SECRET", secret),
        None,
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    j["signature"].as_str().unwrap().to_owned()
}

#[test]
fn diagnose_names_each_hypothesis() {
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(BODY).unwrap()).unwrap();
    let secret_nl = format!("{S}\n");
    let no_slash = "https://api.dev.kitopay.com/api/v1/merchants/payins";
    let http = "http://api.dev.kitopay.com/api/v1/merchants/payins/";
    let newline = format!("{BODY}\n");
    /// What the sender signed, what we hold, and the hypothesis that explains it.
    struct Mistake<'a> {
        signed: (&'a str, &'a str, &'a str, &'a str),
        ours: (&'a str, &'a str, &'a str),
        expected: &'a str,
    }
    let cases = [
        Mistake {
            signed: (URL, BODY, "POST", S),
            ours: (no_slash, BODY, "POST"),
            expected: "trailing_slash_added",
        },
        Mistake {
            signed: (no_slash, BODY, "POST", S),
            ours: (URL, BODY, "POST"),
            expected: "trailing_slash_removed",
        },
        Mistake {
            signed: (http, BODY, "POST", S),
            ours: (URL, BODY, "POST"),
            expected: "http_instead_of_https",
        },
        Mistake {
            signed: (URL, &newline, "POST", S),
            ours: (URL, BODY, "POST"),
            expected: "body_trailing_newline_added",
        },
        Mistake {
            signed: (URL, &pretty, "POST", S),
            ours: (URL, BODY, "POST"),
            expected: "body_pretty_printed",
        },
        Mistake {
            signed: (URL, BODY, "POST", S),
            ours: (URL, &pretty, "POST"),
            expected: "body_minified",
        },
        Mistake {
            signed: (URL, BODY, "post", S),
            ours: (URL, BODY, "POST"),
            expected: "method_lowercase",
        },
        Mistake {
            signed: (URL, BODY, "POST", &secret_nl),
            ours: (URL, BODY, "POST"),
            expected: "secret_whitespace",
        },
    ];
    for m in cases {
        let (s_url, s_body, s_method, s_secret) = m.signed;
        let (r_url, r_body, r_method) = m.ours;
        let sig = if countersign::STANDARD_METHODS.contains(&s_method) {
            sign_kitopay(s_url, s_body, s_method, "1601234567", s_secret)
        } else {
            // The CLI refuses to sign a non-standard method: sign through the library.
            let url = countersign::CanonicalUrl::parse(s_url).unwrap();
            let message = format!("{M}1601234567{s_method}{url}{s_body}");
            reference_hmac(s_secret, message.as_bytes())
        };
        let (code, j) = diagnose_kitopay(r_url, r_body, r_method, "1601234567", &sig, S);
        assert_eq!(code, Some(1), "{}: {j}", m.expected);
        assert_eq!(j["hypothesis"], m.expected, "{j}");
    }
    // Default port: the sender signed ":443" explicitly (not canonical, so signed via the library).
    let with_port = reference_hmac(
        S,
        format!("{M}1601234567POSThttps://api.dev.kitopay.com:443/api/v1/merchants/payins/{BODY}")
            .as_bytes(),
    );
    let (_, j) = diagnose_kitopay(URL, BODY, "POST", "1601234567", &with_port, S);
    assert_eq!(j["hypothesis"], "default_port_added");
    // Milliseconds: the sender put seconds in the header but signed milliseconds (the CLI
    // refuses to sign such a timestamp, so sign through the library).
    let url = countersign::CanonicalUrl::parse(URL).unwrap();
    let millis = reference_hmac(
        S,
        format!("{M}{}POST{url}{BODY}", "1601234567000").as_bytes(),
    );
    let (_, j) = diagnose_kitopay(URL, BODY, "POST", "1601234567", &millis, S);
    assert_eq!(j["hypothesis"], "timestamp_millis");
    // A real Date.now(): any three last digits.
    let millis = reference_hmac(
        S,
        format!("{M}{}POST{url}{BODY}", "1601234567493").as_bytes(),
    );
    let (_, j) = diagnose_kitopay(URL, BODY, "POST", "1601234567", &millis, S);
    assert_eq!(j["hypothesis"], "timestamp_millis");
    // Python's default json.dumps: spaces after `,` and `:`, non-ASCII escaped.
    let python = r#"{"reference_id": "tx-123", "payment": {"amount": 49.23, "currency": "EUR"}, "customer": {"id": "1", "first_name": "John", "last_name": "Doe"}}"#;
    let sig = sign_kitopay(URL, python, "POST", "1601234567", S);
    let (_, j) = diagnose_kitopay(URL, BODY, "POST", "1601234567", &sig, S);
    assert_eq!(j["hypothesis"], "body_python_dumps", "{j}");
    // A valid signature: exit 0.
    let (code, j) = diagnose_kitopay(URL, BODY, "POST", "1601234567", SIG, S);
    assert_eq!((code, j["valid"].clone()), (Some(0), Value::Bool(true)));
    // Nothing explains a random signature.
    let (code, j) = diagnose_kitopay(URL, BODY, "POST", "1601234567", &"ab".repeat(32), S);
    assert_eq!(code, Some(1));
    assert!(j.get("hypothesis").is_none());
}

#[test]
fn diagnose_kamiokash_message_order_and_text_output() {
    let secret = "kk_test_sk_3b9d7f51a2c64e0e9f7d";
    let ts = "2026-01-27T09:23:06.658Z";
    let body = r#"{"wallet_id":"w_123"}"#;
    // The sender used the webhook order for a request.
    let o = run(
        bin()
            .args([
                "sign",
                "kamiokash-webhook",
                "--body",
                body,
                "--timestamp",
                ts,
                "--format",
                "json",
            ])
            .env("KAMIOKASH_WEBHOOK_SECRET", secret),
        None,
    );
    let sig = serde_json::from_slice::<Value>(&o.stdout).unwrap()["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = run(
        bin()
            .args([
                "diagnose",
                "kamiokash",
                "--body",
                body,
                "--timestamp",
                ts,
                "--now",
                ts,
                "--signature",
                &sig,
            ])
            .env("KAMIOKASH_SECRET", secret),
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1));
    assert!(out.contains("kamiokash-webhook message layout"), "{out}");
    assert!(out.contains("first difference at byte 0"), "{out}");
    assert!(!out.contains(secret));
    // Timestamp without milliseconds.
    let o = run(
        bin()
            .args([
                "sign",
                "kamiokash",
                "--api-key",
                "pk",
                "--body",
                body,
                "--timestamp",
                "2026-01-27T09:23:06Z",
                "--format",
                "json",
            ])
            .env("KAMIOKASH_SECRET", secret),
        None,
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j["headers"]["X-Timestamp"], "2026-01-27T09:23:06.000Z",
        "toISOString form"
    );
}

#[test]
fn demo_runs_and_shows_the_trailing_slash_diagnosis() {
    let o = run(bin().arg("demo"), None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("656b4d8be9283517dd5e521f157ab52fbe187cd6cbda197a3af1e58958d41f5c"));
    assert!(out.contains("6307031171ff7ce2a46a2535b8b062115c57a045714434b0ec3d047cb5e2f325"));
    assert!(out.contains("trailing slash"));
    assert!(!out.contains("dev_sec_"), "the demo never prints a secret");
    assert!(!out.contains("kk_test_sk_"));
}

/// A value that looks like a real secret (and is a valid-looking shell word).
const PASTED: &str = "sk_live_51Hx9Q2eZvKYlo2C/q8+Wz==";
/// A KamioKash-style secret: also a valid environment variable name.
const PASTED_NAME_LIKE: &str = "kk_test_sk_3b9d7f51a2c64e0e9f7d";

fn kitopay_sign_args() -> Vec<&'static str> {
    vec![
        "sign",
        "kitopay",
        "--merchant-id",
        M,
        "--method",
        "POST",
        "--url",
        URL,
        "--body",
        BODY,
        "--timestamp",
        "1601234567",
    ]
}

#[test]
fn secret_flags_are_refused_before_parsing_and_never_echoed() {
    for flag in ["--secret", "--key", "--password"] {
        for args in [
            vec![flag.to_owned(), PASTED.to_owned()],
            vec![format!("{flag}={PASTED}")],
        ] {
            let o = run(
                bin()
                    .args(kitopay_sign_args())
                    .args(&args)
                    .env("KITOPAY_SECRET", S),
                None,
            );
            let out = text(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {out}");
            assert!(!out.contains(PASTED), "{args:?}: {out}");
            assert!(out.contains(&format!("{flag} is not accepted")), "{out}");
            assert!(out.contains("--secret-env NAME"), "{out}");
            assert!(out.contains("--secret-file PATH"), "{out}");
            assert!(!out.contains("tip:"), "no clap suggestion: {out}");
            assert_eq!(o.stdout.len(), 0);
        }
    }
    // Flags that merely start with the same letters are not refused.
    let o = run(
        bin()
            .args(kitopay_sign_args())
            .args(["--secret-env", "MY_KITOPAY_KEY"])
            .env("MY_KITOPAY_KEY", S),
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_secret_given_to_secret_env_or_secret_file_is_never_echoed() {
    for sub in ["sign", "verify", "diagnose"] {
        for pasted in [PASTED, PASTED_NAME_LIKE] {
            let mut cmd = bin();
            cmd.args([
                sub,
                "kitopay",
                "--merchant-id",
                M,
                "--method",
                "POST",
                "--url",
                URL,
                "--timestamp",
                "1601234567",
                "--secret-env",
                pasted,
            ]);
            if sub != "sign" {
                cmd.args(["--signature", SIG]);
            }
            let o = run(&mut cmd, None);
            let out = text(&o);
            assert_eq!(o.status.code(), Some(2), "{sub}: {out}");
            assert!(!out.contains(pasted), "{sub}: {out}");
            if pasted == PASTED {
                assert!(
                    out.contains(
                        "the value given to --secret-env is not an environment variable name (it looks like a secret: pass the NAME of a variable that holds it)"
                    ),
                    "{out}"
                );
            } else {
                assert!(out.contains("named by --secret-env is not set"), "{out}");
            }
        }
    }
    // A conventional variable name is shown: it says what to export.
    let o = run(
        bin()
            .args(kitopay_sign_args())
            .args(["--secret-env", "NO_SUCH_KITOPAY_VAR"]),
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("environment variable NO_SUCH_KITOPAY_VAR is not set"),
        "{}",
        text(&o)
    );
    // The secret pasted where a file path belongs.
    let o = run(
        bin()
            .args(kitopay_sign_args())
            .args(["--secret-file", PASTED]),
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!text(&o).contains(PASTED), "{}", text(&o));
    assert!(text(&o).contains("--secret-file"), "{}", text(&o));
}

/// The Kitopay signature of the documented request under `secret`, through the library.
fn library_signature(secret: &str) -> String {
    let url = countersign::CanonicalUrl::parse(URL).unwrap();
    reference_hmac(
        secret,
        format!("{M}{}POST{url}{BODY}", "1601234567").as_bytes(),
    )
}

#[test]
fn secret_file_strips_exactly_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    // (file contents, the secret used, whether it warns)
    let cases = [
        (format!("{S}\n"), S.to_owned(), false),
        (format!("{S}\r\n"), S.to_owned(), false),
        (S.to_owned(), S.to_owned(), false),
        (format!("{S}\n\n"), format!("{S}\n"), true),
        (format!("{S}\r\n\r\n"), format!("{S}\r\n"), true),
        (format!("{S}\r"), format!("{S}\r"), true),
        (format!("  {S} \n"), format!("  {S} "), true),
        (format!("\t{S}"), format!("\t{S}"), true),
    ];
    for (i, (contents, used, warns)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("secret{i}"));
        std::fs::write(&path, contents).unwrap();
        let o = run(
            bin()
                .args(kitopay_sign_args())
                .args(["--format", "json", "--secret-file"])
                .arg(&path),
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{contents:?}: {}", text(&o));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["signature"], library_signature(used), "{contents:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            stderr.contains("has leading or trailing whitespace"),
            *warns,
            "{contents:?}: {stderr}"
        );
        assert!(!text(&o).contains(S));
    }
    // The rule is stated in --help.
    let o = run(bin().args(["sign", "--help"]), None);
    let help = String::from_utf8_lossy(&o.stdout).replace('\n', " ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("Exactly one trailing newline (`\\n` or `\\r\\n`) is stripped"),
        "{help}"
    );
}

#[test]
fn whitespace_around_an_env_secret_warns_without_showing_it() {
    let o = run(
        bin()
            .args(kitopay_sign_args())
            .env("KITOPAY_SECRET", format!("{S}\n")),
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(
            "warning: the secret in KITOPAY_SECRET has leading or trailing whitespace; it is used as is (countersign diagnose detects this mistake)"
        ),
        "{stderr}"
    );
    assert!(!text(&o).contains(S));
    // Used as is: the signature is the one of the secret with its newline.
    assert!(String::from_utf8_lossy(&o.stdout).contains(&library_signature(&format!("{S}\n"))));
    // Verify names the variable that holds it, too.
    let o = run(
        kitopay_verify(&[
            "--signature",
            SIG,
            "--now",
            "1601234567",
            "--secret-env",
            "ROTATED",
        ])
        .env("ROTATED", format!(" {S}")),
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: the secret in ROTATED has"));
    // No whitespace, no warning.
    let o = run(
        bin().args(kitopay_sign_args()).env("KITOPAY_SECRET", S),
        None,
    );
    assert_eq!(o.stderr.len(), 0, "{}", text(&o));
}

#[test]
fn kitopay_webhook_method_defaults_to_post() {
    let hook = "https://merchant.example.com/webhooks/kitopay";
    let base = |sub: &str| {
        let mut cmd = bin();
        cmd.args([
            sub,
            "kitopay-webhook",
            "--merchant-id",
            M,
            "--url",
            hook,
            "--body",
            BODY,
            "--timestamp",
            "1601234567",
        ])
        .env("KITOPAY_SECRET", S);
        cmd
    };
    let sign = |extra: &[&str]| {
        let o = run(base("sign").args(["--format", "json"]).args(extra), None);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let default = sign(&[]);
    let explicit = sign(&["--method", "POST"]);
    assert_eq!(default["signature"], explicit["signature"]);
    assert!(
        default["string_to_sign"]
            .as_str()
            .unwrap()
            .contains("1601234567POSThttps://")
    );
    let sig = default["signature"].as_str().unwrap();
    let o = run(
        base("verify").args(["--signature", sig, "--now", "1601234567"]),
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(
        base("diagnose").args(["--signature", sig, "--now", "1601234567"]),
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&mut base("explain"), None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(sig));
    // Another method still can be given, and is signed.
    assert_ne!(
        sign(&["--method", "PUT"])["signature"],
        default["signature"]
    );
}

#[test]
fn verify_kamiokash_checks_the_api_key() {
    let secret = "kk_test_sk_3b9d7f51a2c64e0e9f7d";
    let ts = "2026-01-27T09:23:06.658Z";
    let body = r#"{"wallet_id":"w_123"}"#;
    let o = run(
        bin()
            .args([
                "sign",
                "kamiokash",
                "--api-key",
                "kk_test_pk_8c1f0b2e",
                "--body",
                body,
                "--timestamp",
                ts,
                "--format",
                "json",
            ])
            .env("KAMIOKASH_SECRET", secret),
        None,
    );
    let sig = serde_json::from_slice::<Value>(&o.stdout).unwrap()["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let check = |sub: &str, extra: &[&str]| {
        let o = run(
            bin()
                .args([
                    sub,
                    "kamiokash",
                    "--body",
                    body,
                    "--timestamp",
                    ts,
                    "--now",
                    ts,
                    "--signature",
                    &sig,
                    "--format",
                    "json",
                ])
                .args(extra)
                .env("KAMIOKASH_SECRET", secret),
            None,
        );
        assert!(!text(&o).contains(secret));
        (
            o.status.code(),
            serde_json::from_slice::<Value>(&o.stdout).unwrap_or(Value::Null),
            text(&o),
        )
    };
    let expect = ["--api-key", "kk_test_pk_8c1f0b2e"];
    let (code, j, out) = check(
        "verify",
        &[&expect[..], &["--received-api-key", "kk_test_pk_8c1f0b2e"]].concat(),
    );
    assert_eq!((code, &j["valid"]), (Some(0), &Value::Bool(true)), "{out}");
    let (code, j, out) = check(
        "verify",
        &[&expect[..], &["--received-api-key", "kk_test_pk_other"]].concat(),
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(j["reason"], "identity_mismatch", "{out}");
    // diagnose: the signature is right, only the key is refused.
    let (code, j, out) = check(
        "diagnose",
        &[&expect[..], &["--received-api-key", "kk_test_pk_other"]].concat(),
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(j["reason"], "identity_mismatch", "{out}");
    assert_eq!(j["signature_matches"], true, "{out}");
    assert!(
        j["diagnosis"]
            .as_str()
            .unwrap()
            .contains("only the X-API-Key header is refused"),
        "{out}"
    );
    let (code, _, _) = check(
        "diagnose",
        &[&expect[..], &["--received-api-key", "kk_test_pk_8c1f0b2e"]].concat(),
    );
    assert_eq!(code, Some(0));
    // --api-key needs the value received; neither applies to other schemes.
    let (code, _, out) = check("verify", &expect);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--received-api-key"), "{out}");
    let o = run(
        &mut kitopay_verify(&[
            "--signature",
            SIG,
            "--now",
            "1601234567",
            "--api-key",
            "pk",
            "--received-api-key",
            "pk",
        ]),
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn curl_command_reproduces_every_body_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("sent");
    // Runs the printed command with `curl` replaced by a function that saves what it reads.
    let sent = |command: &str| -> (Vec<String>, Vec<u8>) {
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(dir.path().join("sent.args"));
        let script = format!(
            "set -eu -o pipefail\ncurl() {{ printf '%s\\n' \"$@\" > \"$OUT.args\"; cat > \"$OUT\"; }}\n{command}"
        );
        let o = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("OUT", &out_path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{command}: {}", text(&o));
        let args = std::fs::read_to_string(dir.path().join("sent.args")).unwrap();
        (
            args.lines().map(str::to_owned).collect(),
            std::fs::read(&out_path).unwrap_or_default(),
        )
    };
    let mut bodies: Vec<Vec<u8>> = vec![
        b"-n".to_vec(),
        b"\x00\x01\x007\xff\xfe\x80 '\"%s%%\\n\\0 $(false) `false` $HOME \\".to_vec(),
        "ü\n\r\n\t trailing \n\n".as_bytes().to_vec(),
        (0..=255u8).collect(),
        BODY.as_bytes().to_vec(),
    ];
    bodies.extend(cases().iter().map(body_of));
    for body in &bodies {
        let o = run(
            bin()
                .args([
                    "sign",
                    "kamiokash",
                    "--api-key",
                    "pk",
                    "--url",
                    "https://api.example.test/v1/wallets",
                    "--body-file",
                    "-",
                    "--timestamp",
                    "2026-01-27T09:23:06.658Z",
                    "--format",
                    "curl",
                ])
                .env("KAMIOKASH_SECRET", "kk_test_sk_3b9d7f51a2c64e0e9f7d"),
            Some(body),
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let command = String::from_utf8(o.stdout).unwrap();
        let (args, got) = sent(&command);
        assert_eq!(&got, body, "{command}");
        assert_eq!(args.last().map(String::as_str), Some("@-"), "{command}");
        assert!(args.contains(&"X-API-Key: pk".to_owned()), "{args:?}");
    }
    // A --body starting with `@` would make curl read a file: it is piped in too.
    let o = run(
        kitopay_command("sign", URL, "@/etc/passwd", "POST", "1601234567")
            .args(["--format", "curl"])
            .env("KITOPAY_SECRET", S),
        None,
    );
    let command = String::from_utf8(o.stdout).unwrap();
    assert_eq!(sent(&command).1, b"@/etc/passwd", "{command}");
    // Other --body text stays inline.
    let o = run(
        bin()
            .args(kitopay_sign_args())
            .args(["--format", "curl"])
            .env("KITOPAY_SECRET", S),
        None,
    );
    let command = String::from_utf8(o.stdout).unwrap();
    assert!(command.starts_with("curl "), "{command}");
    let (args, _) = sent(&command);
    assert_eq!(args[args.len() - 2..], ["--data-binary", BODY], "{command}");
}

#[test]
fn option_values_may_start_with_a_hyphen() {
    let o = run(
        bin()
            .args([
                "sign",
                "kitopay-simplified",
                "--merchant-id",
                "-abc",
                "--method",
                "POST",
                "--transaction-id",
                "-x1",
                "--timestamp",
                "1601234567",
                "--format",
                "json",
            ])
            .env("KITOPAY_SECRET", S),
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["string_to_sign"], "-abc1601234567POST-x1");
    let o = run(
        bin()
            .args([
                "sign",
                "kamiokash",
                "--api-key",
                "-pk",
                "--body",
                "-1",
                "--timestamp",
                "2026-01-27T09:23:06.658Z",
                "--format",
                "json",
            ])
            .env("KAMIOKASH_SECRET", "s"),
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["string_to_sign"], "-1:2026-01-27T09:23:06.658Z");
    assert_eq!(j["headers"]["X-API-Key"], "-pk");
    // A received timestamp starting with `-` reaches the verifier, which refuses it.
    let o = run(
        kitopay_command("verify", URL, BODY, "POST", "-1")
            .args([
                "--signature",
                SIG,
                "--now",
                "1601234567",
                "--format",
                "json",
            ])
            .env("KITOPAY_SECRET", S),
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["reason"], "malformed_timestamp");
}

#[test]
fn diagnose_millisecond_timestamp_says_only_the_timestamp_is_refused() {
    let url = countersign::CanonicalUrl::parse(URL).unwrap();
    let ts = "1601234567123";
    let sig = reference_hmac(S, format!("{M}{}POST{url}{BODY}", ts).as_bytes());
    let cmd = |sub: &str, format: &str| {
        let mut cmd = kitopay_command(sub, URL, BODY, "POST", ts);
        cmd.args([
            "--signature",
            &sig,
            "--now",
            "1601234567",
            "--format",
            format,
        ])
        .env("KITOPAY_SECRET", S);
        cmd
    };
    let o = run(&mut cmd("diagnose", "text"), None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.starts_with("refused: malformed timestamp: this looks like milliseconds"),
        "{out}"
    );
    assert!(
        out.contains(
            "diagnosis: the signature matches the message as received; only the timestamp is refused: send UNIX seconds and sign them"
        ),
        "{out}"
    );
    assert!(!out.contains("does not verify"), "{out}");
    assert!(!out.contains("freshness"), "{out}");
    assert_eq!(out.matches("refused").count(), 2, "said once: {out}");

    let o = run(&mut cmd("diagnose", "json"), None);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["valid"], false);
    assert_eq!(j["reason"], "malformed_timestamp");
    assert_eq!(j["signature_matches"], true);
    assert_eq!(j["key"], "KITOPAY_SECRET");
    assert!(
        j["detail"]
            .as_str()
            .unwrap()
            .contains("this looks like milliseconds")
    );
    assert!(
        j["diagnosis"]
            .as_str()
            .unwrap()
            .contains("only the timestamp is refused: send UNIX seconds and sign them")
    );
    assert!(j.get("hypothesis").is_none());

    // verify: a verification failure (exit 1), not a usage error.
    let o = run(&mut cmd("verify", "json"), None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["reason"], "malformed_timestamp");

    // Expired with a correct signature: only the freshness check fails.
    let o = run(
        kitopay_command("diagnose", URL, BODY, "POST", "1601234567")
            .args(["--signature", SIG, "--now", "1601239999"])
            .env("KITOPAY_SECRET", S),
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(out.starts_with("refused: timestamp expired"), "{out}");
    assert!(
        out.contains(
            "the signature matches the message as received; only the freshness check fails"
        ),
        "{out}"
    );
}

#[test]
fn rust_log_shows_tracing_events_on_stderr() {
    let args = ["--signature", SIG, "--now", "1601234567"];
    let quiet = run(&mut kitopay_verify(&args), None);
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(quiet.stderr.len(), 0, "{}", text(&quiet));
    let o = run(
        kitopay_verify(&args).env("RUST_LOG", "countersign=debug"),
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("cli: signature verified"), "{stderr}");
    assert!(stderr.contains("key_id=KITOPAY_SECRET"), "{stderr}");
    assert!(!stderr.contains(S));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("cli: signature verified"));
}

/// The flags `countersign <mode> <scheme> --help` lists, each with whether it is marked
/// `[required]`.
fn flags_in_help(mode: &str, scheme: &str) -> Vec<(String, bool)> {
    let o = run(bin().args([mode, scheme, "--help"]), None);
    assert_eq!(o.status.code(), Some(0), "{mode} {scheme}: {}", text(&o));
    let help = String::from_utf8(o.stdout).unwrap();
    let mut flags: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("--") || trimmed.starts_with("-h, --help") {
            let flag = trimmed
                .trim_start_matches("-h, ")
                .split_whitespace()
                .next()
                .unwrap();
            flags.push((flag.to_owned(), line.to_owned()));
        } else if let Some((_, text)) = flags.last_mut() {
            text.push_str(line);
        }
    }
    flags
        .into_iter()
        .filter(|(flag, _)| flag != "--help")
        .map(|(flag, text)| (flag, text.contains("[required]")))
        .collect()
}

#[test]
fn each_scheme_subcommand_lists_exactly_its_flags_and_marks_the_required_ones() {
    // `!` marks a required flag. Derived from each scheme's parts: identity, method, URL,
    // body, named values, timestamp; what is received (signature) only where it is checked.
    let secrets = "--secret-env --secret-file";
    let window = "--now --max-age --max-future";
    let table: [(&str, &str, String); 24] = [
        (
            "sign",
            "kitopay",
            format!(
                "--merchant-id! --method! --url! --trailing-slash --body --body-file --timestamp {secrets} --format"
            ),
        ),
        (
            "sign",
            "kitopay-simplified",
            format!(
                "--merchant-id! --method! --url --transaction-id! --timestamp {secrets} --format"
            ),
        ),
        (
            "sign",
            "kamiokash",
            format!("--api-key! --method --url --body --body-file --timestamp {secrets} --format"),
        ),
        (
            "sign",
            "kitopay-webhook",
            format!(
                "--merchant-id! --method --url! --trailing-slash --body --body-file --timestamp {secrets} --format"
            ),
        ),
        (
            "sign",
            "kamiokash-webhook",
            format!("--method --url --body --body-file --timestamp {secrets} --format"),
        ),
        (
            "sign",
            "standard-webhooks",
            format!("--method --url --body --body-file --id! --timestamp {secrets} --format"),
        ),
        (
            "explain",
            "kitopay",
            format!(
                "--merchant-id! --method! --url! --trailing-slash --body --body-file --timestamp {secrets}"
            ),
        ),
        (
            "explain",
            "kitopay-simplified",
            format!("--merchant-id! --method! --transaction-id! --timestamp {secrets}"),
        ),
        (
            "explain",
            "kamiokash",
            format!("--api-key! --body --body-file --timestamp {secrets}"),
        ),
        (
            "explain",
            "kitopay-webhook",
            format!(
                "--merchant-id! --method --url! --trailing-slash --body --body-file --timestamp {secrets}"
            ),
        ),
        (
            "explain",
            "kamiokash-webhook",
            format!("--body --body-file --timestamp {secrets}"),
        ),
        (
            "explain",
            "standard-webhooks",
            format!("--body --body-file --id! --timestamp {secrets}"),
        ),
        (
            "verify",
            "kitopay",
            format!(
                "--merchant-id! --method! --url! --trailing-slash --body --body-file --timestamp! --signature! {secrets} {window} --body-on-get --format"
            ),
        ),
        (
            "verify",
            "kitopay-simplified",
            format!(
                "--merchant-id! --method! --transaction-id! --timestamp! --signature! {secrets} {window} --format"
            ),
        ),
        (
            "verify",
            "kamiokash",
            format!(
                "--api-key --received-api-key --body --body-file --timestamp! --signature! {secrets} {window} --format"
            ),
        ),
        (
            "verify",
            "kitopay-webhook",
            format!(
                "--merchant-id! --method --url! --trailing-slash --body --body-file --timestamp! --signature! {secrets} {window} --body-on-get --format"
            ),
        ),
        (
            "verify",
            "kamiokash-webhook",
            format!("--body --body-file --timestamp! --signature! {secrets} {window} --format"),
        ),
        (
            "verify",
            "standard-webhooks",
            format!(
                "--body --body-file --id! --timestamp! --signature! {secrets} {window} --format"
            ),
        ),
        (
            "diagnose",
            "kitopay",
            format!(
                "--merchant-id! --method! --url! --trailing-slash --body --body-file --timestamp! --signature! {secrets} {window} --body-on-get --format"
            ),
        ),
        (
            "diagnose",
            "kitopay-simplified",
            format!(
                "--merchant-id! --method! --transaction-id! --timestamp! --signature! {secrets} {window} --format"
            ),
        ),
        (
            "diagnose",
            "kamiokash",
            format!(
                "--api-key --received-api-key --body --body-file --timestamp! --signature! {secrets} {window} --format"
            ),
        ),
        (
            "diagnose",
            "kitopay-webhook",
            format!(
                "--merchant-id! --method --url! --trailing-slash --body --body-file --timestamp! --signature! {secrets} {window} --body-on-get --format"
            ),
        ),
        (
            "diagnose",
            "kamiokash-webhook",
            format!("--body --body-file --timestamp! --signature! {secrets} {window} --format"),
        ),
        (
            "diagnose",
            "standard-webhooks",
            format!(
                "--body --body-file --id! --timestamp! --signature! {secrets} {window} --format"
            ),
        ),
    ];
    for (mode, scheme, expected) in &table {
        let got: Vec<String> = flags_in_help(mode, scheme)
            .into_iter()
            .map(|(flag, required)| if required { format!("{flag}!") } else { flag })
            .collect();
        assert_eq!(got.join(" "), *expected, "{mode} {scheme}");
    }
    // Every scheme of the registry is a subcommand of every mode, and nothing else is.
    let names: Vec<&str> = countersign::built_in().iter().map(|s| s.name()).collect();
    for mode in ["sign", "explain", "verify", "diagnose"] {
        let listed: Vec<&str> = table
            .iter()
            .filter(|(m, _, _)| m == &mode)
            .map(|(_, scheme, _)| *scheme)
            .collect();
        assert_eq!(listed, names, "{mode}");
        let o = run(bin().args([mode, "--help"]), None);
        let help = String::from_utf8(o.stdout).unwrap();
        let schemes: Vec<&str> = help
            .split("Schemes:")
            .nth(1)
            .unwrap()
            .split("Options:")
            .next()
            .unwrap()
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        assert_eq!(schemes, names, "{mode}: {help}");
        for scheme in countersign::built_in() {
            assert!(help.contains(scheme.about()), "{mode}: {help}");
        }
    }
    // A flag of another scheme is refused (exit 2).
    let o = run(
        bin()
            .args(["sign", "kamiokash-webhook", "--merchant-id", M])
            .env("KAMIOKASH_WEBHOOK_SECRET", "s"),
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // Webhook schemes that sign the method default it to POST, and say so.
    let o = run(bin().args(["sign", "kitopay-webhook", "--help"]), None);
    assert!(String::from_utf8_lossy(&o.stdout).contains("[default: POST]"));
    // The freshness defaults are the scheme's: 60 s, 300 s for Standard Webhooks.
    for (scheme, window) in [("kitopay", "60"), ("standard-webhooks", "300")] {
        let o = run(bin().args(["verify", scheme, "--help"]), None);
        let help = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(
            help.matches(&format!("[default: {window}]")).count(),
            2,
            "{help}"
        );
    }
}

/// The Standard Webhooks example: the specification's secret, id, timestamp and body.
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TS: &str = "1614265330";
const SW_BODY: &str = r#"{"test": 2432232314}"#;
const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// `v1,` + base64 of the reference HMAC keyed with the base64-decoded `whsec_` secret.
fn reference_sw(secret: &str, id: &str, ts: &str, body: &str) -> String {
    reference::standard_webhooks_entry(secret, format!("{id}.{ts}.{body}").as_bytes())
}

#[test]
fn standard_webhooks_signs_with_one_entry_per_secret_and_verifies_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SW_SECRET}\n")).unwrap();
    let other = "whsec_bm90IHRoaXMgb25lIGJ1dCBhIGtleSBpbiByb3RhdGlvbiE=";
    let rotated = dir.path().join("rotated");
    std::fs::write(&rotated, other).unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, SW_BODY).unwrap();
    assert_eq!(reference_sw(SW_SECRET, SW_ID, SW_TS, SW_BODY), SW_SIG);

    let sign = |secrets: &[&std::path::Path]| {
        let mut cmd = bin();
        cmd.args([
            "sign",
            "standard-webhooks",
            "--id",
            SW_ID,
            "--timestamp",
            SW_TS,
            "--format",
            "json",
            "--body-file",
        ])
        .arg(&body);
        for path in secrets {
            cmd.arg("--secret-file").arg(path);
        }
        let o = run(&mut cmd, None);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(!text(&o).contains(SW_SECRET) && !text(&o).contains(other));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let j = sign(&[&secret]);
    assert_eq!(j["signature"], SW_SIG);
    assert_eq!(
        j["headers"],
        serde_json::json!({
            "webhook-id": SW_ID,
            "webhook-timestamp": SW_TS,
            "webhook-signature": SW_SIG,
        })
    );
    assert_eq!(j["string_to_sign"], format!("{SW_ID}.{SW_TS}.{SW_BODY}"));
    // A rotation: one `v1,` entry per secret, space-separated, in the order given.
    let j = sign(&[&secret, &rotated]);
    let both = format!("{SW_SIG} {}", reference_sw(other, SW_ID, SW_TS, SW_BODY));
    assert_eq!(j["signature"], both);
    assert_eq!(j["headers"]["webhook-signature"], both);
    // The same with --secret-env, and in the headers format.
    let o = run(
        bin()
            .args([
                "sign",
                "standard-webhooks",
                "--id",
                SW_ID,
                "--timestamp",
                SW_TS,
                "--body",
                SW_BODY,
            ])
            .args(["--secret-env", "SW_NEW", "--secret-env", "SW_OLD"])
            .env("SW_NEW", SW_SECRET)
            .env("SW_OLD", other),
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("webhook-id: {SW_ID}\nwebhook-timestamp: {SW_TS}\nwebhook-signature: {both}\n")
    );
    // Schemes with one signature per header take one secret.
    let o = run(
        bin()
            .args([
                "sign",
                "kamiokash-webhook",
                "--body",
                "{}",
                "--secret-env",
                "A",
                "--secret-env",
                "B",
            ])
            .env("A", "a")
            .env("B", "b"),
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("give one secret"), "{}", text(&o));

    let verify = |signature: &str, extra: &[&str], secret_text: &str| {
        let o = run(
            bin()
                .args([
                    "verify",
                    "standard-webhooks",
                    "--id",
                    SW_ID,
                    "--timestamp",
                    SW_TS,
                    "--signature",
                    signature,
                    "--format",
                    "json",
                    "--body-file",
                ])
                .arg(&body)
                .args(extra)
                .env("STANDARD_WEBHOOKS_SECRET", secret_text),
            None,
        );
        assert!(!text(&o).contains(secret_text), "{}", text(&o));
        (
            o.status.code(),
            serde_json::from_slice::<Value>(&o.stdout).unwrap_or(Value::Null),
            text(&o),
        )
    };
    // Valid within the 5-minute window (`--now` 70 s later), and the rotation header.
    let (code, j, out) = verify(SW_SIG, &["--now", "1614265400"], SW_SECRET);
    assert_eq!((code, &j["valid"]), (Some(0), &Value::Bool(true)), "{out}");
    assert_eq!(j["key"], "STANDARD_WEBHOOKS_SECRET");
    let (code, _, out) = verify(&both, &["--now", "1614265400"], SW_SECRET);
    assert_eq!(code, Some(0), "{out}");
    // Stale past 300 s: 1.
    let (code, j, out) = verify(SW_SIG, &["--now", "1614265700"], SW_SECRET);
    assert_eq!(
        (code, &j["reason"]),
        (Some(1), &Value::from("expired")),
        "{out}"
    );
    // Another body: 1.
    let o = run(
        bin()
            .args([
                "verify",
                "standard-webhooks",
                "--id",
                SW_ID,
                "--timestamp",
                SW_TS,
                "--signature",
                SW_SIG,
                "--now",
                SW_TS,
                "--body",
                "{}",
            ])
            .env("STANDARD_WEBHOOKS_SECRET", SW_SECRET),
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // A secret that is not `whsec_` + base64: 2, without showing it.
    let bad = "whsec_not!base64?at*all";
    let (code, _, out) = verify(SW_SIG, &["--now", SW_TS], bad);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("STANDARD_WEBHOOKS_SECRET"), "{out}");
    // A malformed signature header: 1; a missing --id: 2.
    let (code, j, out) = verify("g0hM9SsE", &["--now", SW_TS], SW_SECRET);
    assert_eq!(
        (code, &j["reason"]),
        (Some(1), &Value::from("malformed_signature")),
        "{out}"
    );
    let o = run(
        bin()
            .args([
                "verify",
                "standard-webhooks",
                "--timestamp",
                SW_TS,
                "--signature",
                SW_SIG,
            ])
            .env("STANDARD_WEBHOOKS_SECRET", SW_SECRET),
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--id"), "{}", text(&o));

    // diagnose: the sender signed the minified body; the handler received it with spaces.
    let minified = reference_sw(SW_SECRET, SW_ID, SW_TS, r#"{"test":2432232314}"#);
    let (code, j, out) = {
        let o = run(
            bin()
                .args([
                    "diagnose",
                    "standard-webhooks",
                    "--id",
                    SW_ID,
                    "--timestamp",
                    SW_TS,
                    "--now",
                    SW_TS,
                    "--signature",
                    &minified,
                    "--format",
                    "json",
                    "--body",
                    SW_BODY,
                ])
                .env("STANDARD_WEBHOOKS_SECRET", SW_SECRET),
            None,
        );
        (
            o.status.code(),
            serde_json::from_slice::<Value>(&o.stdout).unwrap_or(Value::Null),
            text(&o),
        )
    };
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(j["hypothesis"], "body_minified", "{out}");
    // explain: the fields, and the signature as the header carries it.
    let o = run(
        bin()
            .args([
                "explain",
                "standard-webhooks",
                "--id",
                SW_ID,
                "--timestamp",
                SW_TS,
                "--body",
                SW_BODY,
            ])
            .env("STANDARD_WEBHOOKS_SECRET", SW_SECRET),
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("[    0..   28)  id"), "{out}");
    assert!(out.contains(&format!("signature: {SW_SIG}")), "{out}");
}

#[test]
fn verify_body_on_get_accepts_a_get_body_only_when_asked() {
    let url = "https://api.dev.kitopay.com/api/v1/merchants/payins?status=new";
    let o = run(
        kitopay_command("sign", url, "{}", "GET", "1601234567")
            .args(["--format", "json"])
            .env("KITOPAY_SECRET", S),
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let sig = serde_json::from_slice::<Value>(&o.stdout).unwrap()["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = |extra: &[&str]| {
        let o = run(
            kitopay_command("verify", url, "{}", "GET", "1601234567")
                .args([
                    "--signature",
                    &sig,
                    "--now",
                    "1601234567",
                    "--format",
                    "json",
                ])
                .args(extra)
                .env("KITOPAY_SECRET", S),
            None,
        );
        (
            o.status.code(),
            serde_json::from_slice::<Value>(&o.stdout).unwrap_or(Value::Null),
        )
    };
    let (code, j) = verify(&[]);
    assert_eq!(
        (code, &j["reason"]),
        (Some(1), &Value::from("body_not_allowed")),
        "{j}"
    );
    let (code, j) = verify(&["--body-on-get"]);
    assert_eq!((code, &j["valid"]), (Some(0), &Value::Bool(true)), "{j}");
    // Schemes whose URL does not meet the body have no such flag.
    let o = run(bin().args(["verify", "kamiokash", "--body-on-get"]), None);
    assert_eq!(o.status.code(), Some(2));
}

/// Runs a command that should exit at once (a usage error); kills it after 20 s.
fn run_bounded(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the command did not exit within 20 s");
        }
    }
}

/// Every command that reads a secret, for a scheme with UTF-8 secrets and for Standard
/// Webhooks (`whsec_` + base64), with its other arguments complete.
fn secret_commands() -> Vec<(&'static str, Vec<String>)> {
    let owned = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let request = [
        "kitopay",
        "--merchant-id",
        M,
        "--method",
        "POST",
        "--url",
        URL,
        "--body",
        BODY,
        "--timestamp",
        "1601234567",
    ];
    let sw = [
        "standard-webhooks",
        "--id",
        SW_ID,
        "--timestamp",
        SW_TS,
        "--body",
        SW_BODY,
    ];
    let mut out = Vec::new();
    for (scheme, base) in [("kitopay", &request[..]), ("standard-webhooks", &sw[..])] {
        for sub in ["sign", "explain", "verify", "diagnose"] {
            let mut args = owned(&[sub]);
            args.extend(owned(base));
            if sub == "verify" || sub == "diagnose" {
                let sig = if scheme == "kitopay" { SIG } else { SW_SIG };
                args.extend(owned(&["--signature", sig, "--now", "1614265330"]));
            }
            out.push((scheme, args));
        }
    }
    out.push((
        "kitopay",
        owned(&["serve", "kitopay", "--port", "0", "--merchant-id", M]),
    ));
    out.push(("kitopay", owned(&["serve", "kamiokash", "--port", "0"])));
    out.push((
        "standard-webhooks",
        owned(&["serve", "standard-webhooks", "--port", "0"]),
    ));
    out.push((
        "kitopay",
        owned(&[
            "send",
            "kitopay-webhook",
            "--merchant-id",
            M,
            "--url",
            "http://127.0.0.1:9/x",
        ]),
    ));
    out.push((
        "kitopay",
        owned(&[
            "send",
            "kamiokash-webhook",
            "--event",
            "member.new",
            "--url",
            "http://127.0.0.1:9/x",
        ]),
    ));
    out.push((
        "standard-webhooks",
        owned(&[
            "send",
            "standard-webhooks",
            "--event",
            "x",
            "--url",
            "http://127.0.0.1:9/x",
        ]),
    ));
    out
}

#[test]
fn no_secret_input_is_ever_echoed_on_any_error_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A secret pasted where a path belongs (ENOENT), too long for a file name
    // (ENAMETOOLONG), under a file (ENOTDIR), under an unreadable directory (EACCES).
    let long = format!("sk_live_{}", "Q2eZvKYlo2Cq8Wz".repeat(20));
    let a_file = root.join("plain");
    std::fs::write(&a_file, "x").unwrap();
    let under_file = format!("{}/sk_live_under_a_file_9f2c", a_file.display());
    let locked = root.join("locked");
    std::fs::create_dir(&locked).unwrap();
    let under_locked = format!("{}/sk_live_locked_7a1e", locked.display());
    // Files that exist but hold no usable secret: a directory, bytes that are not UTF-8,
    // nothing, and (for Standard Webhooks) a `whsec_` secret that is not base64.
    let a_dir = root.join("sk_live_dir_marker_41b7");
    std::fs::create_dir(&a_dir).unwrap();
    let not_utf8 = root.join("sk_live_binary_marker_5c3d");
    std::fs::write(&not_utf8, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let empty = root.join("sk_live_empty_marker_6e4f");
    std::fs::write(&empty, "").unwrap();
    let bad_sw_text = "whsec_not!base64?sk_live_inner_8d2a";
    let bad_sw = root.join("sk_live_bad_sw_marker_3b9c");
    std::fs::write(&bad_sw, bad_sw_text).unwrap();

    #[cfg(unix)]
    let eacces = {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        // Root reads through any permission: then there is no EACCES to provoke.
        std::fs::read_dir(&locked).is_err()
    };
    #[cfg(not(unix))]
    let eacces = false;

    // (value given to --secret-file, what must never be printed, applies to)
    let mut files: Vec<(String, Vec<String>, &str)> = vec![
        (PASTED.to_owned(), vec![PASTED.to_owned()], "any"),
        (long.clone(), vec![long.clone()], "any"),
        (
            under_file.clone(),
            vec![under_file.clone(), "sk_live_under_a_file_9f2c".into()],
            "any",
        ),
        (
            a_dir.display().to_string(),
            vec!["sk_live_dir_marker_41b7".into()],
            "any",
        ),
        (
            not_utf8.display().to_string(),
            vec!["sk_live_binary_marker_5c3d".into()],
            "any",
        ),
        (
            empty.display().to_string(),
            vec!["sk_live_empty_marker_6e4f".into()],
            "any",
        ),
        (
            bad_sw.display().to_string(),
            vec![
                "sk_live_bad_sw_marker_3b9c".into(),
                "sk_live_inner_8d2a".into(),
            ],
            "standard-webhooks",
        ),
    ];
    if eacces {
        files.push((
            under_locked.clone(),
            vec![under_locked.clone(), "sk_live_locked_7a1e".into()],
            "any",
        ));
    }
    let mut checked = 0;
    for (scheme, args) in secret_commands() {
        for (value, secrets, applies) in &files {
            if *applies != "any" && *applies != scheme {
                continue;
            }
            // Alone, and as the second of a rotation (verify, serve).
            let mut variants = vec![vec!["--secret-file".to_owned(), value.clone()]];
            if args[0] == "verify" || args[0] == "serve" {
                variants.push(vec![
                    "--secret-file".to_owned(),
                    a_file.display().to_string(),
                    "--secret-file".to_owned(),
                    value.clone(),
                ]);
            }
            for extra in variants {
                let o = run_bounded(bin().args(&args).args(&extra));
                let out = text(&o);
                assert_eq!(o.status.code(), Some(2), "{args:?} {extra:?}: {out}");
                assert!(
                    out.contains("--secret-file"),
                    "{args:?} {extra:?}: says which flag: {out}"
                );
                for secret in secrets {
                    assert!(!out.contains(secret.as_str()), "{args:?} {extra:?}: {out}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 70, "{checked}");

    // --secret-env: unset (a secret pasted as the name), not UTF-8, empty, not base64.
    let inner = "sk_live_env_inner_1f8e";
    for (scheme, args) in secret_commands() {
        let mut cases: Vec<(Command, Vec<&str>)> = Vec::new();
        let mut unset = bin();
        unset.args(&args).args(["--secret-env", PASTED_NAME_LIKE]);
        cases.push((unset, vec![PASTED_NAME_LIKE]));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt as _;
            let mut binary = bin();
            binary
                .args(&args)
                .args(["--secret-env", "sk_live_var_marker"])
                .env(
                    "sk_live_var_marker",
                    std::ffi::OsString::from_vec(b"sk_live_\xff\xfe".to_vec()),
                );
            cases.push((binary, vec!["sk_live_var_marker", "sk_live_"]));
        }
        let mut blank = bin();
        blank
            .args(&args)
            .args(["--secret-env", "EMPTY_SECRET"])
            .env("EMPTY_SECRET", "");
        cases.push((blank, vec![]));
        if scheme == "standard-webhooks" {
            let mut bad = bin();
            bad.args(&args)
                .args(["--secret-env", "BAD_SW"])
                .env("BAD_SW", format!("whsec_!!{inner}"));
            cases.push((bad, vec![inner]));
        }
        for (mut cmd, secrets) in cases {
            let o = run_bounded(&mut cmd);
            let out = text(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {out}");
            for secret in secrets {
                assert!(!out.contains(secret), "{args:?}: {out}");
            }
        }
    }

    // clap's own errors about the secret flags name them, not their values.
    let o = run_bounded(bin().args([
        "send",
        "kitopay-webhook",
        "--merchant-id",
        M,
        "--url",
        "http://127.0.0.1:9/x",
        "--secret-env",
        PASTED_NAME_LIKE,
        "--secret-file",
        PASTED,
    ]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !text(&o).contains(PASTED) && !text(&o).contains(PASTED_NAME_LIKE),
        "{}",
        text(&o)
    );
    let o = run_bounded(bin().args([
        "send",
        "kitopay-webhook",
        "--merchant-id",
        M,
        "--url",
        "http://127.0.0.1:9/x",
        "--secret-file",
        PASTED,
        "--secret-file",
        &long,
    ]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !text(&o).contains(PASTED) && !text(&o).contains(&long),
        "{}",
        text(&o)
    );
    // A secret starting with `-` is taken as the value, not refused with a tip echoing it.
    let o = run_bounded(
        bin()
            .args(kitopay_sign_args())
            .args(["--secret-file", "-sk_live_dash_0a1b"]),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!text(&o).contains("sk_live_dash_0a1b"), "{}", text(&o));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

#[test]
fn ages_are_said_in_human_units_and_a_stale_recording_hints_at_now() {
    // (--now, extra flags, what the refusal says)
    let cases = [
        (
            1_601_234_567 + 307 * 86_400 + 3_600,
            &[][..],
            "timestamp expired: it is 307 days old, more than the 60 seconds allowed",
        ),
        (
            1_601_234_567 + 150,
            &[][..],
            "timestamp expired: it is 2 minutes old, more than the 60 seconds allowed",
        ),
        (1_601_234_567 + 5 * 3_600, &[][..], "it is 5 hours old"),
        (1_601_234_567 + 61, &[][..], "it is 61 seconds old"),
        (
            1_601_234_527,
            &["--max-future", "30"][..],
            "timestamp is 40 seconds in the future, more than the 30 seconds allowed",
        ),
    ];
    for (now, extra, says) in cases {
        let now = now.to_string();
        let o = run(
            &mut kitopay_verify(&[&["--signature", SIG, "--now", &now][..], extra].concat()),
            None,
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(says), "{stderr}");
        assert!(
            !stderr.contains("s old, more than the 60s"),
            "no Duration Debug: {stderr}"
        );
        assert!(!stderr.contains("--now"), "--now was given: {stderr}");
        let o = run(
            &mut kitopay_verify(
                &[
                    &["--signature", SIG, "--now", &now, "--format", "json"][..],
                    extra,
                ]
                .concat(),
            ),
            None,
        );
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(j["detail"].as_str().unwrap().contains(says), "{j}");
    }
    // A recording checked later without --now: how old it is, and what to pass.
    let o = run(&mut kitopay_verify(&["--signature", SIG]), None);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(" days old, more than the 60 seconds allowed"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "hint: to check a request recorded earlier, pass --now with the time it was received"
        ),
        "{stderr}"
    );
    // diagnose says it the same way.
    let o = run(
        kitopay_command("diagnose", URL, BODY, "POST", "1601234567")
            .args(["--signature", SIG, "--now", "1601234717"])
            .env("KITOPAY_SECRET", S),
        None,
    );
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .starts_with("refused: timestamp expired: it is 2 minutes old"),
        "{}",
        text(&o)
    );
}

#[test]
fn diagnose_leads_with_the_signature_when_the_timestamp_is_wrong_too() {
    // Signed for the URL without its trailing slash, and checked 307 days later.
    let no_slash = URL.trim_end_matches('/');
    let sig = sign_kitopay(no_slash, BODY, "POST", "1601234567", S);
    let late = (1_601_234_567 + 307 * 86_400).to_string();
    let cmd = |format: &str| {
        let mut cmd = kitopay_command("diagnose", URL, BODY, "POST", "1601234567");
        cmd.args(["--signature", &sig, "--now", &late, "--format", format])
            .env("KITOPAY_SECRET", S);
        cmd
    };
    let o = run(&mut cmd("text"), None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("refused: signature mismatch"), "{out}");
    assert!(
        lines[1].starts_with("diagnosis: trailing slash: the sender signed the URL without the trailing slash ours has"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("also refused: timestamp expired: it is 307 days old"),
        "{out}"
    );
    assert!(out.contains("first difference at byte"), "{out}");

    let o = run(&mut cmd("json"), None);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["reason"], "signature_mismatch", "{j}");
    assert_eq!(j["hypothesis"], "trailing_slash_removed", "{j}");
    assert_eq!(j["signature_matches"], false);
    assert_eq!(j["also_refused"]["reason"], "expired", "{j}");
    assert!(
        j["also_refused"]["detail"]
            .as_str()
            .unwrap()
            .contains("307 days old"),
        "{j}"
    );

    // A signature no known mistake explains, stale too: still the signature first.
    let o = run(
        kitopay_command("diagnose", URL, BODY, "POST", "1601234567")
            .args(["--signature", &"ab".repeat(32), "--now", &late])
            .env("KITOPAY_SECRET", S),
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.starts_with("refused: signature mismatch"), "{out}");
    assert!(
        out.contains("diagnosis: no single known mistake explains the mismatch"),
        "{out}"
    );
    assert!(out.contains("also refused: timestamp expired"), "{out}");
    // The signature right and only the timestamp stale: the timestamp, alone.
    let o = run(
        kitopay_command("diagnose", URL, BODY, "POST", "1601234567")
            .args(["--signature", SIG, "--now", &late])
            .env("KITOPAY_SECRET", S),
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.starts_with("refused: timestamp expired: it is 307 days old"),
        "{out}"
    );
    assert!(!out.contains("also refused"), "{out}");
}

#[test]
fn diagnose_names_a_host_mismatch_a_retyped_secret_and_warns_of_a_python_timestamp() {
    // Signed for Kitopay's documented host; diagnosed against the URL a local mock saw.
    let path = "/api/v1/merchants/payins/";
    let sig = sign_kitopay(
        &format!("https://api.kitopay.com{path}"),
        BODY,
        "POST",
        "1601234567",
        S,
    );
    let local = format!("http://127.0.0.1:8080{path}");
    let (code, j) = diagnose_kitopay(&local, BODY, "POST", "1601234567", &sig, S);
    assert_eq!(code, Some(1), "{j}");
    assert_eq!(j["hypothesis"], "host_mismatch", "{j}");
    let said = j["diagnosis"].as_str().unwrap();
    assert!(
        said.contains("the sender signed for https://api.kitopay.com/api/v1/merchants/payins/"),
        "{said}"
    );
    assert!(said.contains("check --url"), "{said}");
    assert!(
        j["signed"]
            .as_str()
            .unwrap()
            .contains("POSThttps://api.kitopay.com/"),
        "{j}"
    );
    // Not for another host than the documented ones, nor for schemes that do not sign it.
    let sig = sign_kitopay(
        &format!("https://example.com{path}"),
        BODY,
        "POST",
        "1601234567",
        S,
    );
    let (_, j) = diagnose_kitopay(&local, BODY, "POST", "1601234567", &sig, S);
    assert!(j.get("hypothesis").is_none(), "{j}");

    // The verifying side retyped Kitopay's Cyrillic У as a Latin Y.
    let retyped = S.replace('У', "Y");
    let (code, j) = diagnose_kitopay(URL, BODY, "POST", "1601234567", SIG, &retyped);
    assert_eq!(code, Some(1), "{j}");
    assert_eq!(j["hypothesis"], "secret_confusable", "{j}");
    assert!(!j.to_string().contains(&retyped));

    // A KamioKash timestamp in Python's isoformat(): accepted, with a warning.
    let secret = "kk_test_sk_3b9d7f51a2c64e0e9f7d";
    let ts = "2026-01-27T07:31:28.352123+00:00";
    let body = r#"{"wallet_id":"w_123"}"#;
    let sig = reference_hmac(secret, format!("{body}:{ts}").as_bytes());
    for (sub, format) in [("verify", "text"), ("verify", "json"), ("diagnose", "json")] {
        let o = run(
            bin()
                .args([
                    sub,
                    "kamiokash",
                    "--body",
                    body,
                    "--timestamp",
                    ts,
                    "--now",
                    ts,
                    "--signature",
                    &sig,
                    "--format",
                    format,
                ])
                .env("KAMIOKASH_SECRET", secret),
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let warning = if format == "json" {
            serde_json::from_slice::<Value>(&o.stdout).unwrap()["warning"]
                .as_str()
                .unwrap()
                .to_owned()
        } else {
            String::from_utf8_lossy(&o.stderr).to_string()
        };
        assert!(warning.contains("toISOString()"), "{sub}: {warning}");
        assert!(
            warning.contains("2026-01-27T07:31:28.352Z"),
            "{sub}: {warning}"
        );
    }
}

#[test]
fn top_level_help_describes_every_command() {
    let o = run(bin().arg("--help"), None);
    let help = String::from_utf8_lossy(&o.stdout).to_string();
    for (command, about) in [
        ("sign", "Sign a request"),
        ("verify", "Verify a received signature"),
        ("explain", "Show the exact message signed"),
        ("diagnose", "Explain a signature mismatch"),
        ("demo", "Sign and verify the documented examples"),
        (
            "serve",
            "Run a local stand-in for the provider's signature check",
        ),
        ("send", "Post a signed sample webhook delivery"),
    ] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(command) && line.contains(about)),
            "{command}: {help}"
        );
    }
    assert!(!help.contains("`countersign"), "{help}");
    // No command: the help, exit 2.
    let o = run(&mut bin(), None);
    assert_eq!(o.status.code(), Some(2));
}
