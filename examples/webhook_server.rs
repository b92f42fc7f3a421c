//! A webhook receiver for both providers, protected by countersign's tower layer.
//!
//! ```sh
//! KAMIOKASH_WEBHOOK_SECRET=whsec_... KITOPAY_SECRET=dev_sec_... KITOPAY_MERCHANT_ID=dev_pub_... \
//!   cargo run --example webhook_server --features axum -- --port 8080 \
//!   [--public-url https://shop.example.com] [--redis redis://127.0.0.1:6379/]   # --redis needs --features redis
//! ```
//!
//! `POST /webhooks/kamiokash` and `POST /webhooks/kitopay` answer `200 {"received":true}` for
//! a valid delivery, `401` for any rejected one (bad signature, stale, replayed), `413` for a
//! body over 1 MiB. Kitopay deliveries are verified against `<public-url>/webhooks/kitopay`
//! (default `http://127.0.0.1:<port>`), the URL you registered with Kitopay. Replays are
//! refused by an in-memory guard, or by Redis with `--redis` (for several instances).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;

use axum::routing::post;
use axum::{Extension, Json, Router};
use countersign::layer::{VerifiedDelivery, VerifyLayer, WebhookAuth};
use countersign::{AsyncReplayGuard, CanonicalUrl, InMemoryReplayGuard, SecretKey, Verifier};

async fn received(Extension(delivery): Extension<VerifiedDelivery>) -> Json<serde_json::Value> {
    println!(
        "accepted {} delivery (key {})",
        delivery.scheme, delivery.key_id
    );
    Json(serde_json::json!({ "received": true }))
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
        .route(
            "/webhooks/kamiokash",
            post(received).layer(VerifyLayer::new(
                WebhookAuth::new(kamiokash).with_replay_guard(guard.clone()),
            )),
        )
        .route(
            "/webhooks/kitopay",
            post(received).layer(VerifyLayer::new(
                WebhookAuth::new(kitopay).with_replay_guard(guard),
            )),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("bind {port}: {e}"))?;
    println!("listening on http://127.0.0.1:{port}; kitopay deliveries verified for {kitopay_url}");
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
