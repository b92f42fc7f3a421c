//! The documented axum set-up ([`webhook_router`]): the layer on the method route, at both
//! trailing-slash forms of the path.

use axum::Router;
use axum::routing::MethodRouter;

use super::auth::WebhookAuth;
use super::service::VerifyLayer;

/// An axum router that serves `route` (your handler, e.g. `post(handler)`) behind a
/// [`VerifyLayer`] at `path` **and** at its other trailing-slash form: the set-up the README
/// documents. Merge it into your app.
///
/// - The layer is put on the method route ([`MethodRouter::route_layer`]): a request with a
///   method the route does not serve is answered `405 Method Not Allowed` (with `Allow`)
///   without being verified. (`post(handler).layer(layer)` wraps the `405` too: a `GET`
///   was answered `401`, refused for a missing header.)
/// - axum routes `/webhooks/kitopay` and `/webhooks/kitopay/` separately: a provider
///   posting to the other form got a `404` with an empty body, and nothing was logged.
///   Here both reach the verifier. Where the scheme signs the URL against a configured
///   public URL (Kitopay webhooks), the other form is refused, since the signature covers
///   a URL that is not the one configured, and the refusal event names the mistake:
///   `hypothesis="trailing_slash_added"` (the sender's URL has a trailing slash ours lacks)
///   or `"trailing_slash_removed"`. Schemes that do not sign the URL verify both forms.
///
/// A path ending in a catch-all (`/{*rest}`), or `/`, is mounted once.
///
/// # Examples
///
/// ```
/// use axum::{routing::post, Router};
/// use countersign::layer::{webhook_router, WebhookAuth};
/// use countersign::{CanonicalUrl, SecretKey, Verifier};
/// use tower::ServiceExt;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let kitopay = WebhookAuth::new(Verifier::kitopay_webhook(
///     "merchant-1",
///     SecretKey::new("s3cret")?,
///     CanonicalUrl::parse("https://shop.example.com/webhooks/kitopay")?, // as registered
/// )?);
/// let app: Router = Router::new()
///     .merge(webhook_router("/webhooks/kitopay", post(|| async { "processed" }), kitopay));
///
/// // A wrong method is 405, not a refusal; the other slash form reaches the verifier (401).
/// for (method, path, status) in [("GET", "/webhooks/kitopay", 405), ("POST", "/webhooks/kitopay/", 401)] {
///     let request = http::Request::builder().method(method).uri(path).body(axum::body::Body::empty())?;
///     assert_eq!(app.clone().oneshot(request).await?.status(), status);
/// }
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
pub fn webhook_router<S>(path: &str, route: MethodRouter<S>, auth: WebhookAuth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let route = route.route_layer(VerifyLayer::new(auth));
    let router = Router::new().route(path, route.clone());
    match other_slash_form(path) {
        Some(other) => router.route(&other, route),
        None => router,
    }
}

/// `/a` for `/a/` (and `/a//`) and `/a/` for `/a`; none for `/` or a catch-all.
fn other_slash_form(path: &str) -> Option<String> {
    if path.contains("{*") {
        return None;
    }
    match path.trim_end_matches('/') {
        "" => None,
        trimmed if trimmed.len() < path.len() => Some(trimmed.to_owned()),
        _ => Some(format!("{path}/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_slash_form() {
        for (path, other) in [
            ("/webhooks/kitopay", Some("/webhooks/kitopay/")),
            ("/webhooks/kitopay/", Some("/webhooks/kitopay")),
            ("/a//", Some("/a")),
            ("/hooks/{provider}", Some("/hooks/{provider}/")),
            ("/", None),
            ("/files/{*rest}", None),
        ] {
            assert_eq!(other_slash_form(path).as_deref(), other, "{path}");
        }
    }
}
