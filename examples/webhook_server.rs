//! A webhook receiver for both providers, protected by countersign's tower layer.
//!
//! ```sh
//! KAMIOKASH_WEBHOOK_SECRET=whsec_... KITOPAY_SECRET=dev_sec_... KITOPAY_MERCHANT_ID=dev_pub_... \
//!   cargo run --example webhook_server --features axum -- --port 8080 \
//!   [--public-url https://shop.example.com] [--redis redis://127.0.0.1:6379/]   # --redis needs --features redis
//! ```
//!
//! `POST /webhooks/kamiokash` and `POST /webhooks/kitopay` answer `200 {"received":...}` for a
//! valid delivery (the typed event, read with `VerifiedJson`), `200 duplicate delivery` for a
//! delivery already processed, `401` for a forged or stale one, `413` for a body over 1 MiB,
//! `405` for another method. Kitopay deliveries are verified against
//! `<public-url>/webhooks/kitopay` (default `http://127.0.0.1:<port>`), the URL you
//! registered with Kitopay. Duplicates are detected by an in-memory guard, or by Redis with
//! `--redis` (for several instances).
//!
//! Each route is mounted with `countersign::layer::webhook_router`: at its path and at the
//! other trailing-slash form, so a delivery to `/webhooks/kitopay/` reaches the verifier
//! (and is refused: it was signed for another URL) instead of a silent `404`.
//!
//! Why was a delivery refused? Every decision is logged on stderr: `RUST_LOG` defaults to
//! `countersign=info` here (`RUST_LOG=countersign=debug` shows claim releases too). A
//! signature mismatch names its likely mistake, e.g.
//! `reason="signature_mismatch" hypothesis="trailing_slash_added"`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;

use axum::routing::post;
use axum::{Extension, Json, Router};
use countersign::extract::VerifiedJson;
use countersign::layer::{VerifiedDelivery, WebhookAuth, webhook_router};
use countersign::{
    AsyncReplayGuard, CanonicalUrl, InMemoryReplayGuard, SecretKey, Verifier, kamiokash, kitopay,
};

/// KamioKash: the typed event, and which key verified it.
async fn on_kamiokash(
    VerifiedJson(event, delivery): VerifiedJson<kamiokash::WebhookEvent>,
) -> Json<serde_json::Value> {
    println!(
        "processing {} (key {})",
        event.event_type(),
        delivery.key_id
    );
    Json(serde_json::json!({ "received": event.event_type() }))
}

/// Kitopay: the status change; the handler also reads the delivery from the extensions.
async fn on_kitopay(
    Extension(delivery): Extension<VerifiedDelivery>,
    VerifiedJson(event, _): VerifiedJson<kitopay::WebhookEvent>,
) -> Json<serde_json::Value> {
    println!(
        "processing {} → {} (key {}, signed at {})",
        event.reference_id,
        event.status,
        delivery.key_id,
        delivery.timestamp.map_or(0, |t| t.unix_secs())
    );
    Json(serde_json::json!({ "received": event.status }))
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

async fn replay_guard(redis: Option<String>) -> Result<Arc<dyn AsyncReplayGuard>, String> {
    match redis {
        None => Ok(Arc::new(InMemoryReplayGuard::new(100_000))),
        #[cfg(feature = "redis")]
        Some(url) => Ok(Arc::new(
            countersign::redis_guard::RedisReplayGuard::connect(&url)
                .await
                .map_err(|e| e.to_string())?,
        )),
        #[cfg(not(feature = "redis"))]
        Some(_) => Err("--redis needs the redis feature: --features axum,redis".into()),
    }
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port")
        .unwrap_or_else(|| "8080".into())
        .parse()
        .map_err(|_| "--port: a port number")?;
    let public = arg(&args, "--public-url").unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let guard = replay_guard(arg(&args, "--redis")).await?;

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

    let app = Router::new()
        .merge(webhook_router(
            "/webhooks/kamiokash",
            post(on_kamiokash),
            WebhookAuth::new(kamiokash).with_replay_guard(guard.clone()),
        ))
        .merge(webhook_router(
            "/webhooks/kitopay",
            post(on_kitopay),
            WebhookAuth::new(kitopay).with_replay_guard(guard),
        ));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("bind {port}: {e}"))?;
    println!("listening on http://127.0.0.1:{port}; kitopay deliveries verified for {kitopay_url}");
    axum::serve(listener, app).await.map_err(|e| e.to_string())
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
