//! Signed headers as a test sends them: each helper signs with the library's own signer and
//! returns the headers it sets, as owned `(name, value)` pairs (what a test puts on a
//! request, edits to forge one, or hands to [`ReceivedRequest`](countersign::ReceivedRequest)).

use countersign::{
    CanonicalUrl, SecretKey, SignableRequest, SignedRequest, Signer, Timestamp, standard_webhooks,
};

/// The headers of a signed request, owned.
pub fn headers(signed: &SignedRequest<'_>) -> Vec<(String, String)> {
    signed
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A Kitopay request (`kitopay`): `method` to `url` (parsed, so it must be canonical) with
/// `body`, by `merchant`, signed at `at`.
pub fn kitopay(
    merchant: &str,
    secret: &str,
    method: &str,
    url: &str,
    body: impl AsRef<[u8]>,
    at: Timestamp,
) -> Vec<(String, String)> {
    let signer = Signer::kitopay(merchant, key(secret)).unwrap();
    let url = CanonicalUrl::parse(url).unwrap();
    let request = SignableRequest::new(method, &url, body.as_ref()).unwrap();
    headers(&signer.sign(&request, at).unwrap())
}

/// A Kitopay webhook (`kitopay-webhook`): a `POST` of `body` to the merchant's `url`.
pub fn kitopay_webhook(
    merchant: &str,
    secret: &str,
    url: &str,
    body: impl AsRef<[u8]>,
    at: Timestamp,
) -> Vec<(String, String)> {
    let signer = Signer::kitopay_webhook(merchant, key(secret)).unwrap();
    let url = CanonicalUrl::parse(url).unwrap();
    let request = SignableRequest::new("POST", &url, body.as_ref()).unwrap();
    headers(&signer.sign(&request, at).unwrap())
}

/// A KamioKash API request (`kamiokash`) of `body`, with `api_key`.
pub fn kamiokash(
    api_key: &str,
    secret: &str,
    body: impl AsRef<[u8]>,
    at: Timestamp,
) -> Vec<(String, String)> {
    let signer = Signer::kamiokash(api_key, key(secret)).unwrap();
    headers(
        &signer
            .sign(&SignableRequest::body(body.as_ref()), at)
            .unwrap(),
    )
}

/// A KamioKash webhook (`kamiokash-webhook`) of `body`.
pub fn kamiokash_webhook(
    secret: &str,
    body: impl AsRef<[u8]>,
    at: Timestamp,
) -> Vec<(String, String)> {
    let signer = Signer::kamiokash_webhook(key(secret));
    headers(
        &signer
            .sign(&SignableRequest::body(body.as_ref()), at)
            .unwrap(),
    )
}

/// A Standard Webhooks delivery of event `id` with `body`; `secret` is `whsec_` + base64.
pub fn standard_webhooks(
    secret: &str,
    id: &str,
    body: impl AsRef<[u8]>,
    at: Timestamp,
) -> Vec<(String, String)> {
    let signer = Signer::standard_webhooks(standard_webhooks::SCHEME.key(secret).unwrap());
    let request = SignableRequest::body(body.as_ref()).with_value("id", id);
    headers(&signer.sign(&request, at).unwrap())
}

fn key(secret: &str) -> SecretKey {
    SecretKey::new(secret).unwrap()
}
