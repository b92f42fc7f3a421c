//! `countersign send`: post a signed webhook delivery (a sample event, or your own body) to
//! your endpoint, the way the provider would, and print each response.
//!
//! The delivery is signed once, with the system clock, before `--delay`; `--repeat` resends
//! exactly the same bytes and headers. The exit code is the first delivery's: 0 for a 2xx
//! answer, 1 otherwise (repeats are printed, to check replay handling by eye or script).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use countersign::{CanonicalUrl, SignableRequest, Signer, SystemClock, Timestamp};

use crate::args::{SchemeArg, SendArgs, SendCommon, SendTarget};
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
    runtime.block_on(delivery.send(common.repeat, Duration::from_secs(common.delay)))
}

/// One signed delivery: what is sent, byte for byte, every time.
struct Delivery {
    url: reqwest::Url,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    /// What is sent, for the first line of output.
    what: String,
}

impl Delivery {
    /// Builds the body and signs it now.
    fn sign(target: &SendTarget) -> Result<(Self, &SendCommon), Usage> {
        let (common, scheme) = match target {
            SendTarget::KamiokashWebhook { common, .. } => (common, SchemeArg::KamiokashWebhook),
            SendTarget::KitopayWebhook { common, .. } => (common, SchemeArg::KitopayWebhook),
        };
        let secret = Secret::one_of(
            common.secret_file.as_slice(),
            common.secret_env.as_deref(),
            scheme.default_secret_env(),
        )?;
        let url = CanonicalUrl::parse(&common.url).map_err(|e| Usage(format!("--url: {e}")))?;
        if !url.as_str().starts_with("http://") {
            return Err(Usage(
                "--url: send speaks plain http, to a handler on this machine or network (e.g. http://127.0.0.1:3000/webhooks/kamiokash); https is not supported".into(),
            ));
        }
        let now = Timestamp::now(&SystemClock);
        let name = scheme.scheme();
        let (body, what) = match (&common.body_file, target) {
            (Some(path), _) => {
                let body = inputs::read_body(path)?;
                let what = format!("{name}, {} bytes from {}", body.len(), path.display());
                (body, what)
            }
            (None, SendTarget::KamiokashWebhook { event, .. }) => {
                let event = event.as_deref().ok_or_else(|| {
                    Usage("give --event TYPE for a sample body, or --body-file PATH".into())
                })?;
                (events::kamiokash(event, now), format!("{name} {event}"))
            }
            (None, SendTarget::KitopayWebhook { status, .. }) => (
                events::kitopay(status, now),
                format!("{name}, status {status}"),
            ),
        };
        let key = secret.key()?;
        let headers: Vec<(&'static str, String)> = match target {
            SendTarget::KamiokashWebhook { .. } => {
                let signer = Signer::kamiokash_webhook(key);
                let signed = signer.sign(&SignableRequest::body(&body), now)?;
                own(signed.headers())
            }
            SendTarget::KitopayWebhook { merchant_id, .. } => {
                let signer = Signer::kitopay_webhook(merchant_id, key)
                    .map_err(|e| Usage(format!("--merchant-id: {e}")))?;
                let signed = signer.sign(&SignableRequest::new("POST", &url, &body)?, now)?;
                own(signed.headers())
            }
        };
        // The URL sent is the canonical URL signed, byte for byte.
        let sent = reqwest::Url::parse(url.as_str())
            .ok()
            .filter(|sent| sent.as_str() == url.as_str())
            .ok_or_else(|| Usage(format!("--url: {url} cannot be sent exactly as signed")))?;
        let delivery = Delivery {
            url: sent,
            body,
            headers,
            what,
        };
        Ok((delivery, common))
    }

    async fn send(self, repeat: u32, delay: Duration) -> Result<ExitCode, Usage> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| Usage(format!("cannot build the HTTP client: {e}")))?;
        let signed_at = self
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-timestamp"))
            .map_or("", |(_, value)| value.as_str());
        eprintln!(
            "POST {} ({}), signed at {signed_at}{}",
            self.url,
            self.what,
            if delay.is_zero() {
                String::new()
            } else {
                format!(", sent {} s later", delay.as_secs())
            }
        );
        tokio::time::sleep(delay).await;
        let total = repeat.saturating_add(1);
        let mut first_ok = false;
        for n in 1..=total {
            let label = if n == 1 {
                format!("delivery 1 of {total}")
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
