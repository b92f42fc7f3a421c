//! The webhook server a user runs, measured in one run: the same axum handler bare (no
//! verification), behind `VerifyLayer` with the in-memory store, behind `VerifyLayer` with
//! the Redis store (a real redis-server started here) and with the plain PostgreSQL store (a
//! real server started here); and, as the baselines for the stores, the handler a user
//! writes without this crate: exactly one `SET key NX PX` (`redis_raw`) or one `INSERT … ON
//! CONFLICT DO NOTHING` (`postgres_raw`) per delivery, no verification. N concurrent
//! keep-alive clients on loopback send unique, freshly signed KamioKash webhooks for a fixed
//! time; throughput and latency percentiles go to a JSON file, with what Redis executed per
//! delivery (`INFO commandstats`: calls and microseconds). Then the in-memory store's
//! claims/s with 1 and 2 threads.
//!
//! `scripts/bench-server` runs it: `cargo bench --bench server -- --seconds 5 --clients 16
//! --json target/bench-server.json`. Bounded in time; loopback only.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use countersign::claim::postgres::PgStore;
use countersign::claim::redis::RedisStore;
use countersign::claim::{Claim, ClaimKey, ClaimStore, InMemoryStore, ReplayGuard};
use countersign::layer::{VerifyLayer, WebhookAuth};
use countersign::{Clock, SecretKey, SignableRequest, Signer, SystemClock, Timestamp, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "whsec_kk_5e2a91c07d3b4f68";

struct Options {
    seconds: u64,
    clients: usize,
    json: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        seconds: value("--seconds").map_or(5, |v| v.parse().unwrap()),
        clients: value("--clients").map_or(16, |v| v.parse().unwrap()),
        json: value("--json"),
    }
}

/// The handler all three modes share: it reads the body and answers a small JSON.
async fn handler(body: axum::body::Bytes) -> ([(&'static str, &'static str); 1], String) {
    (
        [("content-type", "application/json")],
        format!("{{\"received\":{}}}", body.len()),
    )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn layered(guard: ReplayGuard) -> Router {
    let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap()))
        .with_replay_guard(guard);
    Router::new().route("/hook", post(handler).layer(VerifyLayer::new(auth)))
}

/// The baseline a user writes without this crate: one `SET key NX PX` per delivery, keyed
/// by the signature header, and the same answer as the handler's. No verification.
fn redis_raw(connection: redis::aio::ConnectionManager) -> Router {
    Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let mut connection = connection.clone();
                async move {
                    let key = headers
                        .get("x-kamio-signature")
                        .map(|v| format!("raw:{}", v.to_str().unwrap_or_default()))
                        .unwrap_or_default();
                    let set: Option<String> = redis::cmd("SET")
                        .arg(key)
                        .arg("1")
                        .arg("NX")
                        .arg("PX")
                        .arg(121_000)
                        .query_async(&mut connection)
                        .await
                        .unwrap();
                    assert!(set.is_some(), "every delivery is new");
                    handler(body).await
                }
            },
        ),
    )
}

/// The same with one `INSERT … ON CONFLICT DO NOTHING` on PostgreSQL.
fn postgres_raw(pool: sqlx::PgPool) -> Router {
    Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let pool = pool.clone();
                async move {
                    let key = headers
                        .get("x-kamio-signature")
                        .map(|v| v.as_bytes().to_vec())
                        .unwrap_or_default();
                    let inserted = sqlx::query(
                        "INSERT INTO raw_claims (key) VALUES ($1) ON CONFLICT DO NOTHING",
                    )
                    .bind(key)
                    .execute(&pool)
                    .await
                    .unwrap();
                    assert_eq!(inserted.rows_affected(), 1, "every delivery is new");
                    handler(body).await
                }
            },
        ),
    )
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// One keep-alive client: sends unique signed deliveries until `stop`, records latencies.
async fn client(addr: SocketAddr, id: usize, stop: Arc<AtomicBool>) -> (Vec<Duration>, u64) {
    let signer = Signer::kamiokash_webhook(SecretKey::new(SECRET).unwrap());
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let mut latencies = Vec::with_capacity(100_000);
    let mut errors = 0;
    let mut buf = vec![0u8; 4096];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = format!(
            r#"{{"type":"transaction.successful","data":{{"client":{id},"n":{n},"walletId":"w_123","amount":500,"currency":"EUR","memberId":"m_0001"}}}}"#
        );
        let signed = signer
            .sign(&SignableRequest::body(body.as_bytes()), SystemClock.now())
            .unwrap();
        let mut request = format!(
            "POST /hook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in signed.headers() {
            request.push_str(k);
            request.push_str(": ");
            request.push_str(v);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let started = Instant::now();
        socket.write_all(request.as_bytes()).await.unwrap();
        // Read one response: headers, then content-length bytes of body.
        let mut filled = 0;
        let status = loop {
            let read = socket.read(&mut buf[filled..]).await.unwrap();
            assert!(read > 0, "server closed the connection");
            filled += read;
            let Some(end) = find(&buf[..filled], b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&buf[..end]).unwrap().to_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while filled < end + 4 + length {
                let read = socket.read(&mut buf[filled..]).await.unwrap();
                assert!(read > 0);
                filled += read;
            }
            break head[9..12].to_owned();
        };
        latencies.push(started.elapsed());
        if status != "200" {
            errors += 1;
        }
    }
    (latencies, errors)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn drive(addr: SocketAddr, clients: usize, seconds: u64) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|id| tokio::spawn(client(addr, id, stop.clone())))
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    Figures {
        requests: all.len() as u64,
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

/// A redis-server on a free loopback port, without persistence.
fn start_redis() -> Option<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, format!("redis://127.0.0.1:{port}/")))
}

/// Calls and microseconds of each command Redis has executed (`INFO commandstats`;
/// commands run inside a script are counted too).
fn redis_calls(url: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connection)
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| -> Option<u64> {
                rest.split(',')
                    .find_map(|f| f.strip_prefix(key))?
                    .parse()
                    .ok()
            };
            Some((name.to_owned(), (field("calls=")?, field("usec=")?)))
        })
        .collect()
}

/// CPU time (user + system) the process `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14, 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// What Redis did per delivery between two `INFO commandstats` readings: `(calls, µs)` of
/// each command.
fn per_delivery(
    before: &std::collections::BTreeMap<String, (u64, u64)>,
    after: &std::collections::BTreeMap<String, (u64, u64)>,
    deliveries: u64,
) -> String {
    let mut parts = Vec::new();
    for (name, (calls, usec)) in after {
        let (c0, u0) = before.get(name).copied().unwrap_or((0, 0));
        if calls > &c0 && name != "info" {
            parts.push(format!(
                "\"{name}\": {{\"calls\": {:.3}, \"usec\": {:.3}}}",
                (calls - c0) as f64 / deliveries as f64,
                (usec - u0) as f64 / deliveries as f64
            ));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// Claims per second on one in-memory store from `threads` threads, each claiming distinct
/// keys (hashed as the guard does), in a steady state: every thread's clock advances 1 ms
/// per 1024 claims and claims live 100 ms, so the store holds about 100k live claims and
/// evicts as many as it takes.
fn guard_claims_per_second(threads: u64, seconds: f64) -> f64 {
    let guard = Arc::new(InMemoryStore::new(usize::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Duration::from_secs(1_700_000_000);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (guard, stop, count) = (guard.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let now = start + Duration::from_millis(n / 1024);
                    let until = Timestamp::from_duration(now + Duration::from_millis(100)).unwrap();
                    let now = Timestamp::from_duration(now).unwrap();
                    for _ in 0..1024 {
                        let mut sig = [0u8; 32];
                        sig[..8].copy_from_slice(&n.to_le_bytes());
                        sig[8..16].copy_from_slice(&t.to_le_bytes());
                        // Spread over the shards as real signatures (uniform bytes) do.
                        sig[0..4]
                            .copy_from_slice(&(n.wrapping_mul(2_654_435_761) as u32).to_le_bytes());
                        let key = ClaimKey::new(
                            "bench",
                            "/hook",
                            &countersign::kamiokash::WEBHOOK,
                            "signature",
                            &sig,
                        );
                        let claim = Claim::new(key, u128::from(n), now, until, until);
                        assert!(guard.claim(&claim).into_ready().is_ok_and(|r| r.is_ok()));
                        n += 1;
                    }
                }
                count.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / seconds
}

fn json(figures: &Figures) -> String {
    format!(
        "{{\"requests\": {}, \"rps\": {:.0}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"errors\": {}}}",
        figures.requests, figures.rps, figures.p50_ms, figures.p99_ms, figures.errors
    )
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = start_redis();
    let postgres = countersign_test_support::postgres_server::Postgres::start();
    let mut modes: Vec<(&str, Figures, Option<String>)> = Vec::new();
    runtime.block_on(async {
        let run = |name: &'static str, addr: SocketAddr| async move {
            let figures = drive(addr, options.clients, options.seconds).await;
            println!("{name}: {figures:?}");
            figures
        };
        let bare = serve(Router::new().route("/hook", post(handler))).await;
        modes.push(("bare", run("bare", bare).await, None));
        let memory = serve(layered(ReplayGuard::in_memory(10_000_000))).await;
        modes.push(("layer", run("layer", memory).await, None));
        match &redis {
            Some((child, url)) => {
                let redis_pid = child.id();
                let client = redis::Client::open(url.as_str()).unwrap();
                let connection = redis::aio::ConnectionManager::new(client).await.unwrap();
                let addr = serve(redis_raw(connection)).await;
                let before = (redis_calls(url), cpu_seconds(redis_pid));
                let figures = run("redis_raw", addr).await;
                let cost = per_delivery(&before.0, &redis_calls(url), figures.requests);
                let cpu = (cpu_seconds(redis_pid) - before.1) / figures.requests as f64 * 1e6;
                let cost = format!("{{\"commands\": {cost}, \"redis_cpu_usec\": {cpu:.2}}}");
                println!("  redis per delivery: {cost}");
                modes.push(("redis_raw", figures, Some(cost)));
                let store = RedisStore::connect(url).await.unwrap();
                let addr = serve(layered(ReplayGuard::new(store, "bench").unwrap())).await;
                let before = (redis_calls(url), cpu_seconds(redis_pid));
                let figures = run("redis", addr).await;
                // Let the completions that follow the last answers land before counting.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let cost = per_delivery(&before.0, &redis_calls(url), figures.requests);
                let cpu = (cpu_seconds(redis_pid) - before.1) / figures.requests as f64 * 1e6;
                let cost = format!("{{\"commands\": {cost}, \"redis_cpu_usec\": {cpu:.2}}}");
                println!("  redis per delivery: {cost}");
                modes.push(("redis", figures, Some(cost)));
            }
            None => eprintln!("NOTICE: no redis-server: the redis modes are skipped"),
        }
        match &postgres {
            Some(pg) => {
                let url = pg.database("bench").await;
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(10)
                    .connect(&url)
                    .await
                    .unwrap();
                sqlx::query("CREATE TABLE raw_claims (key bytea PRIMARY KEY)")
                    .execute(&pool)
                    .await
                    .unwrap();
                let addr = serve(postgres_raw(pool)).await;
                modes.push(("postgres_raw", run("postgres_raw", addr).await, None));
                let store = PgStore::connect(&url).await.unwrap();
                let addr = serve(layered(ReplayGuard::new(store, "bench").unwrap())).await;
                modes.push(("postgres", run("postgres", addr).await, None));
            }
            None => eprintln!("NOTICE: no PostgreSQL: the postgres modes are skipped"),
        }
    });
    if let Some((mut child, _)) = redis {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(postgres);
    let one = guard_claims_per_second(1, 2.0);
    let two = guard_claims_per_second(2, 2.0);
    println!("in-memory store: {one:.0} claims/s on 1 thread, {two:.0} on 2 threads");

    let rps = |name: &str| {
        modes
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, f, _)| f.rps)
    };
    let mut out = format!(
        "{{\n  \"clients\": {},\n  \"seconds\": {}",
        options.clients, options.seconds
    );
    for (name, figures, redis_cost) in &modes {
        out.push_str(&format!(",\n  \"{name}\": {}", json(figures)));
        if let Some(cost) = redis_cost {
            out.push_str(&format!(",\n  \"{name}_redis_per_delivery\": {cost}"));
        }
    }
    for (ratio, num, den) in [
        ("layer_vs_bare", "layer", "bare"),
        ("redis_vs_redis_raw", "redis", "redis_raw"),
        ("postgres_vs_postgres_raw", "postgres", "postgres_raw"),
    ] {
        if let (Some(a), Some(b)) = (rps(num), rps(den)) {
            out.push_str(&format!(",\n  \"{ratio}\": {:.3}", a / b));
        }
    }
    out.push_str(&format!(
        ",\n  \"in_memory_claims_per_second\": {{\"threads_1\": {one:.0}, \"threads_2\": {two:.0}}}\n}}\n"
    ));
    match &options.json {
        Some(path) => std::fs::write(path, &out).unwrap(),
        None => print!("{out}"),
    }
}
