//! Fleet-wide replay protection backed by Redis (feature `redis`).
//!
//! [`RedisReplayGuard`] keeps one Redis key per delivery, `<prefix><scheme>:<signature>`,
//! whose value is the claim's state and token (`i:<token>` in flight, `d:<token>` done):
//!
//! - **claim**: `SET key i:<token> NX GET PX <ttl>`: one native command, one round trip,
//!   which also returns the current value when the key is already held, so a duplicate is
//!   told apart as in flight or done. The TTL is the time until the claim's `expires_at`, in
//!   milliseconds **rounded up**, so the key outlives every instant any instance could
//!   still accept the message (see [`crate::Verified::expires_at`]);
//! - **complete**: `i:<token>` → `d:<token>` with `KEEPTTL`, only if the key still holds
//!   this claim's token (compare-and-set, one script). The tower layer sends it after the
//!   handler's answer without waiting for it ([`AsyncReplayGuard::complete_detached`]), so
//!   a delivery waits on one round trip;
//! - **release**: delete only if the key still holds `i:<token>` (compare-and-delete, one
//!   script), so a late release never frees another instance's claim.
//!
//! Every command has a timeout. A command that times out or fails has an *unknown* outcome
//! (the `SET` may still land after the timeout): the guard then reports
//! [`ErrorKind::ReplayGuardUnavailable`] (the tower layer answers `503` with `Retry-After`)
//! and, in the background, deletes the key if it holds this claim's token, so the
//! provider's retry can get in and nothing is accepted twice. The same clean-up runs if the
//! claim's future is dropped (client gone) before Redis answered.
//!
//! **Durability.** Replay protection across a Redis crash needs the claims to survive it:
//! run Redis with AOF (`appendonly yes`; `appendfsync always` loses nothing, `everysec` up
//! to a second of claims). Without persistence a restarted Redis has forgotten every claim,
//! and a delivery claimed before the crash is accepted again if it is replayed while its
//! timestamp is still fresh (measured: `kill -9`, restart, replay → accepted). A replica
//! does **not** keep claims across a failover by itself: replication is asynchronous, so the
//! last claims acknowledged by the old primary may never reach it (measured: replay
//! processed again after promoting a replica whose link was down); `min-replicas-to-write`
//! with `min-replicas-max-lag` bounds that window, it does not close it.
//!
//! **Eviction.** A Redis that evicts keys when full (`maxmemory` set and any
//! `maxmemory-policy` but `noeviction`) can drop a claim and let its replay in, so
//! [`RedisReplayGuard::connect`] refuses such a server. With `noeviction`, a full Redis
//! refuses new claims and deliveries are answered `503` until there is room.
//!
//! Needs Redis 7.0 or later (`SET NX GET`).
//!
//! All tasks share one multiplexed, auto-reconnecting connection (redis'
//! `ConnectionManager`): commands are pipelined on it, which serves what a pool would for
//! single-key commands without a pool's per-request checkout. By default
//! ([`FailurePolicy::Closed`]) a delivery Redis cannot decide on is refused: a provider
//! retries, an attacker does not get a replay window out of a Redis outage.
//!
//! ```no_run
//! use countersign::layer::WebhookAuth;
//! use countersign::redis_guard::RedisReplayGuard;
//! use countersign::{SecretKey, Verifier};
//! use std::sync::Arc;
//!
//! # async fn run() -> Result<(), countersign::Error> {
//! let guard = RedisReplayGuard::connect("redis://127.0.0.1:6379/").await?.with_prefix("shop:webhooks:");
//! let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
//!     .with_replay_guard(Arc::new(guard));
//! # Ok(())
//! # }
//! ```

use core::time::Duration;

use std::sync::Arc;

use redis::aio::ConnectionManager;

use crate::error::{Error, ErrorKind, err};
use crate::replay::{AsyncReplayGuard, Claim, ClaimState, GuardFuture, ReplayKey};
use crate::time::Timestamp;

/// Marks the claim done, if the key still holds it in flight.
const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0";

/// The longest any command may take (the connection's own limit).
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Deletes the key, if it still holds the claim in flight.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

struct Scripts {
    complete: redis::Script,
    release: redis::Script,
}
/// What the guard does when Redis cannot answer (unreachable, timed out, or an error such
/// as out of memory).
///
/// # Examples
///
/// ```
/// use countersign::redis_guard::FailurePolicy;
///
/// assert_eq!(FailurePolicy::default(), FailurePolicy::Closed);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse the delivery ([`ErrorKind::ReplayGuardUnavailable`]). The default.
    #[default]
    Closed,
    /// Accept the delivery without replay protection (availability over safety), whatever
    /// the failure: an outage, but also errors that will not go away by themselves (a full
    /// `noeviction` Redis answering out of memory).
    Open,
}

/// A [`AsyncReplayGuard`] shared by every instance connected to one Redis.
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct RedisReplayGuard {
    connection: ConnectionManager,
    scripts: Arc<Scripts>,
    prefix: String,
    timeout: Duration,
    policy: FailurePolicy,
}

fn unavailable(what: impl core::fmt::Display) -> Error {
    ErrorKind::ReplayGuardUnavailable(format!("redis: {what}")).into()
}

impl RedisReplayGuard {
    /// Connects to `url` (`redis://host:port/db`), with a 1 s timeout per command, the key
    /// prefix `countersign:replay:`, and [`FailurePolicy::Closed`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the URL is invalid, Redis cannot be
    /// reached within the timeout, or it evicts keys when full (see the
    /// [module documentation](self)).
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let timeout = Duration::from_secs(1);
        let client = redis::Client::open(url).map_err(unavailable)?;
        // Each command gets its own timeout (`with_timeout`); the connection's own limit is
        // only a ceiling, long enough for a clean-up to outlast a stalled server.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(MAX_TIMEOUT))
            .set_number_of_retries(1);
        let connection = match tokio::time::timeout(
            timeout * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => return Err(unavailable(e)),
            Err(_) => return Err(unavailable("connection timed out")),
        };
        let guard = RedisReplayGuard {
            connection,
            scripts: Arc::new(Scripts {
                complete: redis::Script::new(COMPLETE),
                release: redis::Script::new(RELEASE),
            }),
            prefix: "countersign:replay:".to_owned(),
            timeout,
            policy: FailurePolicy::Closed,
        };
        guard.check_eviction().await?;
        guard.check_commands().await?;
        Ok(guard)
    }

    /// Runs each command the guard relies on once, so a server that cannot run them (older
    /// than 7.0: no `SET NX GET`; an ACL forbidding `SET` or scripts) is refused here
    /// instead of failing every delivery later.
    async fn check_commands(&self) -> Result<(), Error> {
        let needs = |e: Error| {
            unavailable(format!(
                "this server cannot run the commands the guard needs (Redis 7.0 or later, SET and EVALSHA allowed): {e}"
            ))
        };
        let mut probe = redis::cmd("SET");
        probe
            .arg(format!("{}probe", self.prefix))
            .arg("probe")
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(1_000);
        self.command::<Option<Vec<u8>>>(probe, self.timeout)
            .await
            .map_err(needs)?;
        for script in [&self.scripts.complete, &self.scripts.release] {
            let mut connection = self.connection.clone();
            match tokio::time::timeout(
                self.timeout,
                script.prepare_invoke().load_async(&mut connection),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(needs(unavailable(e))),
                Err(_) => return Err(needs(unavailable("command timed out"))),
            }
        }
        Ok(())
    }

    /// Refuses a Redis that evicts keys when it is full: an evicted claim lets its replay
    /// in. With `maxmemory-policy noeviction` a full Redis refuses new claims instead, and
    /// deliveries are answered `503` until there is room. Where `CONFIG GET` is not
    /// allowed (some managed services), a warning says what to check.
    async fn check_eviction(&self) -> Result<(), Error> {
        let mut command = redis::cmd("CONFIG");
        command.arg("GET").arg("maxmemory*");
        match self
            .command::<std::collections::HashMap<String, String>>(command, self.timeout)
            .await
        {
            Ok(config) => {
                let limit = config.get("maxmemory").map_or("0", String::as_str);
                let policy = config
                    .get("maxmemory-policy")
                    .map_or("noeviction", String::as_str);
                if limit != "0" && policy != "noeviction" {
                    return err(ErrorKind::ReplayGuardUnavailable(format!(
                        "redis: this server evicts keys when full (maxmemory {limit}, maxmemory-policy {policy}), so a replay claim could be evicted and its replay accepted; set maxmemory-policy noeviction"
                    )));
                }
                Ok(())
            }
            Err(e) => {
                tracing_warn(&format!(
                    "could not read Redis' eviction policy ({e}); make sure maxmemory-policy is noeviction, or claims can be evicted and their replays accepted"
                ));
                Ok(())
            }
        }
    }

    /// The prefix of every key. Defaults to `countersign:replay:`.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The time allowed per command, at most 60 s. Defaults to 1 s.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), countersign::Error> {
    /// use countersign::redis_guard::RedisReplayGuard;
    /// use std::time::Duration;
    ///
    /// let guard = RedisReplayGuard::connect("redis://127.0.0.1/").await?.with_timeout(Duration::from_millis(200));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// What to do when Redis cannot answer. Defaults to [`FailurePolicy::Closed`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), countersign::Error> {
    /// use countersign::redis_guard::{FailurePolicy, RedisReplayGuard};
    ///
    /// let guard = RedisReplayGuard::connect("redis://127.0.0.1/").await?.with_failure_policy(FailurePolicy::Open);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    fn key(&self, key: ReplayKey) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `command` within the timeout.
    async fn command<T: redis::FromRedisValue>(
        &self,
        command: redis::Cmd,
        timeout: Duration,
    ) -> Result<T, Error> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(timeout, command.query_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("command timed out")),
        }
    }

    /// Runs `script` with one key and two arguments within the timeout.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        key: &str,
        args: [&str; 2],
        timeout: Duration,
    ) -> Result<T, Error> {
        let mut connection = self.connection.clone();
        let mut invocation = script.key(key);
        invocation.arg(args[0]).arg(args[1]);
        match tokio::time::timeout(timeout, invocation.invoke_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("command timed out")),
        }
    }

    /// Deletes `key` if it still holds this in-flight claim, in the background (it must
    /// outlive a slow Redis and the caller's future): retried with backoff until it succeeds
    /// or the claim expires by itself.
    fn clean_up_in_background(&self, key: String, claim: Claim) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing_warn("no Tokio runtime to release a replay claim on; it expires with its TTL");
            return;
        };
        let guard = self.clone();
        runtime.spawn(async move {
            let value = in_flight(&claim);
            let mut pause = Duration::from_millis(100);
            loop {
                let attempt = guard
                    .run::<i64>(&guard.scripts.release, &key, [&value, ""], guard.timeout)
                    .await;
                let Err(e) = attempt else { return };
                if crate::time::Clock::now(&crate::time::SystemClock) >= claim.expires_at() {
                    tracing_warn(&format!(
                        "could not release a replay claim before it expired ({e})"
                    ));
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
    }
}

fn in_flight(claim: &Claim) -> String {
    format!("i:{:032x}", claim.token())
}

fn done(claim: &Claim) -> String {
    format!("d:{:032x}", claim.token())
}

fn tracing_warn(message: &str) {
    tracing::warn!(target: "countersign", "{message}");
}

/// A claim whose outcome is not known yet: if it is dropped armed (the command failed,
/// timed out, or the caller's future was dropped), the key is deleted in the background if
/// it holds this claim's token.
struct Unsettled<'g> {
    guard: &'g RedisReplayGuard,
    key: Option<String>,
    claim: Claim,
}

impl Unsettled<'_> {
    fn settled(mut self) {
        self.key = None;
    }
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.guard.clean_up_in_background(key, self.claim);
        }
    }
}

/// A token unique across the fleet: 128 random bits.
fn new_token() -> Result<u128, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(unavailable)?;
    Ok(u128::from_le_bytes(bytes))
}

/// Milliseconds from `now` until `expires_at`, rounded up, at least 1.
fn ttl_ms(expires_at: Timestamp, now: Timestamp) -> u64 {
    let ttl = expires_at.since_epoch().saturating_sub(now.since_epoch());
    let ms = ttl.as_millis() + u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

impl AsyncReplayGuard for RedisReplayGuard {
    fn claim_async(
        &self,
        key: ReplayKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> GuardFuture<'_, Claim> {
        Box::pin(async move {
            let claim = Claim::new(key, new_token()?, expires_at);
            let ttl = ttl_ms(expires_at, now);
            let redis_key = self.key(key);
            let unsettled = Unsettled {
                guard: self,
                key: Some(redis_key.clone()),
                claim,
            };
            // Sets the key if it is free and returns nothing; otherwise leaves it and returns
            // its value (state and token). One native command, one round trip.
            let mut command = redis::cmd("SET");
            command
                .arg(&redis_key)
                .arg(in_flight(&claim))
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(ttl);
            let outcome = self.command::<Option<Vec<u8>>>(command, self.timeout).await;
            match outcome {
                Ok(held) => {
                    unsettled.settled();
                    match held {
                        None => Ok(claim),
                        Some(held) if held.starts_with(b"d:") => {
                            err(ErrorKind::Replayed(ClaimState::Done))
                        }
                        Some(_) => err(ErrorKind::Replayed(ClaimState::InFlight)),
                    }
                }
                Err(e) => match self.policy {
                    // Unknown outcome: `unsettled` cleans up on drop.
                    FailurePolicy::Closed => Err(e),
                    FailurePolicy::Open => {
                        // Accepted unguarded; if the SET did land, it is this claim's, and
                        // the caller completes or releases it like any other.
                        unsettled.settled();
                        tracing_warn(&format!(
                            "accepting a delivery without replay protection (failure policy open): {e}"
                        ));
                        Ok(claim)
                    }
                },
            }
        })
    }

    fn complete_async(&self, claim: Claim) -> GuardFuture<'_> {
        Box::pin(async move {
            let key = self.key(claim.key());
            self.run::<i64>(
                &self.scripts.complete,
                &key,
                [&in_flight(&claim), &done(&claim)],
                self.timeout,
            )
            .await
            .map(|_| ())
        })
    }

    fn release_async(&self, claim: Claim) -> GuardFuture<'_> {
        Box::pin(async move {
            let key = self.key(claim.key());
            let unsettled = Unsettled {
                guard: self,
                key: Some(key.clone()),
                claim,
            };
            let released = self
                .run::<i64>(
                    &self.scripts.release,
                    &key,
                    [&in_flight(&claim), ""],
                    self.timeout,
                )
                .await;
            if released.is_ok() {
                unsettled.settled();
            }
            released.map(|_| ())
        })
    }

    fn release_detached(&self, claim: Claim) {
        self.clean_up_in_background(self.key(claim.key()), claim);
    }

    fn complete_detached(&self, claim: Claim) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing_warn(
                "no Tokio runtime to mark a delivery done on; duplicates get 409 until its claim expires",
            );
            return;
        };
        let guard = self.clone();
        runtime.spawn(async move {
            if let Err(e) = guard.complete_async(claim).await {
                tracing_warn(&format!(
                    "could not mark a delivery done ({e}); duplicates get 409 until its claim expires"
                ));
            }
        });
    }
}

impl core::fmt::Debug for RedisReplayGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisReplayGuard")
            .field("prefix", &self.prefix)
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
    fn the_ttl_is_rounded_up_to_the_millisecond_and_never_zero() {
        let now = Timestamp::from_unix_secs(1_700_000_000).unwrap();
        let at = |d: Duration| Timestamp::from_duration(now.since_epoch() + d).unwrap();
        assert_eq!(ttl_ms(at(Duration::from_secs(60)), now), 60_000);
        assert_eq!(ttl_ms(at(Duration::new(60, 1)), now), 60_001);
        assert_eq!(ttl_ms(at(Duration::new(60, 500_000)), now), 60_001);
        assert_eq!(ttl_ms(at(Duration::new(60, 999_999)), now), 60_001);
        assert_eq!(ttl_ms(at(Duration::new(60, 1_000_000)), now), 60_001);
        assert_eq!(ttl_ms(at(Duration::new(60, 1_000_001)), now), 60_002);
        assert_eq!(ttl_ms(at(Duration::from_nanos(1)), now), 1);
        assert_eq!(ttl_ms(now, now), 1, "never 0: PX 0 is an error");
        assert_eq!(ttl_ms(now, at(Duration::from_secs(1))), 1);
    }

    #[test]
    fn values_carry_state_and_token() {
        let key = ReplayKey::new(&crate::kitopay::FULL, crate::Signature::from_bytes([1; 32]));
        let claim = Claim::new(key, 0xab, Timestamp::UNIX_EPOCH);
        assert_eq!(in_flight(&claim), format!("i:{}ab", "0".repeat(30)));
        assert_eq!(done(&claim), format!("d:{}ab", "0".repeat(30)));
    }
}
