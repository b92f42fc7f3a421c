//! `countersign serve`: a local stand-in for a provider's signature check.
//!
//! Every request is verified as the provider would verify it (the library's verifier, the
//! system clock, the scheme's window: 60 s, 5 minutes for Standard Webhooks) and answered `200 {"valid": true, ...}` or `401`
//! with the reason and a diagnosis: which known mistake explains the signature, and the
//! message expected beside the message signed. One line per request goes to stderr.
//!
//! The diagnosis is a signature oracle (see `countersign::diagnose`): the server listens on
//! 127.0.0.1 only, and is a development tool, never a production endpoint.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use countersign::diagnose::Inputs;
use countersign::layer::{BodyLimit, received_url, received_url_at};
use countersign::{
    CanonicalUrl, Error, ErrorKind, ReceivedRequest, Scheme, UrlRule, Verifier, kamiokash, kitopay,
    standard_webhooks,
};
use serde_json::{Value, json};

use crate::args::{ServeArgs, ServeCommon, ServeProvider};
use crate::findings::{self, Search};
use crate::inputs::{self, Secret, Usage};
use crate::render;

/// A diagnosis of a body larger than this takes a turn ([`Sandbox::diagnoses`]): it costs up
/// to the library's work bound. Below it the search is cheap (about a thousand MACs of a
/// small message, at most).
const LARGE_BODY: usize = 64 << 10;
/// After Ctrl-C, open connections get this long to finish before the server exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The header whose presence selects Kitopay's simplified scheme.
const SIMPLIFIED_SIGNATURE: &str = "x-simplified-signature";

pub(crate) fn run(a: &ServeArgs) -> Result<ExitCode, Usage> {
    let (sandbox, common) = Sandbox::from_args(&a.provider)?;
    // Requests are served concurrently: connections on the async threads, verification
    // and diagnosis on blocking threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(sandbox, common.port))
}

async fn serve(sandbox: Sandbox, port: u16) -> Result<ExitCode, Usage> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        Usage(format!(
            "cannot listen on {address}: {e}; pick another --port (0 picks a free one)"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Usage(format!("cannot read the address listened on: {e}")))?;
    // Registered before the address is printed: a Ctrl-C from then on stops the server
    // cleanly instead of killing the process.
    let stop = interrupt()?;
    eprintln!("{}", sandbox.banner());
    println!("listening on http://{bound}");
    let _ = std::io::stdout().flush();

    let app = Router::new().fallback(handle).with_state(Arc::new(sandbox));
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    stop.await;
    eprintln!("stopping (Ctrl-C)");
    let _ = stopping.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("warning: the server stopped with an error: {e}"),
        Ok(Err(e)) => eprintln!("warning: the server task failed: {e}"),
        Err(_) => {
            eprintln!("warning: connections still open after {SHUTDOWN_GRACE:?}; closing them")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves at the first SIGINT (Ctrl-C). The handler is installed when this is called,
/// not when the future is first polled.
fn interrupt() -> Result<impl Future<Output = ()>, Usage> {
    #[cfg(unix)]
    {
        let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| Usage(format!("cannot handle Ctrl-C: {e}")))?;
        Ok(async move {
            signal.recv().await;
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// The provider's checks, and the secrets (the diagnosis needs their text).
struct Sandbox {
    provider: Provider,
    secrets: Vec<Secret>,
    /// The body rule of the library's layer: 1 MiB (`413` beyond), within 10 s (`408`).
    body: BodyLimit,
    /// Diagnoses of bodies over [`LARGE_BODY`] running at once: one per core. Each is
    /// bounded (the library's `WORK_LIMIT` bytes MACed per key); more at once would only
    /// share the same cores, and hold more memory.
    diagnoses: tokio::sync::Semaphore,
}

// One value per process: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Provider {
    Kitopay {
        merchant_id: String,
        /// `--public-url`: the scheme and authority that replace the local ones.
        public: Option<CanonicalUrl>,
        full: Verifier,
        simplified: Verifier,
    },
    /// A scheme that needs nothing from the request line: its headers and body say it all
    /// (KamioKash requests, Standard Webhooks deliveries).
    Headers { verifier: Verifier },
}

impl Sandbox {
    fn new(provider: Provider, secrets: Vec<Secret>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Sandbox {
            provider,
            secrets,
            body: BodyLimit::default(),
            diagnoses: tokio::sync::Semaphore::new(cores),
        }
    }

    fn from_args(provider: &ServeProvider) -> Result<(Self, &ServeCommon), Usage> {
        match provider {
            ServeProvider::Kitopay {
                merchant_id,
                public_url,
                common,
            } => {
                let secrets = secrets(common, &kitopay::FULL)?;
                let merchant = |e: Error| Usage(format!("--merchant-id: {e}"));
                let full = Verifier::kitopay_request(
                    merchant_id,
                    inputs::key_ring(&secrets, &kitopay::FULL)?,
                )
                .map_err(merchant)?;
                let simplified = Verifier::kitopay_simplified(
                    merchant_id,
                    inputs::key_ring(&secrets, &kitopay::SIMPLIFIED)?,
                )
                .map_err(merchant)?;
                let public = public_url.as_deref().map(public_origin).transpose()?;
                let provider = Provider::Kitopay {
                    merchant_id: merchant_id.clone(),
                    public,
                    full,
                    simplified,
                };
                Ok((Sandbox::new(provider, secrets), common))
            }
            ServeProvider::Kamiokash { api_key, common } => {
                let scheme = &kamiokash::REQUEST;
                let secrets = secrets(common, scheme)?;
                let verifier = Verifier::new(scheme, inputs::key_ring(&secrets, scheme)?)?;
                let verifier = match api_key {
                    Some(key) => verifier
                        .with_api_key(key)
                        .map_err(|e| Usage(format!("--api-key: {e}")))?,
                    None => verifier,
                };
                let provider = Provider::Headers { verifier };
                Ok((Sandbox::new(provider, secrets), common))
            }
            ServeProvider::StandardWebhooks { common } => {
                let scheme = &standard_webhooks::SCHEME;
                let secrets = secrets(common, scheme)?;
                let verifier = Verifier::new(scheme, inputs::key_ring(&secrets, scheme)?)?;
                let provider = Provider::Headers { verifier };
                Ok((Sandbox::new(provider, secrets), common))
            }
        }
    }

    /// What is checked, on one line (never a secret: keys are named by where they come from).
    fn banner(&self) -> String {
        let keys: Vec<&str> = self.secrets.iter().map(|s| s.id.as_str()).collect();
        let keys = keys.join(", ");
        match &self.provider {
            Provider::Kitopay {
                merchant_id,
                public,
                ..
            } => {
                let base = public.as_ref().map_or("http://<Host header>", |url| {
                    url.as_str().trim_end_matches('/')
                });
                format!(
                    "countersign serve: checking kitopay requests from merchant {merchant_id} as signed for {base}<path as received> (kitopay-simplified when x-simplified-signature is present), key {keys}; Ctrl-C stops"
                )
            }
            Provider::Headers { verifier } => {
                let scheme = verifier.scheme();
                let what = if scheme.is_webhook() {
                    "deliveries"
                } else {
                    "requests"
                };
                format!("countersign serve: checking {scheme} {what}, key {keys}; Ctrl-C stops")
            }
        }
    }

    /// The verdict on one request whose body was read in full. Without `refusal`, it is
    /// verified, and a refusal worth a diagnosis is returned as [`Checked::Refused`]; with
    /// the refusal that verification gave, the mistake is searched for.
    fn check(&self, parts: &Parts, body: &[u8], refusal: Option<Error>) -> Checked {
        let headers = &parts.headers;
        let method = parts.method.as_str();
        match &self.provider {
            Provider::Headers { verifier } => {
                let scheme = verifier.scheme();
                let received = ReceivedRequest::new(headers, body).with_method(method);
                // Values the scheme reads from headers (Standard Webhooks' webhook-id).
                let values: Vec<(&str, &str)> = scheme
                    .values()
                    .filter_map(|value| {
                        let name = value.header_name()?;
                        Some((value.name(), header_text(&received, name)?))
                    })
                    .collect();
                self.conclude(verifier, &received, refusal, |timestamp, signature| {
                    Inputs {
                        timestamp,
                        method,
                        body,
                        values: &values,
                        signature,
                        ..Inputs::new(scheme)
                    }
                })
            }
            Provider::Kitopay {
                merchant_id,
                simplified,
                ..
            } if headers.contains_key(SIMPLIFIED_SIGNATURE) => {
                let transaction_id = last_segment(parts.uri.path());
                let received = ReceivedRequest::new(headers, body)
                    .with_method(method)
                    .with_transaction_id(transaction_id);
                let scheme = &kitopay::SIMPLIFIED;
                let values = [("transaction_id", transaction_id)];
                self.conclude(simplified, &received, refusal, |timestamp, signature| {
                    Inputs {
                        identity: merchant_id,
                        timestamp,
                        method,
                        body,
                        values: &values,
                        signature,
                        ..Inputs::new(scheme)
                    }
                })
            }
            Provider::Kitopay {
                merchant_id,
                public,
                full,
                ..
            } => {
                let url = match url_received(parts, public.as_ref()) {
                    Ok(url) => url,
                    Err(verdict) => return Checked::Done(*verdict),
                };
                let received = ReceivedRequest::new(headers, body)
                    .with_method(method)
                    .with_url(&url);
                let scheme = &kitopay::FULL;
                self.conclude(full, &received, refusal, |timestamp, signature| Inputs {
                    identity: merchant_id,
                    timestamp,
                    method,
                    url: Some(&url),
                    body,
                    signature,
                    ..Inputs::new(scheme)
                })
            }
        }
    }

    /// Verifies (unless `refusal` says how that went); when refused, and given the
    /// refusal, searches for the mistake over the request as received (`inputs` gets the
    /// timestamp and signature headers' text).
    fn conclude<'a>(
        &self,
        verifier: &Verifier,
        received: &ReceivedRequest<'a>,
        refusal: Option<Error>,
        inputs: impl FnOnce(&'a str, &'a str) -> Inputs<'a>,
    ) -> Checked {
        let scheme = verifier.scheme();
        // Accepted is not the same as what the provider sends or takes: say so either way.
        let warning = scheme
            .timestamp_header()
            .and_then(|name| header_text(received, name))
            .and_then(|text| findings::timestamp_warning(scheme, text));
        let done = |verdict: Verdict| Checked::Done(verdict.warned(warning.as_deref()));
        let searched = refusal.is_some();
        let refusal = match refusal {
            Some(refusal) => refusal,
            None => match verifier.verify(received) {
                Ok(verified) => return done(Verdict::valid(scheme, verified.key_id())),
                Err(e) => e,
            },
        };
        let timestamp = match scheme.timestamp_header() {
            Some(name) => header_text(received, name),
            None => Some(""),
        };
        let (Some(timestamp), Some(signature)) =
            (timestamp, header_text(received, scheme.signature_header()))
        else {
            // Nothing to search without both headers; the reason says which is missing.
            return done(Verdict::refused(scheme, &refusal, None));
        };
        if !searched {
            return Checked::Refused(scheme, refusal);
        }
        let search = match findings::search(
            &self.secrets,
            &inputs(timestamp, signature),
            findings::Fix::PublicUrl,
        ) {
            Ok(search) => search,
            Err(e) => Search::Impossible(e),
        };
        let summary = findings::summary(&refusal, &search, &only_refused(&refusal, scheme));
        // The log says the refusal itself unless the summary already does.
        let said = match &search {
            Search::Matches(_) => summary.clone(),
            _ if refusal.kind() == &ErrorKind::SignatureMismatch => summary.clone(),
            _ => format!("{refusal}; {summary}"),
        };
        done(Verdict::refused(
            scheme,
            &refusal,
            Some((diagnosis(&search, summary), said)),
        ))
    }
}

/// How far [`Sandbox::check`] went.
enum Checked {
    /// The verdict.
    Done(Verdict),
    /// Refused by this scheme's verifier for this reason; the diagnosis is still to be made.
    Refused(&'static Scheme, Error),
}

fn secrets(common: &ServeCommon, scheme: &Scheme) -> Result<Vec<Secret>, Usage> {
    Secret::many_of(
        &common.secret_env,
        &common.secret_file,
        scheme.secret().name(),
    )
}

/// `--public-url`: a scheme and authority only.
fn public_origin(raw: &str) -> Result<CanonicalUrl, Usage> {
    let url = CanonicalUrl::parse(raw).map_err(|e| Usage(format!("--public-url: {e}")))?;
    if url.path() != "/" || url.query().is_some() {
        return Err(Usage(format!(
            "--public-url: give only the scheme and host (e.g. https://api.dev.kitopay.com), not a path or query: each request's own path and query are appended (got {url})"
        )));
    }
    Ok(url)
}

/// The last segment of the path: the transaction id of the simplified scheme
/// (`/api/v1/payins/tx-123` → `tx-123`), as received.
fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

/// A header's value as text, if it is present exactly once and UTF-8.
fn header_text<'a>(received: &ReceivedRequest<'a>, name: &str) -> Option<&'a str> {
    received
        .header(name)
        .ok()
        .flatten()
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// The URL the client signed for, by the library's rule for a received URL (the layer's):
/// the public origin (or `http://` + the request's authority, a plain `host[:port]`) and the
/// path and query exactly as received, refused unless already canonical.
fn url_received(
    parts: &Parts,
    public: Option<&CanonicalUrl>,
) -> Result<CanonicalUrl, Box<Verdict>> {
    let scheme = &kitopay::FULL;
    let received = match public {
        Some(origin) => received_url_at(parts, origin),
        None => received_url(parts, "http"),
    };
    let refusal = match received {
        Ok(url) => return Ok(url),
        Err(refusal) => refusal,
    };
    let text = arrived(parts, public);
    let canonical = match CanonicalUrl::parse(&text) {
        Ok(url) if refusal.kind() == &ErrorKind::InvalidUrl(UrlRule::NotCanonical) => url,
        _ => return Err(Box::new(Verdict::refused(scheme, &refusal, None))),
    };
    let summary = format!(
        "the URL arrived as {text}, whose canonical form is {canonical}: send the canonical URL, exactly as signed"
    );
    let found = json!({
        "hypothesis": null,
        "description": summary,
        "signature_matches": null,
        "received_url": render::escape(text.as_bytes()),
        "canonical_url": canonical.as_str(),
    });
    Err(Box::new(Verdict::refused(
        scheme,
        &refusal,
        Some((found, summary)),
    )))
}

/// The URL as it arrived, to describe a refusal: the origin (public, or `http://` and the
/// request's authority) and the path and query as received.
fn arrived(parts: &Parts, public: Option<&CanonicalUrl>) -> String {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match public {
        Some(origin) => format!("{}{target}", origin.as_str().trim_end_matches('/')),
        None => {
            let host = parts
                .uri
                .authority()
                .map(|authority| authority.as_str())
                .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
                .unwrap_or_default();
            format!("http://{host}{target}")
        }
    }
}

/// When the signature matches the message as received: what alone is refused. A refused
/// timestamp is said exactly (stale, in the future, milliseconds) with the fix.
fn only_refused(refusal: &Error, scheme: &Scheme) -> String {
    match refusal.kind() {
        ErrorKind::MalformedTimestamp { .. }
        | ErrorKind::Expired { .. }
        | ErrorKind::Future { .. } => {
            format!("only the timestamp is refused: {refusal}")
        }
        _ => findings::only_refused(refusal, scheme),
    }
}

/// The `diagnosis` object: the description, and the findings under the names `diagnose
/// --format json` uses.
fn diagnosis(search: &Search, summary: String) -> Value {
    let mut found = json!({
        "hypothesis": null,
        "description": summary,
        "signature_matches": search.signature_matches(),
    });
    if let Some(found) = found.as_object_mut() {
        found.extend(search.fields());
    }
    found
}

/// The answer to one request and its log line (after the method and path).
struct Verdict {
    status: StatusCode,
    body: Value,
    log: String,
}

impl Verdict {
    fn valid(scheme: &Scheme, key: &str) -> Self {
        Verdict {
            status: StatusCode::OK,
            body: json!({"valid": true, "scheme": scheme.as_str(), "key": key}),
            log: format!("200 valid ({scheme}, key {key})"),
        }
    }

    /// A refusal; `found` is the diagnosis object and what the log line says, if a
    /// diagnosis could be made.
    fn refused(scheme: &Scheme, refusal: &Error, found: Option<(Value, String)>) -> Self {
        let (diagnosis, said) = match found {
            Some((diagnosis, said)) => (diagnosis, said),
            None => (Value::Null, refusal.to_string()),
        };
        Verdict {
            status: StatusCode::UNAUTHORIZED,
            body: json!({
                "valid": false,
                "scheme": scheme.as_str(),
                "reason": refusal.code(),
                "explanation": refusal.to_string(),
                "diagnosis": diagnosis,
            }),
            log: format!("401 {}: {said}", refusal.code()),
        }
    }

    /// With `warning`, if any: a `warning` field in the answer, a note on the log line.
    fn warned(mut self, warning: Option<&str>) -> Self {
        if let Some(warning) = warning {
            self.body["warning"] = json!(warning);
            self.log.push_str(&format!(" (warning: {warning})"));
        }
        self
    }

    /// The check itself failed (it does not panic; if it ever did, the server goes on).
    fn internal(e: &tokio::task::JoinError) -> Self {
        Verdict {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: json!({"valid": false, "reason": "internal", "explanation": e.to_string()}),
            log: format!("500 internal: {e}"),
        }
    }

    /// A request that could not be read in full.
    fn unread(status: StatusCode, reason: &str, explanation: &str) -> Self {
        Verdict {
            status,
            body: json!({"valid": false, "reason": reason, "explanation": explanation}),
            log: format!("{} {reason}: {explanation}", status.as_u16()),
        }
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(format!("{}\n", self.body)));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

async fn handle(State(sandbox): State<Arc<Sandbox>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let said = format!("{} {}", parts.method, render::escape(target.as_bytes()));
    let verdict = match read_body(&sandbox.body, &parts, body).await {
        Ok(bytes) => judge(sandbox, parts, bytes).await,
        Err(verdict) => verdict,
    };
    eprintln!("{said} → {}", verdict.log);
    verdict.into_response()
}

/// Verifies off the async threads, then (when refused) diagnoses off them too, those of
/// large bodies at most [`Sandbox::diagnoses`] at a time: a request that verifies, or one
/// with a small body, never waits behind another's diagnosis.
async fn judge(sandbox: Arc<Sandbox>, parts: Parts, body: Bytes) -> Verdict {
    let verifying = Arc::clone(&sandbox);
    let first = tokio::task::spawn_blocking(move || {
        let checked = verifying.check(&parts, &body, None);
        (parts, body, checked)
    })
    .await;
    let (parts, body, refusal) = match first {
        Ok((_, _, Checked::Done(verdict))) => return verdict,
        Ok((parts, body, Checked::Refused(_, refusal))) => (parts, body, refusal),
        Err(e) => return Verdict::internal(&e),
    };
    // Large bodies take turns (a closed semaphore cannot happen: it is never closed;
    // diagnose anyway if it did); small ones cost little and never wait behind them.
    let _permit = if body.len() > LARGE_BODY {
        sandbox.diagnoses.acquire().await.ok()
    } else {
        None
    };
    let diagnosing = Arc::clone(&sandbox);
    let diagnosed = tokio::task::spawn_blocking(move || {
        match diagnosing.check(&parts, &body, Some(refusal)) {
            Checked::Done(verdict) => verdict,
            // Given the refusal, `check` always concludes.
            Checked::Refused(scheme, refusal) => Verdict::refused(scheme, &refusal, None),
        }
    })
    .await;
    diagnosed.unwrap_or_else(|e| Verdict::internal(&e))
}

/// The whole body, by the library's rule (the layer's): at most 1 MiB, declared or read
/// (`413`), in full within 10 s of the request's arrival (`408`).
async fn read_body(limit: &BodyLimit, parts: &Parts, body: Body) -> Result<Bytes, Verdict> {
    let arrived = Instant::now();
    limit
        .read(&parts.headers, body, arrived)
        .await
        .map_err(|e| {
            let status = match e.kind() {
                ErrorKind::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::BAD_REQUEST,
            };
            Verdict::unread(status, e.code(), &e.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_id_is_the_last_segment() {
        assert_eq!(last_segment("/api/v1/payins/tx-123"), "tx-123");
        assert_eq!(last_segment("/api/v1/payins/"), "");
        assert_eq!(last_segment("/"), "");
    }
}
