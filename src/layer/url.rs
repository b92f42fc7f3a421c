//! The URL a request was received at ([`received_url`], [`received_url_at`]): the rule the
//! layer and `countersign serve` share.

use std::borrow::Cow;

use crate::claim::normalized_path;
use crate::error::{Error, ErrorKind, UrlRule, err};
use crate::url::CanonicalUrl;

/// The URL a request was received at: `scheme://` + its authority (the `Host` header, or
/// the authority of an absolute request URI as HTTP/2 sends it) + its path and query as
/// received (under axum's `Router::nest`, the original ones, with feature `axum`).
///
/// The rule [`WebhookAuth::with_url_from_host`](super::WebhookAuth::with_url_from_host)
/// verifies with, for a verifier of your own (a Kitopay request verifier in a handler).
/// Only use it when no proxy between the sender and you changes host, port or path (behind
/// one, see [`received_url_at`]).
///
/// # Errors
///
/// The URL is refused rather than verified as something else:
/// [`ErrorKind::MissingHeader`] or [`ErrorKind::DuplicateHeader`] without exactly one
/// `Host`; [`UrlRule::Host`] unless the authority is a plain `host[:port]` (as `http`
/// parses an authority: no `/ ? # \`, spaces, quotes or braces); [`UrlRule::NotCanonical`]
/// unless the URL is already canonical (no `..` or `%2e` segments, no default port, a
/// lower-case host, no empty `?`); [`UrlRule::Credentials`] for a `user@` authority.
///
/// # Examples
///
/// ```
/// use countersign::layer::received_url;
/// use countersign::{ErrorKind, UrlRule};
///
/// let request = http::Request::post("/api/v1/payins?page=2").header("host", "shop.example.com:8443").body(())?;
/// let (parts, ()) = request.into_parts();
/// assert_eq!(received_url(&parts, "https")?.as_str(), "https://shop.example.com:8443/api/v1/payins?page=2");
///
/// let request = http::Request::post("/api/v1/payouts/../payins").header("host", "shop.example.com").body(())?;
/// let (parts, ()) = request.into_parts();
/// assert_eq!(received_url(&parts, "https").unwrap_err().kind(), &ErrorKind::InvalidUrl(UrlRule::NotCanonical));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn received_url(parts: &http::request::Parts, scheme: &str) -> Result<CanonicalUrl, Error> {
    let uri = original_uri(parts);
    let authority = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => {
            let mut hosts = parts.headers.get_all(http::header::HOST).iter();
            match (hosts.next(), hosts.next()) {
                (Some(host), None) => host
                    .to_str()
                    .map_err(|_| Error::from(ErrorKind::InvalidUrl(UrlRule::Host)))?,
                (None, _) => return err(ErrorKind::MissingHeader("host")),
                (Some(_), Some(_)) => return err(ErrorKind::DuplicateHeader("host")),
            }
        }
    };
    if !is_plain_authority(authority) {
        return err(ErrorKind::InvalidUrl(UrlRule::Host));
    }
    canonical(format!("{scheme}://{authority}{}", target(uri)))
}

/// The URL a request was received at, behind a proxy or tunnel that changes scheme, host
/// or port: `origin`'s scheme and authority (its path and query are not used) + the
/// request's path and query as received (the original ones under axum's `Router::nest`).
/// The `Host` header is not read.
///
/// # Errors
///
/// [`UrlRule::NotCanonical`] unless the URL is already canonical (see [`received_url`]).
///
/// # Examples
///
/// ```
/// use countersign::layer::received_url_at;
/// use countersign::CanonicalUrl;
///
/// let public = CanonicalUrl::parse("https://api.example.com")?;
/// let request = http::Request::post("/v1/refunds?x=1").header("host", "127.0.0.1:8080").body(())?;
/// let (parts, ()) = request.into_parts();
/// assert_eq!(received_url_at(&parts, &public)?.as_str(), "https://api.example.com/v1/refunds?x=1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn received_url_at(
    parts: &http::request::Parts,
    origin: &CanonicalUrl,
) -> Result<CanonicalUrl, Error> {
    canonical(format!(
        "{}{}",
        origin_of(origin),
        target(original_uri(parts))
    ))
}

/// The route a webhook's claim is namespaced by (see [`WebhookAuth::with_route`]): the
/// route you named; else the path of the URL the verifier is configured with (a Kitopay
/// webhook's: the URL signed, so every path that reaches the verifier verifies the same
/// delivery and none may be a route of its own); else the router's matched route (axum's
/// `MatchedPath`, such as `/webhooks/{provider}`, normalised: `webhook_router` mounts both
/// trailing-slash forms, which are one route); else none. Never the path received: behind a
/// fallback or a plain tower service, an attacker chooses it, and each path would be a claim
/// of its own.
///
/// [`WebhookAuth::with_route`]: super::WebhookAuth::with_route
pub(super) fn claim_route<'p>(
    parts: &'p http::request::Parts,
    named: Option<&'p str>,
    configured: Option<&CanonicalUrl>,
) -> Cow<'p, str> {
    if let Some(route) = named {
        return Cow::Borrowed(route);
    }
    if let Some(url) = configured {
        return Cow::Owned(normalized_path(url.path()));
    }
    #[cfg(feature = "axum")]
    if let Some(matched) = parts.extensions.get::<axum::extract::MatchedPath>() {
        return Cow::Owned(normalized_path(matched.as_str()));
    }
    let _ = parts;
    Cow::Borrowed("")
}

/// The request's URI as the client sent it: axum's `OriginalUri` when present (a nested
/// router strips its prefix from `parts.uri`).
fn original_uri(parts: &http::request::Parts) -> &http::Uri {
    #[cfg(feature = "axum")]
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    #[cfg(not(feature = "axum"))]
    let uri = &parts.uri;
    uri
}

/// The path and query as received (`/` when the request line had none).
fn target(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// `scheme://authority` of a canonical URL.
fn origin_of(url: &CanonicalUrl) -> &str {
    let tail = url.path().len() + url.query().map_or(0, |query| query.len() + 1);
    let text = url.as_str();
    text.get(..text.len() - tail).unwrap_or(text)
}

/// `text` as a canonical URL, refused unless it already is one, byte for byte.
fn canonical(text: String) -> Result<CanonicalUrl, Error> {
    let url = CanonicalUrl::parse(&text)?;
    if url.as_str() != text {
        return err(ErrorKind::InvalidUrl(UrlRule::NotCanonical));
    }
    Ok(url)
}

/// `host[:port]`: an authority as `http` parses it, which refuses `/ ? #`, backslashes,
/// spaces and the empty string. (Userinfo, `user@`, parses; the canonical-URL rule against
/// credentials refuses it next.)
fn is_plain_authority(authority: &str) -> bool {
    authority.parse::<http::uri::Authority>().is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parts(target: &str, hosts: &[&str]) -> http::request::Parts {
        let mut request = http::Request::post(target);
        for host in hosts {
            request = request.header("host", *host);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn refusal(target: &str, hosts: &[&str]) -> ErrorKind {
        received_url(&parts(target, hosts), "http")
            .unwrap_err()
            .into_kind()
    }

    #[test]
    fn the_url_is_rebuilt_exactly_as_received() {
        let url = received_url(&parts("/v1/refunds?x=1", &["api.example.com"]), "http");
        assert_eq!(
            url.unwrap().as_str(),
            "http://api.example.com/v1/refunds?x=1"
        );
        // HTTP/2 (or a proxy request): the authority of an absolute URI, not Host.
        let absolute = parts("https://api.example.com/v1/a", &["other.example.com"]);
        assert_eq!(
            received_url(&absolute, "https").unwrap().as_str(),
            "https://api.example.com/v1/a"
        );
    }

    #[test]
    fn a_host_that_is_not_a_plain_authority_is_refused() {
        for host in [
            "api.example.com/v1/refunds?x=1#",
            "api.example.com?x",
            "api.example.com#",
            "api.example.com\\x",
            "api.example.com x",
            "api{.example.com",
            "",
        ] {
            assert_eq!(
                refusal("/v1/a", &[host]),
                ErrorKind::InvalidUrl(UrlRule::Host),
                "{host:?}"
            );
        }
        assert_eq!(
            refusal("/v1/a", &["user@api.example.com"]),
            ErrorKind::InvalidUrl(UrlRule::Credentials)
        );
        assert_eq!(refusal("/v1/a", &[]), ErrorKind::MissingHeader("host"));
        assert_eq!(
            refusal("/v1/a", &["a.example.com", "a.example.com"]),
            ErrorKind::DuplicateHeader("host")
        );
    }

    #[test]
    fn a_url_that_is_not_canonical_is_refused() {
        for (target, host) in [
            ("/v1/payouts/../refunds", "api.example.com"),
            ("/v1/payouts/%2e%2e/refunds", "api.example.com"),
            ("/v1/./refunds", "api.example.com"),
            ("/v1/refunds?", "api.example.com"),
            ("/v1/refunds", "api.example.com:80"),
            ("/v1/refunds", "API.example.com"),
        ] {
            assert_eq!(
                refusal(target, &[host]),
                ErrorKind::InvalidUrl(UrlRule::NotCanonical),
                "{host}{target}"
            );
        }
    }

    #[test]
    fn behind_a_proxy_the_origin_is_configured_and_host_is_not_read() {
        let origin = CanonicalUrl::parse("https://api.example.com:8443/ignored?too").unwrap();
        assert_eq!(origin_of(&origin), "https://api.example.com:8443");
        let url = received_url_at(&parts("/v1/a?b=c", &["127.0.0.1:3000", "x"]), &origin);
        assert_eq!(
            url.unwrap().as_str(),
            "https://api.example.com:8443/v1/a?b=c"
        );
        assert_eq!(
            received_url_at(&parts("/v1/../a", &[]), &origin)
                .unwrap_err()
                .into_kind(),
            ErrorKind::InvalidUrl(UrlRule::NotCanonical)
        );
    }

    #[test]
    fn every_spelling_of_a_path_is_one_route() {
        for spelling in [
            "/webhooks/kamiokash",
            "/webhooks/kamiokash/",
            "//webhooks//kamiokash",
            "/webhooks/./kamiokash",
            "/webhooks/x/../kamiokash",
            "/webhooks/%6Bamiokash",
            "/webhooks/%6bamiokash",
            "/%77ebhooks%2Fkamiokash",
        ] {
            assert_eq!(
                normalized_path(spelling),
                "/webhooks/kamiokash",
                "{spelling}"
            );
        }
        assert_eq!(normalized_path("/"), "/");
        assert_eq!(normalized_path(""), "/");
        assert_eq!(normalized_path("/../.."), "/");
        assert_eq!(
            normalized_path("/a%zz/%4"),
            "/a%zz/%4",
            "invalid escapes kept"
        );
        assert_eq!(normalized_path("/a%C3%A9"), "/a\u{e9}");
        // Lower-case escapes decode alike; every hex digit's value counts.
        assert_eq!(normalized_path("/a%c3%a9"), "/a\u{e9}");
        assert_eq!(normalized_path("/%7e%7E%2d%5f%41%62"), "/~~-_Ab");
        assert_ne!(
            normalized_path("/hooks/orders"),
            normalized_path("/hooks/analytics")
        );
        assert_ne!(
            normalized_path("/hooks/Orders"),
            normalized_path("/hooks/orders")
        );
    }
}
