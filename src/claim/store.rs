//! [`ClaimStore`]: the seam a store implements. Three operations on one key, each atomic,
//! each taking the claim's token so that it only ever acts on its own claim. Everything
//! around them (timeouts, failure policy, clean-up of a claim whose outcome is unknown,
//! completion after the answer) is the [`ReplayGuard`](super::ReplayGuard)'s, written once.

use core::any::Any;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use std::sync::Arc;

use super::guard::Claim;
use super::state::ClaimState;
use crate::error::Error;

/// Something a store hands to the handler with a claim: the transactional PostgreSQL
/// store's open transaction, which holds the claim. The tower layer puts it in the
/// request's extensions for the handler, and settles what the handler left after the
/// answer.
pub trait Attachment: Send + Sync + 'static {
    /// Settles what the handler did not: commits (`success`, a 2xx answer) or rolls back.
    /// Returns whether the claim is now recorded done.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`](crate::ErrorKind::ReplayGuardUnavailable) if
    /// the store cannot be reached.
    fn settle(&self, success: bool) -> StoreFuture<'_, bool>;

    /// Itself, for the extractor that hands it to the handler to downcast.
    fn as_any(&self) -> &dyn Any;
}

/// What [`ClaimStore::claim`] found.
///
/// # Examples
///
/// ```
/// use countersign::claim::{ClaimState, Outcome};
///
/// let duplicate = Outcome::Held(ClaimState::Done);
/// assert!(matches!(duplicate, Outcome::Held(ClaimState::Done)));
/// ```
#[non_exhaustive]
pub enum Outcome {
    /// The key was free (or its claim had lapsed): it is now held by this token, in flight.
    /// A store may hand something to the handler with it.
    Claimed(Option<Arc<dyn Attachment>>),
    /// The key is held by another claim, in this state.
    Held(ClaimState),
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Claimed(None) => f.write_str("Claimed"),
            Outcome::Claimed(Some(_)) => f.write_str("Claimed(..)"),
            Outcome::Held(state) => write!(f, "Held({state})"),
        }
    }
}

/// The future a [`ClaimStore`] operation returns: either already finished (a local store:
/// no allocation, no runtime needed) or pending (a network store).
///
/// # Examples
///
/// ```
/// use countersign::claim::StoreFuture;
///
/// let ready: StoreFuture<'_, u8> = StoreFuture::ready(Ok(7));
/// assert_eq!(ready.into_ready().ok().map(|r| r.ok()), Some(Some(7)));
/// ```
pub struct StoreFuture<'a, T>(Inner<'a, T>);

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

enum Inner<'a, T> {
    Ready(Option<Result<T, Error>>),
    Pending(Boxed<'a, T>),
}

impl<'a, T> StoreFuture<'a, T> {
    /// A finished operation.
    ///
    /// # Examples
    ///
    /// See [`StoreFuture`].
    pub fn ready(outcome: Result<T, Error>) -> Self {
        StoreFuture(Inner::Ready(Some(outcome)))
    }

    /// An operation still to run: `future` must do nothing before it is first polled (an
    /// `async` block), so a guard may drop it unpolled and run the operation elsewhere.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::StoreFuture;
    ///
    /// let pending: StoreFuture<'_, u8> = StoreFuture::pending(async { Ok(7) });
    /// assert!(pending.into_ready().is_err());
    /// ```
    pub fn pending(future: impl Future<Output = Result<T, Error>> + Send + 'a) -> Self {
        StoreFuture(Inner::Pending(Box::pin(future)))
    }

    /// The outcome, if the operation has finished; otherwise the future back.
    ///
    /// # Errors
    ///
    /// The future itself, if it is pending.
    ///
    /// # Examples
    ///
    /// See [`StoreFuture`].
    pub fn into_ready(self) -> Result<Result<T, Error>, Self> {
        match self.0 {
            Inner::Ready(Some(outcome)) => Ok(outcome),
            inner => Err(StoreFuture(inner)),
        }
    }
}

// The finished outcome is only ever moved out, never pinned in place: the future may move.
impl<T> Unpin for StoreFuture<'_, T> {}

impl<T> Future for StoreFuture<'_, T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            // Polled again after it finished: report it as a store failure, never panic.
            Inner::Ready(outcome) => Poll::Ready(outcome.take().unwrap_or_else(|| {
                Err(crate::error::ErrorKind::ReplayGuardUnavailable(
                    "a claim store's operation was polled after it finished".to_owned(),
                )
                .into())
            })),
            Inner::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Inner::Ready(_) => "StoreFuture::Ready",
            Inner::Pending(_) => "StoreFuture::Pending",
        })
    }
}

/// Where claims are held: in memory ([`InMemoryStore`](super::InMemoryStore)), in Redis,
/// in PostgreSQL, or your own.
///
/// A claim is a key held by a token in one of two states, until an instant. Each operation
/// is given the [`Claim`] (key, token, instants; `now` is its
/// [`claimed_at`](Claim::claimed_at), the verifier's clock):
///
/// - [`claim`](ClaimStore::claim): if the key is free, or its holder's instant has passed
///   (`until <= now`), it becomes held by the token, **in flight**, until
///   [`lease_until`](Claim::lease_until), and the answer is [`Outcome::Claimed`]; otherwise
///   nothing changes and the answer is [`Outcome::Held`] with the holder's state.
/// - [`complete`](ClaimStore::complete): if the key is still held by the token in flight,
///   it becomes **done**, until [`retain_until`](Claim::retain_until); the answer says
///   whether it did.
/// - [`release`](ClaimStore::release): if the key is still held by the token in flight, it
///   is freed. A done claim is never released.
///
/// Each operation is atomic per key: of any number of concurrent claims of a free key,
/// exactly one succeeds. A store with relative expiry (Redis) turns `until - now` into a
/// TTL rounded **up**. A claim until [`Timestamp::MAX`](crate::Timestamp::MAX) is held for
/// good. Failures (unreachable, full) are
/// [`ErrorKind::ReplayGuardUnavailable`](crate::ErrorKind::ReplayGuardUnavailable); the
/// guard adds timeouts and turns failures into its policy.
///
/// # Examples
///
/// ```
/// use countersign::claim::{Claim, ClaimKey, ClaimState, ClaimStore, InMemoryStore, Outcome};
/// use countersign::{kitopay, Timestamp};
///
/// let store = InMemoryStore::new(10);
/// let key = ClaimKey::new("shop", "/hooks", &kitopay::WEBHOOK, "event", b"6956d4fc/success");
/// let (now, lease, retain) = (Timestamp::from_unix_secs(0)?, Timestamp::from_unix_secs(60)?, Timestamp::from_unix_secs(604_800)?);
/// let claim = |token| Claim::new(key, token, now, lease, retain);
/// // The in-memory store's operations are finished at once (`into_ready`).
/// let outcome = |token| store.claim(&claim(token)).into_ready().ok().unwrap();
/// assert!(matches!(outcome(1)?, Outcome::Claimed(None)));
/// assert!(matches!(outcome(2)?, Outcome::Held(ClaimState::InFlight)));
/// assert_eq!(store.complete(&claim(1)).into_ready().ok().unwrap()?, true);
/// assert!(matches!(outcome(3)?, Outcome::Held(ClaimState::Done)));
/// # Ok::<(), countersign::Error>(())
/// ```
pub trait ClaimStore: Send + Sync + 'static {
    /// Claims the key for the claim's token, in flight until its lease lapses.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`](crate::ErrorKind::ReplayGuardUnavailable) if
    /// the store cannot decide.
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome>;

    /// Marks the claim done, held until its `retain_until`; `false` if the key is no
    /// longer held by its token in flight (its lease lapsed and it was claimed again, or it
    /// was released).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`](crate::ErrorKind::ReplayGuardUnavailable) if
    /// the store cannot be reached.
    fn complete(&self, claim: &Claim) -> StoreFuture<'_, bool>;

    /// Frees the claim's key, if its token still holds it in flight.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`](crate::ErrorKind::ReplayGuardUnavailable) if
    /// the store cannot be reached.
    fn release(&self, claim: &Claim) -> StoreFuture<'_, ()>;

    /// [`complete`](ClaimStore::complete)s each claim, in order; the answers in the same
    /// order. The guard batches the completions that follow answers (a network store does
    /// them in one round trip). Defaults to one `complete` after another.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`](crate::ErrorKind::ReplayGuardUnavailable) if
    /// the store cannot be reached (none, some or all may have been completed).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::{Claim, ClaimKey, ClaimStore, InMemoryStore};
    /// use countersign::{kitopay, Timestamp};
    ///
    /// # futures_util::FutureExt::now_or_never(async {
    /// let store = InMemoryStore::new(10);
    /// let (now, until) = (Timestamp::from_unix_secs(0)?, Timestamp::from_unix_secs(60)?);
    /// let claims: Vec<_> = (0..3u8)
    ///     .map(|n| Claim::new(ClaimKey::new("", "", &kitopay::FULL, "event", &[n]), 1, now, until, until))
    ///     .collect();
    /// for claim in &claims[..2] {
    ///     store.claim(claim).await?;
    /// }
    /// assert_eq!(store.complete_all(&claims).await?, [true, true, false]);
    /// # Ok::<(), countersign::Error>(())
    /// # }).unwrap()?;
    /// # Ok::<(), countersign::Error>(())
    /// ```
    fn complete_all<'a>(&'a self, claims: &'a [Claim]) -> StoreFuture<'a, Vec<bool>> {
        StoreFuture::pending(async move {
            let mut done = Vec::with_capacity(claims.len());
            for claim in claims {
                done.push(self.complete(claim).await?);
            }
            Ok(done)
        })
    }

    /// Whether claims here are shared with other processes (Redis, PostgreSQL): a guard on a
    /// shared store must be given a namespace of its own. Defaults to `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::{ClaimStore, InMemoryStore};
    ///
    /// assert!(!InMemoryStore::new(1).is_shared());
    /// ```
    fn is_shared(&self) -> bool {
        true
    }
}

/// A shared store: a test (or your code) can keep a handle on the store a guard uses.
impl<S: ClaimStore + ?Sized> ClaimStore for Arc<S> {
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome> {
        (**self).claim(claim)
    }

    fn complete(&self, claim: &Claim) -> StoreFuture<'_, bool> {
        (**self).complete(claim)
    }

    fn release(&self, claim: &Claim) -> StoreFuture<'_, ()> {
        (**self).release(claim)
    }

    fn complete_all<'a>(&'a self, claims: &'a [Claim]) -> StoreFuture<'a, Vec<bool>> {
        (**self).complete_all(claims)
    }

    fn is_shared(&self) -> bool {
        (**self).is_shared()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::claim::InMemoryStore;

    /// A store shared with other processes (the trait's default).
    struct Shared;

    impl ClaimStore for Shared {
        fn claim(&self, _: &Claim) -> StoreFuture<'_, Outcome> {
            StoreFuture::ready(Ok(Outcome::Claimed(None)))
        }
        fn complete(&self, _: &Claim) -> StoreFuture<'_, bool> {
            StoreFuture::ready(Ok(true))
        }
        fn release(&self, _: &Claim) -> StoreFuture<'_, ()> {
            StoreFuture::ready(Ok(()))
        }
    }

    #[test]
    fn a_shared_handle_says_what_its_store_says() {
        assert!(Shared.is_shared());
        assert!(Arc::new(Shared).is_shared());
        assert!(!Arc::new(InMemoryStore::new(1)).is_shared());
    }

    #[test]
    fn outcomes_and_futures_print_what_they_are() {
        assert_eq!(format!("{:?}", Outcome::Claimed(None)), "Claimed");
        assert_eq!(
            format!("{:?}", Outcome::Held(ClaimState::Done)),
            "Held(done)"
        );
        assert_eq!(
            format!("{:?}", StoreFuture::ready(Ok(1))),
            "StoreFuture::Ready"
        );
        assert_eq!(
            format!("{:?}", StoreFuture::<u8>::pending(async { Ok(1) })),
            "StoreFuture::Pending"
        );
    }

    #[test]
    fn a_finished_future_polled_again_is_a_store_failure_not_a_panic() {
        use core::future::Future as _;
        let mut future = StoreFuture::ready(Ok(7u8));
        let waker = std::task::Waker::noop();
        let mut context = Context::from_waker(waker);
        assert!(matches!(
            Pin::new(&mut future).poll(&mut context),
            Poll::Ready(Ok(7))
        ));
        match Pin::new(&mut future).poll(&mut context) {
            Poll::Ready(Err(e)) => assert_eq!(e.code(), "replay_guard_unavailable"),
            other => panic!("{other:?}"),
        }
    }
}
