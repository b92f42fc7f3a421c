//! Reference computations for the property tests and the fuzz targets, written the obvious
//! way with other crates, so the library is checked against something it does not share.
#![allow(dead_code, clippy::unwrap_used)]

use countersign::TrailingSlash;
use hmac::{Hmac, KeyInit, Mac};

/// HMAC-SHA256 with the RustCrypto crates, as lowercase hex.
pub fn hmac_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the canonical form of `input` must be, from the `url` crate: its serialisation
/// without fragment and empty query, with the trailing-slash policy applied to the path.
/// `None` when it must be rejected (not an absolute http(s) URL without credentials).
pub fn canonical_url(input: &str, policy: TrailingSlash) -> Option<String> {
    let mut url = url::Url::parse(input).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    url.set_fragment(None);
    if url.query() == Some("") {
        url.set_query(None);
    }
    let start = url[..url::Position::BeforePath].len();
    let end = url[..url::Position::AfterPath].len();
    let mut text = String::from(url);
    let path = &text[start..end];
    match policy {
        TrailingSlash::Preserve => {}
        TrailingSlash::Strip => {
            let kept = path.trim_end_matches('/').len().max(1);
            text.replace_range(start + kept..end, "");
        }
        TrailingSlash::Require => {
            if !path.ends_with('/') {
                text.insert(end, '/');
            }
        }
    }
    Some(text)
}
