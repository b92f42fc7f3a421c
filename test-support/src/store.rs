//! Claim stores that fail, for the guard's failure paths.

use countersign::ErrorKind;
use countersign::claim::{Claim, ClaimStore, Outcome, StoreFuture};

/// A store that cannot be reached: every operation fails with
/// [`ErrorKind::ReplayGuardUnavailable`] ("connection refused"), as a network store whose
/// server is down.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unreachable;

fn refused<T>() -> StoreFuture<'static, T> {
    StoreFuture::ready(Err(ErrorKind::ReplayGuardUnavailable(
        "connection refused".into(),
    )
    .into()))
}

impl ClaimStore for Unreachable {
    fn claim(&self, _: &Claim) -> StoreFuture<'_, Outcome> {
        refused()
    }
    fn complete(&self, _: &Claim) -> StoreFuture<'_, bool> {
        refused()
    }
    fn release(&self, _: &Claim) -> StoreFuture<'_, ()> {
        refused()
    }
}
