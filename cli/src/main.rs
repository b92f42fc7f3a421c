//! `countersign`: sign, verify, explain and diagnose request and webhook signatures for every
//! scheme of the library's registry (KamioKash, Kitopay, Standard Webhooks), and a local
//! provider sandbox (`serve` checks your client, `send` fires webhooks at you).
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
mod scheme_args;
mod send;
mod serve;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use countersign::diagnose::Inputs;
use countersign::{
    ErrorKind, FixedClock, Freshness, ReceivedRequest, Scheme, SignedRequest, StringToSign,
    SystemClock, Verifier,
};
use serde_json::json;

use crate::args::{Parsed, SignFormat, VerifyFormat};
use crate::findings::Search;
use crate::inputs::{BodySource, Loaded, Secret, Usage};
use crate::scheme_args::{Mode, RequestArgs};

fn main() -> ExitCode {
    // Before clap parses anything: its errors and suggestions would echo the value.
    if let Some(flag) = secret_flag(std::env::args_os().skip(1)) {
        eprintln!(
            "error: {flag} is not accepted: a secret on the command line ends up in shell history and the process list; put it in an environment variable and pass --secret-env NAME, or in a file and pass --secret-file PATH"
        );
        return ExitCode::from(2);
    }
    init_tracing();
    let outcome = match args::parse() {
        Parsed::Scheme(Mode::Sign, a) => sign(&a),
        Parsed::Scheme(Mode::Explain, a) => explain(&a),
        Parsed::Scheme(Mode::Verify, a) => verify(&a),
        Parsed::Scheme(Mode::Diagnose, a) => diagnose(&a),
        Parsed::Demo => demo::run(),
        Parsed::Serve(a) => serve::run(&a),
        Parsed::Send(a) => send::run(&a),
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

/// The signers of a `sign`/`explain` command: one per secret (several only where the
/// scheme's signature header holds a list).
fn signers(
    a: &RequestArgs,
    loaded: &Loaded,
    several: bool,
) -> Result<Vec<countersign::Signer>, Usage> {
    let several = several && a.scheme.signature().separator().is_some();
    Secret::of_args(a, several)?
        .iter()
        .map(|secret| loaded.signer(secret))
        .collect()
}

/// The signature header's value: the signatures joined by the scheme's list separator.
fn signature_value(scheme: &Scheme, signed: &[SignedRequest<'_>]) -> String {
    let separator = scheme
        .signature()
        .separator()
        .map(char::from)
        .unwrap_or(' ')
        .to_string();
    signed
        .iter()
        .map(SignedRequest::signature_value)
        .collect::<Vec<_>>()
        .join(&separator)
}

/// The headers to send: the first signature's, with every signature in the signature
/// header.
fn headers_of(scheme: &Scheme, signed: &[SignedRequest<'_>]) -> Vec<(&'static str, String)> {
    let signature = signature_value(scheme, signed);
    signed
        .first()
        .map(|first| {
            first
                .headers()
                .map(|(name, value)| {
                    if name == scheme.signature_header() {
                        (name, signature.clone())
                    } else {
                        (name, value.to_owned())
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn sign(a: &RequestArgs) -> Result<ExitCode, Usage> {
    let loaded = Loaded::from_args(a)?;
    let signers = signers(a, &loaded, true)?;
    let at = match a.timestamp.as_deref() {
        Some(text) => Some(loaded.scheme.parse_timestamp(text).map_err(Usage::from)?),
        None => None,
    };
    let at = at.unwrap_or_else(|| countersign::Timestamp::now(&SystemClock));
    let signable = loaded.signable()?;
    let signed = signers
        .iter()
        .map(|signer| signer.sign(&signable, at))
        .collect::<Result<Vec<_>, _>>()?;
    let headers = headers_of(loaded.scheme, &signed);
    let timestamp = signed
        .first()
        .and_then(SignedRequest::timestamp)
        .unwrap_or_default();
    let message = loaded.string_to_sign(timestamp)?;
    let out = match a.sign_format {
        SignFormat::Headers => headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect::<String>(),
        SignFormat::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            let mut obj = json!({
                "scheme": loaded.scheme.as_str(),
                "headers": headers,
            });
            if loaded.scheme.signs_url() {
                obj["url"] = json!(loaded.url.as_ref().map(|u| u.as_str()));
            }
            obj["string_to_sign"] = json!(String::from_utf8_lossy(&message.to_bytes()));
            obj["signature"] = json!(signature_value(loaded.scheme, &signed));
            format!("{obj:#}\n")
        }
        SignFormat::Curl => curl_command(&loaded, &headers)?,
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn curl_command(loaded: &Loaded, headers: &[(&'static str, String)]) -> Result<String, Usage> {
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
    for (k, v) in headers {
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

fn explain(a: &RequestArgs) -> Result<ExitCode, Usage> {
    let loaded = Loaded::from_args(a)?;
    let signers = signers(a, &loaded, false)?;
    let Some(signer) = signers.first() else {
        return Err(Usage(
            "missing secret: pass --secret-env NAME or --secret-file PATH".into(),
        ));
    };
    let signed = sign_loaded(&loaded, signer, a.timestamp.as_deref())?;
    let message = loaded.string_to_sign(signed.timestamp().unwrap_or_default())?;
    let mut out = format!("scheme: {}\n", loaded.scheme);
    if let Some(url) = &loaded.url {
        out.push_str(&format!(
            "url: {url}  (canonical, trailing slash: {})\n",
            countersign::TrailingSlash::from(a.trailing_slash).as_str()
        ));
    }
    out.push_str(&render::explain_message(&message));
    out.push_str(&format!("signature: {}\n", signed.signature_value()));
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Builds the verifier and the received request, runs verification.
struct VerifySetup {
    loaded: Loaded,
    secrets: Vec<Secret>,
    verifier: Verifier,
    headers: Vec<(&'static str, String)>,
    timestamp: String,
    signature: String,
}

impl VerifySetup {
    fn new(a: &RequestArgs) -> Result<Self, Usage> {
        let loaded = Loaded::from_args(a)?;
        let scheme = loaded.scheme;
        let secrets = Secret::of_args(a, true)?;
        let ring = inputs::key_ring(&secrets, scheme)?;
        let mut verifier = Verifier::new(scheme, ring).map_err(Usage::from)?;
        // The identity configured: signed (the merchant id), or only expected (the API key).
        if let (Some(name), Some(identity)) = (scheme.identity_name(), &loaded.identity) {
            verifier = verifier
                .with_identity(identity)
                .map_err(|e| Usage(format!("--{}: {e}", scheme_args::flag_of(name))))?;
        }
        if scheme.is_webhook() && scheme.signs_url() {
            let url = loaded
                .url
                .clone()
                .ok_or_else(|| Usage("--url is required".into()))?;
            verifier = verifier.with_url(url);
        }
        let now = match &a.now {
            Some(text) => loaded
                .scheme
                .parse_timestamp(text)
                .map_err(|e| Usage(format!("--now: {e}")))?,
            None => countersign::Timestamp::now(&SystemClock),
        };
        let verifier = verifier
            .with_clock(FixedClock::new(now))
            .with_body_on_get(a.body_on_get)
            .with_freshness(Freshness {
                max_age: std::time::Duration::from_secs(a.max_age),
                max_future: std::time::Duration::from_secs(a.max_future),
            });
        let timestamp = a.timestamp.clone().unwrap_or_default();
        let signature = a.signature.clone().unwrap_or_default();
        let mut headers = vec![(scheme.signature_header(), signature.clone())];
        if let Some(name) = scheme.timestamp_header() {
            headers.push((name, timestamp.clone()));
        }
        // The identity header as received: the signed identity itself, or the value given
        // with --received-<identity>.
        let identity = match scheme.signs_identity() {
            true => loaded.identity.as_ref(),
            false => a.received_identity.as_ref(),
        };
        if let (Some(name), Some(id)) = (scheme.identity_header(), identity) {
            headers.push((name, id.clone()));
        }
        for value in scheme.values() {
            if let (Some(name), Some(given)) = (value.header_name(), loaded.value(value.name())) {
                headers.push((name, given.to_owned()));
            }
        }
        Ok(VerifySetup {
            loaded,
            secrets,
            verifier,
            headers,
            timestamp,
            signature,
        })
    }

    fn run(&self) -> Result<String, countersign::Error> {
        let scheme = self.loaded.scheme;
        let mut received = ReceivedRequest::new(&self.headers, &self.loaded.body);
        if let (true, Some(m)) = (scheme.signs_method(), &self.loaded.method) {
            received = received.with_method(m);
        }
        if let Some(u) = &self.loaded.url {
            received = received.with_url(u);
        }
        for value in scheme.values().filter(|v| v.header_name().is_none()) {
            if let Some(given) = self.loaded.value(value.name()) {
                received = received.with_value(value.name(), given);
            }
        }
        let verdict = self
            .verifier
            .verify(&received)
            .map(|v| v.key_id().to_owned());
        match &verdict {
            Ok(key) => {
                tracing::debug!(scheme = %scheme, key_id = %key, "cli: signature verified")
            }
            Err(e) => {
                tracing::debug!(scheme = %scheme, reason = e.code(), "cli: verification refused")
            }
        }
        verdict
    }

    /// The warning for a timestamp accepted but not in the form the provider writes.
    fn warning(&self) -> Option<String> {
        self.loaded.scheme.timestamp_header()?;
        findings::timestamp_warning(self.loaded.scheme, &self.timestamp)
    }

    /// The diagnosis inputs: the request as received (the secret is set per key).
    fn inputs<'a>(&'a self, values: &'a [(&'a str, &'a str)]) -> Inputs<'a> {
        let loaded = &self.loaded;
        Inputs {
            identity: loaded.signed_identity().unwrap_or_default(),
            timestamp: &self.timestamp,
            method: loaded.method.as_deref().unwrap_or_default(),
            url: loaded.url.as_ref(),
            body: &loaded.body,
            values,
            signature: &self.signature,
            ..Inputs::new(loaded.scheme)
        }
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

/// `obj` with the timestamp warning, if any (JSON); in text, the warning on stderr.
fn with_warning(
    format: VerifyFormat,
    warning: Option<&str>,
    mut obj: serde_json::Value,
) -> serde_json::Value {
    if let Some(warning) = warning {
        match format {
            VerifyFormat::Json => obj["warning"] = json!(warning),
            VerifyFormat::Text => eprintln!("warning: {warning}"),
        }
    }
    obj
}

fn verify(a: &RequestArgs) -> Result<ExitCode, Usage> {
    let setup = VerifySetup::new(a)?;
    let warning = setup.warning();
    let format = a.verify_format;
    match setup.run() {
        Ok(key) => {
            let obj = with_warning(
                format,
                warning.as_deref(),
                json!({"valid": true, "key": key}),
            );
            match format {
                VerifyFormat::Json => println!("{obj}"),
                VerifyFormat::Text => println!("valid: the signature verifies with key {key}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if is_usage(e.kind()) => Err(Usage::from(e)),
        Err(e) => {
            let obj = with_warning(
                format,
                warning.as_deref(),
                json!({"valid": false, "reason": e.code(), "detail": e.to_string()}),
            );
            match format {
                VerifyFormat::Json => println!("{obj}"),
                VerifyFormat::Text => {
                    eprintln!("rejected ({}): {e}", e.code());
                    match e.kind() {
                        ErrorKind::SignatureMismatch => eprintln!(
                            "hint: run `countersign diagnose` with the same arguments to find the mistake"
                        ),
                        ErrorKind::Expired { .. } | ErrorKind::Future { .. } if a.now.is_none() => {
                            eprintln!(
                                "hint: to check a request recorded earlier, pass --now with the time it was received"
                            )
                        }
                        _ => {}
                    }
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn diagnose(a: &RequestArgs) -> Result<ExitCode, Usage> {
    let setup = VerifySetup::new(a)?;
    let warning = setup.warning();
    let refusal = match setup.run() {
        Ok(key) => {
            let obj = with_warning(
                a.verify_format,
                warning.as_deref(),
                json!({"valid": true, "key": key}),
            );
            match a.verify_format {
                VerifyFormat::Json => println!("{obj}"),
                VerifyFormat::Text => {
                    println!("valid: the signature verifies with key {key}; nothing to diagnose")
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) if is_usage(e.kind()) => return Err(Usage::from(e)),
        Err(e) => e,
    };
    let values: Vec<(&str, &str)> = setup
        .loaded
        .values
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let search = findings::search(&setup.secrets, &setup.inputs(&values), findings::Fix::Url)
        .map_err(Usage::from)?;
    report_diagnosis(
        a.verify_format,
        setup.loaded.scheme,
        &refusal,
        &search,
        warning.as_deref(),
    );
    Ok(ExitCode::from(1))
}

fn report_diagnosis(
    format: VerifyFormat,
    scheme: &Scheme,
    refusal: &countersign::Error,
    search: &Search,
    warning: Option<&str>,
) {
    // When the signature does not match the message as received either, that is the
    // mistake to fix: lead with it, and say what else is refused after.
    let mismatch = countersign::Error::from(ErrorKind::SignatureMismatch);
    let (first, also) = if refusal.kind() != &ErrorKind::SignatureMismatch
        && search.signature_matches() == Some(false)
    {
        (&mismatch, Some(refusal))
    } else {
        (refusal, None)
    };
    let summary = findings::summary(first, search, &findings::only_refused(first, scheme));
    let key = search.key();
    match format {
        VerifyFormat::Json => {
            let mut obj = json!({
                "valid": false,
                "reason": first.code(),
                "detail": first.to_string(),
                "diagnosis": summary,
            });
            if let Some(also) = also {
                obj["also_refused"] = json!({"reason": also.code(), "detail": also.to_string()});
            }
            if let Some(obj) = obj.as_object_mut() {
                obj.extend(search.fields());
            }
            let obj = with_warning(format, warning, obj);
            println!("{obj}");
        }
        VerifyFormat::Text => {
            let mut out = format!("refused: {first}\ndiagnosis: {summary}\n");
            if let Some(also) = also {
                out.push_str(&format!("also refused: {also}\n"));
            }
            if let Some(warning) = warning {
                eprintln!("warning: {warning}");
            }
            if let Some(key) = key {
                out.push_str(&format!("key: {key}\n"));
            }
            if let Some(e) = search.explanation() {
                out.push_str(&render::side_by_side(
                    "we expect",
                    &e.expected,
                    "sender signed",
                    &e.signed,
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
        Ok(StringToSign::new(
            self.scheme,
            self.signed_identity(),
            timestamp,
            &self.signable()?,
        )?)
    }
}
