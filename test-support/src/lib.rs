//! The set-up countersign's tests share, written once. Test-only, not published.
//!
//! Used by the root package's integration tests and benches (a path dev-dependency: this
//! crate depends on `countersign` in turn, a cycle cargo allows for dev-dependencies), by
//! the CLI's and the residue crate's tests, and by the fuzz package (`fuzz_properties`).
//!
//! Always there:
//!
//! - [`sign`]: signed headers for each built-in scheme, as owned `(name, value)` pairs;
//! - [`clock`]: a clock the test moves ([`clock::Moving`]), skewed per instance;
//! - [`store`]: claim stores that fail ([`store::Unreachable`]);
//! - [`reference`](mod@reference): HMAC-SHA256, canonical URLs and each scheme's message,
//!   computed independently of the library (RustCrypto, the `url` crate);
//! - [`pads`]: HMAC pad states computed independently, the key-equivalents the residue
//!   tests search memory for;
//! - [`vectors`]: loaders for the test vector files (`tests/vectors/*.json`).
//!
//! Behind features (see `Cargo.toml`): `fuzz_properties` (`fuzz`), `replay_model`
//! (`model`), `server` (`server`: an HTTP receiver on loopback behind the tower layer),
//! `redis_server` (`redis`) and `postgres_server` (`postgres`): real servers started
//! by the tests, skipped with a notice when missing unless `CI` is set.
// Test code: a panic is how a test fails, and the harnesses report on stderr.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

pub mod clock;
pub mod pads;
pub mod reference;
pub mod sign;
pub mod store;
pub mod vectors;

#[cfg(feature = "fuzz")]
pub mod fuzz_properties;
#[cfg(feature = "postgres")]
pub mod postgres_server;
#[cfg(feature = "redis")]
pub mod redis_server;
#[cfg(feature = "model")]
pub mod replay_model;
#[cfg(feature = "server")]
pub mod server;

/// A free TCP port on loopback, for a server the tests start (bound, then let go).
#[cfg(any(feature = "postgres", feature = "redis"))]
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server the tests need could not be had (none at `url_variable`, and none could be
/// started): a notice, and the tests pass without it; in CI (`CI` set), a failure.
#[cfg(any(feature = "postgres", feature = "redis"))]
fn unavailable<T>(server: &str, url_variable: &str, why: &dyn std::fmt::Display) -> Option<T> {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the {server} tests, but the server could not start: {why}"
    );
    eprintln!("NOTICE: skipping {server} tests: no {url_variable} and no server ({why})");
    None
}

/// `kill -9` of a server the tests started, then waits for it.
#[cfg(any(feature = "postgres", feature = "redis"))]
fn kill(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
