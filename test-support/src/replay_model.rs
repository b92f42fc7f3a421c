//! A model-based test of replay protection over time, shared by `tests/replay.rs` (the
//! in-memory store, virtual time, exact edges), `tests/redis.rs` and `tests/postgres.rs`
//! (real servers, real time).
//!
//! Random sequences of operations run against two verifier instances that share one
//! guard and whose clocks differ by up to the window's `max_future`:
//!
//! - deliver message `m` to instance `i` (instance 0 claims through the verifier's own
//!   guard, `Verifier::verify`, the blocking path; instance 1 as the tower layer does,
//!   awaiting `ReplayGuard::claim` with its clock reading);
//! - by event identity only: deliver a **retry of `m` signed again** at the delivering
//!   instance's clock (a new signature, the same event);
//! - complete or release `m`'s outstanding claim;
//! - move time so that an instance's clock lands exactly on one of `m`'s edges:
//!   `t + max_age`, `t + max_age + resolution - 1 ns`, `t + max_age + resolution`, the
//!   signature's claim expiry and one nanosecond before it, and (by event) the claim's lease
//!   and retention ends and one nanosecond before each.
//!
//! Claims are by signature (each message is its own delivery), or by event (a custom
//! identity: the body's `n`; a claim is in flight for the lease, done for the retention).
//! The model holds each message's state (free, in flight until, done until). Invariants
//! checked after every step: a message is accepted only when the model holds it free
//! (never, in particular, while a claim of it is held); a duplicate is reported with the
//! state the model holds; and, with exact virtual time, a free message that is fresh on
//! the delivering clock is accepted (the guard refuses nothing it should accept).
// The plan's vocabulary (kinds, edges, operations) is described above.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use countersign::claim::{Claim, Identity, ReplayGuard};
use countersign::{
    ClaimState, Clock, ErrorKind, Freshness, ReceivedRequest, SecretKey, Timestamp, Verifier,
};
use futures_util::FutureExt;
use proptest::prelude::*;

use crate::clock::Moving;
use crate::sign;

const MERCHANT: &str = "m-1";
const SECRET: &str = "model-secret";
const URL: &str = "https://shop.example.com/hooks";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kitopay,
    KamioKash,
}

impl Kind {
    fn resolution(self) -> Duration {
        match self {
            Kind::Kitopay => Duration::from_secs(1),
            Kind::KamioKash => Duration::from_nanos(1),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Edge {
    MaxAge,
    LastAccepted,
    FirstRefused,
    BeforeClaimExpiry,
    ClaimExpiry,
    BeforeLeaseEnd,
    LeaseEnd,
    BeforeRetentionEnd,
    RetentionEnd,
}

#[derive(Debug, Clone)]
pub enum Op {
    Deliver {
        message: usize,
        instance: usize,
    },
    Resign {
        message: usize,
        instance: usize,
    },
    Complete {
        message: usize,
    },
    Release {
        message: usize,
    },
    Jump {
        message: usize,
        edge: Edge,
        instance: usize,
    },
    Nudge {
        nanos: u64,
    },
}

/// A test plan: the messages (kind and timestamp offset from the start, in ms), the two
/// instances' skews (ms, within `max_future`), and the operations.
#[derive(Debug, Clone)]
pub struct Plan {
    pub messages: Vec<(Kind, i64)>,
    pub skews_ms: [u64; 2],
    pub ops: Vec<Op>,
}

/// What deliveries are claimed under, and (by event) the lease and retention.
#[derive(Debug, Clone, Copy)]
pub enum By {
    Signature,
    Event {
        lease: Duration,
        retention: Duration,
    },
}

impl By {
    /// The guard the model runs against, over `guard`'s store.
    pub fn configure(self, guard: ReplayGuard) -> ReplayGuard {
        match self {
            By::Signature => guard.with_identity(Identity::Signature),
            By::Event { lease, retention } => guard
                .with_identity(Identity::Custom(Arc::new(|_, request| {
                    let body: serde_json::Value = serde_json::from_slice(request.body()).ok()?;
                    Some(body["n"].to_string())
                })))
                .with_lease(lease)
                .with_retention(retention),
        }
    }
}

/// Plans for a window of `max_age`/`max_future` (ms).
pub fn plans(max_age_ms: i64, max_future_ms: u64, len: usize) -> impl Strategy<Value = Plan> {
    let kind = prop_oneof![Just(Kind::Kitopay), Just(Kind::KamioKash)];
    let message = (kind, -max_age_ms..=(max_future_ms as i64));
    let edge = prop_oneof![
        Just(Edge::MaxAge),
        Just(Edge::LastAccepted),
        Just(Edge::FirstRefused),
        Just(Edge::BeforeClaimExpiry),
        Just(Edge::ClaimExpiry),
        Just(Edge::BeforeLeaseEnd),
        Just(Edge::LeaseEnd),
        Just(Edge::BeforeRetentionEnd),
        Just(Edge::RetentionEnd),
    ];
    let skew = prop_oneof![Just(0), Just(max_future_ms), 0..=max_future_ms];
    let op = prop_oneof![
        6 => (0..3usize, 0..2usize).prop_map(|(message, instance)| Op::Deliver { message, instance }),
        2 => (0..3usize, 0..2usize).prop_map(|(message, instance)| Op::Resign { message, instance }),
        1 => (0..3usize).prop_map(|message| Op::Complete { message }),
        1 => (0..3usize).prop_map(|message| Op::Release { message }),
        2 => (0..3usize, edge, 0..2usize).prop_map(|(message, edge, instance)| Op::Jump { message, edge, instance }),
        1 => (0..2_000_000_000u64).prop_map(|nanos| Op::Nudge { nanos }),
    ];
    (
        proptest::collection::vec(message, 3),
        [skew.clone(), skew],
        proptest::collection::vec(op, 1..len),
    )
        .prop_map(|(messages, skews_ms, ops)| Plan {
            messages,
            skews_ms,
            ops,
        })
}

struct Message {
    kind: Kind,
    at: Timestamp,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A message's claim as the model holds it: free, or held in a state until an instant (on
/// the claimer's clock), with the outstanding claim while in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Held(ClaimState, Timestamp, Option<Claim>),
}

impl State {
    /// The state at `now`: a claim whose instant has passed is free.
    fn at(self, now: Timestamp) -> State {
        match self {
            State::Held(_, until, _) if now >= until && until != Timestamp::MAX => State::Free,
            held => held,
        }
    }
}

/// Where time comes from.
pub enum Time {
    /// Exact, shared, moved by the plan.
    Virtual,
    /// The system clock; jumps sleep (at most `max_sleep` each).
    Real { max_sleep: Duration },
}

/// What one run saw, for reporting.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub accepted: usize,
    pub duplicates_done: usize,
    pub duplicates_in_flight: usize,
    pub stale: usize,
}

/// Runs `plan` against `guard` (shared by both instances, configured by `by`) with
/// `freshness`.
pub async fn run(
    plan: &Plan,
    guard: ReplayGuard,
    by: By,
    freshness: Freshness,
    time: Time,
) -> Result<Tally, TestCaseError> {
    let guard = by.configure(guard);
    // The shared time (virtual, or the system clock), and each instance's reading of it.
    let base = match time {
        Time::Virtual => Moving::new(Timestamp::from_unix_secs(1_700_000_000).unwrap()),
        Time::Real { .. } => Moving::system(),
    };
    let start = base.base();
    let clocks: Vec<Moving> = plan
        .skews_ms
        .iter()
        .map(|&ms| base.skewed(i64::try_from(ms).unwrap()))
        .collect();
    let mut messages: Vec<Message> = plan
        .messages
        .iter()
        .enumerate()
        .map(|(i, &(kind, offset_ms))| message(kind, start, offset_ms, i))
        .collect();
    let url = countersign::CanonicalUrl::parse(URL).unwrap();
    // Per instance: (kitopay verifier, kamiokash verifier); instance 0's claim themselves.
    let verifiers: Vec<(Verifier, Verifier)> = clocks
        .iter()
        .enumerate()
        .map(|(i, clock)| {
            let kitopay =
                Verifier::kitopay_webhook(MERCHANT, SecretKey::new(SECRET).unwrap(), url.clone())
                    .unwrap()
                    .with_freshness(freshness)
                    .with_clock(clock.clone());
            let kamiokash = Verifier::kamiokash_webhook(SecretKey::new(SECRET).unwrap())
                .with_freshness(freshness)
                .with_clock(clock.clone());
            match i {
                0 => (
                    kitopay.with_replay_guard(guard.clone()),
                    kamiokash.with_replay_guard(guard.clone()),
                ),
                _ => (kitopay, kamiokash),
            }
        })
        .collect();
    let exact = matches!(time, Time::Virtual);
    let mut states = vec![State::Free; messages.len()];
    // The instants of each message's current claim (for the edges): lease end, retention end.
    let mut instants: Vec<Option<(Timestamp, Timestamp)>> = vec![None; messages.len()];
    let mut tally = Tally::default();
    // The latest clock reading the store has been given. A store evicts by the clocks it
    // is shown (in memory), or counts a claim's time from its arrival on its own clock
    // (Redis' TTL): either way a claim can lapse, for every instance, once it has lapsed on
    // the clock of the instance furthest ahead. By signature, claims outlive that lead (their
    // lifetime includes `max_future`); by event, a claim held on the delivering clock but
    // lapsed on the clock furthest ahead may be either.
    let mut high_water = Timestamp::UNIX_EPOCH;

    for op in &plan.ops {
        match *op {
            Op::Deliver { message, instance } | Op::Resign { message, instance } => {
                let now = clocks[instance].now();
                if matches!(op, Op::Resign { .. }) {
                    if matches!(by, By::Signature) {
                        continue; // a retry signed again is another delivery: nothing to model
                    }
                    let kind = messages[message].kind;
                    messages[message] = resign(kind, now, message);
                }
                let m = &messages[message];
                let (kitopay, kamiokash) = &verifiers[instance];
                let verifier = match m.kind {
                    Kind::Kitopay => kitopay,
                    Kind::KamioKash => kamiokash,
                };
                let request = ReceivedRequest::new(&m.headers, &m.body);
                let outcome = match instance {
                    0 => verifier
                        .verify(&request)
                        .map(|v| v.claim().unwrap())
                        .map_err(|e| e.into_kind()),
                    // The route the layer claims under without a router: the configured
                    // URL's path for the Kitopay webhook (the URL signed), none received
                    // here for KamioKash; `Verifier::verify` claims under the same.
                    _ => match verifier.verify(&request) {
                        Ok(v) => guard
                            .claim(&v, &request, verifier.url().map_or("", |u| u.path()), now)
                            .await
                            .map(|admission| admission.claim().unwrap())
                            .map_err(|e| e.into_kind()),
                        Err(e) => Err(e.into_kind()),
                    },
                };
                let fresh = is_fresh(m, now, freshness);
                let expiry = Timestamp::from_duration(signature_expiry(m, freshness)).unwrap();
                if outcome.is_ok() || matches!(outcome, Err(ErrorKind::Replayed(_))) {
                    high_water = high_water.max(now);
                }
                let ahead = clocks.iter().map(Clock::now).max().unwrap_or(now);
                let ambiguous = matches!(by, By::Event { .. })
                    && states[message].at(high_water.max(ahead)) == State::Free;
                let model = match (&outcome, states[message].at(now)) {
                    (Ok(_), State::Held(..)) if ambiguous => State::Free,
                    (_, state) => state,
                };
                match (&outcome, model) {
                    (Ok(claim), State::Free) => {
                        tally.accepted += 1;
                        let (lease_until, retain_until) = match by {
                            By::Signature => (expiry, expiry),
                            By::Event { lease, retention } => {
                                (plus(now, lease), plus(now, retention).max(expiry))
                            }
                        };
                        if exact {
                            prop_assert_eq!(
                                claim.lease_until(),
                                lease_until,
                                "lease of message {}",
                                message
                            );
                            prop_assert_eq!(
                                claim.retain_until(),
                                retain_until,
                                "retention of message {}",
                                message
                            );
                        }
                        states[message] =
                            State::Held(ClaimState::InFlight, claim.lease_until(), Some(*claim));
                        instants[message] = Some((claim.lease_until(), claim.retain_until()));
                    }
                    (Ok(_), held) => {
                        return Err(TestCaseError::fail(format!(
                            "message {message} accepted twice: state {held:?}, instance {instance}, clock {now:?}, plan {plan:?}"
                        )));
                    }
                    (Err(ErrorKind::Replayed(reported)), State::Held(model, _, _)) => {
                        prop_assert_eq!(
                            *reported,
                            model,
                            "wrong duplicate state for message {}",
                            message
                        );
                        match reported {
                            ClaimState::Done => tally.duplicates_done += 1,
                            _ => tally.duplicates_in_flight += 1,
                        }
                    }
                    (Err(ErrorKind::Replayed(_)), State::Free) if !exact => {
                        // Real time: the claim lapsed between the store's reading and ours.
                    }
                    (Err(ErrorKind::Replayed(reported)), State::Free) if ambiguous => {
                        // Not yet evicted: the store still holds it, in the state it was.
                        let _ = reported;
                    }
                    (Err(ErrorKind::Expired { .. } | ErrorKind::Future { .. }), _) => {
                        tally.stale += 1;
                        if exact {
                            prop_assert!(
                                !fresh,
                                "fresh message {} refused as stale at {:?}",
                                message,
                                now
                            );
                        }
                    }
                    (Err(other), state) => {
                        return Err(TestCaseError::fail(format!(
                            "message {message}: unexpected {other:?} in state {state:?} at {now:?}, plan {plan:?}"
                        )));
                    }
                }
                if exact && fresh {
                    prop_assert!(outcome.is_ok() || matches!(outcome, Err(ErrorKind::Replayed(_))));
                }
            }
            Op::Complete { message } => {
                if let State::Held(ClaimState::InFlight, lease_until, Some(claim)) = states[message]
                {
                    let done = guard.complete(&claim).await.unwrap();
                    let now = clocks[0].now().min(clocks[1].now());
                    if done {
                        states[message] = State::Held(ClaimState::Done, claim.retain_until(), None);
                    } else {
                        // Only a claim whose lease lapsed may be gone.
                        prop_assert!(
                            !exact || clocks[0].now().max(clocks[1].now()) >= lease_until,
                            "message {}: completion refused while its lease held ({:?} < {:?})",
                            message,
                            now,
                            lease_until
                        );
                        states[message] = State::Free;
                    }
                }
            }
            Op::Release { message } => {
                if let State::Held(ClaimState::InFlight, _, Some(claim)) = states[message] {
                    guard.release(&claim).await.unwrap();
                    states[message] = State::Free;
                }
            }
            Op::Jump {
                message,
                edge,
                instance,
            } => {
                let m = &messages[message];
                let Some(target) = edge_time(m, edge, freshness, instants[message]) else {
                    continue;
                };
                let skew = Duration::from_millis(plan.skews_ms[instance]);
                advance_to(&base, &time, target.saturating_sub(skew)).await;
            }
            Op::Nudge { nanos } => {
                let target = base.base().since_epoch() + Duration::from_nanos(nanos);
                advance_to(&base, &time, target).await;
            }
        }
    }
    Ok(tally)
}

fn plus(at: Timestamp, span: Duration) -> Timestamp {
    Timestamp::from_duration(at.since_epoch() + span).unwrap()
}

/// Moves (virtual) or waits for (real) the base time to reach `target`; never backwards.
async fn advance_to(base: &Moving, time: &Time, target: Duration) {
    let now = base.base().since_epoch();
    if target <= now {
        return;
    }
    match time {
        Time::Virtual => base.set(Timestamp::from_duration(target).unwrap()),
        Time::Real { max_sleep } => tokio::time::sleep((target - now).min(*max_sleep)).await,
    }
}

/// The claim lifetime of a signature, written independently of the library: the last
/// instant any instance (clocks up to `max_future` apart) could accept it, plus one
/// resolution step.
fn signature_expiry(m: &Message, f: Freshness) -> Duration {
    m.at.since_epoch() + f.max_age + m.kind.resolution() + f.max_future
}

/// The instant `edge` of message `m` (`None`: an edge of a claim it does not have).
fn edge_time(
    m: &Message,
    edge: Edge,
    f: Freshness,
    instants: Option<(Timestamp, Timestamp)>,
) -> Option<Duration> {
    let t = m.at.since_epoch();
    let res = m.kind.resolution();
    let claim_expiry = signature_expiry(m, f);
    let ns = Duration::from_nanos(1);
    let (lease, retention) = match instants {
        Some((lease, retention)) => (Some(lease.since_epoch()), Some(retention.since_epoch())),
        None => (None, None),
    };
    Some(match edge {
        Edge::MaxAge => t + f.max_age,
        Edge::LastAccepted => t + f.max_age + res - ns,
        Edge::FirstRefused => t + f.max_age + res,
        Edge::BeforeClaimExpiry => claim_expiry - ns,
        Edge::ClaimExpiry => claim_expiry,
        Edge::BeforeLeaseEnd => lease? - ns,
        Edge::LeaseEnd => lease?,
        Edge::BeforeRetentionEnd => retention? - ns,
        Edge::RetentionEnd => retention?,
    })
}

/// The freshness rule, written independently of the library: Kitopay compares whole
/// seconds of the clock, KamioKash the clock as read.
fn is_fresh(m: &Message, now: Timestamp, f: Freshness) -> bool {
    let t = m.at.since_epoch();
    let now = match m.kind {
        Kind::Kitopay => Duration::from_secs(now.since_epoch().as_secs()),
        Kind::KamioKash => now.since_epoch(),
    };
    if now >= t {
        now - t <= f.max_age
    } else {
        t - now <= f.max_future
    }
}

fn message(kind: Kind, start: Timestamp, offset_ms: i64, index: usize) -> Message {
    let base = start.since_epoch();
    let offset = Duration::from_millis(offset_ms.unsigned_abs());
    let at = if offset_ms >= 0 {
        base + offset
    } else {
        base - offset
    };
    signed(kind, at, index)
}

/// Message `index` signed again at `now` (a provider's retry: the same body, a new
/// timestamp and signature).
fn resign(kind: Kind, now: Timestamp, index: usize) -> Message {
    signed(kind, now.since_epoch(), index)
}

fn signed(kind: Kind, at: Duration, index: usize) -> Message {
    let body = format!("{{\"n\":{index}}}").into_bytes();
    let (at, signed) = match kind {
        Kind::Kitopay => {
            let at = Timestamp::from_unix_secs(at.as_secs()).unwrap();
            (at, sign::kitopay_webhook(MERCHANT, SECRET, URL, &body, at))
        }
        Kind::KamioKash => {
            let at = Timestamp::from_unix_millis(at.as_millis() as u64).unwrap();
            (at, sign::kamiokash_webhook(SECRET, &body, at))
        }
    };
    Message {
        kind,
        at,
        headers: signed,
        body,
    }
}

/// Runs a future that is ready at once (a synchronous guard's).
pub fn now_or_never<T>(future: impl core::future::Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("a synchronous guard's future is ready at once")
}
