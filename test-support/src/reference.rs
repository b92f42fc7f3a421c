//! Reference computations for the property tests and the fuzz targets, written the obvious
//! way with other crates, so the library is checked against something it does not share.

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

/// The fields of a message, for [`message`] (each scheme reads the ones it signs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields<'a> {
    /// The merchant id (Kitopay).
    pub identity: &'a str,
    /// The timestamp, as sent.
    pub timestamp: &'a str,
    /// The HTTP method (Kitopay).
    pub method: &'a str,
    /// The URL, as signed (Kitopay full and webhook).
    pub url: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// The transaction id (Kitopay simplified).
    pub transaction_id: &'a str,
    /// The event id (Standard Webhooks).
    pub id: &'a str,
}

/// Each built-in scheme's message, written from the providers' documents (not from the
/// library's layouts, which are checked against it).
pub fn message(scheme: &str, f: &Fields<'_>) -> Vec<u8> {
    let parts: Vec<&[u8]> = match scheme {
        "kitopay" | "kitopay-webhook" => vec![
            f.identity.as_bytes(),
            f.timestamp.as_bytes(),
            f.method.as_bytes(),
            f.url.as_bytes(),
            f.body,
        ],
        "kitopay-simplified" => vec![
            f.identity.as_bytes(),
            f.timestamp.as_bytes(),
            f.method.as_bytes(),
            f.transaction_id.as_bytes(),
        ],
        "kamiokash" => vec![f.body, b":", f.timestamp.as_bytes()],
        "kamiokash-webhook" => vec![f.timestamp.as_bytes(), f.body],
        "standard-webhooks" => vec![f.id.as_bytes(), b".", f.timestamp.as_bytes(), b".", f.body],
        other => panic!("no reference layout for {other}"),
    };
    parts.concat()
}

/// The key bytes of a secret's text: UTF-8 bytes, or (Standard Webhooks) the base64 after
/// `whsec_`.
pub fn key_bytes(scheme: &str, secret: &str) -> Vec<u8> {
    use base64::Engine as _;
    match scheme {
        "standard-webhooks" => base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
            .unwrap(),
        _ => secret.as_bytes().to_vec(),
    }
}

/// A secret's text for `key`: the key as UTF-8 text, or `whsec_` + base64.
pub fn secret_text(scheme: &str, key: &[u8]) -> Option<String> {
    use base64::Engine as _;
    match scheme {
        "standard-webhooks" => Some(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )),
        _ => String::from_utf8(key.to_vec()).ok(),
    }
}

/// A Standard Webhooks signature entry, `v1,` + base64 of the HMAC of `message` keyed with
/// `secret` (`whsec_` + base64).
pub fn standard_webhooks_entry(secret: &str, message: &[u8]) -> String {
    let scheme = "standard-webhooks";
    signature_value(scheme, &hmac_hex(&key_bytes(scheme, secret), message))
}

/// The signature header's value for the MAC `hex` (64 hex digits): hex, or `v1,` + base64.
pub fn signature_value(scheme: &str, hex: &str) -> String {
    use base64::Engine as _;
    match scheme {
        "standard-webhooks" => {
            let bytes: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        }
        _ => hex.to_owned(),
    }
}
