//! The provider sandbox, run as an integrator would: `countersign serve` as a child process
//! driven by a plain HTTP client over loopback, and `countersign send` against a receiver
//! that checks signatures with the RustCrypto reference HMAC, independently of the library.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use countersign::{SecretKey, SignableRequest, Signer, SystemClock, Timestamp};
use countersign_test_support::{reference, sign};
use serde_json::Value;

/// Every wait in these tests ends within this.
const WAIT: Duration = Duration::from_secs(20);

const M: &str = "dev_pub_fb1dad5f-5982-4e1a-ac2f-62a7daaa7148";
const S: &str = "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9";
const PUBLIC: &str = "https://api.dev.kitopay.com";
const PAYINS: &str = "/api/v1/merchants/payins/";
const BODY: &str = r#"{"reference_id":"tx-123","payment":{"amount":49.23,"currency":"EUR"},"customer":{"id":"1","first_name":"John","last_name":"Doe"}}"#;
const KK_API_KEY: &str = "kk_test_pk_8c1f0b2e";
const KK_SECRET: &str = "kk_test_sk_3b9d7f51a2c64e0e9f7d";
const KK_WEBHOOK_SECRET: &str = "whsec_kk_5e2a91c07d3b4f68";
/// The Standard Webhooks specification's example secret.
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

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
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs a command to completion, killing it (and failing) if it takes longer than [`WAIT`].
fn run_bounded(cmd: &mut Command) -> Output {
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the command did not finish within {WAIT:?}");
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Lowercase hex HMAC-SHA256, the reference implementation (RustCrypto).
fn reference_hmac(secret: &str, message: &[u8]) -> String {
    reference::hmac_hex(secret.as_bytes(), message)
}

fn now() -> Timestamp {
    Timestamp::now(&SystemClock)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

type Headers = Vec<(String, String)>;

// ---------------------------------------------------------------------------------------
// `countersign serve`
// ---------------------------------------------------------------------------------------

/// A running `countersign serve`; killed on drop if a test fails before stopping it.
struct Server {
    child: std::process::Child,
    port: u16,
    log: mpsc::Receiver<String>,
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = bin()
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (out_tx, out_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if out_tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                if err_tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            port: 0,
            log: err_rx,
        };
        let first = out_rx
            .recv_timeout(WAIT)
            .expect("serve prints the address it listens on");
        server.port = first
            .strip_prefix("listening on http://127.0.0.1:")
            .unwrap_or_else(|| panic!("{first}"))
            .parse()
            .unwrap();
        let banner = server.line();
        assert!(
            banner.starts_with("countersign serve: checking"),
            "{banner}"
        );
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next line on stderr.
    fn line(&self) -> String {
        self.log
            .recv_timeout(WAIT)
            .expect("serve writes a line to stderr")
    }

    /// Stops the server with SIGINT (what Ctrl-C sends); it must exit 0 within [`WAIT`],
    /// having written nothing but its closing line since the last request's line: one
    /// line per request.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(exit.code(), Some(0), "serve exits 0 on Ctrl-C");
        // Everything written after the last request, up to the end of stderr.
        let mut rest = Vec::new();
        loop {
            match self.log.recv_timeout(WAIT) {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("stderr stays open after exit"),
            }
        }
        assert_eq!(rest, ["stopping (Ctrl-C)"], "one log line per request");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    json: Value,
}

/// A plain HTTP client: no middleware, no signing of its own.
struct Client {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Client {
    fn new() -> Client {
        Client {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
        }
    }

    fn send(&self, method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, url).body(body.to_vec());
        for (k, v) in headers {
            request = request.header(k, v);
        }
        self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap();
            let json = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
            Reply { status, json }
        })
    }

    fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
        self.send("POST", url, headers, body)
    }
}

/// Headers for a POST signed by the library's Kitopay signer for `signed_url`.
fn kitopay_signed(signed_url: &str, body: &[u8], at: Timestamp, secret: &str) -> Headers {
    sign::kitopay(M, secret, "POST", signed_url, body, at)
}

/// Headers whose x-timestamp is `header_ts` but whose signature covers `signed_ts`.
fn kitopay_with_timestamps(
    signed_url: &str,
    body: &[u8],
    header_ts: &str,
    signed_ts: &str,
) -> Headers {
    let mut message = format!("{M}{signed_ts}POST{signed_url}").into_bytes();
    message.extend_from_slice(body);
    vec![
        ("x-merchant-id".into(), M.into()),
        ("x-timestamp".into(), header_ts.into()),
        ("x-signature".into(), reference_hmac(S, &message)),
    ]
}

fn start_kitopay() -> Server {
    Server::start(
        &[
            "kitopay",
            "--port",
            "0",
            "--merchant-id",
            M,
            "--public-url",
            PUBLIC,
        ],
        &[("KITOPAY_SECRET", S)],
    )
}

fn pretty(body: &str) -> Vec<u8> {
    let value: Value = serde_json::from_str(body).unwrap();
    serde_json::to_vec_pretty(&value).unwrap()
}

/// Checks a 401 names `hypothesis`, shows both messages and where they first differ.
fn assert_names(reply: &Reply, hypothesis: &str) {
    assert_eq!(reply.status, 401, "{}", reply.json);
    assert_eq!(reply.json["valid"], false);
    assert_eq!(reply.json["reason"], "signature_mismatch", "{}", reply.json);
    let d = &reply.json["diagnosis"];
    assert_eq!(d["hypothesis"], hypothesis, "{}", reply.json);
    assert_eq!(d["signature_matches"], false);
    assert_eq!(d["key"], "KITOPAY_SECRET");
    let expected = d["expected"].as_str().unwrap();
    // The message the sender signed: `signed`, as `diagnose --format json` names it.
    assert!(d.get("received").is_none(), "{d}");
    let received = d["signed"].as_str().unwrap();
    let at = usize::try_from(d["first_difference"].as_u64().unwrap()).unwrap();
    assert_ne!(expected, received);
    assert_eq!(
        expected.as_bytes()[..at],
        received.as_bytes()[..at],
        "{}",
        reply.json
    );
    assert!(
        expected.as_bytes().get(at) != received.as_bytes().get(at),
        "{}",
        reply.json
    );
    assert!(
        !reply.json.to_string().contains(S),
        "the secret is never shown"
    );
}

#[test]
fn serve_kitopay_accepts_a_correct_request_and_names_each_mistake() {
    let server = start_kitopay();
    let client = Client::new();
    let sent_to = server.url(PAYINS);
    let signed_for = format!("{PUBLIC}{PAYINS}");

    // Signed correctly, for the public URL, sent to the sandbox.
    let ok = client.post(
        &sent_to,
        &kitopay_signed(&signed_for, BODY.as_bytes(), now(), S),
        BODY.as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(
        ok.json,
        serde_json::json!({"valid": true, "scheme": "kitopay", "key": "KITOPAY_SECRET"})
    );
    assert_eq!(
        server.line(),
        format!("POST {PAYINS} → 200 valid (kitopay, key KITOPAY_SECRET)")
    );

    // Trailing slash: signed without it, sent with it.
    let without = signed_for.trim_end_matches('/');
    let r = client.post(
        &sent_to,
        &kitopay_signed(without, BODY.as_bytes(), now(), S),
        BODY.as_bytes(),
    );
    assert_names(&r, "trailing_slash_removed");
    let d = &r.json["diagnosis"];
    assert!(
        d["expected"]
            .as_str()
            .unwrap()
            .contains(&format!("POST{signed_for}{{")),
        "{d}"
    );
    assert!(
        d["signed"]
            .as_str()
            .unwrap()
            .contains(&format!("POST{without}{{")),
        "{d}"
    );
    let at = d["first_difference"].as_u64().unwrap() as usize;
    assert_eq!(&d["expected"].as_str().unwrap()[at..at + 2], "/{");
    assert_eq!(
        server.line(),
        format!(
            "POST {PAYINS} → 401 signature_mismatch: trailing slash: the sender signed the URL without the trailing slash ours has"
        )
    );

    // ... and the reverse: signed with it, sent without it.
    let r = client.post(
        sent_to.trim_end_matches('/'),
        &kitopay_signed(&signed_for, BODY.as_bytes(), now(), S),
        BODY.as_bytes(),
    );
    assert_names(&r, "trailing_slash_added");
    let line = server.line();
    assert!(
        line.starts_with("POST /api/v1/merchants/payins → 401 signature_mismatch: trailing slash:"),
        "{line}"
    );

    // Signed pretty-printed JSON, sent minified.
    let r = client.post(
        &sent_to,
        &kitopay_signed(&signed_for, &pretty(BODY), now(), S),
        BODY.as_bytes(),
    );
    assert_names(&r, "body_pretty_printed");
    assert!(
        r.json["diagnosis"]["signed"]
            .as_str()
            .unwrap()
            .contains("{\\n  \"")
    );
    assert!(
        server
            .line()
            .contains("401 signature_mismatch: body: the sender signed pretty-printed JSON")
    );

    // Signed minified JSON, sent pretty-printed.
    let r = client.post(
        &sent_to,
        &kitopay_signed(&signed_for, BODY.as_bytes(), now(), S),
        &pretty(BODY),
    );
    assert_names(&r, "body_minified");
    assert!(
        server
            .line()
            .contains("401 signature_mismatch: body: the sender signed minified JSON")
    );

    // Signed the time in milliseconds (Date.now()), sent seconds in the header.
    let secs = unix_secs().to_string();
    let headers =
        kitopay_with_timestamps(&signed_for, BODY.as_bytes(), &secs, &format!("{secs}417"));
    let r = client.post(&sent_to, &headers, BODY.as_bytes());
    assert_names(&r, "timestamp_millis");
    assert!(server.line().contains(
        "401 signature_mismatch: timestamp: the sender signed the time with milliseconds"
    ));

    // The wrong secret: no known mistake explains it.
    let r = client.post(
        &sent_to,
        &kitopay_signed(
            &signed_for,
            BODY.as_bytes(),
            now(),
            "dev_sec_not_the_right_one",
        ),
        BODY.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json["reason"], "signature_mismatch");
    assert_eq!(r.json["diagnosis"]["hypothesis"], Value::Null, "{}", r.json);
    assert_eq!(r.json["diagnosis"]["signature_matches"], false);
    assert!(
        r.json["explanation"]
            .as_str()
            .unwrap()
            .starts_with("signature mismatch")
    );
    assert!(
        server
            .line()
            .contains("401 signature_mismatch: no single known mistake explains the mismatch")
    );

    server.stop();
}

#[test]
fn serve_kitopay_says_when_only_the_timestamp_is_refused() {
    let server = start_kitopay();
    let client = Client::new();
    let sent_to = server.url(PAYINS);
    let signed_for = format!("{PUBLIC}{PAYINS}");

    // Milliseconds in the header and in the signature: the signature is right.
    let millis = format!("{}123", unix_secs());
    let headers = kitopay_with_timestamps(&signed_for, BODY.as_bytes(), &millis, &millis);
    let r = client.post(&sent_to, &headers, BODY.as_bytes());
    assert_eq!(r.status, 401);
    assert_eq!(r.json["reason"], "malformed_timestamp", "{}", r.json);
    assert!(
        r.json["explanation"]
            .as_str()
            .unwrap()
            .contains("milliseconds")
    );
    let d = &r.json["diagnosis"];
    assert_eq!(d["signature_matches"], true, "{d}");
    assert_eq!(d["hypothesis"], Value::Null);
    let said = d["description"].as_str().unwrap();
    assert!(
        said.contains(
            "the signature matches the message as received; only the timestamp is refused"
        ),
        "{said}"
    );
    assert!(said.contains("this looks like milliseconds"), "{said}");
    let line = server.line();
    assert!(line.starts_with(&format!("POST {PAYINS} → 401 malformed_timestamp: the signature matches the message as received; only the timestamp is refused")), "{line}");

    // Stale: signed correctly 100 s ago.
    let stale = Timestamp::from_unix_secs(unix_secs() - 100).unwrap();
    let r = client.post(
        &sent_to,
        &kitopay_signed(&signed_for, BODY.as_bytes(), stale, S),
        BODY.as_bytes(),
    );
    assert_eq!(r.json["reason"], "expired", "{}", r.json);
    assert_eq!(r.json["diagnosis"]["signature_matches"], true);
    let said = r.json["diagnosis"]["description"].as_str().unwrap();
    assert!(
        said.contains("only the timestamp is refused: timestamp expired"),
        "{said}"
    );
    assert!(server.line().contains(
        "401 expired: the signature matches the message as received; only the timestamp is refused"
    ));

    // In the future: signed correctly 200 s ahead.
    let ahead = Timestamp::from_unix_secs(unix_secs() + 200).unwrap();
    let r = client.post(
        &sent_to,
        &kitopay_signed(&signed_for, BODY.as_bytes(), ahead, S),
        BODY.as_bytes(),
    );
    assert_eq!(r.json["reason"], "future", "{}", r.json);
    assert_eq!(r.json["diagnosis"]["signature_matches"], true);
    assert!(server.line().contains(
        "401 future: the signature matches the message as received; only the timestamp is refused"
    ));

    // Stale and signed for the wrong URL: both are said.
    let r = client.post(
        &sent_to,
        &kitopay_signed(signed_for.trim_end_matches('/'), BODY.as_bytes(), stale, S),
        BODY.as_bytes(),
    );
    assert_eq!(r.json["reason"], "expired");
    assert_eq!(r.json["diagnosis"]["hypothesis"], "trailing_slash_removed");
    let line = server.line();
    assert!(line.contains("401 expired: timestamp expired"), "{line}");
    assert!(
        line.contains(
            "the signature does not match the message as received either: trailing slash"
        ),
        "{line}"
    );

    server.stop();
}

#[test]
fn serve_kitopay_simplified_takes_the_transaction_id_from_the_last_segment() {
    let server = start_kitopay();
    let client = Client::new();
    let signer = Signer::kitopay_simplified(M, SecretKey::new(S).unwrap()).unwrap();
    let sign = |tx: &str| {
        sign::headers(
            &signer
                .sign(&SignableRequest::simplified("GET", tx).unwrap(), now())
                .unwrap(),
        )
    };
    let path = "/api/v1/merchants/payins/tx-123";

    let r = client.send("GET", &server.url(path), &sign("tx-123"), b"");
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["scheme"], "kitopay-simplified");
    assert_eq!(
        server.line(),
        format!("GET {path} → 200 valid (kitopay-simplified, key KITOPAY_SECRET)")
    );

    // Signed for another transaction than the one in the path.
    let r = client.send("GET", &server.url(path), &sign("tx-124"), b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.json["scheme"], "kitopay-simplified");
    assert_eq!(r.json["reason"], "signature_mismatch");
    assert!(
        server
            .line()
            .starts_with(&format!("GET {path} → 401 signature_mismatch"))
    );

    server.stop();
}

/// One raw HTTP/1.1 exchange, so the request target goes out exactly as written.
fn raw_exchange(port: u16, request: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn serve_kitopay_refuses_a_url_that_is_not_canonical_and_bounds_the_body() {
    let server = start_kitopay();

    // A dot segment in the path: the router would see /api/v1/merchants/payins/, the
    // signature covered something else. Refused as such, with the canonical form shown.
    let target = "/api/v1/merchants/x/../payins/";
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: 2\r\nx-merchant-id: {M}\r\nx-timestamp: {}\r\nx-signature: {}\r\n\r\n{{}}",
        server.port,
        unix_secs(),
        "0".repeat(64)
    );
    let (status, json) = raw_exchange(server.port, &request);
    assert_eq!(status, 401, "{json}");
    assert_eq!(json["reason"], "invalid_url");
    assert_eq!(
        json["diagnosis"]["received_url"],
        format!("{PUBLIC}{target}")
    );
    assert_eq!(
        json["diagnosis"]["canonical_url"],
        format!("{PUBLIC}{PAYINS}")
    );
    assert_eq!(
        server.line(),
        format!(
            "POST {target} → 401 invalid_url: the URL arrived as {PUBLIC}{target}, whose canonical form is {PUBLIC}{PAYINS}: send the canonical URL, exactly as signed"
        )
    );

    // Over 1 MiB: 413, without reading it all.
    let client = Client::new();
    let big = vec![b'x'; (1 << 20) + 1];
    let r = client.post(&server.url(PAYINS), &[], &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.json["reason"], "body_too_large");
    assert!(
        server
            .line()
            .starts_with(&format!("POST {PAYINS} → 413 body_too_large"))
    );

    // Exactly 1 MiB is read and verified (refused here: it is not signed).
    let r = client.post(&server.url(PAYINS), &[], &big[1..]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json["reason"], "missing_header");
    assert_eq!(r.json["diagnosis"], Value::Null);
    assert!(server.line().starts_with(&format!(
        "POST {PAYINS} → 401 missing_header: missing header"
    )));

    // A body that never arrives in full: 408 after the reading time (10 s).
    let started = Instant::now();
    let request = format!(
        "POST {PAYINS} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: 10\r\n\r\n{{}}",
        server.port
    );
    let (status, json) = raw_exchange(server.port, &request);
    assert_eq!(status, 408, "{json}");
    assert_eq!(json["reason"], "body_timeout");
    assert!(started.elapsed() >= Duration::from_secs(10));
    assert!(
        server
            .line()
            .starts_with(&format!("POST {PAYINS} → 408 body_timeout"))
    );

    server.stop();
}

#[test]
fn serve_kitopay_without_public_url_verifies_the_host_it_was_called_at() {
    let server = Server::start(
        &[
            "kitopay",
            "--port",
            "0",
            "--merchant-id",
            M,
            "--secret-env",
            "MY_KITOPAY_KEY",
        ],
        &[("MY_KITOPAY_KEY", S)],
    );
    let client = Client::new();
    let sent_to = server.url("/v1/payins?currency=EUR");
    let r = client.post(
        &sent_to,
        &kitopay_signed(&sent_to, BODY.as_bytes(), now(), S),
        BODY.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["key"], "MY_KITOPAY_KEY");
    assert!(
        server
            .line()
            .starts_with("POST /v1/payins?currency=EUR → 200 valid")
    );

    // Signed for https where the sandbox was called over http.
    let https = sent_to.replacen("http://", "https://", 1);
    let r = client.post(
        &sent_to,
        &kitopay_signed(&https, BODY.as_bytes(), now(), S),
        BODY.as_bytes(),
    );
    assert_eq!(
        r.json["diagnosis"]["hypothesis"], "https_instead_of_http",
        "{}",
        r.json
    );
    assert!(
        server
            .line()
            .contains("401 signature_mismatch: scheme: the sender signed https://")
    );

    server.stop();
}

#[test]
fn serve_applies_the_layers_host_rule() {
    // `{`, `}`, a backtick and `"` are legal in a WHATWG host, so a URL built from such a
    // Host header is canonical: serve used to verify it. The layer's rule refuses any Host
    // that is not a plain `host[:port]` as `http` parses an authority; serve now reads the
    // URL with the library's function, the layer's rule.
    let server = Server::start(
        &["kitopay", "--port", "0", "--merchant-id", M],
        &[("KITOPAY_SECRET", S)],
    );
    let host = "shop{1}.example.com";
    let path = "/v1/payins";
    let headers = kitopay_signed(&format!("http://{host}{path}"), b"{}", now(), S);
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 2\r\n"
    );
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n{}");
    let (status, json) = raw_exchange(server.port, &request);
    assert_eq!(status, 401, "{json}");
    assert_eq!(json["reason"], "invalid_url");
    assert_eq!(
        json["explanation"],
        "invalid url: the Host header must be a plain host[:port], without / ? # or @"
    );
    assert_eq!(
        server.line(),
        format!(
            "POST {path} → 401 invalid_url: invalid url: the Host header must be a plain host[:port], without / ? # or @"
        )
    );
    // The same refusal as the layer's (`WebhookAuth::with_url_from_host`).
    let (parts, ()) = axum::http::Request::post(path)
        .header("host", host)
        .body(())
        .unwrap()
        .into_parts();
    let layer = countersign::layer::received_url(&parts, "http").unwrap_err();
    assert_eq!(layer.code(), json["reason"]);
    assert_eq!(layer.to_string(), json["explanation"]);
    server.stop();
}

#[test]
fn serve_kamiokash_checks_body_timestamp_and_api_key() {
    let server = Server::start(
        &["kamiokash", "--port", "0", "--api-key", KK_API_KEY],
        &[("KAMIOKASH_SECRET", KK_SECRET)],
    );
    let client = Client::new();
    let url = server.url("/v1/wallets");
    let body = br#"{"wallet_id":"w_123"}"#;
    let signed = sign::kamiokash(KK_API_KEY, KK_SECRET, body, now());

    let r = client.post(&url, &signed, body);
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        r.json,
        serde_json::json!({"valid": true, "scheme": "kamiokash", "key": "KAMIOKASH_SECRET"})
    );
    assert_eq!(
        server.line(),
        "POST /v1/wallets → 200 valid (kamiokash, key KAMIOKASH_SECRET)"
    );

    // Another account's API key, with a signature that is right.
    let headers = sign::kamiokash("kk_test_pk_other", KK_SECRET, body, now());
    let r = client.post(&url, &headers, body);
    assert_eq!(r.json["reason"], "identity_mismatch", "{}", r.json);
    assert_eq!(r.json["diagnosis"]["signature_matches"], true);
    assert!(server.line().contains("401 identity_mismatch: the signature matches the message as received; only the X-API-Key header is refused"));

    // Signed in the webhook order (timestamp ‖ body) instead of body ‖ ':' ‖ timestamp.
    let at = now().to_iso_text();
    let mut message = at.as_str().as_bytes().to_vec();
    message.extend_from_slice(body);
    let headers = vec![
        ("X-API-Key".to_owned(), KK_API_KEY.to_owned()),
        ("X-Timestamp".to_owned(), at.as_str().to_owned()),
        (
            "X-Signature".to_owned(),
            reference_hmac(KK_SECRET, &message),
        ),
    ];
    let r = client.post(&url, &headers, body);
    assert_eq!(r.json["reason"], "signature_mismatch");
    assert_eq!(
        r.json["diagnosis"]["hypothesis"], "layout:kamiokash-webhook",
        "{}",
        r.json
    );
    assert_eq!(
        r.json["diagnosis"]["expected"],
        format!("{{\"wallet_id\":\"w_123\"}}:{}", at.as_str())
    );
    assert!(
        server
            .line()
            .contains("401 signature_mismatch: message layout: the sender signed the kamiokash-webhook message layout")
    );

    // The body changed after signing (pretty-printed on the way).
    let r = client.post(&url, &signed, &pretty(std::str::from_utf8(body).unwrap()));
    assert_eq!(
        r.json["diagnosis"]["hypothesis"], "body_minified",
        "{}",
        r.json
    );
    assert!(
        server
            .line()
            .contains("401 signature_mismatch: body: the sender signed minified JSON")
    );

    server.stop();
}

/// Standard Webhooks headers for `body` signed with `id` at `at`, by the library.
fn sw_signed(id: &str, body: &[u8], at: Timestamp) -> Headers {
    sign::standard_webhooks(SW_SECRET, id, body, at)
}

#[test]
fn serve_standard_webhooks_verifies_deliveries_and_names_mistakes() {
    let server = Server::start(
        &["standard-webhooks", "--port", "0"],
        &[("STANDARD_WEBHOOKS_SECRET", SW_SECRET)],
    );
    let client = Client::new();
    let url = server.url("/webhooks");
    let body =
        br#"{"type":"invoice.paid","timestamp":"2026-01-27T09:23:06.658Z","data":{"id":"inv_1"}}"#;

    let r = client.post(&url, &sw_signed("msg_1", body, now()), body);
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        r.json,
        serde_json::json!({"valid": true, "scheme": "standard-webhooks", "key": "STANDARD_WEBHOOKS_SECRET"})
    );
    assert_eq!(
        server.line(),
        "POST /webhooks → 200 valid (standard-webhooks, key STANDARD_WEBHOOKS_SECRET)"
    );

    // A rotation: an entry of another key first, then ours.
    let mut headers = sw_signed("msg_2", body, now());
    let signature = headers
        .iter_mut()
        .find(|(k, _)| k == "webhook-signature")
        .unwrap();
    signature.1 = format!(
        "v1,bm90IHRoaXMgb25lIGJ1dCBhIGtleSBpbiByb3RhdGlvbiE= {}",
        signature.1
    );
    let r = client.post(&url, &headers, body);
    assert_eq!(r.status, 200, "{}", r.json);
    assert!(server.line().contains("200 valid"));

    // The body was pretty-printed on the way: the sender signed it minified.
    let r = client.post(
        &url,
        &sw_signed("msg_3", body, now()),
        &pretty(std::str::from_utf8(body).unwrap()),
    );
    assert_eq!(r.status, 401, "{}", r.json);
    assert_eq!(r.json["reason"], "signature_mismatch");
    assert_eq!(
        r.json["diagnosis"]["hypothesis"], "body_minified",
        "{}",
        r.json
    );
    assert!(
        server
            .line()
            .contains("401 signature_mismatch: body: the sender signed minified JSON")
    );

    // Signed 400 s ago: past the 5-minute window; the signature itself is right.
    let stale = Timestamp::from_unix_secs(unix_secs() - 400).unwrap();
    let r = client.post(&url, &sw_signed("msg_4", body, stale), body);
    assert_eq!(r.json["reason"], "expired", "{}", r.json);
    assert_eq!(r.json["diagnosis"]["signature_matches"], true);
    assert!(server.line().contains("401 expired"));

    // Signed 200 s ago: within it.
    let recent = Timestamp::from_unix_secs(unix_secs() - 200).unwrap();
    let r = client.post(&url, &sw_signed("msg_5", body, recent), body);
    assert_eq!(r.status, 200, "{}", r.json);
    assert!(server.line().contains("200 valid"));

    // No webhook-id: refused, said.
    let headers: Headers = sw_signed("msg_6", body, now())
        .into_iter()
        .filter(|(k, _)| k != "webhook-id")
        .collect();
    let r = client.post(&url, &headers, body);
    assert_eq!(r.json["reason"], "missing_header", "{}", r.json);
    assert!(server.line().contains("401 missing_header"));

    server.stop();
}

#[test]
fn serve_refuses_bad_usage_with_exit_2() {
    let o = run_bounded(
        bin()
            .args([
                "serve",
                "kitopay",
                "--port",
                "0",
                "--merchant-id",
                M,
                "--public-url",
                "https://api.dev.kitopay.com/api",
            ])
            .env("KITOPAY_SECRET", S),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--public-url: give only the scheme and host"),
        "{}",
        text(&o)
    );

    let o = run_bounded(bin().args(["serve", "kamiokash", "--port", "0"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("environment variable KAMIOKASH_SECRET is not set"),
        "{}",
        text(&o)
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = run_bounded(
        bin()
            .args(["serve", "kamiokash", "--port", &port])
            .env("KAMIOKASH_SECRET", KK_SECRET),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(KK_SECRET));
}

// ---------------------------------------------------------------------------------------
// `countersign send`
// ---------------------------------------------------------------------------------------

/// One delivery as the receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: Headers,
    body: Vec<u8>,
    status: u16,
}

struct ReceiverConfig {
    window: Duration,
    /// The URL Kitopay webhooks are registered with, when the handler is reached through a
    /// proxy; else the URL it was reached at.
    public_url: Option<String>,
}

struct Shared {
    config: ReceiverConfig,
    seen: Mutex<Vec<Seen>>,
    signatures: Mutex<HashSet<String>>,
}

/// A webhook handler written without the library's verifier: it checks each delivery with
/// the reference HMAC, refuses stale ones (401), and answers a repeat 409 `duplicate`.
struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    fn start(window: Duration) -> Receiver {
        Receiver::behind(window, None)
    }

    /// A receiver whose Kitopay webhooks are registered at `public_url`.
    fn behind(window: Duration, public_url: Option<String>) -> Receiver {
        let shared = Arc::new(Shared {
            config: ReceiverConfig { window, public_url },
            seen: Mutex::new(Vec::new()),
            signatures: Mutex::new(HashSet::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let state = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx
                    .send(listener.local_addr().unwrap().port())
                    .unwrap();
                let app = axum::Router::new().fallback(receive).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let port = ready_rx.recv_timeout(WAIT).unwrap();
        Receiver {
            port,
            shared,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

fn header<'a>(headers: &'a Headers, name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or("", |(_, v)| v.as_str())
}

async fn receive(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
) -> (axum::http::StatusCode, String) {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
    let headers: Headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let target = parts.uri.path_and_query().unwrap().as_str().to_owned();
    let timestamp = header(&headers, "x-timestamp");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let (valid, sent_at, signature) = if headers.iter().any(|(k, _)| k == "webhook-signature") {
        // Standard Webhooks: id.timestamp.body, `v1,<base64>` entries; deduplicated by id.
        let id = header(&headers, "webhook-id");
        let timestamp = header(&headers, "webhook-timestamp");
        let mut message = format!("{id}.{timestamp}.").into_bytes();
        message.extend_from_slice(&body);
        let expected = reference::standard_webhooks_entry(SW_SECRET, &message);
        let valid = header(&headers, "webhook-signature")
            .split(' ')
            .any(|entry| entry == expected);
        let at = Duration::from_secs(timestamp.parse().unwrap());
        (valid, at, id)
    } else if headers.iter().any(|(k, _)| k == "x-kamio-signature") {
        // KamioKash webhook: timestamp ‖ body.
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(&body);
        let signature = header(&headers, "x-kamio-signature");
        let at = Timestamp::parse_rfc3339(timestamp).unwrap().since_epoch();
        (
            reference_hmac(KK_WEBHOOK_SECRET, &message) == signature,
            at,
            signature,
        )
    } else {
        // Kitopay webhook: merchant_id ‖ timestamp ‖ "POST" ‖ url ‖ body, over the URL
        // this handler is reached at.
        let url = match &shared.config.public_url {
            Some(public) => public.clone(),
            None => format!("http://{}{target}", header(&headers, "host")),
        };
        let mut message = format!("{M}{timestamp}{}{url}", parts.method).into_bytes();
        message.extend_from_slice(&body);
        let signature = header(&headers, "x-signature");
        let at = Duration::from_secs(timestamp.parse().unwrap());
        let valid =
            header(&headers, "x-merchant-id") == M && reference_hmac(S, &message) == signature;
        (valid, at, signature)
    };
    let age = now.abs_diff(sent_at);
    let fresh = age <= shared.config.window;
    let (status, answer) = if !valid {
        (401, "refused: bad signature".to_owned())
    } else if !fresh {
        (401, format!("refused: stale ({age:?} old)"))
    } else if !shared
        .signatures
        .lock()
        .unwrap()
        .insert(signature.to_owned())
    {
        (409, "duplicate".to_owned())
    } else {
        (200, r#"{"ok":true}"#.to_owned())
    };
    shared.seen.lock().unwrap().push(Seen {
        target,
        headers,
        body,
        status,
    });
    (axum::http::StatusCode::from_u16(status).unwrap(), answer)
}

fn send(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_bounded(bin().arg("send").args(args).envs(env.iter().copied()))
}

#[test]
fn send_kamiokash_every_event_type_is_signed_and_parses() {
    let receiver = Receiver::start(Duration::from_secs(60));
    let url = receiver.url("/webhooks/kamiokash");
    for (i, event) in countersign::kamiokash::WEBHOOK_EVENT_TYPES
        .iter()
        .enumerate()
    {
        let o = send(
            &["kamiokash-webhook", "--event", event, "--url", &url],
            &[("KAMIOKASH_WEBHOOK_SECRET", KK_WEBHOOK_SECRET)],
        );
        assert_eq!(o.status.code(), Some(0), "{event}: {}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            stdout, "delivery 1 of 1: 200 OK\n{\"ok\":true}\n",
            "{event}"
        );
        assert!(!text(&o).contains(KK_WEBHOOK_SECRET));
        let seen = receiver.seen();
        assert_eq!(seen.len(), i + 1);
        let delivery = &seen[i];
        assert_eq!(
            delivery.status, 200,
            "{event}: verified by the reference HMAC"
        );
        assert_eq!(delivery.target, "/webhooks/kamiokash");
        let parsed: countersign::kamiokash::WebhookEvent =
            serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(parsed.event_type(), *event);
        assert!(
            !matches!(parsed, countersign::kamiokash::WebhookEvent::Unknown { .. }),
            "{event}"
        );
        let data = parsed.data().as_object().unwrap();
        assert!(data.len() >= 4, "{event}: realistic data: {data:?}");
        assert!(
            data.values().any(|v| v
                .as_str()
                .is_some_and(|s| Timestamp::parse_rfc3339(s).is_ok())),
            "{event}: an ISO timestamp: {data:?}"
        );
        assert!(header(&delivery.headers, "content-type").starts_with("application/json"));
    }
}

#[test]
fn send_repeat_resends_identical_bytes_and_headers() {
    let receiver = Receiver::start(Duration::from_secs(60));
    let url = receiver.url("/webhooks/kamiokash");
    let o = send(
        &[
            "kamiokash-webhook",
            "--event",
            "order.successful",
            "--url",
            &url,
            "--repeat",
            "2",
        ],
        &[("KAMIOKASH_WEBHOOK_SECRET", KK_WEBHOOK_SECRET)],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "the first delivery's answer: {}",
        text(&o)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        stdout,
        "delivery 1 of 3: 200 OK\n{\"ok\":true}\n\
         delivery 2 of 3 (repeat: same bytes, same headers): 409 Conflict\nduplicate\n\
         delivery 3 of 3 (repeat: same bytes, same headers): 409 Conflict\nduplicate\n"
    );
    let seen = receiver.seen();
    assert_eq!(
        seen.iter().map(|s| s.status).collect::<Vec<_>>(),
        [200, 409, 409]
    );
    for repeat in &seen[1..] {
        assert_eq!(repeat.body, seen[0].body);
        assert_eq!(repeat.headers, seen[0].headers);
        assert_eq!(repeat.target, seen[0].target);
    }
    assert!(!header(&seen[0].headers, "x-kamio-signature").is_empty());
}

#[test]
fn send_kitopay_webhook_signs_the_exact_canonical_url() {
    let receiver = Receiver::start(Duration::from_secs(60));
    // Given with a dot segment: sent, and signed, in canonical form.
    let given = format!(
        "http://127.0.0.1:{}/webhooks/./kitopay?source=kitopay",
        receiver.port
    );
    let o = send(
        &[
            "kitopay-webhook",
            "--merchant-id",
            M,
            "--url",
            &given,
            "--status",
            "failed",
        ],
        &[("KITOPAY_SECRET", S)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains(S));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].status, 200,
        "verified by the reference HMAC over the URL received"
    );
    assert_eq!(seen[0].target, "/webhooks/kitopay?source=kitopay");
    assert_eq!(
        header(&seen[0].headers, "host"),
        format!("127.0.0.1:{}", receiver.port)
    );
    assert_eq!(header(&seen[0].headers, "x-merchant-id"), M);
    let event: countersign::kitopay::WebhookEvent = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(event.status, "failed");
    assert_eq!(event.id.len(), 36, "uuid-like: {}", event.id);
    assert!(!event.reference_id.is_empty());

    // The default status.
    let o = send(
        &[
            "kitopay-webhook",
            "--merchant-id",
            M,
            "--url",
            &receiver.url("/webhooks/kitopay"),
        ],
        &[("KITOPAY_SECRET", S)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let seen = receiver.seen();
    let event: countersign::kitopay::WebhookEvent = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(event.status, "success");
    assert_ne!(
        event.id,
        serde_json::from_slice::<countersign::kitopay::WebhookEvent>(&seen[0].body)
            .unwrap()
            .id
    );
}

#[test]
fn send_delay_makes_the_delivery_arrive_stale() {
    let receiver = Receiver::start(Duration::from_secs(1));
    let url = receiver.url("/webhooks/kamiokash");
    let started = Instant::now();
    let o = send(
        &[
            "kamiokash-webhook",
            "--event",
            "wallet.new",
            "--url",
            &url,
            "--delay",
            "2",
        ],
        &[("KAMIOKASH_WEBHOOK_SECRET", KK_WEBHOOK_SECRET)],
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with("delivery 1 of 1: 401 Unauthorized\nrefused: stale"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("sent 2 s later"));

    // Without the delay the same receiver accepts it.
    let o = send(
        &["kamiokash-webhook", "--event", "wallet.new", "--url", &url],
        &[("KAMIOKASH_WEBHOOK_SECRET", KK_WEBHOOK_SECRET)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn send_body_file_is_sent_byte_for_byte_and_a_wrong_secret_exits_1() {
    let receiver = Receiver::start(Duration::from_secs(60));
    let url = receiver.url("/webhooks/kamiokash");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("event.json");
    let bytes = "{\n  \"type\": \"member.new\",\n  \"data\": {\"name\": \"Zoë\"}\n}\n";
    std::fs::write(&path, bytes).unwrap();
    let path = path.to_str().unwrap();

    let o = send(
        &["kamiokash-webhook", "--body-file", path, "--url", &url],
        &[("KAMIOKASH_WEBHOOK_SECRET", KK_WEBHOOK_SECRET)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(receiver.seen()[0].body, bytes.as_bytes());
    assert_eq!(receiver.seen()[0].status, 200);

    let o = send(
        &[
            "kamiokash-webhook",
            "--event",
            "member.new",
            "--url",
            &url,
            "--secret-env",
            "OTHER_SECRET",
        ],
        &[("OTHER_SECRET", "whsec_wrong")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("delivery 1 of 1: 401 Unauthorized"));
    assert!(!text(&o).contains("whsec_wrong"));
}

#[test]
fn send_usage_errors_exit_2_and_an_unreachable_handler_exits_1() {
    let env = [("KAMIOKASH_WEBHOOK_SECRET", KK_WEBHOOK_SECRET)];
    let o = send(
        &["kamiokash-webhook", "--url", "http://127.0.0.1:9/x"],
        &env,
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "no event and no body: {}",
        text(&o)
    );

    let o = send(
        &[
            "kamiokash-webhook",
            "--event",
            "order.placed",
            "--url",
            "http://127.0.0.1:9/x",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(2), "unknown event: {}", text(&o));

    let o = send(
        &[
            "kamiokash-webhook",
            "--event",
            "member.new",
            "--url",
            "https://shop.example.com/hooks",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--url: send speaks plain http"),
        "{}",
        text(&o)
    );

    let o = send(
        &[
            "kamiokash-webhook",
            "--event",
            "member.new",
            "--url",
            "http://127.0.0.1:9/x",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("KAMIOKASH_WEBHOOK_SECRET is not set"),
        "{}",
        text(&o)
    );

    // Nothing listens: the handler is not running.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/x", closed.local_addr().unwrap().port());
    drop(closed);
    let o = send(
        &["kamiokash-webhook", "--event", "member.new", "--url", &url],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cannot deliver to"), "{}", text(&o));
    assert!(!text(&o).contains(KK_WEBHOOK_SECRET));
}

#[test]
fn send_standard_webhooks_sample_repeat_and_resign() {
    let receiver = Receiver::start(Duration::from_secs(300));
    let url = receiver.url("/webhooks/standard");
    let env = [("STANDARD_WEBHOOKS_SECRET", SW_SECRET)];
    let o = send(
        &[
            "standard-webhooks",
            "--event",
            "invoice.paid",
            "--url",
            &url,
            "--repeat",
            "1",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains(SW_SECRET));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "delivery 1 of 2: 200 OK\n{\"ok\":true}\n\
         delivery 2 of 2 (repeat: same bytes, same headers): 409 Conflict\nduplicate\n"
    );
    let seen = receiver.seen();
    assert_eq!(seen[0].status, 200, "verified by the reference HMAC");
    let id = header(&seen[0].headers, "webhook-id").to_owned();
    assert!(id.starts_with("msg_") && id.len() == 28, "{id}");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("id {id}")));
    assert_eq!(seen[1].headers, seen[0].headers);
    // The payload shape the specification recommends.
    let event: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(event["type"], "invoice.paid");
    assert!(Timestamp::parse_rfc3339(event["timestamp"].as_str().unwrap()).is_ok());
    assert!(event["data"].as_object().unwrap().len() >= 3, "{event}");
    assert!(header(&seen[0].headers, "content-type").starts_with("application/json"));

    // Another run: another id.
    let o = send(
        &[
            "standard-webhooks",
            "--event",
            "invoice.paid",
            "--url",
            &url,
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_ne!(header(&receiver.seen()[2].headers, "webhook-id"), id);

    // A given id, and a re-signed retry: same id, same bytes, signed again when sent.
    let o = send(
        &[
            "standard-webhooks",
            "--event",
            "invoice.paid",
            "--url",
            &url,
            "--id",
            "msg_given_1",
            "--repeat",
            "1",
            "--resign",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("delivery 2 of 2 (retry: same bytes, same id, signed again at "),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("409 Conflict\nduplicate\n"),
        "the receiver deduplicates by id: {stdout}"
    );
    let seen = receiver.seen();
    let (first, retry) = (&seen[3], &seen[4]);
    assert_eq!(header(&first.headers, "webhook-id"), "msg_given_1");
    assert_eq!(header(&retry.headers, "webhook-id"), "msg_given_1");
    assert_eq!(retry.body, first.body);
    assert!(
        header(&retry.headers, "webhook-timestamp") >= header(&first.headers, "webhook-timestamp")
    );

    // An id outside the scheme's domain (a `.`): 2. A --resign without --repeat: 2.
    let o = send(
        &[
            "standard-webhooks",
            "--event",
            "x",
            "--url",
            &url,
            "--id",
            "msg.1",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--id"), "{}", text(&o));
    let o = send(
        &[
            "standard-webhooks",
            "--event",
            "x",
            "--url",
            &url,
            "--resign",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // The sandbox's own serve accepts what send sends.
    let server = Server::start(
        &["standard-webhooks", "--port", "0"],
        &[("STANDARD_WEBHOOKS_SECRET", SW_SECRET)],
    );
    let o = send(
        &[
            "standard-webhooks",
            "--event",
            "invoice.paid",
            "--url",
            &server.url("/hooks"),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        server
            .line()
            .starts_with("POST /hooks → 200 valid (standard-webhooks")
    );
    server.stop();
}

#[test]
fn serve_and_diagnose_name_their_findings_alike_and_say_when_the_search_stopped() {
    let server = start_kitopay();
    let client = Client::new();
    let signed_for = format!("{PUBLIC}{PAYINS}");
    let without = signed_for.trim_end_matches('/');
    let at = now();
    let headers = kitopay_signed(without, BODY.as_bytes(), at, S);
    let r = client.post(&server.url(PAYINS), &headers, BODY.as_bytes());
    assert_names(&r, "trailing_slash_removed");
    server.line();
    // The same request through `countersign diagnose --format json`.
    let signature = &headers.iter().find(|(k, _)| k == "x-signature").unwrap().1;
    let ts = at.unix_secs().to_string();
    let o = run_bounded(
        bin()
            .args([
                "diagnose",
                "kitopay",
                "--merchant-id",
                M,
                "--method",
                "POST",
                "--url",
                &signed_for,
                "--body",
                BODY,
                "--timestamp",
                &ts,
                "--now",
                &ts,
                "--signature",
                signature,
                "--format",
                "json",
            ])
            .env("KITOPAY_SECRET", S),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &r.json["diagnosis"];
    for field in [
        "hypothesis",
        "signature_matches",
        "key",
        "first_difference",
        "expected",
        "signed",
    ] {
        assert_eq!(j[field], d[field], "{field}: diagnose {j} vs serve {d}");
    }
    for shown in [&j, d] {
        assert!(shown.get("received").is_none(), "{shown}");
    }

    // A 1 MiB JSON body signed with another secret: the search stops at its bound, and says so.
    let big = serde_json::to_vec(&serde_json::json!({
        "items": (0..24_000).map(|i| serde_json::json!({"a": i, "b": "x".repeat(20)})).collect::<Vec<_>>()
    }))
    .unwrap();
    assert!(big.len() > 900_000 && big.len() <= 1 << 20, "{}", big.len());
    let r = client.post(
        &server.url(PAYINS),
        &kitopay_signed(&signed_for, &big, now(), "dev_sec_another"),
        &big,
    );
    assert_eq!(r.status, 401);
    let d = &r.json["diagnosis"];
    assert_eq!(d["hypothesis"], Value::Null, "{d}");
    let tried = d["cut_short"]["tried"].as_u64().unwrap();
    assert!(tried < d["cut_short"]["total"].as_u64().unwrap(), "{d}");
    let said = d["description"].as_str().unwrap();
    assert!(
        said.contains("the search stopped at its work bound"),
        "{said}"
    );
    assert!(
        server
            .line()
            .contains("the search stopped at its work bound")
    );
    server.stop();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    std::fs::write(&path, &big).unwrap();
    let ts = unix_secs().to_string();
    let o = run_bounded(
        bin()
            .args([
                "diagnose",
                "kitopay",
                "--merchant-id",
                M,
                "--method",
                "POST",
                "--url",
                &signed_for,
                "--timestamp",
                &ts,
                "--now",
                &ts,
                "--signature",
                &"ab".repeat(32),
                "--body-file",
            ])
            .arg(&path)
            .env("KITOPAY_SECRET", S),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("the search stopped at its work bound"),
        "{}",
        text(&o)
    );
}

/// A raw POST of `body` with `headers` to the sandbox: the status, and when the answer
/// arrived.
fn timed_post(port: u16, headers: &[(String, String)], body: &str) -> (u16, Instant) {
    let mut request = format!(
        "POST {PAYINS} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let (status, _) = raw_exchange(port, &request);
    (status, Instant::now())
}

#[test]
fn serve_answers_a_small_request_while_large_ones_are_diagnosed() {
    let server = start_kitopay();
    let port = server.port;
    let signed_for = format!("{PUBLIC}{PAYINS}");
    // Two 1 MiB JSON bodies signed with another secret: each diagnosis runs to the
    // library's work bound (hundreds of milliseconds in a debug build).
    let big = serde_json::to_string(&serde_json::json!({
        "items": (0..24_000).map(|i| serde_json::json!({"a": i, "b": "x".repeat(20)})).collect::<Vec<_>>()
    }))
    .unwrap();
    let large: Vec<_> = (0..2)
        .map(|_| {
            let headers = kitopay_signed(&signed_for, big.as_bytes(), now(), "dev_sec_another");
            let big = big.clone();
            std::thread::spawn(move || timed_post(port, &headers, &big))
        })
        .collect();
    // Both are uploaded (loopback: milliseconds) and being diagnosed; then a small,
    // valid request on another connection.
    std::thread::sleep(Duration::from_millis(150));
    let sent = Instant::now();
    let (status, answered) = timed_post(
        port,
        &kitopay_signed(&signed_for, BODY.as_bytes(), now(), S),
        BODY,
    );
    assert_eq!(status, 200);
    let waited = answered - sent;
    for handle in large {
        let (status, large_answered) = handle.join().unwrap();
        assert_eq!(status, 401);
        assert!(
            answered < large_answered,
            "the small request is answered first (it waited {waited:?})"
        );
    }
    // A generous bound: the machine may be shared and busy.
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let lines: Vec<String> = (0..3).map(|_| server.line()).collect();
    assert!(lines[0].contains("200 valid"), "answered first: {lines:?}");
    server.stop();
}

#[test]
fn serve_kitopay_names_a_host_mismatch_and_a_retyped_secret() {
    // No --public-url: the sandbox rebuilds http://127.0.0.1:PORT/... from the request.
    let server = Server::start(
        &["kitopay", "--port", "0", "--merchant-id", M],
        &[("KITOPAY_SECRET", S)],
    );
    let client = Client::new();
    let path = "/api/v1/merchants/payins/?currency=EUR";
    for host in ["https://api.dev.kitopay.com", "https://api.kitopay.com"] {
        let signed_for = format!("{host}{path}");
        let r = client.post(
            &server.url(path),
            &kitopay_signed(&signed_for, BODY.as_bytes(), now(), S),
            BODY.as_bytes(),
        );
        assert_eq!(r.status, 401, "{}", r.json);
        let d = &r.json["diagnosis"];
        assert_eq!(d["hypothesis"], "host_mismatch", "{}", r.json);
        assert_eq!(d["key"], "KITOPAY_SECRET");
        let said = d["description"].as_str().unwrap();
        assert!(
            said.contains(&format!("the sender signed for {signed_for}")),
            "{said}"
        );
        assert!(
            said.contains(&format!("pass --public-url {host}")),
            "{said}"
        );
        assert!(
            d["expected"].as_str().unwrap().contains(&server.url(path)),
            "{d}"
        );
        assert!(d["signed"].as_str().unwrap().contains(&signed_for), "{d}");
        let line = server.line();
        assert!(
            line.contains("401 signature_mismatch: host: the sender signed for")
                && line.contains(&format!("pass --public-url {host}")),
            "{line}"
        );
    }

    // Kitopay's sample secret has a Cyrillic У; the client retyped it with a Latin Y.
    assert!(S.contains('У'));
    let retyped = S.replace('У', "Y");
    let sent_to = server.url("/v1/payins");
    let r = client.post(
        &sent_to,
        &kitopay_signed(&sent_to, BODY.as_bytes(), now(), &retyped),
        BODY.as_bytes(),
    );
    assert_eq!(
        r.json["diagnosis"]["hypothesis"], "secret_confusable",
        "{}",
        r.json
    );
    let said = r.json["diagnosis"]["description"].as_str().unwrap();
    assert!(said.contains("look-alike letter"), "{said}");
    assert!(!r.json.to_string().contains(S) && !r.json.to_string().contains(&retyped));
    let line = server.line();
    assert!(
        line.contains("401 signature_mismatch: secret: one side's secret has a look-alike letter"),
        "{line}"
    );
    assert!(!line.contains(&retyped));
    server.stop();
}

#[test]
fn serve_kamiokash_flags_a_timestamp_the_provider_would_refuse() {
    let server = Server::start(
        &["kamiokash", "--port", "0"],
        &[("KAMIOKASH_SECRET", KK_SECRET)],
    );
    let client = Client::new();
    let url = server.url("/v1/wallets");
    let body = br#"{"wallet_id":"w_123"}"#;
    // Python's datetime.now(timezone.utc).isoformat(): microseconds and +00:00.
    let iso = now().to_iso_text();
    let python = format!("{}417+00:00", iso.as_str().trim_end_matches('Z'));
    let signed = |ts: &str| {
        let mut message = body.to_vec();
        message.push(b':');
        message.extend_from_slice(ts.as_bytes());
        vec![
            ("X-API-Key".to_owned(), KK_API_KEY.to_owned()),
            ("X-Timestamp".to_owned(), ts.to_owned()),
            (
                "X-Signature".to_owned(),
                reference_hmac(KK_SECRET, &message),
            ),
        ]
    };
    let r = client.post(&url, &signed(&python), body);
    assert_eq!(
        r.status, 200,
        "accepted, as the library accepts it: {}",
        r.json
    );
    assert_eq!(r.json["valid"], true);
    let warning = r.json["warning"].as_str().unwrap();
    assert!(warning.contains(&python), "{warning}");
    assert!(warning.contains("toISOString()"), "{warning}");
    assert!(
        warning.contains("the provider will likely refuse this form"),
        "{warning}"
    );
    let line = server.line();
    assert!(
        line.starts_with(
            "POST /v1/wallets → 200 valid (kamiokash, key KAMIOKASH_SECRET) (warning: the timestamp"
        ),
        "{line}"
    );
    // The documented form: no warning.
    let iso = now().to_iso_text();
    let r = client.post(&url, &signed(iso.as_str()), body);
    assert_eq!(
        r.json,
        serde_json::json!({"valid": true, "scheme": "kamiokash", "key": "KAMIOKASH_SECRET"})
    );
    assert_eq!(
        server.line(),
        "POST /v1/wallets → 200 valid (kamiokash, key KAMIOKASH_SECRET)"
    );
    // Refused for another reason: the warning still comes with it.
    let mut wrong = signed(&python);
    wrong[2].1 = "0".repeat(64);
    let r = client.post(&url, &wrong, body);
    assert_eq!(r.status, 401);
    assert!(r.json["warning"].as_str().is_some(), "{}", r.json);
    assert!(server.line().contains("(warning: the timestamp"));
    server.stop();
}

#[test]
fn send_kitopay_webhook_signed_url_signs_for_the_public_url_and_sends_to_the_local_one() {
    let public = "https://shop.example.com/webhooks/kitopay?source=kitopay";
    let receiver = Receiver::behind(Duration::from_secs(60), Some(public.to_owned()));
    let local = receiver.url("/webhooks/kitopay?source=kitopay");
    let o = send(
        &[
            "kitopay-webhook",
            "--merchant-id",
            M,
            "--url",
            &local,
            "--signed-url",
            public,
        ],
        &[("KITOPAY_SECRET", S)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.starts_with(&format!("POST {local} (")), "{stderr}");
    assert!(stderr.contains(&format!("signed for {public}")), "{stderr}");
    let seen = receiver.seen();
    assert_eq!(
        seen[0].status, 200,
        "verified over the public URL by the reference HMAC"
    );
    assert_eq!(seen[0].target, "/webhooks/kitopay?source=kitopay");
    // Without it, the delivery is signed for the local URL, which this handler refuses.
    let o = send(
        &["kitopay-webhook", "--merchant-id", M, "--url", &local],
        &[("KITOPAY_SECRET", S)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(receiver.seen()[1].status, 401);
    // The signed URL is canonicalised like any other; a broken one is bad usage.
    let o = send(
        &[
            "kitopay-webhook",
            "--merchant-id",
            M,
            "--url",
            &local,
            "--signed-url",
            "https://shop.example.com:443/webhooks/./kitopay?source=kitopay",
        ],
        &[("KITOPAY_SECRET", S)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(receiver.seen()[2].status, 200);
    let o = send(
        &[
            "kitopay-webhook",
            "--merchant-id",
            M,
            "--url",
            &local,
            "--signed-url",
            "ftp://x/",
        ],
        &[("KITOPAY_SECRET", S)],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--signed-url"), "{}", text(&o));
    // Only Kitopay webhooks sign a URL.
    let o = send(
        &[
            "kamiokash-webhook",
            "--event",
            "member.new",
            "--url",
            &local,
            "--signed-url",
            public,
        ],
        &[("KAMIOKASH_WEBHOOK_SECRET", KK_WEBHOOK_SECRET)],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
