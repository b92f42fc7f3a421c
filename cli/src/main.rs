//! `countersign`: sign, verify, explain and diagnose KamioKash and Kitopay request signatures,
//! and a local provider sandbox (`serve` checks your client, `send` fires webhooks at you).
//!
//! A thin front end: parse arguments, call the library, print, choose the exit code
//! (0 valid / done, 1 rejected, 2 bad usage or input).
// A command-line tool's job is printing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod demo;
mod events;
mod findings;
mod inputs;
mod render;
mod send;
mod serve;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use countersign::diagnose::Inputs;
use countersign::{
    ErrorKind, FixedClock, Freshness, ReceivedRequest, Scheme, SignedRequest, StringToSign,
    SystemClock, Verifier,
};
use serde_json::json;

use crate::args::{Cli, Command, SignArgs, SignFormat, VerifyArgs, VerifyFormat};
use crate::findings::Search;
use crate::inputs::{BodySource, Loaded, Secret, Usage};

fn main() -> ExitCode {
    // Before clap parses anything: its errors and suggestions would echo the value.
    if let Some(flag) = secret_flag(std::env::args_os().skip(1)) {
        eprintln!(
            "error: {flag} is not accepted: a secret on the command line ends up in shell history and the process list; put it in an environment variable and pass --secret-env NAME, or in a file and pass --secret-file PATH"
        );
        return ExitCode::from(2);
    }
    init_tracing();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Sign(a) => sign(&a),
        Command::Explain(a) => explain(&a),
        Command::Verify(a) => verify(&a),
        Command::Diagnose(a) => diagnose(&a),
        Command::Demo => demo::run(),
        Command::Serve(a) => serve::run(&a),
        Command::Send(a) => send::run(&a),
    };
    match outcome {
        Ok(code) => code,
        Err(Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Flags that would carry a secret as an argument; none exists.
const SECRET_FLAGS: [&str; 3] = ["--secret", "--key", "--password"];

/// The first argument that is one of [`SECRET_FLAGS`], alone or as `--flag=value`.
fn secret_flag(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<&'static str> {
    args.into_iter().find_map(|arg| {
        let arg = arg.to_string_lossy();
        SECRET_FLAGS.into_iter().find(|flag| {
            arg.strip_prefix(flag)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        })
    })
}

/// Events (the library's and ours) on stderr, filtered by `RUST_LOG`; warnings by default.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::WARN.into())
        .from_env_lossy();
    // Fails only if a subscriber is already set: then that one is used.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Signs with the loaded inputs; the timestamp defaults to now.
fn sign_loaded<'s>(
    loaded: &'s Loaded,
    signer: &'s countersign::Signer,
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
    let signed = sign_loaded(&loaded, &signer, a.timestamp.as_deref())?;
    let message = loaded.string_to_sign(signed.timestamp().unwrap_or_default())?;
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
    // Bodies that exist only in memory (stdin) or that curl would take for a file name
    // (`@...`) are piped in by printf, byte for byte.
    let piped = match &loaded.body_source {
        BodySource::Stdin => true,
        BodySource::Text(text) => text.starts_with('@'),
        BodySource::None | BodySource::File(_) => false,
    };
    let mut line = String::new();
    if piped {
        line.push_str(&format!(
            "printf {} | ",
            render::printf_format(&loaded.body)
        ));
    }
    line.push_str(&format!(
        "curl -X {} {}",
        render::shell_quote(&method),
        render::shell_quote(&url)
    ));
    for (k, v) in signed.headers() {
        line.push_str(&format!(
            " \\\n  -H {}",
            render::shell_quote(&format!("{k}: {v}"))
        ));
    }
    match &loaded.body_source {
        _ if piped => line.push_str(" \\\n  --data-binary @-"),
        BodySource::None | BodySource::Stdin => {}
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
    let signed = sign_loaded(&loaded, &signer, a.timestamp.as_deref())?;
    let message = loaded.string_to_sign(signed.timestamp().unwrap_or_default())?;
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
        let ring = inputs::key_ring(&secrets)?;
        let scheme = loaded.scheme;
        let mut verifier = Verifier::new(scheme, ring).map_err(Usage::from)?;
        if let (true, Some(merchant)) = (scheme.signs_identity(), &loaded.merchant_id) {
            verifier = verifier.with_identity(merchant).map_err(Usage::from)?;
        }
        if scheme.is_webhook() && scheme.signs_url() {
            let url = loaded
                .url
                .clone()
                .ok_or_else(|| Usage("--url is required".into()))?;
            verifier = verifier.with_url(url);
        }
        let api_key_given = a.api_key.is_some() || a.received_api_key.is_some();
        if api_key_given && (scheme.identity_header().is_none() || scheme.signs_identity()) {
            return Err(Usage(
                "--api-key and --received-api-key apply to the kamiokash scheme only: remove them"
                    .into(),
            ));
        }
        let verifier = match &a.api_key {
            Some(key) => verifier
                .with_api_key(key)
                .map_err(|e| Usage(format!("--api-key: {e}")))?,
            None => verifier,
        };
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
            (
                scheme.timestamp_header().unwrap_or_default(),
                a.timestamp.clone(),
            ),
            (scheme.signature_header(), a.signature.clone()),
        ];
        let identity = match scheme.signs_identity() {
            false => a.received_api_key.as_ref(),
            true => loaded.merchant_id.as_ref(),
        };
        if let (Some(name), Some(id)) = (scheme.identity_header(), identity) {
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
        let verdict = self
            .verifier
            .verify(&received)
            .map(|v| v.key_id().to_owned());
        match &verdict {
            Ok(key) => {
                tracing::debug!(scheme = %self.loaded.scheme, key_id = %key, "cli: signature verified")
            }
            Err(e) => {
                tracing::debug!(scheme = %self.loaded.scheme, reason = e.code(), "cli: verification refused")
            }
        }
        verdict
    }
}

/// Errors that mean the inputs were incomplete rather than the signature wrong.
fn is_usage(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidMethod
            | ErrorKind::MissingUrl
            | ErrorKind::MissingField(_)
            | ErrorKind::InvalidField { .. }
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

fn diagnose(a: &VerifyArgs) -> Result<ExitCode, Usage> {
    let setup = VerifySetup::new(a)?;
    let refusal = match setup.run() {
        Ok(key) => {
            match a.format {
                VerifyFormat::Json => println!("{}", json!({"valid": true, "key": key})),
                VerifyFormat::Text => {
                    println!("valid: the signature verifies with key {key}; nothing to diagnose")
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) if is_usage(e.kind()) => return Err(Usage::from(e)),
        Err(e) => e,
    };
    let loaded = &setup.loaded;
    let values = [(
        "transaction_id",
        loaded.transaction_id.as_deref().unwrap_or_default(),
    )];
    let template = Inputs {
        identity: loaded.merchant_id.as_deref().unwrap_or_default(),
        timestamp: &a.timestamp,
        method: loaded.method.as_deref().unwrap_or_default(),
        url: loaded.url.as_ref(),
        body: &loaded.body,
        values: &values,
        signature: &a.signature,
        ..Inputs::new(loaded.scheme)
    };
    let search = findings::search(&setup.secrets, &template).map_err(Usage::from)?;
    report_diagnosis(a.format, loaded.scheme, &refusal, &search);
    Ok(ExitCode::from(1))
}

fn report_diagnosis(
    format: VerifyFormat,
    scheme: &Scheme,
    refusal: &countersign::Error,
    search: &Search,
) {
    let summary = findings::summary(refusal, search, &findings::only_refused(refusal, scheme));
    let key = search.key();
    match format {
        VerifyFormat::Json => {
            let mut obj = json!({
                "valid": false,
                "reason": refusal.code(),
                "detail": refusal.to_string(),
                "diagnosis": summary,
            });
            if let Some(matches) = search.signature_matches() {
                obj["signature_matches"] = json!(matches);
            }
            if let Some(key) = key {
                obj["key"] = json!(key);
            }
            if let Search::Explained(_, f) = search {
                obj["hypothesis"] = json!(findings::snake(f.hypothesis));
                obj["expected"] = json!(render::escape(&f.expected));
                obj["signed"] = json!(render::escape(&f.signed));
            }
            println!("{obj}");
        }
        VerifyFormat::Text => {
            let mut out = format!("refused: {refusal}\ndiagnosis: {summary}\n");
            if let Some(key) = key {
                out.push_str(&format!("key: {key}\n"));
            }
            if let Search::Explained(_, f) = search {
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
    fn string_to_sign<'a>(&'a self, timestamp: &'a str) -> Result<StringToSign<'a>, Usage> {
        let identity = self
            .merchant_id
            .as_deref()
            .filter(|_| self.scheme.signs_identity());
        Ok(StringToSign::new(
            self.scheme,
            identity,
            timestamp,
            &self.signable()?,
        )?)
    }
}
