//! What explains a refusal: the library's hypothesis search over every configured secret,
//! and its one-line summary. Shared by `diagnose` and `serve`.

use countersign::diagnose::{Diagnosis, Finding, Inputs, diagnose};
use countersign::{Error, ErrorKind, Scheme};
use serde_json::{Map, Value, json};

use crate::inputs::Secret;
use crate::render;

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
/// the message as received ends it; otherwise the first key with an explanation wins.
///
/// # Errors
///
/// [`ErrorKind::MissingUrl`] when a URL-signing scheme has no URL (bad usage, not a finding).
pub(crate) fn search(secrets: &[Secret], template: &Inputs<'_>) -> Result<Search, Error> {
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
        _ => format!("only this check fails: {}", crate::render::error_text(refusal)),
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
