//! `countersign send`: post a signed webhook delivery (a sample event, or your own body) to
//! your endpoint, the way the provider would, and print each response.
//!
//! The delivery is signed once, with the system clock, before `--delay`; `--repeat` resends
//! exactly the same bytes and headers (with `--resign`, each repeat is signed again when it
//! is sent, as a provider's retry is: same bytes, same id, a fresh timestamp). The exit code is the first delivery's: 0 for a 2xx
//! answer, 1 otherwise (repeats are printed, to check replay handling by eye or script).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use countersign::{
    CanonicalUrl, Scheme, SignableRequest, Signer, SystemClock, Timestamp, kamiokash, kitopay,
    standard_webhooks,
};

use crate::args::{SendArgs, SendCommon, SendTarget};
use crate::events;
use crate::inputs::{self, Secret, Usage};

/// How long one delivery may take, connection to last byte of the answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How much of each answer's body is printed.
const MAX_SHOWN: usize = 64 * 1024;

pub(crate) fn run(a: &SendArgs) -> Result<ExitCode, Usage> {
    let (delivery, common) = Delivery::sign(&a.target)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Usage(format!("cannot start the async runtime: {e}")))?;
    let repeats = Repeats {
        count: common.repeat,
        resign: common.resign,
    };
    runtime.block_on(delivery.send(repeats, Duration::from_secs(common.delay)))
}

/// What happens after the first delivery.
#[derive(Debug, Clone, Copy)]
struct Repeats {
    /// How many more deliveries.
    count: u32,
    /// Whether each is signed again when sent (a provider's retry) rather than resent as is.
    resign: bool,
}

/// One signed delivery: what is sent, byte for byte (the headers change only when a retry
/// is signed again).
struct Delivery {
    scheme: &'static Scheme,
    signer: Signer,
    /// The URL signed, where the scheme signs one.
    signed_url: Option<CanonicalUrl>,
    /// The named values signed (Standard Webhooks' id), `(name, value)`.
    values: Vec<(&'static str, String)>,
    url: reqwest::Url,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    /// What is sent, for the first line of output.
    what: String,
}

impl Delivery {
    /// Builds the body and signs it now.
    fn sign(target: &SendTarget) -> Result<(Self, &SendCommon), Usage> {
        let (common, scheme): (_, &'static Scheme) = match target {
            SendTarget::KamiokashWebhook { common, .. } => (common, &kamiokash::WEBHOOK),
            SendTarget::KitopayWebhook { common, .. } => (common, &kitopay::WEBHOOK),
            SendTarget::StandardWebhooks { common, .. } => (common, &standard_webhooks::SCHEME),
        };
        let secret = Secret::one_of(
            common.secret_file.as_slice(),
            common.secret_env.as_deref(),
            scheme.secret().name(),
        )?;
        let url = CanonicalUrl::parse(&common.url).map_err(|e| Usage(format!("--url: {e}")))?;
        if !url.as_str().starts_with("http://") {
            return Err(Usage(
                "--url: send speaks plain http, to a handler on this machine or network (e.g. http://127.0.0.1:3000/webhooks/kamiokash); https is not supported".into(),
            ));
        }
        let now = Timestamp::now(&SystemClock);
        let mut values = Vec::new();
        let (body, what) = match (&common.body_file, target) {
            (Some(path), _) => {
                let body = inputs::read_body(path)?;
                let what = format!("{scheme}, {} bytes from {}", body.len(), path.display());
                (body, what)
            }
            (None, SendTarget::KamiokashWebhook { event, .. }) => {
                let event = event.as_deref().ok_or_else(|| {
                    Usage("give --event TYPE for a sample body, or --body-file PATH".into())
                })?;
                (events::kamiokash(event, now), format!("{scheme} {event}"))
            }
            (None, SendTarget::KitopayWebhook { status, .. }) => (
                events::kitopay(status, now),
                format!("{scheme}, status {status}"),
            ),
            (None, SendTarget::StandardWebhooks { event, .. }) => {
                let event = event.as_deref().ok_or_else(|| {
                    Usage("give --event TYPE for a sample body, or --body-file PATH".into())
                })?;
                (
                    events::standard_webhooks(event, now),
                    format!("{scheme} {event}"),
                )
            }
        };
        let what = match target {
            SendTarget::StandardWebhooks { id, .. } => {
                let id = id.clone().unwrap_or_else(|| events::message_id(now));
                let what = format!("{what}, id {id}");
                values.push((standard_webhooks::ID.name(), id));
                what
            }
            _ => what,
        };
        let signer = Signer::new(scheme, secret.key(scheme)?)?;
        let signer = match target {
            SendTarget::KitopayWebhook { merchant_id, .. } => signer
                .with_identity(merchant_id)
                .map_err(|e| Usage(format!("--merchant-id: {e}")))?,
            _ => signer,
        };
        // Signed for --signed-url (the public URL, behind a proxy or tunnel), or for the URL
        // sent to.
        let signed_url = match target {
            SendTarget::KitopayWebhook {
                signed_url: Some(public),
                ..
            } => {
                Some(CanonicalUrl::parse(public).map_err(|e| Usage(format!("--signed-url: {e}")))?)
            }
            _ => scheme.signs_url().then(|| url.clone()),
        };
        let what = match (&signed_url, target) {
            (
                Some(signed),
                SendTarget::KitopayWebhook {
                    signed_url: Some(_),
                    ..
                },
            ) => {
                format!("{what}, signed for {signed}")
            }
            _ => what,
        };
        // The URL sent is the canonical URL given, byte for byte.
        let sent = reqwest::Url::parse(url.as_str())
            .ok()
            .filter(|sent| sent.as_str() == url.as_str())
            .ok_or_else(|| Usage(format!("--url: {url} cannot be sent exactly as given")))?;
        let mut delivery = Delivery {
            scheme,
            signer,
            signed_url,
            values,
            url: sent,
            body,
            headers: Vec::new(),
            what,
        };
        delivery.headers = delivery.signed_at(now)?;
        Ok((delivery, common))
    }

    /// The headers of the delivery signed at `at`.
    fn signed_at(&self, at: Timestamp) -> Result<Vec<(&'static str, String)>, Usage> {
        let mut request = SignableRequest::body(&self.body);
        if self.scheme.signs_method() {
            request = request.with_method("POST")?;
        }
        if let Some(url) = &self.signed_url {
            request = request.with_url(url);
        }
        for (name, value) in &self.values {
            request = request.with_value(name, value);
        }
        let signed = self.signer.sign(&request, at).map_err(|e| match e.kind() {
            countersign::ErrorKind::InvalidField { .. } => Usage(format!("--id: {e}")),
            _ => Usage::from(e),
        })?;
        Ok(own(signed.headers()))
    }

    /// The timestamp header's value in `headers`.
    fn timestamp_in<'h>(&self, headers: &'h [(&'static str, String)]) -> &'h str {
        let name = self.scheme.timestamp_header().unwrap_or_default();
        headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map_or("", |(_, value)| value.as_str())
    }

    async fn send(mut self, repeats: Repeats, delay: Duration) -> Result<ExitCode, Usage> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| Usage(format!("cannot build the HTTP client: {e}")))?;
        eprintln!(
            "POST {} ({}), signed at {}{}",
            self.url,
            self.what,
            self.timestamp_in(&self.headers),
            if delay.is_zero() {
                String::new()
            } else {
                format!(", sent {} s later", delay.as_secs())
            }
        );
        tokio::time::sleep(delay).await;
        let total = repeats.count.saturating_add(1);
        let same_id = if self.values.is_empty() {
            ""
        } else {
            ", same id"
        };
        let mut first_ok = false;
        for n in 1..=total {
            let label = if n == 1 {
                format!("delivery 1 of {total}")
            } else if repeats.resign {
                self.headers = self.signed_at(Timestamp::now(&SystemClock))?;
                format!(
                    "delivery {n} of {total} (retry: same bytes{same_id}, signed again at {})",
                    self.timestamp_in(&self.headers)
                )
            } else {
                format!("delivery {n} of {total} (repeat: same bytes, same headers)")
            };
            match self.post(&client).await {
                Ok((status, body)) => {
                    if n == 1 {
                        first_ok = status.is_success();
                    }
                    let mut out = format!("{label}: {status}\n{body}");
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                    print!("{out}");
                    let _ = std::io::stdout().flush();
                }
                Err(e) => {
                    eprintln!("{label}: {e}");
                    if n == 1 {
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        }
        Ok(if first_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    /// One POST; the answer's status and (the start of) its body as text.
    async fn post(
        &self,
        client: &reqwest::Client,
    ) -> Result<(reqwest::StatusCode, String), String> {
        let mut request = client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(*name, value.as_str());
        }
        let mut response = request.send().await.map_err(|e| {
            format!(
                "cannot deliver to {}: {}; is your handler listening there?",
                self.url,
                chain(&e)
            )
        })?;
        let status = response.status();
        let mut body = Vec::new();
        let mut cut = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("the answer broke off: {}", chain(&e)))?
        {
            let room = MAX_SHOWN - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() > room {
                cut = true;
                break;
            }
        }
        let mut text = String::from_utf8_lossy(&body).into_owned();
        if cut {
            text.push_str(&format!("\n[answer cut at {MAX_SHOWN} bytes]"));
        }
        Ok((status, text))
    }
}

fn own<'a>(headers: impl Iterator<Item = (&'static str, &'a str)>) -> Vec<(&'static str, String)> {
    headers
        .map(|(name, value)| (name, value.to_owned()))
        .collect()
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
