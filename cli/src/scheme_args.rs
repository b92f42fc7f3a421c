//! `sign`, `explain`, `verify` and `diagnose`: one subcommand per scheme of the registry
//! (`countersign::built_in()`), built at run time. Each scheme's flags and their help come
//! from its parts: what it signs, the headers it sends, its named values, its secret and its
//! freshness window. Nothing here names a scheme.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use countersign::{Encoding, KeyForm, Part, Scheme, TimeFormat, Value};

use crate::args::{SignFormat, SlashArg, VerifyFormat};

/// What is done with a scheme's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Sign, and print the headers to send.
    Sign,
    /// Show the message signed, field by field.
    Explain,
    /// Verify a received signature.
    Verify,
    /// Verify, and when refused, search for the mistake.
    Diagnose,
}

impl Mode {
    /// Every mode, in the order the top-level help lists them.
    pub(crate) const ALL: [Mode; 4] = [Mode::Sign, Mode::Verify, Mode::Explain, Mode::Diagnose];

    /// The subcommand's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Sign => "sign",
            Mode::Explain => "explain",
            Mode::Verify => "verify",
            Mode::Diagnose => "diagnose",
        }
    }

    /// The mode of a subcommand name.
    pub(crate) fn named(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|mode| mode.name() == name)
    }

    fn about(self) -> &'static str {
        match self {
            Mode::Sign => {
                "Sign a request (or a test webhook delivery) and print the headers to send"
            }
            Mode::Explain => "Show the exact message signed, byte by byte, field by field",
            Mode::Verify => "Verify a received signature; exit 0 valid, 1 rejected, 2 bad input",
            Mode::Diagnose => {
                "Explain a signature mismatch: which well-known mistake would make it verify"
            }
        }
    }

    /// Whether the request was received (its signature is checked) rather than made.
    fn checks(self) -> bool {
        matches!(self, Mode::Verify | Mode::Diagnose)
    }
}

/// Said under every mode's list of schemes (`countersign sign --help`).
const SECRETS_HELP: &str = "Secrets are read from an environment variable (--secret-env NAME, by default the scheme's own, e.g. KITOPAY_SECRET) or a file (--secret-file PATH), never from the command line. Exactly one trailing newline (`\\n` or `\\r\\n`) is stripped from a file, if present; nothing else: other whitespace, and a second newline, are kept as part of the secret.\n\n`countersign <command> <scheme> --help` lists the scheme's flags; those marked [required] must be given.";

/// The `sign`/`explain`/`verify`/`diagnose` command: one subcommand per built-in scheme.
pub(crate) fn mode_command(mode: Mode) -> Command {
    Command::new(mode.name())
        .about(mode.about())
        .after_help(SECRETS_HELP)
        .subcommand_required(true)
        .disable_help_subcommand(true)
        .subcommand_value_name("SCHEME")
        .subcommand_help_heading("Schemes")
        .subcommands(
            countersign::built_in()
                .iter()
                .map(|scheme| scheme_command(scheme, mode)),
        )
}

/// `--merchant-id` for `merchant_id`: the flag of a field name.
pub(crate) fn flag_of(name: &str) -> String {
    name.replace('_', "-")
}

/// `merchant ID` for `merchant_id`, `API key` for `api_key`: a field name in prose.
fn words(name: &str) -> String {
    name.split('_')
        .map(|word| match word {
            "api" | "id" | "url" => word.to_ascii_uppercase(),
            _ => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A flag taking one value, which may start with `-` (merchant ids, bodies, timestamps).
fn value_arg(id: impl Into<String>, value_name: impl Into<String>, help: String) -> Arg {
    let id = id.into();
    let value_name = value_name.into();
    Arg::new(id.clone())
        .long(id)
        .value_name(value_name)
        .num_args(1)
        .allow_hyphen_values(true)
        .help(help)
}

/// Marks `arg` required, in the usage line and in its help.
fn required(arg: Arg) -> Arg {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.required(true).help(format!("{help} [required]"))
}

/// An example of the scheme's timestamp, and what it is.
fn time_example(format: Option<TimeFormat>) -> &'static str {
    match format {
        Some(TimeFormat::UnixSecs) => "UNIX seconds, e.g. 1601234567",
        Some(TimeFormat::Rfc3339) => {
            "RFC 3339 as toISOString() writes it, e.g. 2026-01-27T09:23:06.658Z"
        }
        _ => "the scheme's format",
    }
}

/// How the signature header reads, e.g. "64 hex characters".
fn signature_form(scheme: &Scheme) -> String {
    let format = scheme.signature();
    let encoded = match format.encoding() {
        Encoding::Hex => "64 hex characters",
        Encoding::Base64 => "44 characters of base64",
        _ => "the signature",
    };
    let one = if format.prefix().is_empty() {
        encoded.to_owned()
    } else {
        format!("`{}` then {encoded}", format.prefix())
    };
    match format.separator() {
        Some(b' ') => format!("{one}; a list separated by spaces during a key rotation"),
        Some(separator) => format!(
            "{one}; a list separated by `{}` during a key rotation",
            char::from(separator)
        ),
        None => one,
    }
}

/// Whether the scheme signs the URL and the body one after the other (bytes could move
/// between the query and the body: a body on GET/HEAD is refused unless allowed).
pub(crate) fn url_meets_body(scheme: &Scheme) -> bool {
    scheme
        .message()
        .windows(2)
        .any(|pair| matches!(pair, [Part::Url, Part::Body]))
}

/// The help of a named value's flag.
fn value_help(value: &Value, mode: Mode) -> String {
    let name = words(value.name());
    let domain = value.domain().about();
    match (value.header_name(), mode.checks()) {
        (Some(header), true) => {
            format!("The {header} header's value, exactly as received ({domain})")
        }
        (Some(header), false) => format!("The {name}: sent in {header} and signed ({domain})"),
        (None, _) => format!("The {name}: signed, not sent in a header ({domain})"),
    }
}

/// The subcommand for one scheme in one mode, its flags derived from the scheme.
pub(crate) fn scheme_command(scheme: &'static Scheme, mode: Mode) -> Command {
    let mut args: Vec<Arg> = Vec::new();

    // The sender's identity: signed (Kitopay's merchant id) or only sent (KamioKash's API key).
    if let (Some(name), Some(header)) = (scheme.identity_name(), scheme.identity_header()) {
        let flag = flag_of(name);
        let prose = words(name);
        let upper = name.to_ascii_uppercase();
        match (mode.checks(), scheme.signs_identity()) {
            (false, signed) => {
                let signed = if signed {
                    " and signed"
                } else {
                    " (not signed)"
                };
                args.push(required(value_arg(
                    flag,
                    upper,
                    format!("The {prose}: sent in {header}{signed}"),
                )));
            }
            (true, true) => args.push(required(value_arg(
                flag,
                upper,
                format!("The {prose} the request must carry in {header} and sign"),
            ))),
            (true, false) => {
                let received = format!("received-{}", flag_of(name));
                args.push(
                    value_arg(
                        flag,
                        upper.clone(),
                        format!(
                            "The {prose} this account expects; the request's {header} (given with --{received}) must equal it"
                        ),
                    )
                    .requires(received.clone()),
                );
                args.push(value_arg(
                    received,
                    upper,
                    format!("The {header} header's value, exactly as received"),
                ));
            }
        }
    }

    // The method: signed, or (sign only) the method of the curl command.
    if scheme.signs_method() {
        let method = value_arg(
            "method",
            "METHOD",
            "HTTP method, signed exactly as given (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)".to_owned(),
        );
        args.push(if scheme.is_webhook() {
            method.default_value("POST")
        } else {
            required(method)
        });
    } else if mode == Mode::Sign {
        args.push(value_arg(
            "method",
            "METHOD",
            "HTTP method of the --format curl command (not signed by this scheme); defaults to POST with a body, GET without".to_owned(),
        ));
    }

    // The URL: signed in canonical form, or (sign only) the URL of the curl command.
    if scheme.signs_url() {
        let help = if scheme.is_webhook() {
            "The webhook URL as registered, signed in canonical form"
        } else {
            "The request URL, signed in canonical form"
        };
        args.push(required(value_arg("url", "URL", help.to_owned())));
        args.push(
            Arg::new("trailing-slash")
                .long("trailing-slash")
                .value_name("POLICY")
                .value_parser(value_parser!(SlashArg))
                .default_value("preserve")
                .help("Trailing-slash policy for --url"),
        );
    } else if mode == Mode::Sign {
        args.push(value_arg(
            "url",
            "URL",
            "The URL to call, for --format curl (not signed by this scheme)".to_owned(),
        ));
    }

    if scheme.signs_body() {
        args.push(
            value_arg(
                "body",
                "TEXT",
                "Body text, used verbatim (no newline added)".to_owned(),
            )
            .conflicts_with("body-file"),
        );
        args.push(
            Arg::new("body-file")
                .long("body-file")
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .help("Body file, bytes verbatim (binary allowed); `-` reads standard input"),
        );
    }

    for value in scheme.values() {
        args.push(required(value_arg(
            flag_of(value.name()),
            value.name().to_ascii_uppercase(),
            value_help(value, mode),
        )));
    }

    if let Some(header) = scheme.timestamp_header() {
        let example = time_example(scheme.time_format());
        args.push(if mode.checks() {
            required(value_arg(
                "timestamp",
                "TIMESTAMP",
                format!("The {header} header's value, exactly as received ({example})"),
            ))
        } else {
            value_arg(
                "timestamp",
                "TIMESTAMP",
                format!("Timestamp to sign ({example}); defaults to now"),
            )
        });
    }

    if mode.checks() {
        args.push(required(value_arg(
            "signature",
            "SIGNATURE",
            format!(
                "The {} header's value, exactly as received ({})",
                scheme.signature_header(),
                signature_form(scheme)
            ),
        )));
    }

    args.extend(secret_args(scheme, mode));

    if mode.checks() {
        args.extend(freshness_args(scheme));
        if url_meets_body(scheme) {
            args.push(
                Arg::new("body-on-get")
                    .long("body-on-get")
                    .action(ArgAction::SetTrue)
                    .help("Accept a body on GET and HEAD requests (refused by default: with the URL signed just before the body, bytes could move between the query and the body)"),
            );
        }
    }

    match mode {
        Mode::Sign => args.push(
            Arg::new("format")
                .long("format")
                .value_name("FORMAT")
                .value_parser(value_parser!(SignFormat))
                .default_value("headers")
                .help("Output format"),
        ),
        Mode::Verify | Mode::Diagnose => args.push(
            Arg::new("format")
                .long("format")
                .value_name("FORMAT")
                .value_parser(value_parser!(VerifyFormat))
                .default_value("text")
                .help("Output format"),
        ),
        Mode::Explain => {}
    }

    Command::new(scheme.name()).about(scheme.about()).args(args)
}

/// `--secret-env` and `--secret-file`, each repeatable where several secrets make sense.
fn secret_args(scheme: &Scheme, mode: Mode) -> [Arg; 2] {
    let spec = scheme.secret();
    let default = spec.name();
    let form = match spec.form() {
        KeyForm::Utf8 => "its UTF-8 text is the key".to_owned(),
        KeyForm::Base64 { prefix } => format!("`{prefix}` then base64"),
        _ => "in the scheme's form".to_owned(),
    };
    let several = match mode {
        Mode::Verify | Mode::Diagnose => {
            "; repeat for a rotation (the key that matched is reported)"
        }
        Mode::Sign if scheme.signature().separator().is_some() => {
            "; repeat to sign with several secrets (one signature each in the header, as during a rotation)"
        }
        Mode::Sign | Mode::Explain => "",
    };
    [
        Arg::new("secret-env")
            .long("secret-env")
            .value_name("NAME")
            .action(ArgAction::Append)
            .allow_hyphen_values(true)
            .help(format!(
                "Read the secret ({form}) from this environment variable (default {default}){several}"
            )),
        Arg::new("secret-file")
            .long("secret-file")
            .value_name("PATH")
            .action(ArgAction::Append)
            .allow_hyphen_values(true)
            .value_parser(value_parser!(PathBuf))
            .help(format!(
                "Read the secret ({form}) from this file. Exactly one trailing newline (`\\n` or `\\r\\n`) is stripped, if present; nothing else: other whitespace, and a second newline, are kept as part of the secret{several}"
            )),
    ]
}

/// `--now`, `--max-age` and `--max-future`, defaulting to the scheme's window.
fn freshness_args(scheme: &Scheme) -> Vec<Arg> {
    let window = scheme.freshness();
    let mut args = Vec::new();
    if scheme.timestamp_header().is_some() {
        args.push(value_arg(
            "now",
            "TIME",
            format!(
                "The current time ({}); defaults to the system clock. Pass the time a recorded request was received to check it later",
                time_example(scheme.time_format())
            ),
        ));
        args.push(
            Arg::new("max-age")
                .long("max-age")
                .value_name("SECS")
                .value_parser(value_parser!(u64))
                .default_value(window.max_age.as_secs().to_string())
                .help("Oldest acceptable timestamp, in seconds"),
        );
        args.push(
            Arg::new("max-future")
                .long("max-future")
                .value_name("SECS")
                .value_parser(value_parser!(u64))
                .default_value(window.max_future.as_secs().to_string())
                .help("Furthest acceptable future timestamp, in seconds"),
        );
    }
    args
}

/// A scheme's request as given on the command line (flags the scheme does not have are
/// absent).
#[derive(Debug)]
pub(crate) struct RequestArgs {
    pub(crate) scheme: &'static Scheme,
    /// The identity flag (`--merchant-id`, `--api-key`).
    pub(crate) identity: Option<String>,
    /// `--received-api-key`: an identity sent but not signed, as received.
    pub(crate) received_identity: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) trailing_slash: SlashArg,
    /// The named values, `(name, value)`, in the scheme's order.
    pub(crate) values: Vec<(&'static str, String)>,
    pub(crate) body: Option<String>,
    pub(crate) body_file: Option<PathBuf>,
    pub(crate) timestamp: Option<String>,
    pub(crate) signature: Option<String>,
    pub(crate) secret_env: Vec<String>,
    pub(crate) secret_file: Vec<PathBuf>,
    pub(crate) now: Option<String>,
    pub(crate) max_age: u64,
    pub(crate) max_future: u64,
    pub(crate) body_on_get: bool,
    pub(crate) sign_format: SignFormat,
    pub(crate) verify_format: VerifyFormat,
}

/// The value of `id` if the subcommand has that flag and it was given.
fn text(m: &ArgMatches, id: &str) -> Option<String> {
    m.try_get_one::<String>(id).ok().flatten().cloned()
}

impl RequestArgs {
    /// Reads the flags of `scheme`'s subcommand.
    pub(crate) fn from_matches(scheme: &'static Scheme, m: &ArgMatches) -> Self {
        let identity_flag = scheme.identity_name().map(flag_of);
        let many = |id: &str| -> Vec<String> {
            m.try_get_many::<String>(id)
                .ok()
                .flatten()
                .map(|values| values.cloned().collect())
                .unwrap_or_default()
        };
        RequestArgs {
            scheme,
            identity: identity_flag.as_deref().and_then(|flag| text(m, flag)),
            received_identity: identity_flag
                .as_deref()
                .and_then(|flag| text(m, &format!("received-{flag}"))),
            method: text(m, "method"),
            url: text(m, "url"),
            trailing_slash: m
                .try_get_one::<SlashArg>("trailing-slash")
                .ok()
                .flatten()
                .copied()
                .unwrap_or(SlashArg::Preserve),
            values: scheme
                .values()
                .filter_map(|value| {
                    text(m, &flag_of(value.name())).map(|given| (value.name(), given))
                })
                .collect(),
            body: text(m, "body"),
            body_file: m
                .try_get_one::<PathBuf>("body-file")
                .ok()
                .flatten()
                .cloned(),
            timestamp: text(m, "timestamp"),
            signature: text(m, "signature"),
            secret_env: many("secret-env"),
            secret_file: m
                .try_get_many::<PathBuf>("secret-file")
                .ok()
                .flatten()
                .map(|values| values.cloned().collect())
                .unwrap_or_default(),
            now: text(m, "now"),
            max_age: m
                .try_get_one::<u64>("max-age")
                .ok()
                .flatten()
                .copied()
                .unwrap_or(0),
            max_future: m
                .try_get_one::<u64>("max-future")
                .ok()
                .flatten()
                .copied()
                .unwrap_or(0),
            body_on_get: m
                .try_get_one::<bool>("body-on-get")
                .ok()
                .flatten()
                .copied()
                .unwrap_or(false),
            sign_format: m
                .try_get_one::<SignFormat>("format")
                .ok()
                .flatten()
                .copied()
                .unwrap_or(SignFormat::Headers),
            verify_format: m
                .try_get_one::<VerifyFormat>("format")
                .ok()
                .flatten()
                .copied()
                .unwrap_or(VerifyFormat::Text),
        }
    }
}
