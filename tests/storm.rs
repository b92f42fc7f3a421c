//! The example server as the proof (issue 19, item 4): `examples/webhook_server` run as
//! real processes, one or two instances behind one public URL, on each claim store (memory,
//! Redis, PostgreSQL with the claim in the handler's transaction). A storm of deliveries,
//! exact copies and retries signed again of each event, is sent to both instances and
//! retried as a provider retries (on `409`, `503` and connection errors) until every
//! delivery is acknowledged; then every event must have been processed exactly once
//! (`processed <scheme> <event id>` lines; with PostgreSQL, rows of `processed_events`).
//! Then the same with one instance killed (`SIGKILL`) mid-storm, and with PostgreSQL killed
//! and restarted mid-storm. Each run prints its counts (`--nocapture`).
#![cfg(all(feature = "axum", feature = "redis", feature = "postgres"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countersign::{
    CanonicalUrl, Clock, SecretKey, SignableRequest, Signer, SystemClock, Timestamp,
    standard_webhooks,
};
use countersign_test_support::postgres_server::Postgres;
use countersign_test_support::redis_server::Redis;
use tokio::sync::Semaphore;

const KAMIOKASH_SECRET: &str = "whsec_kk_storm_5e2a91c07d3b4f68";
const KITOPAY_SECRET: &str = "kitopay-storm-secret";
const MERCHANT: &str = "dev_pub_storm";
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PUBLIC: &str = "https://shop.example.com";

/// The example's binary, built by `cargo test` beside this test's.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile.join("examples").join("webhook_server");
    assert!(
        path.exists(),
        "{} is missing: cargo test --all-features builds it",
        path.display()
    );
    path
}

/// One running instance of the example server.
struct Instance {
    name: String,
    addr: SocketAddr,
    child: Option<Child>,
    /// Its stdout, line by line (`processed <scheme> <event id>`).
    lines: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    fn start(name: &str, store: &str, extra: &[&str]) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(example())
            .args(["--port", &port.to_string(), "--public-url", PUBLIC])
            .args(["--store", store, "--instance", name])
            .args(extra)
            .env("KAMIOKASH_WEBHOOK_SECRET", KAMIOKASH_SECRET)
            .env("KITOPAY_SECRET", KITOPAY_SECRET)
            .env("KITOPAY_MERCHANT_ID", MERCHANT)
            .env("STANDARD_WEBHOOKS_SECRET", SW_SECRET)
            .env("RUST_LOG", "countersign=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name} exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "{name} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Instance {
            name: name.to_owned(),
            addr,
            child: Some(child),
            lines,
        }
    }

    /// `kill -9`: the process dies wherever it is, claims and transactions mid-way.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn processed(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| line.strip_prefix("processed ").map(str::to_owned))
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One delivery: where it goes and what it carries.
#[derive(Clone)]
struct Delivery {
    event: String,
    path: &'static str,
    headers: Vec<(String, String)>,
    body: String,
}

fn owned(signed: &countersign::SignedRequest<'_>) -> Vec<(String, String)> {
    signed
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn ago(seconds: u64) -> Timestamp {
    Timestamp::from_unix_secs(SystemClock.now().unix_secs() - seconds).unwrap()
}

/// `events` of each scheme, each as 3 copies of its first delivery and 2 retries signed
/// again (20 and 0 s ago), shuffled together.
fn storm(per_scheme: usize, tag: &str) -> (Vec<String>, Vec<Delivery>) {
    let kitopay_url = CanonicalUrl::parse(&format!("{PUBLIC}/webhooks/kitopay")).unwrap();
    let kitopay =
        Signer::kitopay_webhook(MERCHANT, SecretKey::new(KITOPAY_SECRET).unwrap()).unwrap();
    let kamiokash = Signer::kamiokash_webhook(SecretKey::new(KAMIOKASH_SECRET).unwrap());
    let standard = Signer::standard_webhooks(standard_webhooks::SCHEME.key(SW_SECRET).unwrap());
    let mut events = Vec::new();
    let mut deliveries = Vec::new();
    for n in 0..per_scheme {
        // Kitopay: a transaction's status change; the event is `id/status`.
        let body =
            format!(r#"{{"id":"{tag}tx{n}","reference_id":"order-{n}","status":"success"}}"#);
        events.push(format!("kitopay-webhook {tag}tx{n}/success"));
        for at in [ago(40), ago(40), ago(40), ago(20), ago(0)] {
            let signed = kitopay
                .sign(
                    &SignableRequest::new("POST", &kitopay_url, body.as_bytes()).unwrap(),
                    at,
                )
                .unwrap();
            deliveries.push(Delivery {
                event: events.last().unwrap().clone(),
                path: "/webhooks/kitopay",
                headers: owned(&signed),
                body: body.clone(),
            });
        }
        // Standard Webhooks: the event is the signed webhook-id.
        let body = format!(r#"{{"type":"invoice.paid","n":{n}}}"#);
        let id = format!("msg_{tag}{n}");
        events.push(format!("standard-webhooks {id}"));
        for at in [ago(40), ago(40), ago(40), ago(20), ago(0)] {
            let signed = standard
                .sign(
                    &SignableRequest::body(body.as_bytes()).with_value("id", &id),
                    at,
                )
                .unwrap();
            deliveries.push(Delivery {
                event: events.last().unwrap().clone(),
                path: "/webhooks/standard",
                headers: owned(&signed),
                body: body.clone(),
            });
        }
        // KamioKash: the example claims by type + data.id.
        let body = format!(r#"{{"type":"order.successful","data":{{"id":"{tag}o{n}"}}}}"#);
        events.push(format!("kamiokash-webhook order.successful/{tag}o{n}"));
        for at in [ago(40), ago(40), ago(40), ago(20), ago(0)] {
            let at = Timestamp::from_unix_millis(at.unix_millis() + 123).unwrap();
            let signed = kamiokash
                .sign(&SignableRequest::body(body.as_bytes()), at)
                .unwrap();
            deliveries.push(Delivery {
                event: events.last().unwrap().clone(),
                path: "/webhooks/kamiokash",
                headers: owned(&signed),
                body: body.clone(),
            });
        }
    }
    // A fixed shuffle: copies and retries of one event arrive interleaved with others.
    let mut order: Vec<usize> = (0..deliveries.len()).collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..order.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let deliveries = order.into_iter().map(|i| deliveries[i].clone()).collect();
    (events, deliveries)
}

/// What the provider saw.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    deliveries: usize,
    /// Acknowledged by processing (`200` with the handler's answer).
    processed_answers: usize,
    /// Acknowledged as a duplicate (`200 duplicate delivery`).
    duplicates: usize,
    conflicts_409: usize,
    unavailable_503: usize,
    /// Connection refused or reset (an instance killed).
    connection_errors: usize,
    /// Attempts beyond the first.
    retries: usize,
}

/// Sends every delivery (alternating instances, at most 32 at once) and retries each until
/// it is acknowledged with a `200`, within `limit`. `during` runs once `at` deliveries were
/// acknowledged (a kill, a restart).
async fn send_all(
    deliveries: Vec<Delivery>,
    addrs: Vec<SocketAddr>,
    limit: Duration,
    at: usize,
    during: impl FnOnce() + Send + 'static,
) -> Counts {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let counts = Arc::new(Mutex::new(Counts {
        deliveries: deliveries.len(),
        ..Counts::default()
    }));
    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let during = Arc::new(Mutex::new(Some(during)));
    let gate = Arc::new(Semaphore::new(32));
    let deadline = Instant::now() + limit;
    let mut tasks = Vec::new();
    for (n, delivery) in deliveries.into_iter().enumerate() {
        let (client, counts, addrs, gate) =
            (client.clone(), counts.clone(), addrs.clone(), gate.clone());
        let (acknowledged, during) = (acknowledged.clone(), during.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let mut attempt = 0usize;
            loop {
                assert!(
                    Instant::now() < deadline,
                    "delivery of {} never acknowledged",
                    delivery.event
                );
                let addr = addrs[(n + attempt) % addrs.len()];
                if attempt > 0 {
                    counts.lock().unwrap().retries += 1;
                }
                attempt += 1;
                let mut request = client
                    .post(format!("http://{addr}{}", delivery.path))
                    .body(delivery.body.clone());
                for (k, v) in &delivery.headers {
                    request = request.header(k, v);
                }
                let answer = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        Ok((status, response.text().await.unwrap_or_default()))
                    }
                    Err(e) => Err(e),
                };
                let done = {
                    let mut c = counts.lock().unwrap();
                    match answer {
                        Ok((200, text)) => {
                            if text.starts_with("duplicate delivery") {
                                c.duplicates += 1;
                            } else {
                                c.processed_answers += 1;
                            }
                            true
                        }
                        Ok((409, _)) => {
                            c.conflicts_409 += 1;
                            false
                        }
                        Ok((503, _)) => {
                            c.unavailable_503 += 1;
                            false
                        }
                        Ok((status, text)) => {
                            panic!("{}: unexpected {status} {text}", delivery.event)
                        }
                        Err(_) => {
                            c.connection_errors += 1;
                            false
                        }
                    }
                };
                if done {
                    if acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == at
                        && let Some(during) = during.lock().unwrap().take()
                    {
                        during();
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    *counts.lock().unwrap()
}

/// How many times each event was processed, from `lines` (`<scheme> <event id>`).
fn tally(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for line in lines {
        *tally.entry(line).or_insert(0) += 1;
    }
    tally
}

/// Rows of `processed_events` per event.
async fn rows(url: &str) -> BTreeMap<String, usize> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT scheme, event_id, count(*) FROM processed_events GROUP BY scheme, event_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|(scheme, event, n)| (format!("{scheme} {event}"), n as usize))
        .collect()
}

fn exactly_once(events: &[String], processed: &BTreeMap<String, usize>, what: &str) {
    for event in events {
        assert_eq!(
            processed.get(event).copied(),
            Some(1),
            "{what}: {event} processed {:?} times",
            processed.get(event)
        );
    }
    assert_eq!(
        processed.len(),
        events.len(),
        "{what}: unexpected events {processed:?}"
    );
}

fn report(store: &str, events: &[String], counts: &Counts, processed: usize) {
    println!(
        "storm {store}: {} events, {} deliveries, processed {processed}, acknowledged as duplicates {}, 409 {}, 503 {}, connection errors {}, retries {}",
        events.len(),
        counts.deliveries,
        counts.duplicates,
        counts.conflicts_409,
        counts.unavailable_503,
        counts.connection_errors,
        counts.retries
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_on_one_instance_in_memory_processes_each_event_once() {
    let instance = Instance::start("solo", "memory", &["--work-ms", "20"]);
    let (events, deliveries) = storm(10, "m");
    let counts = send_all(
        deliveries,
        vec![instance.addr],
        Duration::from_secs(60),
        0,
        || {},
    )
    .await;
    let processed = tally(instance.processed());
    report(
        "memory, one instance",
        &events,
        &counts,
        processed.values().sum(),
    );
    exactly_once(&events, &processed, "memory");
    assert_eq!(counts.processed_answers, events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_on_two_instances_sharing_redis_processes_each_event_once() {
    let Some(redis) = Redis::start() else { return };
    let a = Instance::start("a", &redis.url, &["--work-ms", "20"]);
    let b = Instance::start("b", &redis.url, &["--work-ms", "20"]);
    let (events, deliveries) = storm(10, "r");
    let counts = send_all(
        deliveries,
        vec![a.addr, b.addr],
        Duration::from_secs(60),
        0,
        || {},
    )
    .await;
    let processed = tally(a.processed().into_iter().chain(b.processed()));
    report(
        "redis, two instances",
        &events,
        &counts,
        processed.values().sum(),
    );
    exactly_once(&events, &processed, "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_on_two_instances_sharing_postgres_processes_each_event_once() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("storm").await;
    let a = Instance::start("a", &url, &["--work-ms", "20"]);
    let b = Instance::start("b", &url, &["--work-ms", "20"]);
    let (events, deliveries) = storm(10, "p");
    let counts = send_all(
        deliveries,
        vec![a.addr, b.addr],
        Duration::from_secs(60),
        0,
        || {},
    )
    .await;
    let processed = tally(a.processed().into_iter().chain(b.processed()));
    let rows = rows(&url).await;
    report(
        "postgres (transactional), two instances",
        &events,
        &counts,
        rows.values().sum(),
    );
    exactly_once(&events, &rows, "postgres rows");
    exactly_once(&events, &processed, "postgres lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_storm_on_redis_loses_no_event_and_repeats_only_finished_ones() {
    let Some(redis) = Redis::start() else { return };
    // A short lease, so an event whose instance died mid-handler is taken over quickly.
    let options = ["--work-ms", "100", "--lease-ms", "1500"];
    let mut a = Instance::start("a", &redis.url, &options);
    let b = Instance::start("b", &redis.url, &options);
    let (events, deliveries) = storm(10, "kr");
    let total = deliveries.len();
    let a_pid = a.child.as_ref().unwrap().id();
    let counts = send_all(
        deliveries,
        vec![a.addr, b.addr],
        Duration::from_secs(90),
        total / 3,
        move || {
            // SIGKILL, as the OOM killer or a crashed host would.
            Command::new("kill")
                .args(["-9", &a_pid.to_string()])
                .status()
                .unwrap();
        },
    )
    .await;
    a.kill();
    let by_a = tally(a.processed());
    let processed = tally(a.processed().into_iter().chain(b.processed()));
    report(
        "redis, two instances, one killed mid-storm",
        &events,
        &counts,
        processed.values().sum(),
    );
    let twice: Vec<_> = processed
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(e, _)| e.clone())
        .collect();
    println!(
        "  processed twice: {twice:?} (each one A finished before it died, its completion not yet in Redis)"
    );
    for event in &events {
        assert!(
            processed.get(event).copied().unwrap_or(0) >= 1,
            "{event} was lost"
        );
    }
    for event in &twice {
        assert_eq!(processed[event], 2);
        assert!(
            by_a.contains_key(event),
            "{event} processed twice, but A had not finished it"
        );
    }
    assert!(
        counts.connection_errors > 0,
        "{} was not killed mid-storm",
        a.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_storm_on_postgres_still_processes_each_event_exactly_once() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("killed").await;
    let options = ["--work-ms", "100", "--lease-ms", "1500"];
    let mut a = Instance::start("a", &url, &options);
    let b = Instance::start("b", &url, &options);
    let (events, deliveries) = storm(10, "kp");
    let total = deliveries.len();
    let a_pid = a.child.as_ref().unwrap().id();
    let counts = send_all(
        deliveries,
        vec![a.addr, b.addr],
        Duration::from_secs(90),
        total / 3,
        move || {
            Command::new("kill")
                .args(["-9", &a_pid.to_string()])
                .status()
                .unwrap();
        },
    )
    .await;
    a.kill();
    let rows = rows(&url).await;
    let lines = tally(a.processed().into_iter().chain(b.processed()));
    report(
        "postgres (transactional), two instances, one killed mid-storm",
        &events,
        &counts,
        rows.values().sum(),
    );
    println!(
        "  rows {} for {} events; processed lines {} (A may die after its commit, before its line)",
        rows.values().sum::<usize>(),
        events.len(),
        lines.values().sum::<usize>()
    );
    exactly_once(&events, &rows, "postgres rows after SIGKILL");
    assert!(lines.values().all(|n| *n == 1));
    assert!(counts.connection_errors > 0, "A was not killed mid-storm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_and_restarted_mid_storm_processes_each_event_exactly_once() {
    let Some(pg) = Postgres::start() else { return };
    if !pg.owned() {
        return;
    }
    let url = pg.database("restarted").await;
    let a = Instance::start("a", &url, &["--work-ms", "20"]);
    let b = Instance::start("b", &url, &["--work-ms", "20"]);
    let (events, deliveries) = storm(10, "rp");
    let total = deliveries.len();
    let pg = Arc::new(Mutex::new(pg));
    let restart = Arc::clone(&pg);
    let counts = send_all(
        deliveries,
        vec![a.addr, b.addr],
        Duration::from_secs(120),
        total / 3,
        move || {
            // kill -9 of the postmaster, then crash recovery, while deliveries keep coming.
            std::thread::spawn(move || restart.lock().unwrap().restart());
        },
    )
    .await;
    // Wait out a restart still running when the last delivery was acknowledged.
    drop(pg.lock().unwrap());
    let rows = rows(&url).await;
    report(
        "postgres (transactional), two instances, PostgreSQL restarted mid-storm",
        &events,
        &counts,
        rows.values().sum(),
    );
    exactly_once(&events, &rows, "postgres rows across a restart");
    assert!(counts.unavailable_503 > 0, "the restart was not felt");
}
