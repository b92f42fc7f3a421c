//! Shared loaders for the test vectors in `tests/vectors/` (copies of `../shared/vectors`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
pub struct SignatureCase {
    pub name: String,
    pub scheme: String,
    pub secret: String,
    pub merchant_id: Option<String>,
    pub api_key: Option<String>,
    pub timestamp: String,
    pub method: Option<String>,
    pub url: Option<String>,
    pub body: Option<String>,
    pub body_base64: Option<String>,
    pub transaction_id: Option<String>,
    pub string_to_sign: Option<String>,
    pub signature: String,
    pub headers: BTreeMap<String, String>,
}

impl SignatureCase {
    pub fn body_bytes(&self) -> Vec<u8> {
        match (&self.body, &self.body_base64) {
            (Some(b), _) => b.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            (None, None) => Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct StandardWebhooksCase {
    pub name: String,
    pub secret: String,
    pub id: String,
    pub timestamp: String,
    pub body: Option<String>,
    pub body_base64: Option<String>,
    pub signature: String,
    pub valid: bool,
}

impl StandardWebhooksCase {
    pub fn body_bytes(&self) -> Vec<u8> {
        match (&self.body, &self.body_base64) {
            (Some(b), _) => b.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            (None, None) => Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct FreshnessCase {
    pub provider: String,
    pub timestamp: String,
    pub now: String,
    pub expect: String,
}

#[derive(Debug, Deserialize)]
pub struct UrlCase {
    pub url: String,
    pub trailing_slash: String,
    pub canonical: Option<String>,
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct File<T> {
    cases: Vec<T>,
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<File<T>>(&text).unwrap().cases
}

pub fn signatures() -> Vec<SignatureCase> {
    load("signatures.json")
}

pub fn freshness() -> Vec<FreshnessCase> {
    load("freshness.json")
}

pub fn urls() -> Vec<UrlCase> {
    load("urls.json")
}

pub fn standard_webhooks() -> Vec<StandardWebhooksCase> {
    load("standard_webhooks.json")
}
