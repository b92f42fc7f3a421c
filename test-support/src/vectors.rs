//! Loaders for the test vector files (`tests/vectors/*.json`, copies of
//! `../shared/vectors`). Each takes the folder, so a package's tests read its own copies
//! (`Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")`), as published.
//! Fields are as the files name them.
#![allow(missing_docs)]

use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

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
    /// The body: `body` as UTF-8, or `body_base64` decoded, or empty.
    pub fn body_bytes(&self) -> Vec<u8> {
        body_bytes(self.body.as_deref(), self.body_base64.as_deref())
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
    /// The body: `body` as UTF-8, or `body_base64` decoded, or empty.
    pub fn body_bytes(&self) -> Vec<u8> {
        body_bytes(self.body.as_deref(), self.body_base64.as_deref())
    }
}

fn body_bytes(body: Option<&str>, body_base64: Option<&str>) -> Vec<u8> {
    match (body, body_base64) {
        (Some(b), _) => b.as_bytes().to_vec(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        (None, None) => Vec::new(),
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

fn load<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Vec<T> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<File<T>>(&text).unwrap().cases
}

/// `signatures.json`: a signature (and headers, string to sign) per scheme and request.
pub fn signatures(dir: &Path) -> Vec<SignatureCase> {
    load(dir, "signatures.json")
}

/// `freshness.json`: a timestamp, the time it is read at, and whether it is fresh.
pub fn freshness(dir: &Path) -> Vec<FreshnessCase> {
    load(dir, "freshness.json")
}

/// `urls.json`: a URL, a trailing-slash policy, and its canonical form or error.
pub fn urls(dir: &Path) -> Vec<UrlCase> {
    load(dir, "urls.json")
}

/// `standard_webhooks.json`: Standard Webhooks cases, valid or not, from the official
/// package.
pub fn standard_webhooks(dir: &Path) -> Vec<StandardWebhooksCase> {
    load(dir, "standard_webhooks.json")
}
