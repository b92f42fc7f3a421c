//! The command line: `countersign sign|verify|explain|diagnose|demo|serve|send`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sign, verify, explain and diagnose KamioKash and Kitopay request signatures.
///
/// Secrets are read from an environment variable (--secret-env) or a file (--secret-file),
/// never from the command line.
#[derive(Debug, Parser)]
#[command(name = "countersign", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Sign a request (or a test webhook delivery) and print the headers to send.
    Sign(SignArgs),
    /// Verify a received signature; exit 0 valid, 1 rejected, 2 bad input.
    Verify(VerifyArgs),
    /// Show the exact message signed, byte by byte, field by field.
    Explain(SignArgs),
    /// Explain a signature mismatch: which well-known mistake would make it verify.
    Diagnose(VerifyArgs),
    /// Sign and verify the documented examples, and diagnose a trailing-slash mistake.
    Demo,
    /// Run a local stand-in for the provider's signature check: every request gets a
    /// verdict and, when refused, a diagnosis (Ctrl-C stops it).
    Serve(ServeArgs),
    /// Post a signed sample webhook delivery to your endpoint; exit 0 on 2xx, 1 otherwise.
    Send(SendArgs),
}

/// The scheme names of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemeArg {
    /// Kitopay full request signature.
    Kitopay,
    /// Kitopay simplified signature.
    KitopaySimplified,
    /// KamioKash request signature.
    Kamiokash,
    /// Kitopay webhook (full scheme over the webhook URL).
    KitopayWebhook,
    /// KamioKash webhook.
    KamiokashWebhook,
}

impl SchemeArg {
    pub(crate) fn scheme(self) -> &'static countersign::Scheme {
        use countersign::{kamiokash, kitopay};
        match self {
            SchemeArg::Kitopay => &kitopay::FULL,
            SchemeArg::KitopaySimplified => &kitopay::SIMPLIFIED,
            SchemeArg::Kamiokash => &kamiokash::REQUEST,
            SchemeArg::KitopayWebhook => &kitopay::WEBHOOK,
            SchemeArg::KamiokashWebhook => &kamiokash::WEBHOOK,
        }
    }

    /// The environment variable read when neither --secret-env nor --secret-file is given.
    pub(crate) fn default_secret_env(self) -> &'static str {
        match self {
            SchemeArg::Kitopay | SchemeArg::KitopaySimplified | SchemeArg::KitopayWebhook => {
                "KITOPAY_SECRET"
            }
            SchemeArg::Kamiokash => "KAMIOKASH_SECRET",
            SchemeArg::KamiokashWebhook => "KAMIOKASH_WEBHOOK_SECRET",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SlashArg {
    Preserve,
    Strip,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SignFormat {
    /// `Name: value` lines.
    Headers,
    /// One JSON object.
    Json,
    /// A ready curl command line.
    Curl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum VerifyFormat {
    Text,
    Json,
}

/// The request's parts; which are required depends on the scheme.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The scheme.
    #[arg(value_enum)]
    pub(crate) scheme: SchemeArg,
    /// Kitopay merchant id.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) merchant_id: Option<String>,
    /// HTTP method, signed exactly as given (Kitopay schemes; kitopay-webhook defaults to POST).
    #[arg(long)]
    pub(crate) method: Option<String>,
    /// Request URL (Kitopay full schemes sign its canonical form; others only print it).
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Transaction id (kitopay-simplified).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) transaction_id: Option<String>,
    /// Body text, used verbatim (no newline added).
    #[arg(long, conflicts_with = "body_file", allow_hyphen_values = true)]
    pub(crate) body: Option<String>,
    /// Body file, bytes verbatim (binary allowed); `-` reads standard input.
    #[arg(long)]
    pub(crate) body_file: Option<PathBuf>,
    /// Trailing-slash policy for the URL.
    #[arg(long, value_enum, default_value = "preserve")]
    pub(crate) trailing_slash: SlashArg,
    /// Read the secret from this file (UTF-8). Exactly one trailing newline (`\n` or `\r\n`)
    /// is stripped, if present; nothing else: other whitespace, and a second newline, are kept
    /// as part of the secret.
    #[arg(long, conflicts_with = "secret_env")]
    pub(crate) secret_file: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// KamioKash public API key (X-API-Key).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) api_key: Option<String>,
    /// Timestamp to sign, in the provider's format (UNIX seconds or RFC 3339). Defaults to now.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) timestamp: Option<String>,
    /// Read the secret from this environment variable (defaults per scheme).
    #[arg(long)]
    pub(crate) secret_env: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "headers")]
    pub(crate) format: SignFormat,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// The timestamp header's value, exactly as received.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) timestamp: String,
    /// The signature header's value (64 hex characters).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) signature: String,
    /// KamioKash: the API key this account expects; the request's X-API-Key (given with
    /// --received-api-key) must equal it.
    #[arg(long, allow_hyphen_values = true, requires = "received_api_key")]
    pub(crate) api_key: Option<String>,
    /// KamioKash: the X-API-Key header's value, exactly as received.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) received_api_key: Option<String>,
    /// The current time, in the provider's format. Defaults to the system clock.
    #[arg(long)]
    pub(crate) now: Option<String>,
    /// Oldest acceptable timestamp, in seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) max_age: u64,
    /// Furthest acceptable future timestamp, in seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) max_future: u64,
    /// Environment variable holding a secret; repeat for rotation (the match is reported).
    #[arg(long)]
    pub(crate) secret_env: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: VerifyFormat,
}

/// `countersign serve <provider>`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    pub(crate) provider: ServeProvider,
}

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
}

/// What every `serve` provider takes.
#[derive(Debug, Args)]
pub(crate) struct ServeCommon {
    /// Port to listen on, on 127.0.0.1 only; 0 picks a free one (the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Environment variable holding a secret (default KITOPAY_SECRET or KAMIOKASH_SECRET);
    /// repeat for rotation (the key that matched is reported).
    #[arg(long)]
    pub(crate) secret_env: Vec<String>,
    /// File holding a secret (exactly one trailing newline is stripped); repeatable.
    #[arg(long, conflicts_with = "secret_env")]
    pub(crate) secret_file: Vec<PathBuf>,
}

/// `countersign send <delivery>`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(subcommand)]
    pub(crate) target: SendTarget,
}

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
        #[command(flatten)]
        common: SendCommon,
    },
}

/// What every `send` delivery takes.
#[derive(Debug, Args)]
pub(crate) struct SendCommon {
    /// Your endpoint (plain http), e.g. http://127.0.0.1:3000/webhooks/kamiokash. Sent,
    /// and for Kitopay signed, exactly in its canonical form.
    #[arg(long)]
    pub(crate) url: String,
    /// Send this file's bytes as the body instead of the sample (`-` reads standard input).
    #[arg(long)]
    pub(crate) body_file: Option<PathBuf>,
    /// Resend the same delivery (same bytes, same headers) this many more times, to test
    /// replay handling.
    #[arg(long, default_value_t = 0)]
    pub(crate) repeat: u32,
    /// Wait this many seconds between signing and sending, so the delivery arrives stale.
    #[arg(long, default_value_t = 0)]
    pub(crate) delay: u64,
    /// Environment variable holding the secret (default KAMIOKASH_WEBHOOK_SECRET or
    /// KITOPAY_SECRET).
    #[arg(long)]
    pub(crate) secret_env: Option<String>,
    /// File holding the secret (exactly one trailing newline is stripped).
    #[arg(long, conflicts_with = "secret_env")]
    pub(crate) secret_file: Option<PathBuf>,
}
