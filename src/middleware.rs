//! Signing every outgoing reqwest request (feature `reqwest`).
//!
//! [`SigningMiddleware`] is a `reqwest-middleware` middleware: it canonicalises the URL and
//! **sends that canonical URL**, signs the exact body bytes, and sets the provider's headers
//! (the signature header marked sensitive). A request whose body is a stream cannot be read
//! before sending: it is rejected with [`ErrorKind::UnbufferedBody`], never sent unsigned.
//! The timestamp comes from an injected [`Clock`].
//!
//! ```
//! use countersign::middleware::SigningMiddleware;
//! use countersign::{CanonicalUrl, Signer, ReceivedRequest, SecretKey, Verifier};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! // A stand-in for Kitopay on a loopback port, checking what the middleware sent.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = CanonicalUrl::parse(&format!("http://{}/api/v1/merchants/payins/", listener.local_addr()?))?;
//! let verifier = std::sync::Arc::new(Verifier::kitopay_request("merchant-1", SecretKey::new("s3cret")?)?);
//! let expected = url.clone();
//! let check = move |headers: http::HeaderMap, body: axum::body::Bytes| {
//!     let (verifier, expected) = (verifier.clone(), expected.clone());
//!     async move {
//!         let received = ReceivedRequest::new(&headers, &body).with_method("POST").with_url(&expected);
//!         match verifier.verify(&received) {
//!             Ok(verified) => format!("verified with key {}", verified.key_id()),
//!             Err(e) => e.code().to_owned(),
//!         }
//!     }
//! };
//! let app = axum::Router::new().route("/api/v1/merchants/payins/", axum::routing::post(check));
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // The client: every request it sends is signed, over the exact URL and bytes sent.
//! let signer = Signer::kitopay("merchant-1", SecretKey::new("s3cret")?)?; // e.g. from_string(env::var(..)?)
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(SigningMiddleware::new(signer))
//!     .build();
//! let response = client.post(url.as_str()).body(r#"{"reference_id":"tx-123"}"#).send().await?;
//! assert_eq!(response.text().await?, "verified with key primary");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::future::Future;
use core::pin::Pin;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, UrlRule, err};
use crate::signer::{SignableRequest, Signer};
use crate::time::{Clock, SystemClock};
use crate::url::{CanonicalUrl, TrailingSlash};

/// The transaction id for the Kitopay simplified scheme, passed per request as a
/// reqwest-middleware extension (`RequestBuilder::with_extension`).
///
/// # Examples
///
/// ```
/// use countersign::middleware::TransactionId;
///
/// let id = TransactionId("6956d4fc-d7b7-4514-9759-c699fc029b25".to_owned());
/// assert_eq!(id.0.len(), 36);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionId(pub String);

/// The countersign [`Error`] behind a `reqwest_middleware::Error`, when the signing
/// middleware refused to sign (`None` for a transport error from reqwest, or another
/// middleware's error). [`Error::kind`] says why: a streaming body
/// ([`ErrorKind::UnbufferedBody`]), a URL that cannot be canonical, a missing transaction
/// id.
///
/// The middleware returns `reqwest_middleware::Error::Middleware(anyhow::Error)`; this is
/// `inner.downcast_ref::<countersign::Error>()` on it.
///
/// # Examples
///
/// ```
/// use countersign::middleware::{signing_error, SigningMiddleware};
/// use countersign::{ErrorKind, SecretKey, Signer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let signer = Signer::kitopay_simplified("merchant-1", SecretKey::new("s3cret")?)?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(SigningMiddleware::new(signer))
///     .build();
/// // No `.with_extension(TransactionId(..))`: the simplified scheme signs one. Nothing is sent.
/// let error = client.get("https://api.example.com/v1/payins/tx-1").send().await.unwrap_err();
/// let refused = signing_error(&error).expect("refused by the signing middleware");
/// assert_eq!(refused.kind(), &ErrorKind::MissingField("transaction_id"));
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[must_use]
pub fn signing_error(error: &reqwest_middleware::Error) -> Option<&Error> {
    match error {
        reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<Error>(),
        _ => None,
    }
}

/// Signs every request sent through a `reqwest_middleware::ClientWithMiddleware`.
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct SigningMiddleware {
    signer: Arc<Signer>,
    clock: Arc<dyn Clock>,
    trailing_slash: TrailingSlash,
}

impl SigningMiddleware {
    /// Signs with `signer`, the system clock, and [`TrailingSlash::Preserve`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::middleware::SigningMiddleware;
    /// use countersign::{Signer, SecretKey};
    ///
    /// let middleware = SigningMiddleware::new(Signer::kamiokash("pk", SecretKey::new("sk")?)?);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(signer: Signer) -> Self {
        Self::from_arc(Arc::new(signer))
    }

    /// Signs with a shared signer (for example one chosen from configuration).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::middleware::SigningMiddleware;
    /// use countersign::{Signer, SecretKey};
    /// use std::sync::Arc;
    ///
    /// let signer = Arc::new(Signer::kitopay("m", SecretKey::new("s")?)?);
    /// let middleware = SigningMiddleware::from_arc(signer);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn from_arc(signer: Arc<Signer>) -> Self {
        SigningMiddleware {
            signer,
            clock: Arc::new(SystemClock),
            trailing_slash: TrailingSlash::Preserve,
        }
    }

    /// Replaces the clock the timestamp is read from. Defaults to [`SystemClock`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::middleware::SigningMiddleware;
    /// use countersign::{FixedClock, Signer, SecretKey, Timestamp};
    ///
    /// let middleware = SigningMiddleware::new(Signer::kitopay("m", SecretKey::new("s")?)?)
    ///     .with_clock(FixedClock::new(Timestamp::from_unix_secs(1_601_234_567)?));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The trailing-slash policy applied to every URL. Defaults to
    /// [`TrailingSlash::Preserve`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::middleware::SigningMiddleware;
    /// use countersign::{Signer, SecretKey, TrailingSlash};
    ///
    /// let middleware = SigningMiddleware::new(Signer::kitopay("m", SecretKey::new("s")?)?)
    ///     .with_trailing_slash(TrailingSlash::Require);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_trailing_slash(mut self, policy: TrailingSlash) -> Self {
        self.trailing_slash = policy;
        self
    }

    /// Signs `request` in place: canonical URL, provider headers.
    fn sign(
        &self,
        request: &mut reqwest::Request,
        extensions: &http::Extensions,
    ) -> Result<(), Error> {
        let url = CanonicalUrl::parse_with(request.url().as_str(), self.trailing_slash)?;
        let body: &[u8] = match request.body() {
            None => &[],
            Some(body) => match body.as_bytes() {
                Some(bytes) => bytes,
                None => return err(ErrorKind::UnbufferedBody),
            },
        };
        let mut view = SignableRequest::new(request.method().as_str(), &url, body)?;
        if let Some(TransactionId(id)) = extensions.get::<TransactionId>() {
            view = view.with_transaction_id(id);
        }
        let signed = self.signer.sign(&view, self.clock.now())?;
        let headers = crate::http::header_pairs(&signed)?;
        let Ok(wire_url) = reqwest::Url::parse(url.as_str()) else {
            return err(ErrorKind::InvalidUrl(UrlRule::Syntax));
        };
        *request.url_mut() = wire_url;
        for (name, value) in headers {
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

impl core::fmt::Debug for SigningMiddleware {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SigningMiddleware")
            .field("signer", &self.signer)
            .field("trailing_slash", &self.trailing_slash)
            .finish_non_exhaustive()
    }
}

impl reqwest_middleware::Middleware for SigningMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        mut req: reqwest::Request,
        extensions: &'life1 mut http::Extensions,
        next: reqwest_middleware::Next<'life2>,
    ) -> Pin<
        Box<
            dyn Future<Output = reqwest_middleware::Result<reqwest::Response>>
                + Send
                + 'async_trait,
        >,
    >
    where
        Self: 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
    {
        Box::pin(async move {
            if let Err(e) = self.sign(&mut req, extensions) {
                return Err(reqwest_middleware::Error::middleware(e));
            }
            next.run(req, extensions).await
        })
    }
}
