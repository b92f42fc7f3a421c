//! Sends one signed Kitopay request through the reqwest middleware.
//!
//! ```sh
//! KITOPAY_SECRET=dev_sec_... KITOPAY_MERCHANT_ID=dev_pub_... \
//!   cargo run --example signed_client --features reqwest -- http://127.0.0.1:8080/webhooks/kitopay ['{"id":"..."}']
//! ```
//!
//! The middleware canonicalises the URL, signs the exact body bytes with the current time
//! and sets `x-merchant-id`, `x-timestamp`, `x-signature`. (This example's reqwest is built
//! without TLS; enable a reqwest TLS feature in your own project for https.)
#![allow(clippy::print_stdout, clippy::print_stderr)]

use countersign::middleware::SigningMiddleware;
use countersign::{SecretKey, Signer};

async fn run() -> Result<(), String> {
    // RUST_LOG=debug shows the HTTP client's own events on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: signed_client URL [BODY]")?;
    let body = args.next().unwrap_or_else(|| {
        r#"{"id":"6956d4fc-d7b7-4514-9759-c699fc029b25","reference_id":"id-in-merchant-system-485","status":"new"}"#.into()
    });
    let secret = std::env::var("KITOPAY_SECRET").map_err(|_| "set KITOPAY_SECRET")?;
    let merchant = std::env::var("KITOPAY_MERCHANT_ID").map_err(|_| "set KITOPAY_MERCHANT_ID")?;
    let signer = Signer::kitopay(
        &merchant,
        SecretKey::from_string(secret).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SigningMiddleware::new(signer))
        .build();
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    println!("{status} {text}");
    Ok(())
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
