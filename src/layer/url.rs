//! The URL a request was received at, rebuilt from its `Host` header (or absolute URI) and
//! its original path and query.

use crate::error::{Error, ErrorKind, UrlRule, err};
use crate::url::CanonicalUrl;

/// The URL a request arrived at: `scheme://authority` + the original path and query,
/// refused unless it is exactly its own canonical form.
pub(super) fn request_url(
    parts: &http::request::Parts,
    scheme: &str,
) -> Result<CanonicalUrl, Error> {
    #[cfg(feature = "axum")]
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    #[cfg(not(feature = "axum"))]
    let uri = &parts.uri;
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
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let text = format!("{scheme}://{authority}{path}");
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
