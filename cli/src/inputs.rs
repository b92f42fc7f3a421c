//! Turning arguments into library inputs: body, URL, secrets. Every failure is a one-line
//! usage error (exit 2) that says what to fix and never contains a secret.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use countersign::{CanonicalUrl, KeyRing, Scheme, SecretKey, SignableRequest, Signer};
use zeroize::Zeroizing;

use crate::scheme_args::RequestArgs;

/// A bad-usage or bad-input error: exit code 2.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl From<countersign::Error> for Usage {
    fn from(e: countersign::Error) -> Self {
        Usage(e.to_string())
    }
}

/// Where the body came from (for the curl output).
#[derive(Debug, Clone)]
pub(crate) enum BodySource {
    None,
    Text(String),
    File(PathBuf),
    /// `--body-file -`: the bytes are in [`Loaded::body`] only.
    Stdin,
}

/// The request inputs, checked against what the scheme needs.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) scheme: &'static Scheme,
    /// The identity (`--merchant-id`, `--api-key`), where the scheme has one.
    pub(crate) identity: Option<String>,
    pub(crate) method: Option<String>,
    /// The canonical URL, for schemes that sign it.
    pub(crate) url: Option<CanonicalUrl>,
    pub(crate) raw_url: Option<String>,
    /// The named values, `(name, value)`.
    pub(crate) values: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) body_source: BodySource,
}

impl Loaded {
    pub(crate) fn from_args(a: &RequestArgs) -> Result<Self, Usage> {
        let scheme = a.scheme;
        let url = if scheme.signs_url() {
            let raw = a
                .url
                .as_deref()
                .ok_or_else(|| Usage(format!("--url is required for the {scheme} scheme")))?;
            Some(
                CanonicalUrl::parse_with(raw, a.trailing_slash.into())
                    .map_err(|e| Usage(format!("--url: {e}")))?,
            )
        } else {
            None
        };
        let (body, body_source) = match (&a.body, &a.body_file) {
            (Some(text), _) => (text.clone().into_bytes(), BodySource::Text(text.clone())),
            (None, Some(path)) if path == Path::new("-") => (read_body(path)?, BodySource::Stdin),
            (None, Some(path)) => (read_body(path)?, BodySource::File(path.clone())),
            (None, None) => (Vec::new(), BodySource::None),
        };
        let loaded = Loaded {
            scheme,
            identity: a.identity.clone(),
            method: a.method.clone(),
            url,
            raw_url: a.url.clone(),
            values: a.values.clone(),
            body,
            body_source,
        };
        loaded.signable()?;
        Ok(loaded)
    }

    /// The identity, where the scheme signs it.
    pub(crate) fn signed_identity(&self) -> Option<&str> {
        self.identity
            .as_deref()
            .filter(|_| self.scheme.signs_identity())
    }

    /// The value named `name`, if given.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The URL to show (canonical where the scheme signs it, else canonicalised for display).
    pub(crate) fn display_url(&self) -> Option<String> {
        match (&self.url, &self.raw_url) {
            (Some(url), _) => Some(url.as_str().to_owned()),
            (None, Some(raw)) => Some(
                CanonicalUrl::parse(raw)
                    .map(String::from)
                    .unwrap_or_else(|_| raw.clone()),
            ),
            (None, None) => None,
        }
    }

    /// The request as the scheme signs it.
    pub(crate) fn signable(&self) -> Result<SignableRequest<'_>, Usage> {
        let bad_method = |e: countersign::Error| Usage(format!("--method: {e}"));
        let mut request = SignableRequest::body(&self.body);
        if let (true, Some(m)) = (self.scheme.signs_method(), &self.method) {
            request = request.with_method(m).map_err(bad_method)?;
        }
        if let (true, Some(u)) = (self.scheme.signs_url(), &self.url) {
            request = request.with_url(u);
        }
        for (name, value) in &self.values {
            request = request.with_value(name, value);
        }
        Ok(request)
    }

    /// A signer for the scheme with `secret`, and the identity if the scheme has one.
    pub(crate) fn signer(&self, secret: &Secret) -> Result<Signer, Usage> {
        let signer = Signer::new(self.scheme, secret.key(self.scheme)?)?;
        match (self.scheme.identity_name(), &self.identity) {
            (Some(name), Some(identity)) => signer
                .with_identity(identity)
                .map_err(|e| Usage(format!("--{}: {e}", crate::scheme_args::flag_of(name)))),
            (Some(name), None) => Err(Usage(format!(
                "--{} is required for the {} scheme",
                crate::scheme_args::flag_of(name),
                self.scheme
            ))),
            (None, _) => Ok(signer),
        }
    }
}

pub(crate) fn read_body(path: &Path) -> Result<Vec<u8>, Usage> {
    let mut bytes = Vec::new();
    let result = if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    result.map_err(|e| Usage(format!("--body-file {}: {e}", path.display())))?;
    Ok(bytes)
}

/// Where a secret came from.
#[derive(Debug, Clone)]
enum Source {
    /// An environment variable, by name.
    Env(String),
    /// A `--secret-file`: which one it was (1-based) of how many.
    File(usize, usize),
}

/// A secret and where it came from. Its id (the variable's name, or `file:PATH`) names the
/// key in verdicts; error messages never show a `--secret-file` value (it may be the secret,
/// pasted where a path belongs) nor a secret's text.
pub(crate) struct Secret {
    pub(crate) id: String,
    source: Source,
    text: Zeroizing<String>,
}

impl Secret {
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Where the secret came from, for error messages: the variable's name, or which
    /// `--secret-file` (never its value).
    fn origin(&self) -> String {
        match &self.source {
            Source::Env(name) if looks_like_a_name(name) => name.clone(),
            Source::Env(_) => "the variable named by --secret-env".to_owned(),
            Source::File(n, total) => file_label(*n, *total),
        }
    }

    /// The key for the scheme (its key form applied: UTF-8, or `whsec_` + base64).
    pub(crate) fn key(&self, scheme: &Scheme) -> Result<SecretKey, Usage> {
        scheme.key(self.text()).map_err(|e| match e.kind() {
            countersign::ErrorKind::EmptySecret => {
                Usage(format!("the secret in {} is empty", self.origin()))
            }
            _ => Usage(format!(
                "the secret in {} is not in the {scheme} scheme's form: {e}",
                self.origin()
            )),
        })
    }

    fn from_env(name: &str) -> Result<Self, Usage> {
        match std::env::var(name) {
            Ok(text) => Ok(Secret {
                id: name.to_owned(),
                source: Source::Env(name.to_owned()),
                text: Zeroizing::new(text),
            }
            .warn_whitespace()),
            Err(std::env::VarError::NotPresent) => Err(Usage(missing_env(name))),
            Err(std::env::VarError::NotUnicode(_)) => Err(Usage(if looks_like_a_name(name) {
                format!("the secret in {name} is not valid UTF-8")
            } else {
                "the secret in the variable named by --secret-env is not valid UTF-8".to_owned()
            })),
        }
    }

    /// Reads the `n`th of `total` `--secret-file`s. No error shows the path: what was given
    /// may be the secret itself, and a path that names no file says nothing more than which
    /// flag it was.
    fn from_file(path: &Path, n: usize, total: usize) -> Result<Self, Usage> {
        let label = file_label(n, total);
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Usage(format!(
                "{label}: no file at the path given (not shown, in case it is the secret itself); pass the PATH of a file that holds the secret"
            )),
            _ => Usage(format!(
                "{label}: cannot read the file at the path given (not shown, in case it is the secret itself): {}; pass the PATH of a readable file that holds the secret",
                io_reason(&e)
            )),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Usage(format!(
                "{label}: the file is not UTF-8 text; a secret is text (save it as UTF-8)"
            ))
        })?;
        Ok(Secret {
            id: format!("file:{}", path.display()),
            source: Source::File(n, total),
            text: Zeroizing::new(strip_one_newline(text)),
        }
        .warn_whitespace())
    }

    /// Warns (never showing the value) when the secret has whitespace at either end: it is
    /// used as is, but that is usually a copy-paste or file-editing mistake.
    fn warn_whitespace(self) -> Self {
        if self.text.trim() != self.text.as_str() {
            eprintln!(
                "warning: the secret in {} has leading or trailing whitespace; it is used as is (countersign diagnose detects this mistake)",
                self.id
            );
        }
        self
    }

    /// Exactly one secret, from `--secret-env`, `--secret-file` or the default variable.
    pub(crate) fn one_of(
        files: &[PathBuf],
        env: Option<&str>,
        default_env: &str,
    ) -> Result<Self, Usage> {
        match (files, env) {
            ([], None) => Self::from_env(default_env),
            ([], Some(name)) => Self::from_env(name),
            ([path], None) => Self::from_file(path, 1, 1),
            _ => Err(Usage(
                "give one secret: --secret-env NAME or --secret-file PATH".into(),
            )),
        }
    }

    /// The secrets of a scheme command: one for `explain` and for schemes whose header
    /// holds one signature; for the others (and to verify), one or more.
    pub(crate) fn of_args(a: &RequestArgs, several: bool) -> Result<Vec<Self>, Usage> {
        let default = a.scheme.secret().name();
        if several {
            Self::many_of(&a.secret_env, &a.secret_file, default)
        } else {
            let env = match a.secret_env.as_slice() {
                [] => None,
                [one] => Some(one.as_str()),
                _ => {
                    return Err(Usage(format!(
                        "give one secret: the {} scheme's header holds one signature",
                        a.scheme
                    )));
                }
            };
            Ok(vec![Self::one_of(&a.secret_file, env, default)?])
        }
    }

    /// One or more secrets, in the order given (variables first), or the default variable.
    pub(crate) fn many_of(
        envs: &[String],
        files: &[PathBuf],
        default_env: &str,
    ) -> Result<Vec<Self>, Usage> {
        let mut out = Vec::new();
        for name in envs {
            out.push(Self::from_env(name)?);
        }
        for (i, path) in files.iter().enumerate() {
            out.push(Self::from_file(path, i + 1, files.len())?);
        }
        if out.is_empty() {
            out.push(Self::from_env(default_env)?);
        }
        Ok(out)
    }
}

/// `--secret-file`, or `the 2nd --secret-file` when there are several.
fn file_label(n: usize, total: usize) -> String {
    if total <= 1 {
        return "--secret-file".to_owned();
    }
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("the {n}{suffix} --secret-file")
}

/// Why a file could not be read, without the path (an OS error's text never has it).
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => e.to_string(),
        None => format!("{:?}", e.kind()),
    }
}

/// The secrets as a key ring for `scheme`, each under the name it was loaded by (rotation).
pub(crate) fn key_ring(secrets: &[Secret], scheme: &Scheme) -> Result<KeyRing, Usage> {
    let mut ring: Option<KeyRing> = None;
    for s in secrets {
        let key = s.key(scheme)?;
        ring = Some(match ring {
            None => KeyRing::new(s.id.clone(), key),
            Some(r) => r.with(s.id.clone(), key),
        });
    }
    ring.ok_or_else(|| Usage("missing secret: pass --secret-env NAME or --secret-file PATH".into()))
}

/// The `--secret-file` rule: exactly one trailing `\n` or `\r\n` is removed; nothing else.
fn strip_one_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// Whether `name` can be an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `name` is shown in messages: a conventional variable name (no lowercase letters).
fn looks_like_a_name(name: &str) -> bool {
    is_env_name(name) && !name.bytes().any(|b| b.is_ascii_lowercase())
}

/// The error for an unset variable. The name is shown only when it looks like a
/// conventional variable name (no lowercase letters): what is passed to `--secret-env` is
/// sometimes the secret itself, and secrets such as `kk_test_sk_3b9d...` are valid names.
fn missing_env(name: &str) -> String {
    if !is_env_name(name) {
        "the value given to --secret-env is not an environment variable name (it looks like a secret: pass the NAME of a variable that holds it)".to_owned()
    } else if name.bytes().any(|b| b.is_ascii_lowercase()) {
        "missing secret: the environment variable named by --secret-env is not set (its name is not shown: it has lowercase letters and may be the secret itself); export it, or pass the NAME of a variable that holds the secret".to_owned()
    } else {
        format!(
            "missing secret: environment variable {name} is not set; export it, or pass --secret-env NAME or --secret-file PATH"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(is_env_name("KITOPAY_SECRET"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("sk_live/abc+="));
    }

    #[test]
    fn one_newline_only() {
        assert_eq!(strip_one_newline("s\n\n".into()), "s\n");
        assert_eq!(strip_one_newline("s\r\n".into()), "s");
        assert_eq!(strip_one_newline(" s \r".into()), " s \r");
        assert_eq!(strip_one_newline(" s ".into()), " s ");
    }
}
