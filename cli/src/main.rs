//! `countersign`: sign, verify, explain and diagnose KamioKash and Kitopay request signatures.
//!
//! A thin front end: parse arguments, call the library, print, choose the exit code
//! (0 valid / done, 1 rejected, 2 bad usage or input).
// A command-line tool's job is printing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod demo;
mod inputs;
mod render;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use countersign::diagnose::{Diagnosis, Inputs};
use countersign::{
    ErrorKind, FixedClock, Freshness, KeyRing, ReceivedRequest, Scheme, SignedRequest,
    StringToSign, SystemClock, Verifier,
};
use serde_json::json;

use crate::args::{Cli, Command, SignArgs, SignFormat, VerifyArgs, VerifyFormat};
use crate::inputs::{BodySource, Loaded, Secret, Usage};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Sign(a) => sign(&a),
        Command::Explain(a) => explain(&a),
        Command::Verify(a) => verify(&a),
        Command::Diagnose(a) => diagnose(&a),
        Command::Demo => demo::run(),
    };
    match outcome {
        Ok(code) => code,
        Err(Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Signs with the loaded inputs; the timestamp defaults to now.
fn sign_loaded<'s>(
    loaded: &Loaded,
    signer: &'s dyn countersign::Signer,
    timestamp: Option<&str>,
) -> Result<SignedRequest<'s>, Usage> {
    let at = match timestamp {
        Some(text) => loaded.scheme.parse_timestamp(text).map_err(Usage::from)?,
        None => countersign::Timestamp::now(&SystemClock),
    };
    signer.sign(&loaded.signable()?, at).map_err(Usage::from)
}

fn sign(a: &SignArgs) -> Result<ExitCode, Usage> {
    let loaded = Loaded::from_args(&a.request)?;
    let secret = Secret::one(&a.request, a.secret_env.as_deref())?;
    let signer = loaded.signer(secret, a.api_key.as_deref())?;
    let signed = sign_loaded(&loaded, &*signer, a.timestamp.as_deref())?;
    let message = loaded.string_to_sign(signed.timestamp());
    let out = match a.format {
        SignFormat::Headers => signed
            .headers()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect::<String>(),
        SignFormat::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = signed
                .headers()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            let mut obj = json!({
                "scheme": loaded.scheme.as_str(),
                "headers": headers,
            });
            if loaded.scheme.signs_url() {
                obj["url"] = json!(loaded.url.as_ref().map(|u| u.as_str()));
            }
            obj["string_to_sign"] = json!(String::from_utf8_lossy(&message.to_bytes()));
            obj["signature"] = json!(signed.signature_hex());
            format!("{obj:#}\n")
        }
        SignFormat::Curl => curl_command(&loaded, &signed)?,
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn curl_command(loaded: &Loaded, signed: &SignedRequest<'_>) -> Result<String, Usage> {
    let Some(url) = loaded.display_url() else {
        return Err(Usage(
            "--format curl needs --url (the endpoint to call)".into(),
        ));
    };
    let method = loaded.method.clone().unwrap_or_else(|| {
        if loaded.body.is_empty() {
            "GET"
        } else {
            "POST"
        }
        .to_owned()
    });
    let mut line = format!(
        "curl -X {} {}",
        render::shell_quote(&method),
        render::shell_quote(&url)
    );
    for (k, v) in signed.headers() {
        line.push_str(&format!(
            " \\\n  -H {}",
            render::shell_quote(&format!("{k}: {v}"))
        ));
    }
    match &loaded.body_source {
        BodySource::None => {}
        BodySource::Text(text) => {
            line.push_str(&format!(
                " \\\n  --data-binary {}",
                render::shell_quote(text)
            ));
        }
        BodySource::File(path) => {
            let at = format!("@{}", path.display());
            line.push_str(&format!(
                " \\\n  --data-binary {}",
                render::shell_quote(&at)
            ));
        }
    }
    line.push('\n');
    Ok(line)
}

fn explain(a: &SignArgs) -> Result<ExitCode, Usage> {
    let loaded = Loaded::from_args(&a.request)?;
    let secret = Secret::one(&a.request, a.secret_env.as_deref())?;
    let signer = loaded.signer(secret, a.api_key.as_deref())?;
    let signed = sign_loaded(&loaded, &*signer, a.timestamp.as_deref())?;
    let message = loaded.string_to_sign(signed.timestamp());
    let mut out = format!("scheme: {}\n", loaded.scheme);
    if let Some(url) = &loaded.url {
        out.push_str(&format!(
            "url: {url}  (canonical, trailing slash: {})\n",
            countersign::TrailingSlash::from(a.request.trailing_slash).as_str()
        ));
    } else if loaded.raw_url.is_some() {
        out.push_str("url: not signed by this scheme\n");
    }
    out.push_str(&render::explain_message(&message));
    out.push_str(&format!("signature: {}\n", signed.signature_hex()));
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Builds the verifier and the received request, runs verification.
struct VerifySetup {
    loaded: Loaded,
    secrets: Vec<Secret>,
    verifier: Verifier,
    headers: Vec<(&'static str, String)>,
}

impl VerifySetup {
    fn new(a: &VerifyArgs) -> Result<Self, Usage> {
        let loaded = Loaded::from_args(&a.request)?;
        let secrets = Secret::many(&a.request, &a.secret_env)?;
        let mut ring: Option<KeyRing> = None;
        for s in &secrets {
            let key = s.key()?;
            ring = Some(match ring {
                None => KeyRing::new(s.id.clone(), key),
                Some(r) => r.with(s.id.clone(), key),
            });
        }
        let ring = ring.ok_or_else(|| Usage("missing secret".into()))?;
        let merchant = loaded.merchant_id.as_deref().unwrap_or_default();
        let verifier = match loaded.scheme {
            Scheme::Kitopay => Verifier::kitopay_request(merchant, ring),
            Scheme::KitopayWebhook => {
                let url = loaded
                    .url
                    .clone()
                    .ok_or_else(|| Usage("--url is required".into()))?;
                Verifier::kitopay_webhook(merchant, ring, url)
            }
            Scheme::KitopaySimplified => Verifier::kitopay_simplified(merchant, ring),
            Scheme::KamioKash => Ok(Verifier::kamiokash_request(ring)),
            _ => Ok(Verifier::kamiokash_webhook(ring)),
        }
        .map_err(Usage::from)?;
        let now = match &a.now {
            Some(text) => loaded
                .scheme
                .parse_timestamp(text)
                .map_err(|e| Usage(format!("--now: {e}")))?,
            None => countersign::Timestamp::now(&SystemClock),
        };
        let verifier = verifier
            .with_clock(FixedClock::new(now))
            .with_freshness(Freshness {
                max_age: std::time::Duration::from_secs(a.max_age),
                max_future: std::time::Duration::from_secs(a.max_future),
            });
        let scheme = loaded.scheme;
        let mut headers = vec![
            (scheme.timestamp_header(), a.timestamp.clone()),
            (scheme.signature_header(), a.signature.clone()),
        ];
        if let (Some(name), Some(id)) = (scheme.identity_header(), &loaded.merchant_id) {
            headers.push((name, id.clone()));
        }
        Ok(VerifySetup {
            loaded,
            secrets,
            verifier,
            headers,
        })
    }

    fn run(&self) -> Result<String, countersign::Error> {
        let mut received = ReceivedRequest::new(&self.headers, &self.loaded.body);
        if let Some(m) = &self.loaded.method {
            received = received.with_method(m);
        }
        if let Some(u) = &self.loaded.url {
            received = received.with_url(u);
        }
        if let Some(t) = &self.loaded.transaction_id {
            received = received.with_transaction_id(t);
        }
        self.verifier
            .verify(&received)
            .map(|v| v.key_id().to_owned())
    }
}

/// Errors that mean the inputs were incomplete rather than the signature wrong.
fn is_usage(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidMethod
            | ErrorKind::MissingUrl
            | ErrorKind::MissingTransactionId
            | ErrorKind::InvalidUrl(_)
            | ErrorKind::EmptySecret
            | ErrorKind::NoKeys
    )
}

fn verify(a: &VerifyArgs) -> Result<ExitCode, Usage> {
    let setup = VerifySetup::new(a)?;
    match setup.run() {
        Ok(key) => {
            match a.format {
                VerifyFormat::Json => println!("{}", json!({"valid": true, "key": key})),
                VerifyFormat::Text => println!("valid: the signature verifies with key {key}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if is_usage(e.kind()) => Err(Usage::from(e)),
        Err(e) => {
            match a.format {
                VerifyFormat::Json => {
                    println!(
                        "{}",
                        json!({"valid": false, "reason": e.code(), "detail": e.to_string()})
                    );
                }
                VerifyFormat::Text => {
                    eprintln!("rejected ({}): {e}", e.code());
                    if e.kind() == &ErrorKind::SignatureMismatch {
                        eprintln!(
                            "hint: run `countersign diagnose` with the same arguments to find the mistake"
                        );
                    }
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn snake(hypothesis: countersign::diagnose::Hypothesis) -> String {
    let mut out = String::new();
    for (i, c) in format!("{hypothesis:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn diagnose(a: &VerifyArgs) -> Result<ExitCode, Usage> {
    let setup = VerifySetup::new(a)?;
    let verdict = setup.run();
    if let Ok(key) = &verdict {
        match a.format {
            VerifyFormat::Json => println!("{}", json!({"valid": true, "key": key})),
            VerifyFormat::Text => {
                println!("valid: the signature verifies with key {key}; nothing to diagnose")
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let freshness = match &verdict {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Expired { .. } | ErrorKind::Future { .. }
            ) =>
        {
            Some(e.to_string())
        }
        Err(e) if is_usage(e.kind()) => return Err(Usage::from(e.clone())),
        _ => None,
    };
    let loaded = &setup.loaded;
    let mut found = None;
    let mut valid_ignoring_time = false;
    for secret in &setup.secrets {
        let inputs = Inputs {
            scheme: loaded.scheme,
            secret: secret.text(),
            merchant_id: loaded.merchant_id.as_deref().unwrap_or_default(),
            timestamp: &a.timestamp,
            method: loaded.method.as_deref().unwrap_or_default(),
            url: loaded.url.as_ref(),
            body: &loaded.body,
            transaction_id: loaded.transaction_id.as_deref().unwrap_or_default(),
            signature: &a.signature,
        };
        match countersign::diagnose::diagnose(&inputs) {
            Ok(Diagnosis::Valid) => valid_ignoring_time = true,
            Ok(Diagnosis::Explained(f)) => {
                found = Some((secret.id.clone(), f));
                break;
            }
            Ok(Diagnosis::Unexplained) => {}
            Err(e) if e.kind() == &ErrorKind::MissingUrl => return Err(Usage::from(e)),
            Err(e) => {
                // A malformed signature: nothing to search.
                report_diagnosis(a.format, &e.to_string(), freshness.as_deref(), None);
                return Ok(ExitCode::from(1));
            }
        }
    }
    let summary = match (&found, valid_ignoring_time) {
        (Some((_, f)), _) => f.hypothesis.to_string(),
        (None, true) => "the signature itself is correct; only the freshness check fails".to_owned(),
        (None, false) => "no single known mistake explains the mismatch: check the secret and compare every input byte for byte (`countersign explain`)".to_owned(),
    };
    report_diagnosis(a.format, &summary, freshness.as_deref(), found.as_ref());
    Ok(ExitCode::from(1))
}

fn report_diagnosis(
    format: VerifyFormat,
    summary: &str,
    freshness: Option<&str>,
    found: Option<&(String, countersign::diagnose::Finding)>,
) {
    match format {
        VerifyFormat::Json => {
            let mut obj = json!({"valid": false, "diagnosis": summary});
            if let Some(f) = freshness {
                obj["freshness"] = json!(f);
            }
            if let Some((key, f)) = found {
                obj["hypothesis"] = json!(snake(f.hypothesis));
                obj["key"] = json!(key);
                obj["expected"] = json!(render::escape(&f.expected));
                obj["signed"] = json!(render::escape(&f.signed));
            }
            println!("{obj}");
        }
        VerifyFormat::Text => {
            let mut out = String::from("signature: does not verify\n");
            if let Some(f) = freshness {
                out.push_str(&format!("freshness: {f}\n"));
            }
            out.push_str(&format!("diagnosis: {summary}\n"));
            if let Some((key, f)) = found {
                out.push_str(&format!("key: {key}\n"));
                out.push_str(&render::side_by_side(
                    "we expect",
                    &f.expected,
                    "sender signed",
                    &f.signed,
                ));
            }
            print!("{out}");
            let _ = std::io::stdout().flush();
        }
    }
}

/// For `explain`/`sign`: the message as the scheme builds it.
impl Loaded {
    fn string_to_sign<'a>(&'a self, timestamp: &'a str) -> StringToSign<'a> {
        let merchant = self.merchant_id.as_deref().unwrap_or_default();
        let method = self.method.as_deref().unwrap_or_default();
        match (self.scheme, &self.url) {
            (Scheme::Kitopay | Scheme::KitopayWebhook, Some(url)) => {
                StringToSign::kitopay(merchant, timestamp, method, url, &self.body)
            }
            (Scheme::KitopaySimplified, _) => StringToSign::kitopay_simplified(
                merchant,
                timestamp,
                method,
                self.transaction_id.as_deref().unwrap_or_default(),
            ),
            (Scheme::KamioKash, _) => StringToSign::kamiokash_request(&self.body, timestamp),
            _ => StringToSign::kamiokash_webhook(timestamp, &self.body),
        }
    }
}
