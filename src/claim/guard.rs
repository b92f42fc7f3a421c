//! [`ReplayGuard`]: the one claim path. A store ([`ClaimStore`]) and the policy around it:
//! what a delivery is claimed under, for how long, how long a store may take, what an
//! outage means, and how a claim whose outcome is unknown is cleaned up. The tower layer,
//! the extractors and [`Verifier::verify`](crate::Verifier::verify) all claim through it.

use core::fmt;
use core::future::Future;
use core::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::key::{ClaimKey, Identity};
use super::memory::InMemoryStore;
use super::store::{Attachment, ClaimStore, Outcome, StoreFuture};
use crate::error::{Error, ErrorKind, err};
use crate::time::Timestamp;
use crate::verify::{ReceivedRequest, Verified};

/// What a guard does when its store cannot decide (unreachable, timed out, full, or an
/// error such as Redis out of memory).
///
/// # Examples
///
/// ```
/// use countersign::claim::FailurePolicy;
///
/// assert_eq!(FailurePolicy::default(), FailurePolicy::Closed);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse the delivery ([`ErrorKind::ReplayGuardUnavailable`]; the tower layer answers
    /// `503` with `Retry-After`): a provider retries, an attacker gets no replay window out
    /// of an outage. The default.
    #[default]
    Closed,
    /// Accept the delivery without replay protection (availability over safety), whatever
    /// the failure: an outage, but also errors that will not go away by themselves.
    Open,
}

/// A claim held: its key, the token that tells it apart from every other claim of the key,
/// and its instants. Plain data: completing or releasing it goes through the
/// [`ReplayGuard`] that took it.
///
/// # Examples
///
/// ```
/// use countersign::claim::ReplayGuard;
/// use countersign::{FixedClock, ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp, Verifier};
/// use std::time::Duration;
///
/// let at = Timestamp::from_unix_secs(1_700_000_000)?;
/// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
/// let signed = signer.sign(&SignableRequest::body(b"{}"), at)?;
/// let headers: Vec<_> = signed.headers().collect();
/// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec")?)
///     .with_clock(FixedClock::new(at))
///     .with_replay_guard(ReplayGuard::in_memory(1_000));
/// let claim = verifier.verify(&ReceivedRequest::new(&headers, b"{}"))?.claim().unwrap();
/// // Claimed by signature: held while the signature could verify anywhere in the fleet.
/// assert_eq!(claim.lease_until().since_epoch() - at.since_epoch(), Duration::new(120, 1));
/// assert_eq!(claim.retain_until(), claim.lease_until());
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    key: ClaimKey,
    token: u128,
    claimed_at: Timestamp,
    lease_until: Timestamp,
    retain_until: Timestamp,
}

impl Claim {
    /// A claim of `key` by `token`, taken at `claimed_at`, in flight until `lease_until`
    /// and, once done, held until `retain_until` (for stores' own tests; a guard makes the
    /// claims it uses). The token must be unique among the claims of the key.
    ///
    /// # Examples
    ///
    /// See [`ClaimStore`].
    #[must_use]
    pub fn new(
        key: ClaimKey,
        token: u128,
        claimed_at: Timestamp,
        lease_until: Timestamp,
        retain_until: Timestamp,
    ) -> Self {
        Claim {
            key,
            token,
            claimed_at,
            lease_until,
            retain_until,
        }
    }

    /// The key it is held under.
    ///
    /// # Examples
    ///
    /// See [`Claim`].
    #[must_use]
    pub fn key(&self) -> ClaimKey {
        self.key
    }

    /// The token unique to this claim.
    ///
    /// # Examples
    ///
    /// See [`Claim`].
    #[must_use]
    pub fn token(&self) -> u128 {
        self.token
    }

    /// When it was taken (the verifier's clock).
    ///
    /// # Examples
    ///
    /// See [`Claim`].
    #[must_use]
    pub fn claimed_at(&self) -> Timestamp {
        self.claimed_at
    }

    /// Until when it is held in flight: past this instant an unfinished claim (its instance
    /// died mid-handler) lapses and the delivery can be claimed again. For a claim by
    /// event id, the claim time plus the guard's lease; for one by signature, the
    /// signature's lifetime ([`Verified::expires_at`]).
    ///
    /// # Examples
    ///
    /// See [`Claim`].
    #[must_use]
    pub fn lease_until(&self) -> Timestamp {
        self.lease_until
    }

    /// Until when it is held once done: a duplicate before this instant is acknowledged,
    /// not processed.
    ///
    /// # Examples
    ///
    /// See [`Claim`].
    #[must_use]
    pub fn retain_until(&self) -> Timestamp {
        self.retain_until
    }
}

/// What [`ReplayGuard::claim`] gives an accepted delivery: its claim (none when the store
/// failed under [`FailurePolicy::Open`]), its event id when it was claimed by one, and what
/// the store hands to the handler (the transactional PostgreSQL store's transaction).
///
/// # Examples
///
/// See [`ReplayGuard::claim`].
#[derive(Clone)]
pub struct Admission {
    pub(crate) claim: Option<Claim>,
    pub(crate) event_id: Option<Arc<str>>,
    pub(crate) attachment: Option<Arc<dyn Attachment>>,
}

impl Admission {
    /// The claim; `None` if the store failed and the policy is [`FailurePolicy::Open`].
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::claim`].
    #[must_use]
    pub fn claim(&self) -> Option<Claim> {
        self.claim
    }

    /// The event id the delivery was claimed under (see [`Identity`]).
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::claim`].
    #[must_use]
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// What the store hands to the handler with the claim, if anything.
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::claim`].
    #[must_use]
    pub fn attachment(&self) -> Option<&Arc<dyn Attachment>> {
        self.attachment.as_ref()
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("claim", &self.claim)
            .field("event_id", &self.event_id)
            .field("attachment", &self.attachment.is_some())
            .finish()
    }
}

/// Defaults to 7 days: providers retry failed deliveries for days (Stripe 3 days, Svix
/// and Standard Webhooks senders about 5), and a duplicate must be recognised for as long.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Defaults to 60 s: about a handler's deadline.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Defaults to 1 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a store operation may be given.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The shortest lease: a lease that lapsed at once would let a copy be processed beside
/// the first.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// Claims verified deliveries so that each is processed at most once, and each **event**
/// (with its identity chosen so) exactly once while every store operation succeeds.
///
/// A claim goes through two states: **in flight** (claimed, being processed, held for the
/// *lease*) and **done** (processed, held for the *retention*); a failed delivery's claim
/// is **released**, so the provider's retry is processed. A second claim of a held key is
/// refused with [`ErrorKind::Replayed`] carrying the holder's state: `409` for one in
/// flight (retry later), `200` for one done (acknowledge the duplicate).
///
/// Built with secure defaults: the claim identity of the scheme ([`Identity`]), the
/// retention ([`DEFAULT_RETENTION`], 7 days), the lease ([`DEFAULT_LEASE`], 60 s), a 1 s
/// timeout per store operation ([`DEFAULT_TIMEOUT`]) and [`FailurePolicy::Closed`].
///
/// **Namespaces.** A claim key covers the guard's namespace, for webhook schemes the route
/// (the tower layer's: named, the configured URL's path, or the router's matched route;
/// [`Verifier::verify`]'s: the configured URL's path), the scheme and the identity. Two webhook
/// routes of one service never share a claim (a provider may deliver one event to both,
/// and each processes it); a request scheme's claims are shared by every route (the same
/// signed request sent to another endpoint is a replay). Two services sharing a store
/// never share claims unless they share a namespace; a guard on a shared store must be
/// given one ([`ReplayGuard::new`]). Instances of one service behind one public URL share
/// it.
///
/// Cheap to clone: clones share the store.
///
/// [`Verifier::verify`]: crate::Verifier::verify
///
/// # Examples
///
/// ```
/// use countersign::claim::ReplayGuard;
/// use countersign::{ErrorKind, ClaimState, FixedClock, ReceivedRequest, SecretKey, SignableRequest, Signer, Timestamp, Verifier};
///
/// let at = Timestamp::from_unix_secs(1_700_000_000)?;
/// let signer = Signer::kamiokash_webhook(SecretKey::new("whsec")?);
/// let signed = signer.sign(&SignableRequest::body(b"{}"), at)?;
/// let headers: Vec<_> = signed.headers().collect();
/// let request = ReceivedRequest::new(&headers, b"{}");
/// let guard = ReplayGuard::in_memory(100_000);
/// let verifier = Verifier::kamiokash_webhook(SecretKey::new("whsec")?)
///     .with_clock(FixedClock::new(at))
///     .with_replay_guard(guard.clone());
///
/// let first = verifier.verify(&request)?;
/// assert_eq!(verifier.verify(&request).unwrap_err().kind(), &ErrorKind::Replayed(ClaimState::InFlight));
/// verifier.complete(&first)?; // processed: a duplicate is acknowledged, not processed
/// assert_eq!(verifier.verify(&request).unwrap_err().kind(), &ErrorKind::Replayed(ClaimState::Done));
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Clone)]
pub struct ReplayGuard {
    store: Arc<dyn ClaimStore>,
    namespace: Arc<str>,
    identity: Option<Identity>,
    retention: Duration,
    lease: Duration,
    timeout: Duration,
    policy: FailurePolicy,
    /// Completions waiting to be sent, shared by the guard's clones.
    completions: Arc<Completions>,
    #[cfg(feature = "tokio")]
    runtime: Option<tokio::runtime::Handle>,
}

/// The completions that follow answers, sent in batches: while one batch is on its way,
/// the next accumulates, so under load a network store gets one round trip for many.
#[derive(Default)]
struct Completions {
    queue: Mutex<Vec<Claim>>,
    /// Whether a task is sending batches.
    sending: AtomicBool,
}

/// The task sending the queue: dropped before it finished, it marks the queue as no longer
/// being sent (it finished: its own loop did).
struct Sender(Option<Arc<Completions>>);

impl Sender {
    /// The queue was sent: its own loop gave it up.
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Some(completions) = self.0.take() {
            completions.sending.store(false, Ordering::Release);
        }
    }
}

/// The most completions sent in one batch.
const BATCH: usize = 512;

impl Completions {
    fn push(&self, claim: Claim) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(claim);
    }

    /// The next batch (at most [`BATCH`], oldest first); empty when none is waiting.
    fn take(&self) -> Vec<Claim> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let n = queue.len().min(BATCH);
        queue.drain(..n).collect()
    }

    fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

impl ReplayGuard {
    /// A guard over a process-local [`InMemoryStore`] of `capacity` live claims, in the
    /// empty namespace (the store is this guard's alone). Size it for the claims alive at
    /// once: claims by event are kept for the retention (7 days), so a capacity of 100,000
    /// serves 100,000 events a week; a full store refuses new deliveries (`503`) rather
    /// than forget a claim.
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard`].
    #[must_use]
    pub fn in_memory(capacity: usize) -> Self {
        ReplayGuard::build(Arc::new(InMemoryStore::new(capacity)), "")
    }

    /// A guard over `store`, claiming in `namespace`: one per service (every instance of
    /// the service uses the same). A network store needs a Tokio runtime: build the guard
    /// inside one, and synchronous callers ([`Verifier::verify`](crate::Verifier::verify))
    /// run the store's operations on it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidGuard`] if the store is shared ([`ClaimStore::is_shared`]) and
    /// `namespace` is empty: two services on one store would otherwise drop each other's
    /// deliveries as duplicates.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::{InMemoryStore, ReplayGuard};
    ///
    /// let guard = ReplayGuard::new(InMemoryStore::new(1_000), "orders")?;
    /// assert_eq!(guard.namespace(), "orders");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn new(store: impl ClaimStore, namespace: &str) -> Result<Self, Error> {
        if store.is_shared() && namespace.is_empty() {
            return err(ErrorKind::InvalidGuard(
                "a shared store needs a namespace of its own (the service's name): two services with empty namespaces would drop each other's deliveries as duplicates",
            ));
        }
        Ok(ReplayGuard::build(Arc::new(store), namespace))
    }

    fn build(store: Arc<dyn ClaimStore>, namespace: &str) -> Self {
        ReplayGuard {
            store,
            namespace: namespace.into(),
            identity: None,
            retention: DEFAULT_RETENTION,
            lease: DEFAULT_LEASE,
            timeout: DEFAULT_TIMEOUT,
            policy: FailurePolicy::Closed,
            completions: Arc::default(),
            #[cfg(feature = "tokio")]
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// What a delivery is claimed under. Defaults to the scheme's event id where it has
    /// one ([`Scheme::event_id`](crate::Scheme::event_id)), otherwise the signature.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::{Identity, ReplayGuard};
    ///
    /// let guard = ReplayGuard::in_memory(1_000).with_identity(Identity::Signature);
    /// ```
    #[must_use]
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// How long a done claim by event id is kept (never less than the delivery's own
    /// signature lifetime). Defaults to 7 days ([`DEFAULT_RETENTION`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::ReplayGuard;
    /// use std::time::Duration;
    ///
    /// let guard = ReplayGuard::in_memory(1_000).with_retention(Duration::from_secs(3 * 86_400));
    /// assert_eq!(guard.retention(), Duration::from_secs(3 * 86_400));
    /// ```
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long an in-flight claim by event id is held: an event whose instance died
    /// mid-handler is processed again once it lapses (a claim by signature is held for the
    /// signature's lifetime: a retry signed again is another delivery anyway). Set it above your handlers' longest run (a handler
    /// still running when its lease lapses can see a duplicate processed beside it). At
    /// least 1 s. Defaults to 60 s ([`DEFAULT_LEASE`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::ReplayGuard;
    /// use std::time::Duration;
    ///
    /// let guard = ReplayGuard::in_memory(1_000).with_lease(Duration::from_secs(30));
    /// assert_eq!(guard.lease(), Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(MIN_LEASE);
        self
    }

    /// The time a store operation may take, at most 60 s. Defaults to 1 s
    /// ([`DEFAULT_TIMEOUT`]). Needs the `tokio` feature for network stores (implied by
    /// `tower`, `redis` and `postgres`).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::ReplayGuard;
    /// use std::time::Duration;
    ///
    /// let guard = ReplayGuard::in_memory(1_000).with_timeout(Duration::from_millis(200));
    /// assert_eq!(guard.timeout(), Duration::from_millis(200));
    /// ```
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// What to do when the store cannot decide. Defaults to [`FailurePolicy::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::{FailurePolicy, ReplayGuard};
    ///
    /// let guard = ReplayGuard::in_memory(1_000).with_failure_policy(FailurePolicy::Open);
    /// assert_eq!(guard.failure_policy(), FailurePolicy::Open);
    /// ```
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The namespace.
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::new`].
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The retention.
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::with_retention`].
    #[must_use]
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// The lease.
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::with_lease`].
    #[must_use]
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The timeout per store operation.
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::with_timeout`].
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The failure policy.
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::with_failure_policy`].
    #[must_use]
    pub fn failure_policy(&self) -> FailurePolicy {
        self.policy
    }

    /// The identity `verified` is claimed under: its key, its event id (for an event
    /// identity) and how long it is kept once done.
    fn ticket(
        &self,
        verified: &Verified,
        request: &ReceivedRequest<'_>,
        route: &str,
        now: Timestamp,
    ) -> Ticket {
        let scheme = verified.scheme();
        // Webhooks only: a provider may deliver one event to several of your endpoints, each
        // to process it. A request's signature is the request's: the same signed bytes sent
        // to another route of an API sharing the guard are a replay (KamioKash requests do
        // not sign the URL).
        let route = if scheme.is_webhook() { route } else { "" };
        // An empty identity names no event (a custom identity answering `Some("")` for
        // deliveries without its field would hold them all under one key): by signature.
        let event = match &self.identity {
            None | Some(Identity::Event) => scheme.event_id(request),
            Some(Identity::Custom(identify)) => identify(verified, request),
            Some(Identity::Signature) => None,
        }
        .filter(|id| !id.is_empty());
        // By event: in flight for the lease (an instance that died mid-handler does not
        // block the event's retries for long), done for the retention. By signature: held
        // in either state while the signature could verify anywhere in the fleet; a
        // provider's retry signed again is another key, so a longer lease blocks nothing.
        let (key, event_id, lease_until, retain_until) = match event {
            Some(id) => (
                ClaimKey::new(&self.namespace, route, scheme, "event", id.as_bytes()),
                Some(Arc::<str>::from(id)),
                later(now, self.lease),
                later(now, self.retention).max(verified.expires_at()),
            ),
            None => (
                ClaimKey::new(
                    &self.namespace,
                    route,
                    scheme,
                    "signature",
                    verified.signature().as_bytes(),
                ),
                None,
                verified.expires_at(),
                verified.expires_at(),
            ),
        };
        Ticket {
            claim: Claim {
                key,
                token: new_token(),
                claimed_at: now,
                lease_until,
                retain_until,
            },
            event_id,
        }
    }

    /// Claims `verified` (received at `route`, the URL path; empty if unknown) at `now`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Replayed`] with the holder's state if the delivery (or its event) is
    /// held; [`ErrorKind::ReplayGuardUnavailable`] if the store cannot decide within the
    /// timeout and the policy is [`FailurePolicy::Closed`] (a claim that may have landed is
    /// then deleted in the background, so the provider's retry gets in).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::{Identity, ReplayGuard};
    /// use countersign::{standard_webhooks, FixedClock, ReceivedRequest, SignableRequest, Signer, Timestamp, Verifier};
    ///
    /// let key = || standard_webhooks::SCHEME.key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    /// let at = Timestamp::from_unix_secs(1_700_000_000)?;
    /// let verifier = Verifier::standard_webhooks(key()?).with_clock(FixedClock::new(at));
    /// let guard = ReplayGuard::in_memory(1_000);
    ///
    /// // The same event, sent twice and signed each time (a retry): one claim.
    /// let mut refusals = 0;
    /// for second in [0, 30] {
    ///     let sent = Timestamp::from_unix_secs(1_700_000_000 - second)?;
    ///     let signer = Signer::standard_webhooks(key()?);
    ///     let signed = signer.sign(&SignableRequest::body(b"{}").with_value("id", "msg_1"), sent)?;
    ///     let headers: Vec<_> = signed.headers().collect();
    ///     let request = ReceivedRequest::new(&headers, b"{}");
    ///     let verified = verifier.verify(&request)?;
    ///     match guard.claim_blocking(&verified, &request, "/hooks", at) {
    ///         Ok(admission) => assert_eq!(admission.event_id(), Some("msg_1")),
    ///         Err(_) => refusals += 1,
    ///     }
    /// }
    /// assert_eq!(refusals, 1);
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn claim(
        &self,
        verified: &Verified,
        request: &ReceivedRequest<'_>,
        route: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Admission, Error>> + Send + 'static {
        let ticket = self.ticket(verified, request, route, now);
        let guard = self.clone();
        async move {
            let claim = ticket.claim;
            let outcome = match guard.store.claim(&claim).into_ready() {
                Ok(outcome) => outcome,
                Err(pending) => guard.run_claim(pending, claim).await,
            };
            guard.admit(outcome, ticket)
        }
    }

    /// [`ReplayGuard::claim`], for synchronous callers: a network store's operation runs on
    /// the guard's Tokio runtime while this thread waits (at most the timeout). Do not call
    /// it from a thread of a current-thread runtime that the store needs (it then waits for
    /// the timeout and fails); from async code, await [`ReplayGuard::claim`].
    ///
    /// # Errors
    ///
    /// As [`ReplayGuard::claim`].
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard::claim`].
    pub fn claim_blocking(
        &self,
        verified: &Verified,
        request: &ReceivedRequest<'_>,
        route: &str,
        now: Timestamp,
    ) -> Result<Admission, Error> {
        let ticket = self.ticket(verified, request, route, now);
        let claim = ticket.claim;
        let outcome = match self.store.claim(&claim).into_ready() {
            Ok(outcome) => outcome,
            Err(pending) => {
                drop(pending);
                let store = Arc::clone(&self.store);
                self.run_blocking(
                    move || async move { store.claim(&claim).await },
                    Some(claim),
                )
            }
        };
        self.admit(outcome, ticket)
    }

    fn admit(&self, outcome: Result<Outcome, Error>, ticket: Ticket) -> Result<Admission, Error> {
        match outcome {
            Ok(Outcome::Claimed(attachment)) => Ok(Admission {
                claim: Some(ticket.claim),
                event_id: ticket.event_id,
                attachment,
            }),
            Ok(Outcome::Held(state)) => err(ErrorKind::Replayed(state)),
            Err(e) => match self.policy {
                FailurePolicy::Closed => Err(e),
                FailurePolicy::Open => {
                    warn(&format!(
                        "accepting a delivery without replay protection (failure policy open): {e}"
                    ));
                    Ok(Admission {
                        claim: None,
                        event_id: ticket.event_id,
                        attachment: None,
                    })
                }
            },
        }
    }

    /// Marks `claim` done: a duplicate is then acknowledged, not processed. Returns `false`
    /// if the claim was no longer held in flight (its lease lapsed and the delivery was
    /// claimed again, or it was released): the delivery may then be processed twice, and
    /// the lease should be longer than the handler takes (logged as a warning).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the store cannot be reached in time (the
    /// claim then stays in flight until its lease lapses).
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard`].
    pub fn complete(
        &self,
        claim: &Claim,
    ) -> impl Future<Output = Result<bool, Error>> + Send + 'static {
        let claim = *claim;
        let guard = self.clone();
        async move {
            let outcome = match guard.store.complete(&claim).into_ready() {
                Ok(outcome) => outcome,
                Err(pending) => guard.run(pending).await,
            };
            lapsed_warning(&outcome);
            outcome
        }
    }

    /// [`ReplayGuard::complete`], for synchronous callers (see
    /// [`ReplayGuard::claim_blocking`]).
    ///
    /// # Errors
    ///
    /// As [`ReplayGuard::complete`].
    ///
    /// # Examples
    ///
    /// See [`ReplayGuard`].
    pub fn complete_blocking(&self, claim: &Claim) -> Result<bool, Error> {
        let claim = *claim;
        let outcome = match self.store.complete(&claim).into_ready() {
            Ok(outcome) => outcome,
            Err(pending) => {
                drop(pending);
                let store = Arc::clone(&self.store);
                self.run_blocking(move || async move { store.complete(&claim).await }, None)
            }
        };
        lapsed_warning(&outcome);
        outcome
    }

    /// Marks `claim` done without making the caller wait (the tower layer, once the handler
    /// answered 2xx). A duplicate arriving before the store has it sees the claim in flight
    /// (`409`, retry later), never a second processing. A network store's completions are
    /// batched: while one batch is on its way the next accumulates, and each is one call to
    /// [`ClaimStore::complete_all`] (one round trip to Redis or PostgreSQL). Failures are
    /// logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::ReplayGuard;
    ///
    /// # fn settle(guard: &ReplayGuard, claim: countersign::claim::Claim) {
    /// guard.complete_detached(&claim);
    /// # }
    /// ```
    pub fn complete_detached(&self, claim: &Claim) {
        match self.store.complete(claim).into_ready() {
            Ok(outcome) => lapsed_warning(&outcome),
            Err(pending) => {
                drop(pending);
                self.completions.push(*claim);
                if !self.completions.sending.swap(true, Ordering::AcqRel) {
                    let guard = self.clone();
                    // Dropped unrun (no runtime to spawn on, or one that shut down), the task
                    // gives the queue up, so that the next completion starts a sender.
                    let sender = Sender(Some(Arc::clone(&self.completions)));
                    self.spawn(async move {
                        guard.send_completions().await;
                        sender.finished();
                    });
                }
            }
        }
    }

    /// Sends the waiting completions, batch after batch, until none is left.
    async fn send_completions(self) {
        loop {
            let batch = self.completions.take();
            if batch.is_empty() {
                self.completions.sending.store(false, Ordering::Release);
                // A completion pushed after the last `take` but before the flag was down
                // found a sender running: take it on, unless another sender has.
                if self.completions.is_empty()
                    || self.completions.sending.swap(true, Ordering::AcqRel)
                {
                    return;
                }
                continue;
            }
            match with_timeout(self.timeout, self.store.complete_all(&batch)).await {
                Ok(done) => {
                    if done.iter().any(|done| !done) {
                        lapsed_warning(&Ok(false));
                    }
                }
                Err(e) => warn(&format!(
                    "could not mark {} deliveries done ({e}); their duplicates get 409 until their leases lapse, then they are processed again",
                    batch.len()
                )),
            }
        }
    }

    /// Releases `claim` (processing failed), so the provider's retry is processed. Does
    /// nothing to a claim no longer held in flight by its token (a done claim is never
    /// released).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the store cannot be reached in time: the
    /// release is then retried in the background until the lease lapses.
    ///
    /// # Examples
    ///
    /// See [`Verifier::release`](crate::Verifier::release).
    pub fn release(
        &self,
        claim: &Claim,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let claim = *claim;
        let guard = self.clone();
        async move {
            match guard.store.release(&claim).into_ready() {
                Ok(outcome) => outcome,
                Err(pending) => {
                    let mut unsettled = Unsettled::new(&guard, claim);
                    let outcome = guard.run(pending).await;
                    if outcome.is_ok() {
                        unsettled.settle();
                    }
                    outcome
                }
            }
        }
    }

    /// [`ReplayGuard::release`], for synchronous callers (see
    /// [`ReplayGuard::claim_blocking`]).
    ///
    /// # Errors
    ///
    /// As [`ReplayGuard::release`].
    ///
    /// # Examples
    ///
    /// See [`Verifier::release`](crate::Verifier::release).
    pub fn release_blocking(&self, claim: &Claim) -> Result<(), Error> {
        let claim = *claim;
        match self.store.release(&claim).into_ready() {
            Ok(outcome) => outcome,
            Err(pending) => {
                drop(pending);
                let store = Arc::clone(&self.store);
                let outcome =
                    self.run_blocking(move || async move { store.release(&claim).await }, None);
                if outcome.is_err() {
                    self.release_detached(&claim);
                }
                outcome
            }
        }
    }

    /// Releases `claim` from a place that cannot wait (a drop guard, a failed answer): in
    /// the background for a network store, retried with backoff until it succeeds or the
    /// lease lapses. Failures are logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::claim::ReplayGuard;
    ///
    /// # fn fail(guard: &ReplayGuard, claim: countersign::claim::Claim) {
    /// guard.release_detached(&claim);
    /// # }
    /// ```
    pub fn release_detached(&self, claim: &Claim) {
        let claim = *claim;
        match self.store.release(&claim).into_ready() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn(&format!("could not release a replay claim ({e})")),
            Err(pending) => {
                drop(pending);
                self.clean_up(claim);
            }
        }
    }

    /// Deletes `claim` if it still holds its key in flight, in the background, retried
    /// with backoff (100 ms doubling to 5 s) until it succeeds or the lease lapses.
    fn clean_up(&self, claim: Claim) {
        let store = Arc::clone(&self.store);
        let timeout = self.timeout;
        self.spawn(async move {
            #[cfg(feature = "tokio")]
            {
                let mut pause = Duration::from_millis(100);
                loop {
                    let attempt = with_timeout(timeout, store.release(&claim)).await;
                    let Err(e) = attempt else { return };
                    let now = crate::time::Clock::now(&crate::time::SystemClock);
                    if now >= claim.lease_until {
                        warn(&format!(
                            "could not release a replay claim before its lease lapsed ({e})"
                        ));
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
            #[cfg(not(feature = "tokio"))]
            {
                let _ = (timeout, store.release(&claim).await);
            }
        });
    }

    /// Runs a pending claim within the timeout; if it fails, times out, or the caller's
    /// future is dropped first, the claim is cleaned up in the background (it may have
    /// landed).
    async fn run_claim(
        &self,
        pending: StoreFuture<'_, Outcome>,
        claim: Claim,
    ) -> Result<Outcome, Error> {
        let mut unsettled = Unsettled::new(self, claim);
        let outcome = self.run(pending).await;
        if outcome.is_ok() {
            unsettled.settle();
        }
        outcome
    }

    /// Runs a pending store operation within the timeout.
    async fn run<T>(&self, pending: StoreFuture<'_, T>) -> Result<T, Error> {
        with_timeout(self.timeout, pending).await
    }

    /// Runs `operation` on the guard's runtime and waits for it on this thread, at most the
    /// timeout (and a margin). `claim`: a claim to clean up if its outcome arrives after
    /// the caller stopped waiting.
    fn run_blocking<T, F, Fut>(&self, operation: F, claim: Option<Claim>) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        #[cfg(feature = "tokio")]
        {
            let Some(runtime) = self.runtime() else {
                return err(no_runtime());
            };
            let (send, receive) = std::sync::mpsc::sync_channel(1);
            let timeout = self.timeout;
            let guard = self.clone();
            runtime.spawn(async move {
                let outcome = with_timeout(timeout, operation()).await;
                let failed = outcome.is_err();
                // The caller gave up waiting: a claim that landed (or may have) is freed.
                if (send.send(outcome).is_err() || failed)
                    && let Some(claim) = claim
                {
                    guard.clean_up(claim);
                }
            });
            match receive.recv_timeout(timeout + Duration::from_millis(100)) {
                Ok(outcome) => outcome,
                Err(_) => err(ErrorKind::ReplayGuardUnavailable(
                    "the claim store did not answer in time (a synchronous caller on a thread the store's runtime needs waits in vain: await the async form instead)".to_owned(),
                )),
            }
        }
        #[cfg(not(feature = "tokio"))]
        {
            let _ = claim;
            super::block::block_on(operation(), self.timeout)
        }
    }

    #[cfg(feature = "tokio")]
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
    }

    /// Runs `task` in the background: on the guard's runtime; without one (or without the
    /// `tokio` feature), right here.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        #[cfg(feature = "tokio")]
        {
            match self.runtime() {
                Some(runtime) => {
                    runtime.spawn(task);
                }
                None => warn(&no_runtime().to_string()),
            }
        }
        #[cfg(not(feature = "tokio"))]
        {
            let finished = async {
                task.await;
                Ok::<(), Error>(())
            };
            let _ = super::block::block_on(finished, MAX_TIMEOUT);
        }
    }
}

#[cfg(feature = "tokio")]
fn no_runtime() -> ErrorKind {
    ErrorKind::ReplayGuardUnavailable(
        "a network claim store needs a Tokio runtime: build the replay guard inside one".to_owned(),
    )
}

/// `future` within `timeout` (with the `tokio` feature; without it, as long as it takes).
async fn with_timeout<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    #[cfg(feature = "tokio")]
    {
        match tokio::time::timeout(timeout, future).await {
            Ok(outcome) => outcome,
            Err(_) => err(ErrorKind::ReplayGuardUnavailable(format!(
                "the claim store did not answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
    #[cfg(not(feature = "tokio"))]
    {
        let _ = timeout;
        future.await
    }
}

fn lapsed_warning(outcome: &Result<bool, Error>) {
    if let Ok(false) = outcome {
        warn(
            "a delivery finished after its claim's lease lapsed (or was released): it may have been processed twice; make the lease longer than the handler takes",
        );
    }
}

fn warn(message: &str) {
    #[cfg(feature = "tokio")]
    tracing::warn!(target: "countersign", "{message}");
    #[cfg(not(feature = "tokio"))]
    let _ = message;
}

/// A delivery's claim before the store answered.
struct Ticket {
    claim: Claim,
    event_id: Option<Arc<str>>,
}

/// A claim whose outcome is not known yet: dropped armed (the operation failed, timed out,
/// or the caller's future was dropped), it is deleted in the background if it still holds
/// its key.
struct Unsettled<'g> {
    guard: &'g ReplayGuard,
    claim: Option<Claim>,
}

impl<'g> Unsettled<'g> {
    fn new(guard: &'g ReplayGuard, claim: Claim) -> Self {
        Unsettled {
            guard,
            claim: Some(claim),
        }
    }

    fn settle(&mut self) {
        self.claim = None;
    }
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            self.guard.clean_up(claim);
        }
    }
}

/// `now + span`, saturating at [`Timestamp::MAX`].
fn later(now: Timestamp, span: Duration) -> Timestamp {
    Timestamp::from_duration(now.since_epoch().saturating_add(span)).unwrap_or(Timestamp::MAX)
}

/// A token unique to this claim: 64 bits that differ between processes (from the OS's
/// randomness, through std's hash keys) and a counter that differs within one.
fn new_token() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(u128::from(std::process::id()));
        hasher.finish()
    });
    (u128::from(base) << 64) | u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

impl fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .field("retention", &self.retention)
            .field("lease", &self.lease)
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_a_week_a_minute_and_a_second_closed() {
        assert_eq!(DEFAULT_RETENTION, Duration::from_secs(604_800));
        assert_eq!(DEFAULT_LEASE, Duration::from_secs(60));
        assert_eq!(DEFAULT_TIMEOUT, Duration::from_secs(1));
        let guard = ReplayGuard::in_memory(1);
        assert_eq!(guard.namespace(), "");
        assert_eq!(guard.retention(), DEFAULT_RETENTION);
        assert_eq!(guard.lease(), DEFAULT_LEASE);
        assert_eq!(guard.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(guard.failure_policy(), FailurePolicy::Closed);
        let set = ReplayGuard::new(InMemoryStore::new(1), "orders")
            .unwrap()
            .with_retention(Duration::from_secs(3))
            .with_lease(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(120))
            .with_failure_policy(FailurePolicy::Open);
        assert_eq!(set.namespace(), "orders");
        assert_eq!(set.retention(), Duration::from_secs(3));
        assert_eq!(set.lease(), Duration::from_secs(2));
        assert_eq!(set.timeout(), MAX_TIMEOUT, "at most 60 s");
        assert_eq!(set.failure_policy(), FailurePolicy::Open);
        assert!(format!("{set:?}").contains("namespace: \"orders\""));
    }

    #[test]
    fn tokens_carry_this_processs_random_high_half_and_a_counter() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a >> 64, b >> 64, "one process, one random half");
        // Zero with probability 2^-64: then instances of a fleet would share token spaces.
        assert_ne!(a >> 64, 0);
        assert!(b as u64 > a as u64, "the counter counts");
    }

    #[test]
    fn an_admission_says_its_claim_event_and_attachment() {
        let admission = Admission {
            claim: None,
            event_id: Some("msg_1".into()),
            attachment: None,
        };
        assert_eq!(admission.event_id(), Some("msg_1"));
        assert!(admission.claim().is_none() && admission.attachment().is_none());
        assert_eq!(
            format!("{admission:?}"),
            "Admission { claim: None, event_id: Some(\"msg_1\"), attachment: false }"
        );
    }

    #[test]
    fn completions_queue_in_order_and_batches_are_bounded() {
        let completions = Completions::default();
        assert!(completions.is_empty());
        let key = ClaimKey::new("", "", &crate::kitopay::FULL, "event", b"x");
        let at = Timestamp::UNIX_EPOCH;
        for token in 0..(BATCH as u128 + 3) {
            completions.push(Claim::new(key, token, at, at, at));
        }
        assert!(!completions.is_empty());
        let first = completions.take();
        assert_eq!(first.len(), BATCH);
        assert_eq!(first[0].token(), 0, "oldest first");
        let rest = completions.take();
        assert_eq!(
            rest.iter().map(Claim::token).collect::<Vec<_>>(),
            [512, 513, 514]
        );
        assert!(completions.take().is_empty() && completions.is_empty());
    }
}
