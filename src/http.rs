//! Sign and verify [`http::Request`]s (feature `http`, on by default).
//!
//! Signing rewrites the request's URI to the canonical URL (so the URL sent is the URL
//! signed), inserts the provider's headers and marks the signature header sensitive (so
//! `http`'s `Debug` and well-behaved loggers hide it). The body must be bytes in memory
//! (`B: AsRef<[u8]>`); for streamed bodies use the signers' `begin` methods.

use http::header::{HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind, UrlRule, err};
use crate::headers::{DuplicateHeader, HeaderLookup};
use crate::signature::Signature;
use crate::signer::{SignableRequest, Signer};
use crate::time::Timestamp;
use crate::url::{CanonicalUrl, TrailingSlash};
use crate::verify::{ReceivedRequest, Verified, Verifier};

impl HeaderLookup for http::HeaderMap {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        // A request's dozen headers: scan the values for the name (most keys differ in
        // length), cheaper than parsing `name` into a `HeaderName` (validated, lower-cased,
        // matched against the standard names) and hashing it, as `get_all(&str)` does on
        // every call: 300 of the 3,300 instructions of a Standard Webhooks verification
        // outside SHA-256, per header. Every value is visited, so a second value of the
        // name is found wherever it is. Larger maps parse and hash.
        if self.len() <= SCAN {
            let mut found = None;
            for (key, value) in self {
                if key.as_str().eq_ignore_ascii_case(name) {
                    if found.is_some() {
                        return Err(DuplicateHeader);
                    }
                    found = Some(value.as_bytes());
                }
            }
            return Ok(found);
        }
        let mut values = self.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(Some(value.as_bytes())),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(DuplicateHeader),
        }
    }
}

/// Up to this many header values, a lookup scans them instead of using the map's index.
const SCAN: usize = 16;

/// The signed request's headers as `http` types, the signature header marked sensitive.
pub(crate) fn header_pairs(
    signed: &crate::signer::SignedRequest<'_>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
    let signature_header = signed.scheme().signature_header();
    let mut headers = Vec::with_capacity(3);
    for (name, value) in signed.headers() {
        let (Ok(header), Ok(mut value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return err(ErrorKind::InvalidHeaderValue(name));
        };
        value.set_sensitive(name == signature_header);
        headers.push((header, value));
    }
    Ok(headers)
}

/// Options for [`sign_request_with`].
///
/// # Examples
///
/// ```
/// use countersign::http::SignOptions;
/// use countersign::TrailingSlash;
///
/// let options = SignOptions { trailing_slash: TrailingSlash::Strip, ..SignOptions::default() };
/// assert_eq!(options.transaction_id, None);
/// assert!(options.values.is_empty());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SignOptions<'a> {
    /// The trailing-slash policy applied to the URI. Defaults to [`TrailingSlash::Preserve`].
    pub trailing_slash: TrailingSlash,
    /// The transaction id, for the Kitopay simplified scheme (the same as the value
    /// `transaction_id` in `values`). Defaults to none.
    pub transaction_id: Option<&'a str>,
    /// Named values the scheme signs, `(name, value)` (Standard Webhooks: `("id", …)`; see
    /// [`SignableRequest::with_value`]). Defaults to none.
    pub values: &'a [(&'a str, &'a str)],
}

/// Signs `request` in place with default [`SignOptions`]; returns the signature.
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`] when the URI is not an absolute http(s) URL, and whatever the
/// signer reports.
///
/// # Examples
///
/// ```
/// use countersign::{SecretKey, Signer, Timestamp};
///
/// let signer = Signer::kitopay("merchant-1", SecretKey::new("s3cret")?)?;
/// let mut request = http::Request::post("https://API.example.com:443/v1/payins/")
///     .body(br#"{"amount":1}"#.to_vec())
///     .map_err(|_| countersign::ErrorKind::InvalidMethod)?;
/// countersign::http::sign_request(&signer, &mut request, Timestamp::from_unix_secs(1_601_234_567)?)?;
/// assert_eq!(request.uri(), "https://api.example.com/v1/payins/");
/// assert!(request.headers()["x-signature"].is_sensitive());
/// # Ok::<(), countersign::Error>(())
/// ```
pub fn sign_request<B>(
    signer: &Signer,
    request: &mut http::Request<B>,
    at: Timestamp,
) -> Result<Signature, Error>
where
    B: AsRef<[u8]>,
{
    sign_request_with(signer, request, at, SignOptions::default())
}

/// Signs `request` in place; returns the signature.
///
/// # Errors
///
/// As [`sign_request`].
///
/// # Examples
///
/// ```
/// use countersign::http::{sign_request_with, SignOptions};
/// use countersign::{SecretKey, Signer, Timestamp};
///
/// let signer = Signer::kitopay_simplified("merchant-1", SecretKey::new("s3cret")?)?;
/// let mut request = http::Request::get("https://api.example.com/v1/payins/tx-1")
///     .body(Vec::new())
///     .map_err(|_| countersign::ErrorKind::InvalidMethod)?;
/// let options = SignOptions { transaction_id: Some("tx-1"), ..SignOptions::default() };
/// sign_request_with(&signer, &mut request, Timestamp::from_unix_secs(1_601_234_567)?, options)?;
/// assert!(request.headers().contains_key("x-simplified-signature"));
/// # Ok::<(), countersign::Error>(())
/// ```
pub fn sign_request_with<B>(
    signer: &Signer,
    request: &mut http::Request<B>,
    at: Timestamp,
    options: SignOptions<'_>,
) -> Result<Signature, Error>
where
    B: AsRef<[u8]>,
{
    let url = CanonicalUrl::parse_with(&request.uri().to_string(), options.trailing_slash)?;
    let uri: http::Uri = match url.as_str().parse() {
        Ok(uri) => uri,
        Err(_) => return err(ErrorKind::InvalidUrl(UrlRule::Syntax)),
    };
    let mut view = SignableRequest::new(request.method().as_str(), &url, request.body().as_ref())?;
    if let Some(id) = options.transaction_id {
        view = view.with_transaction_id(id);
    }
    for &(name, value) in options.values {
        view = view.with_value(name, value);
    }
    let signed = signer.sign(&view, at)?;
    let headers = header_pairs(&signed)?;
    let signature = *signed.signature();
    *request.uri_mut() = uri;
    for (name, value) in headers {
        request.headers_mut().insert(name, value);
    }
    Ok(signature)
}

/// Verifies an `http::Request`: its headers, its body bytes, its method, and its URI when
/// the verifier has no configured URL (Kitopay requests; the URI must then be absolute).
///
/// The URI is verified exactly as it is: one that is not already in canonical form
/// (`/a/../b`, `/a/%2e%2e/b`, a default port, an upper-case host, an empty `?`) is refused
/// with [`UrlRule::NotCanonical`] rather than canonicalised, because a router dispatches the
/// URI it received, not the canonical one.
///
/// # Errors
///
/// As [`Verifier::verify`], and [`ErrorKind::InvalidUrl`] for a URI that is not canonical.
///
/// # Examples
///
/// ```
/// use countersign::{FixedClock, Signer, SecretKey, Timestamp, Verifier};
///
/// let at = Timestamp::from_unix_secs(1_601_234_567)?;
/// let signer = Signer::kitopay("merchant-1", SecretKey::new("s3cret")?)?;
/// let mut request = http::Request::post("https://api.example.com/v1/payins")
///     .body(b"{}".to_vec())
///     .map_err(|_| countersign::ErrorKind::InvalidMethod)?;
/// countersign::http::sign_request(&signer, &mut request, at)?;
///
/// let verifier = Verifier::kitopay_request("merchant-1", SecretKey::new("s3cret")?)?
///     .with_clock(FixedClock::new(at));
/// assert!(countersign::http::verify_request(&verifier, &request).is_ok());
/// # Ok::<(), countersign::Error>(())
/// ```
pub fn verify_request<B: AsRef<[u8]>>(
    verifier: &Verifier,
    request: &http::Request<B>,
) -> Result<Verified, Error> {
    let mut received = ReceivedRequest::new(request.headers(), request.body().as_ref())
        .with_method(request.method().as_str());
    let url;
    if request.uri().scheme().is_some() {
        let text = request.uri().to_string();
        url = CanonicalUrl::parse(&text)?;
        if url.as_str() != text {
            return err(ErrorKind::InvalidUrl(UrlRule::NotCanonical));
        }
        received = received.with_url(&url);
    }
    verifier.verify(&received)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A map of `len` header values: `x-filler-<i>`, plus the ones given.
    fn map(len: usize, extra: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in extra {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        for i in 0..len.saturating_sub(extra.len()) {
            map.append(
                HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
                "f".parse().unwrap(),
            );
        }
        assert_eq!(map.len(), len.max(extra.len()));
        map
    }

    #[test]
    fn the_scan_and_the_index_agree_on_either_side_of_the_threshold() {
        for len in [SCAN - 1, SCAN, SCAN + 1] {
            let one = map(len, &[("x-timestamp", "1")]);
            assert_eq!(one.header("X-Timestamp"), Ok(Some(&b"1"[..])), "{len}");
            assert_eq!(one.header("x-timestamp"), Ok(Some(&b"1"[..])), "{len}");
            assert_eq!(one.header("x-signature"), Ok(None), "{len}");
            assert_eq!(one.header("x-timestam"), Ok(None), "{len}");
            assert_eq!(one.header("x-timestamp "), Ok(None), "{len}");
            assert_eq!(one.header("x-timest\u{e4}mp"), Ok(None), "{len}");
            let twice = map(len, &[("x-timestamp", "1"), ("x-timestamp", "2")]);
            assert_eq!(twice.header("X-TIMESTAMP"), Err(DuplicateHeader), "{len}");
            assert_eq!(twice.header("x-filler-0"), Ok(Some(&b"f"[..])), "{len}");
        }
    }

    #[test]
    fn many_values_of_few_names_and_odd_names_get_the_same_answer_on_both_paths() {
        // Attacks of the review: the threshold counts values, not names, so one header sent
        // many times takes the index path; each answer must be what the scan gives.
        for copies in [2, SCAN, SCAN + 1, 64] {
            let mut many = http::HeaderMap::new();
            many.insert("x-timestamp", "1".parse().unwrap());
            for i in 0..copies {
                many.append("x-filler", format!("{i}").parse().unwrap());
            }
            assert_eq!(many.header("X-Timestamp"), Ok(Some(&b"1"[..])), "{copies}");
            assert_eq!(many.header("X-FILLER"), Err(DuplicateHeader), "{copies}");
            for odd in [
                "x timestamp",
                "x-timestamp\0",
                "",
                ":authority",
                "X-Timestamp\r\n",
            ] {
                assert_eq!(many.header(odd), Ok(None), "{copies} {odd:?}");
            }
        }
    }
}
