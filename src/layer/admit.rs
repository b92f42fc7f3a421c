//! Admission: a verified request is claimed with the replay guard, and the claim settled
//! by the handler's outcome (done on 2xx, released otherwise), the handler run to its end
//! even when the client hangs up.
//!
//! The interface: `WebhookAuth::admit` (verify, claim, log) gives the delivery and, with a
//! guard, a [`Pending`] claim; [`Pending::run`] calls the handler and settles the claim.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::Response;

use crate::claim::{Attachment, Claim, ClaimState, ReplayGuard};
use crate::error::ErrorKind;
use crate::verify::{ReceivedRequest, Verified};

use super::answer::Answer;
use super::auth::{Background, WebhookAuth};
use super::delivery::age_ms;
use super::url::claim_route;

impl WebhookAuth {
    /// Verifies a buffered request and claims it, under the path it was received at. Every
    /// decision is logged once.
    pub(super) async fn admit(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        started: Instant,
    ) -> Result<(Verified, Option<Pending>), Answer> {
        let now = self.verifier.clock().now();
        let scheme = self.verifier.scheme();
        let mut verified = self.check(parts, body, now, started)?;
        let age_ms = verified.timestamp().map(|timestamp| age_ms(now, timestamp));
        let pending = match &self.guard {
            None => None,
            Some(guard) => {
                // The claim's identity is read here; only the store's answer is awaited.
                let claiming = {
                    let request = ReceivedRequest::new(&parts.headers, body)
                        .with_method(parts.method.as_str());
                    guard.claim(
                        &verified,
                        &request,
                        &claim_route(parts, self.route.as_deref(), self.verifier.url()),
                        now,
                    )
                };
                let claimed = claiming.await;
                match claimed {
                    Ok(admission) => {
                        let attachment = verified.admit(admission);
                        Some(Pending {
                            guard: guard.clone(),
                            claim: verified.claim(),
                            attachment,
                            background: Arc::clone(&self.background),
                        })
                    }
                    Err(e) => {
                        let answer = match e.kind() {
                            ErrorKind::Replayed(ClaimState::Done) => Answer::Duplicate,
                            ErrorKind::Replayed(_) => Answer::InFlight,
                            _ => Answer::Unavailable,
                        };
                        let key_id = verified.key_id();
                        // An acknowledged duplicate is normal at-least-once delivery: INFO.
                        if answer == Answer::Duplicate {
                            tracing::info!(target: "countersign", %scheme, outcome = answer.outcome(), reason = e.code(), key_id = %key_id, age_ms, error = %e, "webhook not passed on");
                        } else {
                            tracing::warn!(target: "countersign", %scheme, outcome = answer.outcome(), reason = e.code(), key_id = %key_id, age_ms, error = %e, "webhook not passed on");
                        }
                        self.count(answer.outcome(), started);
                        return Err(answer);
                    }
                }
            }
        };
        tracing::info!(target: "countersign", %scheme, outcome = "accepted", key_id = %verified.key_id(), event_id = verified.event_id().map(logged_id), age_ms, trailing_slash_toggled = verified.trailing_slash_toggled(), "webhook verified");
        self.count("accepted", started);
        Ok((verified, pending))
    }
}

/// The longest event id logged, in bytes: an id is signed, but a body field of any length
/// (a custom identity, a Kitopay transaction id) must not make every log line as long.
const LOGGED_ID: usize = 128;

/// `id` cut to [`LOGGED_ID`] bytes at a character boundary.
fn logged_id(id: &str) -> &str {
    if id.len() <= LOGGED_ID {
        return id;
    }
    let mut end = LOGGED_ID;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    &id[..end]
}

/// A claim waiting for the handler's outcome. Settled explicitly (done on 2xx, released
/// otherwise; what the handler left of a store's attachment committed or rolled back); if
/// it is dropped unsettled (a panic, the request future dropped), the claim is released in
/// the background and the attachment dropped (a transaction rolls back).
pub(super) struct Pending {
    guard: ReplayGuard,
    claim: Option<Claim>,
    attachment: Option<Arc<dyn Attachment>>,
    background: Arc<Background>,
}

impl Pending {
    /// The store's attachment, for the handler's extensions.
    pub(super) fn attachment(&self) -> Option<Arc<dyn Attachment>> {
        self.attachment.clone()
    }

    /// Runs the handler (`call` makes its future) with the claim settled by its own
    /// outcome: done on 2xx, released otherwise (a panic unwinds through the pending
    /// claim, which releases). A client hanging up must not cancel the handler halfway
    /// through its side effects (releasing then would let the delivery be processed
    /// twice): if the returned future is dropped before the handler answered, the handler
    /// is finished in a task of its own, and its answer settles the claim. While the
    /// client waits, it runs right here.
    pub(super) async fn run<F, Fut, ResBody, E>(self, call: F) -> Result<Response<ResBody>, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Response<ResBody>, E>> + Send,
        ResBody: Send + 'static,
        E: Send + 'static,
    {
        let background = Arc::clone(&self.background);
        Unfinished(
            Some(Box::pin(async move {
                let outcome = call().await;
                let success = matches!(&outcome, Ok(response) if response.status().is_success());
                self.settle(success).await;
                outcome
            })),
            background,
        )
        .await
    }

    async fn settle(mut self, success: bool) {
        if let Some(attachment) = self.attachment.take() {
            // Waited on: what the handler left of its transaction commits before the answer.
            if let Err(e) = attachment.settle(success).await {
                tracing::warn!(target: "countersign", error = %e, "could not settle the claim's transaction; the delivery will be processed again when retried");
            }
        }
        let Some(claim) = self.claim else { return };
        if success {
            // Not waited on: the answer is ready, and a completion cut short leaves the claim
            // in flight (duplicates get 409 until its lease lapses), never released (which
            // would let the delivery be processed twice at once).
            self.claim = None;
            self.guard.complete_detached(&claim);
        } else {
            // Taken after: if this release is cut short, the drop guard releases again.
            let released = self.guard.release(&claim).await;
            self.claim = None;
            match released {
                Ok(()) => {
                    tracing::debug!(target: "countersign", "replay claim released: the provider's retry will be processed")
                }
                Err(e) => {
                    tracing::warn!(target: "countersign", error = %e, "could not release a replay claim at once; retrying in the background until its lease lapses")
                }
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            tracing::warn!(target: "countersign", "request ended without an answer (handler panic, or the runtime stopped): releasing its replay claim");
            self.guard.release_detached(&claim);
        }
    }
}

/// A handler's future, with its claim's settlement, that must run to its end.
type Handled<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// Holds the handler's future while it is polled where the request is served; dropped
/// before the future finished (the client hung up), it finishes it in a task of its own.
struct Unfinished<R: Send + 'static, E: Send + 'static>(Option<Handled<R, E>>, Arc<Background>);

impl<R: Send + 'static, E: Send + 'static> Drop for Unfinished<R, E> {
    fn drop(&mut self) {
        let Some(future) = self.0.take() else { return };
        if std::thread::panicking() {
            // The handler panicked: the future cannot be resumed; dropping it drops the
            // pending claim, which releases it.
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                tracing::debug!(target: "countersign", "client gone before the handler answered: finishing it in the background");
                let background = Arc::clone(&self.1);
                background.handlers.fetch_add(1, Ordering::AcqRel);
                drop(runtime.spawn(async move {
                    // Counted down even if the handler panics (the guard drops on unwind).
                    let _done = Finished(background);
                    drop(future.await);
                }));
            }
            // No runtime to finish it on: dropping it releases the claim.
            Err(_) => {
                tracing::warn!(target: "countersign", "client gone before the handler answered and no Tokio runtime to finish it on: releasing its claim")
            }
        }
    }
}

/// Counts a background handler as finished when dropped.
struct Finished(Arc<Background>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<R: Send + 'static, E: Send + 'static> Future for Unfinished<R, E> {
    type Output = Result<R, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(future) = self.0.as_mut() else {
            // Finished already; not polled again by `call`.
            return Poll::Pending;
        };
        let outcome = core::task::ready!(future.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::{LOGGED_ID, logged_id};

    #[test]
    fn a_logged_event_id_is_cut_at_a_character_boundary() {
        let at = "a".repeat(LOGGED_ID);
        assert_eq!(logged_id(&at), at);
        let over = "a".repeat(LOGGED_ID + 1);
        assert_eq!(logged_id(&over), at);
        assert_eq!(logged_id(&"a".repeat(LOGGED_ID - 1)).len(), LOGGED_ID - 1);
        // A two-byte character straddling the limit is left out whole.
        let straddling = format!("{}é", "a".repeat(LOGGED_ID - 1));
        assert_eq!(logged_id(&straddling), "a".repeat(LOGGED_ID - 1));
        let fits = format!("{}é", "a".repeat(LOGGED_ID - 2));
        assert_eq!(logged_id(&fits), fits);
    }
}
