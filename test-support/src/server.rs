//! A webhook receiver on a loopback port for the end-to-end tests: one KamioKash route
//! behind `VerifyLayer`, a handler that counts its calls per delivery and can be told to
//! fail or stall, and a record of every status the server answered; clients for it, with
//! reqwest and over a raw socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use countersign::claim::{InMemoryStore, ReplayGuard};
use countersign::layer::{VerifyLayer, WebhookAuth};
use countersign::{SecretKey, Timestamp, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sign;

/// The receiver's KamioKash webhook secret.
pub const SECRET: &str = "whsec_kk_5e2a91c07d3b4f68";

/// What the server saw. The handler answers by body: `fail` → 500, `panic` → panics,
/// `slow` → sleeps 1 s first; anything else → 200.
#[derive(Clone, Default)]
pub struct Log {
    /// Handler calls per body.
    pub calls: Arc<Mutex<HashMap<String, usize>>>,
    /// Every status the server answered, in order.
    pub statuses: Arc<Mutex<Vec<u16>>>,
}

impl Log {
    /// Handler calls for `body`.
    pub fn calls(&self, body: &str) -> usize {
        self.calls.lock().unwrap().get(body).copied().unwrap_or(0)
    }
    /// Handler calls for any body.
    pub fn total_calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }
    /// Every status answered so far, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.statuses.lock().unwrap().clone()
    }
}

/// Serves `POST /hook` behind `auth` on a free loopback port, recording into `log`.
pub async fn serve(auth: WebhookAuth, log: Log) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = log.calls.clone();
    let handler = move |body: String| {
        let calls = calls.clone();
        async move {
            *calls.lock().unwrap().entry(body.clone()).or_default() += 1;
            if body.contains("slow") {
                tokio::time::sleep(Duration::from_millis(1_000)).await;
            }
            if body.contains("panic") {
                panic!("handler panics on purpose");
            }
            if body.contains("fail") {
                return (StatusCode::INTERNAL_SERVER_ERROR, "failed");
            }
            (StatusCode::OK, "processed")
        }
    };
    let statuses = log.statuses.clone();
    let app = Router::new()
        .route("/hook", post(handler).layer(VerifyLayer::new(auth)))
        .layer(axum::middleware::map_response(
            move |response: axum::response::Response| {
                let statuses = statuses.clone();
                async move {
                    statuses.lock().unwrap().push(response.status().as_u16());
                    response
                }
            },
        ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A KamioKash webhook verifier for [`SECRET`], claiming through `guard`.
pub fn auth(guard: impl Into<ReplayGuard>) -> WebhookAuth {
    WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap()))
        .with_replay_guard(guard.into())
}

/// An in-memory guard whose store the test can look into.
#[derive(Clone)]
pub struct Memory {
    /// The guard, over [`Memory::store`].
    pub guard: ReplayGuard,
    /// The store.
    pub store: Arc<InMemoryStore>,
}

impl Memory {
    /// A guard over a store of `capacity` claims.
    pub fn new(capacity: usize) -> Self {
        let store = Arc::new(InMemoryStore::new(capacity));
        Memory {
            guard: ReplayGuard::new(Arc::clone(&store), "").unwrap(),
            store,
        }
    }

    /// Claims held.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no claim is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Memory> for ReplayGuard {
    fn from(memory: Memory) -> Self {
        memory.guard
    }
}

/// A KamioKash webhook delivery of `body` signed at `at` with [`SECRET`]: its headers.
pub fn signed(body: &str, at: Timestamp) -> Vec<(String, String)> {
    sign::kamiokash_webhook(SECRET, body, at)
}

/// Posts a signed delivery; returns the status, the body and any `Retry-After`.
pub async fn deliver(
    addr: SocketAddr,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String, Option<String>) {
    deliver_with(&reqwest::Client::new(), addr, headers, body).await
}

/// [`deliver`] with a given client (building a client per request is slow).
pub async fn deliver_with(
    client: &reqwest::Client,
    addr: SocketAddr,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String, Option<String>) {
    let mut request = client
        .post(format!("http://{addr}/hook"))
        .body(body.to_owned());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), retry_after)
}

/// Sends a signed delivery over a raw socket, waits until the handler has run and the layer
/// has settled the claim, then closes the connection without reading the answer: the
/// provider never sees it ("lost response").
pub async fn deliver_and_lose_the_response(
    addr: SocketAddr,
    headers: &[(String, String)],
    body: &str,
    log: &Log,
) {
    let answered = log.statuses().len();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = raw_request(&addr.to_string(), headers, body, "");
    socket.write_all(request.as_bytes()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while log.calls(body) == 0 || log.statuses().len() == answered {
        assert!(
            std::time::Instant::now() < deadline,
            "the handler never ran"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(socket);
}

/// Raw HTTP/1.1 request text for a signed KamioKash delivery to `/hook`: `extra` is more
/// header lines (each ending in `\r\n`) before the signed ones.
pub fn raw_request(host: &str, headers: &[(String, String)], body: &str, extra: &str) -> String {
    let mut request = format!(
        "POST /hook HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n{extra}",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    request
}

/// Sends raw bytes and reads the whole answer (the server closes: `connection: close`), for
/// at most 5 s.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw answer's status line (`0` if there is none).
pub fn status_line(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Delivers until the answer is not `409` (a duplicate that arrived before its original's
/// completion reached a network store), as a provider honouring `Retry-After` would; at most
/// 2 s.
pub async fn deliver_settled(
    addr: SocketAddr,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String, Option<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let answer = deliver(addr, headers, body).await;
        if answer.0 != 409 || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `tracing` writer that keeps what it is given, to check the events a test caused.
pub struct Capture(
    /// What it was given.
    pub Arc<Mutex<Vec<u8>>>,
);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A subscriber that keeps every event (INFO and above, no colours), and what it kept.
pub fn capturing_subscriber() -> (Arc<Mutex<Vec<u8>>>, impl tracing::Subscriber + Send + Sync) {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let captured = captured.clone();
        move || Capture(captured.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (captured, subscriber)
}

/// A signed delivery as an `http::Request` for a tower service.
pub fn request_with(
    body: &str,
    headers: &[(String, String)],
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut builder = http::Request::post("/hook");
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    builder
        .body(http_body_util::Full::from(body.to_owned()))
        .unwrap()
}
