//! What explains a refusal: the library's hypothesis search over every configured secret,
//! and its one-line summary. Shared by `diagnose` and `serve`.

use countersign::diagnose::{Diagnosis, Finding, Inputs, diagnose};
use countersign::{
    CanonicalUrl, Error, ErrorKind, FixedClock, ReceivedRequest, Scheme, SignableRequest,
    StringToSign, TimeFormat, Verifier, kitopay,
};
use serde_json::{Map, Value, json};

use crate::inputs::{self, Secret};
use crate::render;

/// The API hosts a provider documents, for the schemes that sign the URL of requests to
/// it: a request signed for one of them but checked against another URL (the sandbox
/// without `--public-url`, or `diagnose` given the local URL) is a host mismatch.
static DOCUMENTED_HOSTS: [(&Scheme, &[&str]); 1] = [(
    &kitopay::FULL,
    &["https://api.kitopay.com", "https://api.dev.kitopay.com"],
)];

/// Who is told how to fix a host mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fix {
    /// The sandbox: pass `--public-url`.
    PublicUrl,
    /// The `diagnose` command: check `--url`.
    Url,
}

/// A mistake that explains a signature, and both messages.
#[derive(Debug, Clone)]
pub(crate) struct Explanation {
    /// A stable id: the library's [`countersign::diagnose::Hypothesis::id`], or one of the
    /// CLI's own.
    pub(crate) id: String,
    /// What the mistake is and how to fix it, one line.
    pub(crate) text: String,
    /// The message expected.
    pub(crate) expected: Vec<u8>,
    /// The message the sender evidently signed.
    pub(crate) signed: Vec<u8>,
}

impl From<Finding> for Explanation {
    fn from(f: Finding) -> Self {
        Explanation {
            id: f.hypothesis.id(),
            text: f.hypothesis.to_string(),
            expected: f.expected,
            signed: f.signed,
        }
    }
}

/// What the hypothesis search found, over all the secrets.
pub(crate) enum Search {
    /// The signature is the MAC of the message as received (with this key): the refusal
    /// is about something else (timestamp, freshness, identity).
    Matches(String),
    /// A known mistake explains the signature (with this key).
    Explained(String, Explanation),
    /// No known mistake explains it.
    Unexplained,
    /// No hypothesis tried explains it, but the search stopped at its work bound (a large
    /// body) after `tried` of `total`.
    CutShort {
        /// Hypotheses tried.
        tried: usize,
        /// Hypotheses there were.
        total: usize,
    },
    /// Nothing to search (a malformed signature).
    Impossible(Error),
}

impl Search {
    /// The id of the key the search matched with, if any.
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            Search::Matches(key) | Search::Explained(key, _) => Some(key),
            Search::Unexplained | Search::CutShort { .. } | Search::Impossible(_) => None,
        }
    }

    /// Whether the signature is the MAC of the message as received; `None` when nothing
    /// could be searched.
    pub(crate) fn signature_matches(&self) -> Option<bool> {
        match self {
            Search::Matches(_) => Some(true),
            Search::Explained(..) | Search::Unexplained | Search::CutShort { .. } => Some(false),
            Search::Impossible(_) => None,
        }
    }

    /// The explanation found, if any.
    pub(crate) fn explanation(&self) -> Option<&Explanation> {
        match self {
            Search::Explained(_, explanation) => Some(explanation),
            _ => None,
        }
    }

    /// The machine-readable findings, with the same names wherever they are shown
    /// (`diagnose --format json`, the sandbox's `diagnosis`): `signature_matches`, `key`,
    /// `hypothesis`, `first_difference`, `expected`, `signed` (the message the sender
    /// signed), `cut_short`.
    pub(crate) fn fields(&self) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(matches) = self.signature_matches() {
            out.insert("signature_matches".into(), json!(matches));
        }
        if let Some(key) = self.key() {
            out.insert("key".into(), json!(key));
        }
        match self {
            Search::Explained(_, e) => {
                out.insert("hypothesis".into(), json!(e.id));
                out.insert(
                    "first_difference".into(),
                    json!(render::first_difference(&e.expected, &e.signed)),
                );
                out.insert("expected".into(), json!(render::escape(&e.expected)));
                out.insert("signed".into(), json!(render::escape(&e.signed)));
            }
            Search::CutShort { tried, total } => {
                out.insert("cut_short".into(), json!({"tried": tried, "total": total}));
            }
            _ => {}
        }
        out
    }
}

/// Runs the search with each secret in turn (`template.secret` is ignored). A match with
/// the message as received ends it; otherwise the first key with an explanation wins. When
/// the library's hypotheses explain nothing, the provider's documented hosts are tried
/// (`fix` says how a host mismatch is fixed).
///
/// # Errors
///
/// [`ErrorKind::MissingUrl`] when a URL-signing scheme has no URL (bad usage, not a finding).
pub(crate) fn search(secrets: &[Secret], template: &Inputs<'_>, fix: Fix) -> Result<Search, Error> {
    let found = library_search(secrets, template)?;
    if matches!(found, Search::Unexplained | Search::CutShort { .. })
        && let Some((key, explanation)) = host_mismatch(secrets, template, fix)
    {
        return Ok(Search::Explained(key, explanation));
    }
    Ok(found)
}

/// The library's hypotheses, with each secret in turn.
fn library_search(secrets: &[Secret], template: &Inputs<'_>) -> Result<Search, Error> {
    let mut found = Search::Unexplained;
    for secret in secrets {
        let inputs = Inputs {
            secret: secret.text(),
            ..*template
        };
        match diagnose(&inputs) {
            // The message as received verifies: no other key's finding matters.
            Ok(Diagnosis::Valid) => return Ok(Search::Matches(secret.id.clone())),
            Ok(Diagnosis::Explained(f)) => {
                if !matches!(found, Search::Explained(..)) {
                    found = Search::Explained(secret.id.clone(), f.into());
                }
            }
            Ok(Diagnosis::CutShort { tried, total }) => {
                if matches!(found, Search::Unexplained) {
                    found = Search::CutShort { tried, total };
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == &ErrorKind::MissingUrl => return Err(e),
            Err(e) => return Ok(Search::Impossible(e)),
        }
    }
    Ok(found)
}

/// The request signed for the same path and query at another of the provider's documented
/// hosts: the key it verifies with, and the explanation. One MAC per host and key.
fn host_mismatch(
    secrets: &[Secret],
    template: &Inputs<'_>,
    fix: Fix,
) -> Option<(String, Explanation)> {
    let scheme = template.scheme;
    let url = template.url?;
    let hosts = DOCUMENTED_HOSTS
        .iter()
        .find(|(documented, _)| *documented == scheme)?
        .1;
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let origin = url.as_str().strip_suffix(target.as_str())?;
    // Verified at its own time: freshness is not the question here.
    let at = scheme.parse_timestamp(template.timestamp).ok()?;
    let ring = inputs::key_ring(secrets, scheme).ok()?;
    let mut verifier = Verifier::new(scheme, ring)
        .ok()?
        .with_clock(FixedClock::new(at))
        .with_body_on_get(true);
    if scheme.signs_identity() {
        verifier = verifier.with_identity(template.identity).ok()?;
    }
    let mut headers = vec![(scheme.signature_header(), template.signature)];
    if let Some(name) = scheme.timestamp_header() {
        headers.push((name, template.timestamp));
    }
    if let (Some(name), true) = (scheme.identity_header(), scheme.signs_identity()) {
        headers.push((name, template.identity));
    }
    for value in scheme.values() {
        let given = template
            .values
            .iter()
            .find(|(name, _)| *name == value.name());
        if let (Some(header), Some((_, given))) = (value.header_name(), given) {
            headers.push((header, given));
        }
    }
    let message = |url: &CanonicalUrl| -> Option<Vec<u8>> {
        let mut request = SignableRequest::body(template.body).with_url(url);
        if scheme.signs_method() {
            request = request.with_method(template.method).ok()?;
        }
        for (name, value) in template.values {
            request = request.with_value(name, value);
        }
        let identity = scheme.signs_identity().then_some(template.identity);
        StringToSign::new(scheme, identity, template.timestamp, &request)
            .ok()
            .map(|m| m.to_bytes())
    };
    for host in hosts.iter().filter(|host| **host != origin) {
        let Ok(other) = CanonicalUrl::parse(&format!("{host}{target}")) else {
            continue;
        };
        let mut received = ReceivedRequest::new(&headers, template.body).with_url(&other);
        if scheme.signs_method() {
            received = received.with_method(template.method);
        }
        for (name, value) in template.values {
            received = received.with_value(name, value);
        }
        let Ok(verified) = verifier.verify(&received) else {
            continue;
        };
        let how = match fix {
            Fix::PublicUrl => {
                format!("this sandbox rebuilt {url} from the request: pass --public-url {host}")
            }
            Fix::Url => format!(
                "not for {url}: check --url, or send the request to the host it was signed for"
            ),
        };
        let explanation = Explanation {
            id: "host_mismatch".to_owned(),
            text: format!(
                "host: the sender signed for {other}, at {host} (a host {scheme} documents); {how}"
            ),
            expected: message(url)?,
            signed: message(&other)?,
        };
        return Some((verified.key_id().to_owned(), explanation));
    }
    None
}

/// A warning when a timestamp is accepted but not written the way the provider writes it
/// (KamioKash documents `toISOString()`, e.g. `2026-01-27T09:23:06.658Z`; Python's
/// `isoformat()` gives `2026-01-27T09:23:06.658123+00:00`): the provider may refuse it.
pub(crate) fn timestamp_warning(scheme: &Scheme, text: &str) -> Option<String> {
    let at = scheme.parse_timestamp(text).ok()?;
    let written = scheme.format_timestamp(at)?;
    if written.as_str() == text {
        return None;
    }
    let how = match scheme.time_format() {
        Some(TimeFormat::Rfc3339) => {
            "as JavaScript's toISOString() writes it: UTC, milliseconds, `Z`"
        }
        _ => "in the scheme's form",
    };
    Some(format!(
        "the timestamp {text} is accepted here, but {scheme} timestamps are written {how} ({written}); the provider will likely refuse this form: sign and send {written}"
    ))
}

/// When the signature matches the message as received: what alone is refused, and the fix
/// (for the `verify`/`diagnose` commands, which take `--now`).
pub(crate) fn only_refused(refusal: &Error, scheme: &Scheme) -> String {
    match refusal.kind() {
        ErrorKind::MalformedTimestamp { .. }
            if scheme.time_format() == Some(countersign::TimeFormat::UnixSecs) =>
        {
            "only the timestamp is refused: send UNIX seconds and sign them".to_owned()
        }
        ErrorKind::MalformedTimestamp { .. } => "only the timestamp is refused: send an RFC 3339 timestamp (e.g. 2026-01-27T09:23:06.658Z) and sign exactly that text".to_owned(),
        ErrorKind::Expired { .. } | ErrorKind::Future { .. } => "only the freshness check fails: check the sender's clock (NTP) and sign at send time (to check an old request, pass --now)".to_owned(),
        ErrorKind::IdentityMismatch(header) => {
            format!("only the {header} header is refused: it does not match the configured value")
        }
        ErrorKind::BodyNotAllowed(method) => {
            format!("only the body is refused: a {method} request must carry none")
        }
        _ => format!("only this check fails: {refusal}"),
    }
}

const UNEXPLAINED: &str =
    "check the secret and compare every input byte for byte (`countersign explain`)";

/// The one-line diagnosis of `refusal` given what the search found; `only` says what alone
/// is refused when the signature matches the message as received.
pub(crate) fn summary(refusal: &Error, search: &Search, only: &str) -> String {
    let mismatch = refusal.kind() == &ErrorKind::SignatureMismatch;
    match search {
        Search::Matches(_) => {
            format!("the signature matches the message as received; {only}")
        }
        Search::Explained(_, e) if mismatch => e.text.clone(),
        Search::Explained(_, e) => format!(
            "the signature does not match the message as received either: {}",
            e.text
        ),
        Search::Unexplained if mismatch => {
            format!("no single known mistake explains the mismatch: {UNEXPLAINED}")
        }
        Search::Unexplained => format!(
            "the signature does not match the message as received either, and no single known mistake explains it: {UNEXPLAINED}"
        ),
        Search::CutShort { tried, total } => format!(
            "{}no known mistake explains it among the {tried} of {total} hypotheses tried: the search stopped at its work bound (a large body); {UNEXPLAINED}",
            if mismatch {
                ""
            } else {
                "the signature does not match the message as received either; "
            }
        ),
        Search::Impossible(e) if e.kind() == refusal.kind() => {
            "nothing to search: fix the signature header first".to_owned()
        }
        Search::Impossible(e) => format!("nothing to search: {e}"),
    }
}
