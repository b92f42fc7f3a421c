//! The command line: `countersign sign|verify|explain|diagnose|demo|serve|send`.
//!
//! The four scheme commands are built at run time from the registry (see
//! [`crate::scheme_args`]); `demo`, `serve` and `send` are derived here.

use std::path::PathBuf;

use clap::{ArgMatches, Args, Command, FromArgMatches as _, Subcommand, ValueEnum};

use crate::scheme_args::{self, Mode, RequestArgs};

/// The top-level description.
const ABOUT: &str = "Sign, verify, explain and diagnose request and webhook signatures (KamioKash, Kitopay, Standard Webhooks); a local provider sandbox (serve, send).\n\nSecrets are read from an environment variable (--secret-env) or a file (--secret-file), never from the command line.";

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// `sign`, `explain`, `verify` or `diagnose` for one scheme.
    Scheme(Mode, Box<RequestArgs>),
    /// `demo`.
    Demo,
    /// `serve`.
    Serve(ServeArgs),
    /// `send`.
    Send(SendArgs),
}

/// The whole command line.
pub(crate) fn command() -> Command {
    let mut cmd = Command::new("countersign")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .subcommand_required(true)
        .arg_required_else_help(true);
    for mode in Mode::ALL {
        cmd = cmd.subcommand(scheme_args::mode_command(mode));
    }
    cmd.subcommand(
        Command::new("demo")
            .about("Sign and verify the documented examples, and diagnose a trailing-slash mistake"),
    )
    // The about after the derived flags: `augment_args` would set the struct's doc comment.
    .subcommand(ServeArgs::augment_args(Command::new("serve")).about(
        "Run a local stand-in for the provider's signature check: every request gets a verdict and, when refused, a diagnosis (Ctrl-C stops it)",
    ))
    .subcommand(SendArgs::augment_args(Command::new("send")).about(
        "Post a signed sample webhook delivery to your endpoint; exit 0 on 2xx, 1 otherwise",
    ))
}

/// Parses the process's arguments; on a usage error, clap prints it and exits 2.
pub(crate) fn parse() -> Parsed {
    let matches = command().get_matches();
    match from_matches(&matches) {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    }
}

fn from_matches(matches: &ArgMatches) -> Result<Parsed, clap::Error> {
    let missing = || clap::Error::new(clap::error::ErrorKind::MissingSubcommand);
    let (name, sub) = matches.subcommand().ok_or_else(missing)?;
    if let Some(mode) = Mode::named(name) {
        let (scheme_name, scheme_matches) = sub.subcommand().ok_or_else(missing)?;
        let scheme = countersign::Scheme::named(scheme_name)
            .map_err(|_| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        return Ok(Parsed::Scheme(
            mode,
            Box::new(RequestArgs::from_matches(scheme, scheme_matches)),
        ));
    }
    match name {
        "demo" => Ok(Parsed::Demo),
        "serve" => Ok(Parsed::Serve(ServeArgs::from_arg_matches(sub)?)),
        "send" => Ok(Parsed::Send(SendArgs::from_arg_matches(sub)?)),
        _ => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
    }
}

/// `--trailing-slash`: what to do with the URL's trailing slash before signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SlashArg {
    /// Sign the URL as given.
    Preserve,
    /// Remove a trailing slash.
    Strip,
    /// Add a trailing slash.
    Require,
}

impl From<SlashArg> for countersign::TrailingSlash {
    fn from(s: SlashArg) -> Self {
        match s {
            SlashArg::Preserve => countersign::TrailingSlash::Preserve,
            SlashArg::Strip => countersign::TrailingSlash::Strip,
            SlashArg::Require => countersign::TrailingSlash::Require,
        }
    }
}

/// `sign --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SignFormat {
    /// `Name: value` lines.
    Headers,
    /// One JSON object.
    Json,
    /// A ready curl command line.
    Curl,
}

/// `verify --format` and `diagnose --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum VerifyFormat {
    /// Lines for a person.
    Text,
    /// One JSON object.
    Json,
}

/// `countersign serve <provider>`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    pub(crate) provider: ServeProvider,
}

/// What `serve` stands in for.
#[derive(Debug, Subcommand)]
pub(crate) enum ServeProvider {
    /// Check Kitopay-signed requests: the full scheme, or the simplified one when the request
    /// carries x-simplified-signature (transaction id: the last path segment).
    Kitopay {
        /// The merchant id requests must carry and sign.
        #[arg(long, allow_hyphen_values = true)]
        merchant_id: String,
        /// The base URL your client signs for (e.g. https://api.dev.kitopay.com): it replaces
        /// the local scheme and host; the path and query are verified exactly as received.
        /// Defaults to http://<Host header>.
        #[arg(long)]
        public_url: Option<String>,
        #[command(flatten)]
        common: ServeCommon,
    },
    /// Check KamioKash-signed requests (body ‖ `:` ‖ timestamp).
    Kamiokash {
        /// Also require this X-API-Key.
        #[arg(long, allow_hyphen_values = true)]
        api_key: Option<String>,
        #[command(flatten)]
        common: ServeCommon,
    },
    /// Check Standard Webhooks deliveries POSTed to it (webhook-id, webhook-timestamp,
    /// webhook-signature; 5-minute window).
    StandardWebhooks {
        #[command(flatten)]
        common: ServeCommon,
    },
}

/// What every `serve` provider takes.
#[derive(Debug, Args)]
pub(crate) struct ServeCommon {
    /// Port to listen on, on 127.0.0.1 only; 0 picks a free one (the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Environment variable holding a secret (default: the scheme's, KITOPAY_SECRET,
    /// KAMIOKASH_SECRET or STANDARD_WEBHOOKS_SECRET); repeat for rotation (the key that
    /// matched is reported).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) secret_env: Vec<String>,
    /// File holding a secret (exactly one trailing newline is stripped); repeatable.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) secret_file: Vec<PathBuf>,
}

/// `countersign send <delivery>`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(subcommand)]
    pub(crate) target: SendTarget,
}

/// What `send` delivers.
#[derive(Debug, Subcommand)]
pub(crate) enum SendTarget {
    /// A KamioKash webhook delivery (X-Timestamp, X-Kamio-Signature over timestamp ‖ body).
    KamiokashWebhook {
        /// The event type of the sample body (required unless --body-file is given).
        #[arg(
            long,
            value_parser = clap::builder::PossibleValuesParser::new(countersign::kamiokash::WEBHOOK_EVENT_TYPES),
            required_unless_present = "body_file",
            conflicts_with = "body_file"
        )]
        event: Option<String>,
        #[command(flatten)]
        common: SendCommon,
    },
    /// A Kitopay webhook delivery (x-merchant-id, x-timestamp, x-signature over the URL).
    KitopayWebhook {
        /// The merchant id the delivery is for (signed, and sent as x-merchant-id).
        #[arg(long, allow_hyphen_values = true)]
        merchant_id: String,
        /// The status of the sample transaction.
        #[arg(
            long,
            default_value = "success",
            allow_hyphen_values = true,
            conflicts_with = "body_file"
        )]
        status: String,
        /// Sign for this URL (the public URL your handler is registered at, behind a proxy
        /// or tunnel) and send to --url. Defaults to --url.
        #[arg(long)]
        signed_url: Option<String>,
        #[command(flatten)]
        common: SendCommon,
    },
    /// A Standard Webhooks delivery (webhook-id, webhook-timestamp, webhook-signature over
    /// id ‖ `.` ‖ timestamp ‖ `.` ‖ body; `whsec_` secret).
    StandardWebhooks {
        /// The event type of the sample body, e.g. invoice.paid: `{"type", "timestamp",
        /// "data"}` as the specification recommends (required unless --body-file is given).
        #[arg(
            long,
            allow_hyphen_values = true,
            required_unless_present = "body_file",
            conflicts_with = "body_file"
        )]
        event: Option<String>,
        /// The webhook-id. Defaults to a fresh `msg_…` id; repeats and re-signed retries
        /// keep it.
        #[arg(long, allow_hyphen_values = true)]
        id: Option<String>,
        #[command(flatten)]
        common: SendCommon,
    },
}

/// What every `send` delivery takes.
#[derive(Debug, Args)]
pub(crate) struct SendCommon {
    /// Your endpoint (plain http), e.g. http://127.0.0.1:3000/webhooks/kamiokash. Sent (and,
    /// for Kitopay without --signed-url, signed) exactly in its canonical form.
    #[arg(long)]
    pub(crate) url: String,
    /// Send this file's bytes as the body instead of the sample (`-` reads standard input).
    #[arg(long)]
    pub(crate) body_file: Option<PathBuf>,
    /// Resend the same delivery (same bytes, same headers) this many more times, to test
    /// replay handling.
    #[arg(long, default_value_t = 0)]
    pub(crate) repeat: u32,
    /// With --repeat: re-sign each repeat at the time it is sent (same bytes, same
    /// webhook-id, a fresh timestamp and signature), as a provider's retry is.
    #[arg(long, requires = "repeat")]
    pub(crate) resign: bool,
    /// Wait this many seconds between signing and sending, so the delivery arrives stale.
    #[arg(long, default_value_t = 0)]
    pub(crate) delay: u64,
    /// Environment variable holding the secret (default: the scheme's,
    /// KAMIOKASH_WEBHOOK_SECRET, KITOPAY_SECRET or STANDARD_WEBHOOKS_SECRET).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) secret_env: Option<String>,
    /// File holding the secret (exactly one trailing newline is stripped).
    #[arg(long, conflicts_with = "secret_env", allow_hyphen_values = true)]
    pub(crate) secret_file: Option<PathBuf>,
}
