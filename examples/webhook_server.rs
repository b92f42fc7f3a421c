//! A webhook receiver for KamioKash, Kitopay and Standard Webhooks, behind countersign's
//! tower layer, that processes each **event** once, on one instance or several.
//!
//! ```sh
//! KAMIOKASH_WEBHOOK_SECRET=whsec_... KITOPAY_SECRET=dev_sec_... KITOPAY_MERCHANT_ID=dev_pub_... \
//! STANDARD_WEBHOOKS_SECRET=whsec_... \
//!   cargo run --example webhook_server --features axum,redis,postgres -- --port 8080 \
//!   [--public-url https://shop.example.com] [--store memory|redis://…|postgres://…] [--instance NAME]
//! ```
//!
//! `POST /webhooks/kamiokash`, `/webhooks/kitopay` and `/webhooks/standard` (when its secret
//! is set) answer `200 {"received":...}` for a new event, `200 duplicate delivery` for one
//! already processed (a copy, or a retry signed again), `409` while it is being processed,
//! `401` for a forged or stale delivery, `503` when the claim store cannot decide. Kitopay
//! deliveries are verified against `<public-url>/webhooks/kitopay` (default
//! `http://127.0.0.1:<port>`), the URL you registered with Kitopay, so several instances
//! behind one public URL verify the same deliveries.
//!
//! Each route is mounted with `countersign::layer::webhook_router`: at its path and at the
//! other trailing-slash form, so a delivery to `/webhooks/kitopay/` reaches the verifier
//! (and is refused: it was signed for another URL) instead of a silent `404`; another
//! method is `405`.
//!
//! Each event is claimed by its id (Kitopay: `id/status`; Standard Webhooks: `webhook-id`;
//! KamioKash: this example's choice, the event type and `data.id`) in `--store`:
//!
//! - `memory` (the default): one instance;
//! - `redis://…` (feature `redis`): several instances; the claim is marked done after the
//!   handler's answer (beside the data);
//! - `postgres://…` (feature `postgres`): several instances; each event is recorded in the
//!   table `processed_events (scheme, event_id, instance)` **in the claim's transaction**,
//!   so the record and the claim's "done" commit together (exactly once across crashes).
//!
//! Every side effect prints one line on stdout, `processed <scheme> <event id>` (with
//! PostgreSQL, after the commit). `--work-ms N` makes each handler take N ms;
//! `--lease-ms N` sets how long an unfinished claim blocks its event (default 60 s).
//! Why was a delivery refused? Every decision is logged on stderr: `RUST_LOG` defaults to
//! `countersign=info` here (`RUST_LOG=countersign=debug` shows claim releases too). A
//! signature mismatch names its likely mistake, e.g.
//! `reason="signature_mismatch" hypothesis="trailing_slash_added"`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use countersign::claim::{Identity, ReplayGuard};
use countersign::extract::VerifiedJson;
use countersign::layer::{WebhookAuth, webhook_router};
use countersign::{
    CanonicalUrl, SecretKey, Verified, Verifier, kamiokash, kitopay, standard_webhooks,
};
use serde_json::{Value, json};

/// What every handler needs: the instance's name and the simulated work.
#[derive(Clone)]
struct App {
    instance: Arc<str>,
    work: Duration,
}

/// The claim's transaction, with the PostgreSQL store (none otherwise).
#[cfg(feature = "postgres")]
type Transaction = Option<countersign::claim::postgres::ClaimTransaction>;
#[cfg(not(feature = "postgres"))]
type Transaction = ();

/// The event's name in the `processed` line: its id, or its signature for a KamioKash
/// event without `data.id`.
fn event_name(delivery: &Verified) -> String {
    match delivery.event_id() {
        Some(id) => id.to_owned(),
        None => format!("signature:{}", delivery.signature().to_hex()),
    }
}

/// The side effect: with PostgreSQL, a row written in the claim's own transaction and
/// committed with it before the line is printed; otherwise the line itself.
async fn process(
    app: &App,
    delivery: &Verified,
    tx: Transaction,
) -> Result<Json<Value>, StatusCode> {
    tokio::time::sleep(app.work).await;
    let event = event_name(delivery);
    #[cfg(feature = "postgres")]
    if let Some(countersign::claim::postgres::ClaimTransaction(mut tx)) = tx {
        sqlx::query(
            "INSERT INTO processed_events (scheme, event_id, instance) VALUES ($1, $2, $3)",
        )
        .bind(delivery.scheme().name())
        .bind(&event)
        .bind(&*app.instance)
        .execute(&mut *tx)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
        // The row and the claim's "done" commit together, or neither does.
        tx.commit()
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    }
    #[cfg(not(feature = "postgres"))]
    let () = tx;
    println!("processed {} {event}", delivery.scheme());
    Ok(Json(
        json!({ "received": event, "instance": &*app.instance }),
    ))
}

/// KamioKash: the typed event.
async fn on_kamiokash(
    Extension(app): Extension<App>,
    tx: Transaction,
    VerifiedJson(event, delivery): VerifiedJson<kamiokash::WebhookEvent>,
) -> Result<Json<Value>, StatusCode> {
    eprintln!(
        "{}: {} (key {})",
        app.instance,
        event.event_type(),
        delivery.key_id()
    );
    process(&app, &delivery, tx).await
}

/// Kitopay: the transaction's status change.
async fn on_kitopay(
    Extension(app): Extension<App>,
    tx: Transaction,
    VerifiedJson(event, delivery): VerifiedJson<kitopay::WebhookEvent>,
) -> Result<Json<Value>, StatusCode> {
    eprintln!(
        "{}: {} is {} (key {})",
        app.instance,
        event.reference_id,
        event.status,
        delivery.key_id()
    );
    process(&app, &delivery, tx).await
}

/// Standard Webhooks: any JSON payload.
async fn on_standard(
    Extension(app): Extension<App>,
    tx: Transaction,
    VerifiedJson(_, delivery): VerifiedJson<Value>,
) -> Result<Json<Value>, StatusCode> {
    process(&app, &delivery, tx).await
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

fn millis(args: &[String], name: &str, default: u64) -> Result<Duration, String> {
    match arg(args, name) {
        None => Ok(Duration::from_millis(default)),
        Some(text) => text
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{name}: a number of milliseconds")),
    }
}

/// The guard over `--store`, in the namespace `webhook-server` (every instance of this
/// service shares it).
async fn replay_guard(store: &str) -> Result<ReplayGuard, String> {
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    const NAMESPACE: &str = "webhook-server";
    if store == "memory" {
        return Ok(ReplayGuard::in_memory(1_000_000));
    }
    if store.starts_with("redis://") {
        #[cfg(feature = "redis")]
        {
            let redis = countersign::claim::redis::RedisStore::connect(store)
                .await
                .map_err(|e| e.to_string())?;
            return ReplayGuard::new(redis, NAMESPACE).map_err(|e| e.to_string());
        }
        #[cfg(not(feature = "redis"))]
        return Err("--store redis://… needs --features axum,redis".into());
    }
    if store.starts_with("postgres://") {
        #[cfg(feature = "postgres")]
        {
            let postgres = countersign::claim::postgres::PgStore::connect(store)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS processed_events (
                    scheme text NOT NULL, event_id text NOT NULL, instance text NOT NULL,
                    at timestamptz NOT NULL DEFAULT now())",
            )
            .execute(postgres.pool())
            .await
            .map_err(|e| format!("creating processed_events: {e}"))?;
            return ReplayGuard::new(postgres.transactional(), NAMESPACE)
                .map_err(|e| e.to_string());
        }
        #[cfg(not(feature = "postgres"))]
        return Err("--store postgres://… needs --features axum,postgres".into());
    }
    Err(format!(
        "--store: memory, redis://host:port/ or postgres://user@host/db, not {store}"
    ))
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port")
        .unwrap_or_else(|| "8080".into())
        .parse()
        .map_err(|_| "--port: a port number")?;
    let public = arg(&args, "--public-url").unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let instance: Arc<str> = arg(&args, "--instance")
        .unwrap_or_else(|| format!("127.0.0.1:{port}"))
        .into();
    let store = arg(&args, "--store").unwrap_or_else(|| "memory".into());
    let guard = replay_guard(&store).await?;
    let guard = guard.with_lease(millis(&args, "--lease-ms", 60_000)?);
    let app = App {
        instance: Arc::clone(&instance),
        work: millis(&args, "--work-ms", 0)?,
    };

    // KamioKash events carry no id of their own: this service chooses type + data.id (the
    // body is signed), and falls back to the signature where there is none.
    let kamiokash_events = Identity::Custom(Arc::new(|_, request| {
        let body: Value = serde_json::from_slice(request.body()).ok()?;
        let id = body["data"]["id"].as_str()?;
        Some(format!("{}/{id}", body["type"].as_str()?))
    }));
    let kamiokash = Verifier::kamiokash_webhook(
        SecretKey::from_string(env("KAMIOKASH_WEBHOOK_SECRET")?).map_err(|e| e.to_string())?,
    );
    let kitopay_url = CanonicalUrl::parse(&format!(
        "{}/webhooks/kitopay",
        public.trim_end_matches('/')
    ))
    .map_err(|e| format!("--public-url: {e}"))?;
    let kitopay = Verifier::kitopay_webhook(
        &env("KITOPAY_MERCHANT_ID")?,
        SecretKey::from_string(env("KITOPAY_SECRET")?).map_err(|e| e.to_string())?,
        kitopay_url.clone(),
    )
    .map_err(|e| e.to_string())?;

    let mut router = Router::new()
        .merge(webhook_router(
            "/webhooks/kamiokash",
            post(on_kamiokash),
            WebhookAuth::new(kamiokash)
                .with_replay_guard(guard.clone().with_identity(kamiokash_events)),
        ))
        .merge(webhook_router(
            "/webhooks/kitopay",
            post(on_kitopay),
            WebhookAuth::new(kitopay).with_replay_guard(guard.clone()),
        ));
    if let Ok(secret) = std::env::var("STANDARD_WEBHOOKS_SECRET") {
        let key = standard_webhooks::SCHEME
            .key(&secret)
            .map_err(|e| format!("STANDARD_WEBHOOKS_SECRET: {e}"))?;
        router = router.merge(webhook_router(
            "/webhooks/standard",
            post(on_standard),
            WebhookAuth::new(Verifier::standard_webhooks(key)).with_replay_guard(guard),
        ));
    }
    let router = router.layer(Extension(app));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("bind {port}: {e}"))?;
    eprintln!(
        "{instance} listening on http://127.0.0.1:{port} (claims in {}); kitopay deliveries verified for {kitopay_url}",
        store.split('@').next_back().unwrap_or("memory")
    );
    axum::serve(listener, router)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("countersign=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
