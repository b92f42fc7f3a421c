//! Replay protection: each delivery, and each event, processed once.
//!
//! A signature proves who sent a message, not that it is new: an attacker who captured a
//! delivery can send it again while it is fresh, and a provider that did not see your
//! `200` sends it again, often **signed again** with a new timestamp. A [`ReplayGuard`]
//! claims every verified delivery in a [`ClaimStore`] before the handler runs:
//!
//! - **in flight**: claimed, being processed; held for the *lease* (60 s by default), so an
//!   instance that dies mid-handler does not block the event for long: once the lease
//!   lapses, the provider's next retry is processed;
//! - **done**: processed (the handler answered 2xx); held for the *retention* (7 days by
//!   default for claims by event id); a duplicate is *acknowledged* (`200`), not processed;
//! - **released**: processing failed; the claim is gone and the retry is processed.
//!
//! A claim of a held key fails with [`ErrorKind::Replayed`](crate::ErrorKind::Replayed)
//! carrying the holder's state (`409` in flight, `200` done). Completing and releasing act
//! only on the claim's own token, never on a newer claim of the same key.
//!
//! # What a delivery is claimed under
//!
//! [`Identity`] chooses; each built-in scheme has a default:
//!
//! | scheme | default identity | why |
//! |---|---|---|
//! | `standard-webhooks` | the signed `webhook-id` | the specification's idempotency key: the same for every attempt of a message |
//! | `kitopay-webhook` | the body's `id` + `status` (`6956d4fc/success`) | a transaction's status changes are events of their own; each is retried with a fresh signature |
//! | `kamiokash-webhook` | the signature | its events carry no id of their own: give one with [`Identity::Custom`] (any body field is signed) |
//! | request schemes (`kitopay`, `kitopay-simplified`, `kamiokash`) | the signature | a client's request is not an event; a copy of the same signed bytes is a replay |
//!
//! A claim by event id is kept for the retention, never less than the signature's own
//! lifetime; a claim by signature is kept while the signature could verify anywhere in the
//! fleet ([`Verified::expires_at`](crate::Verified::expires_at): 121 s after a Kitopay
//! timestamp).
//!
//! # Namespaces
//!
//! A claim key ([`ClaimKey`]) covers the guard's namespace, the route (for webhook schemes:
//! the route the tower layer was given, the path of the URL the verifier is configured with,
//! or the router's matched route; never the path received, which the sender chooses), the
//! scheme and the identity. Two webhook routes never share claims: a provider may
//! deliver one event to two of your endpoints, and each processes it. A request scheme's
//! claims are shared by every route: its signature is the request's, and the same signed
//! request sent to another endpoint (KamioKash requests do not sign the URL) is a replay.
//! Two services sharing a store never share claims unless they share a namespace: a guard
//! on a shared store requires one ([`ReplayGuard::new`]).
//!
//! A webhook scheme that does not sign the URL (KamioKash) cannot tell a provider's
//! delivery to two of your endpoints from an attacker's replay of one endpoint's delivery
//! to the other: give such endpoints secrets of their own, or one route
//! (`WebhookAuth::with_route`) so that they share claims.
//!
//! # Stores
//!
//! - [`InMemoryStore`]: one process.
//! - `redis::RedisStore` (feature `redis`): a fleet; claims beside your data.
//! - `postgres::PgStore` (feature `postgres`): a fleet; a plain store, or **the claim
//!   inside the handler's own transaction** (`PgStore::transactional`).
//!
//! **Exactly once under crashes.** With a store beside your data (memory, Redis, plain
//! PostgreSQL), a process that dies after the handler's side effect but before the claim
//! is marked done leaves the claim in flight; when the lease lapses, the retry is
//! processed again. That window (between your commit and the store's `done`) is the line
//! between a store beside your data and a claim inside your transaction: with the
//! transactional PostgreSQL store the claim is written by the handler's own transaction,
//! so the side effect and "done" commit together or not at all.

#[cfg(not(feature = "tokio"))]
mod block;
mod guard;
mod key;
mod memory;
pub(crate) mod state;
mod store;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use guard::{
    Admission, Claim, DEFAULT_LEASE, DEFAULT_RETENTION, DEFAULT_TIMEOUT, FailurePolicy, ReplayGuard,
};
pub(crate) use key::normalized_path;
pub use key::{ClaimKey, Identity, IdentityFn};
pub use memory::InMemoryStore;
pub use state::ClaimState;
pub use store::{Attachment, ClaimStore, Outcome, StoreFuture};
