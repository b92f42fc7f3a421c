//! [`RedisStore`]: claims shared by every instance connected to one Redis (feature `redis`).
//!
//! One Redis key per claim, `<prefix><claim key in hex>`, whose value is the claim's state
//! and token (`i:<token>` in flight, `d:<token>` done):
//!
//! - **claim**: `SET key i:<token> NX GET PX <lease>`: one native command, one round trip,
//!   which also returns the current value when the key is already held, so a duplicate is
//!   told apart as in flight or done. TTLs are the time until the claim's instant, in
//!   milliseconds **rounded up**;
//! - **complete**: `i:<token>` → `d:<token>` with `PX <retention>`, only if the key still
//!   holds this claim's token in flight (compare-and-set, one script);
//! - **release**: delete only if the key still holds `i:<token>` (compare-and-delete, one
//!   script), so a late release never frees another instance's claim.
//!
//! The [`ReplayGuard`](super::ReplayGuard) around it gives every command its timeout, turns
//! failures into its policy, and deletes a claim whose outcome is unknown (a `SET` that
//! may still land after its timeout) in the background, by token.
//!
//! **Durability.** Replay protection across a Redis crash needs the claims to survive it:
//! run Redis with AOF (`appendonly yes`; `appendfsync always` loses nothing, `everysec` up
//! to a second of claims). Without persistence a restarted Redis has forgotten every claim,
//! and a delivery claimed before the crash is accepted again if it is replayed while its
//! claim should have been held (measured: `kill -9`, restart, replay → accepted). A replica
//! does **not** keep claims across a failover by itself: replication is asynchronous, so the
//! last claims acknowledged by the old primary may never reach it (measured: replay
//! processed again after promoting a replica whose link was down); `min-replicas-to-write`
//! with `min-replicas-max-lag` bounds that window, it does not close it.
//!
//! **Beside your data, not inside it.** A claim is marked done after the handler's answer.
//! If the process dies after the handler's own commit but before `done` reached Redis, the
//! claim lapses with its lease and the provider's retry is processed a second time. Only a
//! claim written by the handler's own transaction closes that window: see the
//! transactional PostgreSQL store (`claim::postgres`, feature `postgres`).
//!
//! **Eviction.** A Redis that evicts keys when full (`maxmemory` set and any
//! `maxmemory-policy` but `noeviction`) can drop a claim and let its replay in, so
//! [`RedisStore::connect`] refuses such a server. With `noeviction`, a full Redis
//! refuses new claims and deliveries are answered `503` until there is room.
//!
//! **Memory.** A claim is one key: 240 bytes of `used_memory` each (measured in
//! `tests/claim_memory.rs`: a 71-byte key, a 34-byte value, its expiry), kept for the
//! retention once done: 100 events/s for 7 days is 60 million keys, 14.5 GB; claims by
//! signature are kept about two minutes (12,100 keys at 100/s, 2.9 MB).
//!
//! Needs Redis 7.0 or later (`SET NX GET`). All tasks share one multiplexed,
//! auto-reconnecting connection (redis' `ConnectionManager`): commands are pipelined on
//! it, which serves what a pool would for single-key commands without a pool's
//! per-request checkout.
//!
//! ```no_run
//! use countersign::claim::redis::RedisStore;
//! use countersign::claim::ReplayGuard;
//! use countersign::layer::WebhookAuth;
//! use countersign::{SecretKey, Verifier};
//!
//! # async fn run() -> Result<(), countersign::Error> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
//! let guard = ReplayGuard::new(store, "shop")?;
//! let auth = WebhookAuth::new(Verifier::kamiokash_webhook(SecretKey::new("whsec")?))
//!     .with_replay_guard(guard);
//! # Ok(())
//! # }
//! ```

use core::future::Future;
use core::time::Duration;

use std::sync::Arc;

use redis::aio::ConnectionManager;

use super::guard::Claim;
use super::key::ClaimKey;
use super::state::ClaimState;
use super::store::{ClaimStore, Outcome, StoreFuture};
use crate::error::{Error, ErrorKind, err};
use crate::time::Timestamp;

/// Marks the claim done for the retention (`ARGV[3]` ms; empty: for good), if the key still
/// holds it in flight.
const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[3] == '' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
  return 1
end
return 0";

/// Deletes the key, if it still holds the claim in flight.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// The time allowed to connect and check the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection's own ceiling per command (the guard's timeout is shorter): long enough
/// for a clean-up to outlast a stalled server.
const RESPONSE_CEILING: Duration = Duration::from_secs(60);

/// A [`ClaimStore`] in Redis, shared by every instance connected to it. Cheap to clone.
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    scripts: Arc<Scripts>,
    prefix: Arc<str>,
}

struct Scripts {
    complete: redis::Script,
    release: redis::Script,
}

fn unavailable(what: impl core::fmt::Display) -> Error {
    ErrorKind::ReplayGuardUnavailable(format!("redis: {what}")).into()
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) with the key prefix
    /// `countersign:claim:`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if the URL is invalid, Redis cannot be reached
    /// within 2 s, cannot run the commands the store needs (Redis 7.0 or later, `SET` and
    /// `EVALSHA` allowed), or evicts keys when full (see the [module
    /// documentation](self)).
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_CEILING))
            .set_number_of_retries(1);
        let connection = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => return Err(unavailable(e)),
            Err(_) => return Err(unavailable("connection timed out")),
        };
        let store = RedisStore {
            connection,
            scripts: Arc::new(Scripts {
                complete: redis::Script::new(COMPLETE),
                release: redis::Script::new(RELEASE),
            }),
            prefix: "countersign:claim:".into(),
        };
        store.check_eviction().await?;
        store.check_commands().await?;
        Ok(store)
    }

    /// The prefix of every key. Defaults to `countersign:claim:`. (Services are kept apart
    /// by the guard's namespace, which is part of every claim key; the prefix only groups
    /// the store's keys in Redis.)
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), countersign::Error> {
    /// use countersign::claim::redis::RedisStore;
    ///
    /// let store = RedisStore::connect("redis://127.0.0.1/").await?.with_prefix("shop:claims:");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Runs each command the store relies on once, so a server that cannot run them (older
    /// than 7.0: no `SET NX GET`; an ACL forbidding `SET` or scripts) is refused here
    /// instead of failing every delivery later.
    async fn check_commands(&self) -> Result<(), Error> {
        let needs = |e: Error| {
            unavailable(format!(
                "this server cannot run the commands the store needs (Redis 7.0 or later, SET and EVALSHA allowed): {e}"
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
        within(
            CONNECT_TIMEOUT,
            probe.query_async::<Option<Vec<u8>>>(&mut self.connection.clone()),
        )
        .await
        .map_err(needs)?;
        for script in [&self.scripts.complete, &self.scripts.release] {
            let mut connection = self.connection.clone();
            within(
                CONNECT_TIMEOUT,
                script.prepare_invoke().load_async(&mut connection),
            )
            .await
            .map_err(needs)?;
        }
        Ok(())
    }

    /// Refuses a Redis that evicts keys when it is full: an evicted claim lets its replay
    /// in. Where `CONFIG GET` is not allowed (some managed services), a warning says what
    /// to check.
    async fn check_eviction(&self) -> Result<(), Error> {
        let mut command = redis::cmd("CONFIG");
        command.arg("GET").arg("maxmemory*");
        let config = within(
            CONNECT_TIMEOUT,
            command.query_async::<std::collections::HashMap<String, String>>(
                &mut self.connection.clone(),
            ),
        )
        .await;
        match config {
            Ok(config) => {
                let limit = config.get("maxmemory").map_or("0", String::as_str);
                let policy = config
                    .get("maxmemory-policy")
                    .map_or("noeviction", String::as_str);
                if limit != "0" && policy != "noeviction" {
                    return err(ErrorKind::ReplayGuardUnavailable(format!(
                        "redis: this server evicts keys when full (maxmemory {limit}, maxmemory-policy {policy}), so a claim could be evicted and its replay accepted; set maxmemory-policy noeviction"
                    )));
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(target: "countersign", "could not read Redis' eviction policy ({e}); make sure maxmemory-policy is noeviction, or claims can be evicted and their replays accepted");
                Ok(())
            }
        }
    }

    fn key(&self, key: &ClaimKey) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `script` on `key` with `args`.
    async fn run(&self, script: &redis::Script, key: String, args: &[&str]) -> Result<i64, Error> {
        let mut connection = self.connection.clone();
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        invocation
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(unavailable)
    }
}

/// `future` within `timeout`.
async fn within<T>(
    timeout: Duration,
    future: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(_) => Err(unavailable("command timed out")),
    }
}

fn in_flight(token: u128) -> String {
    format!("i:{token:032x}")
}

fn done(token: u128) -> String {
    format!("d:{token:032x}")
}

/// Milliseconds from `now` until `until`, rounded up, at least 1.
fn ttl_ms(until: Timestamp, now: Timestamp) -> u64 {
    let ttl = until.since_epoch().saturating_sub(now.since_epoch());
    let ms = ttl.as_millis() + u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// `PX` for a claim until `until`: `None` (no expiry) for a claim held for good.
fn px(until: Timestamp, now: Timestamp) -> Option<u64> {
    (until != Timestamp::MAX).then(|| ttl_ms(until, now))
}

impl ClaimStore for RedisStore {
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome> {
        let key = self.key(&claim.key());
        let (token, lease) = (claim.token(), px(claim.lease_until(), claim.claimed_at()));
        StoreFuture::pending(async move {
            // Sets the key if it is free and returns nothing; otherwise leaves it and
            // returns its value (state and token). One native command, one round trip.
            let mut command = redis::cmd("SET");
            command.arg(key).arg(in_flight(token)).arg("NX").arg("GET");
            if let Some(ms) = lease {
                command.arg("PX").arg(ms);
            }
            let held = command
                .query_async::<Option<Vec<u8>>>(&mut self.connection.clone())
                .await
                .map_err(unavailable)?;
            Ok(match held {
                None => Outcome::Claimed(None),
                Some(held) if held.starts_with(b"d:") => Outcome::Held(ClaimState::Done),
                Some(_) => Outcome::Held(ClaimState::InFlight),
            })
        })
    }

    fn complete(&self, claim: &Claim) -> StoreFuture<'_, bool> {
        let key = self.key(&claim.key());
        let token = claim.token();
        // Not KEEPTTL: the in-flight value has the lease's TTL.
        let retain = px(claim.retain_until(), claim.claimed_at())
            .map_or_else(String::new, |ms| ms.to_string());
        StoreFuture::pending(async move {
            let done = self
                .run(
                    &self.scripts.complete,
                    key,
                    &[&in_flight(token), &done(token), &retain],
                )
                .await?;
            Ok(done == 1)
        })
    }

    fn release(&self, claim: &Claim) -> StoreFuture<'_, ()> {
        let key = self.key(&claim.key());
        let token = claim.token();
        StoreFuture::pending(async move {
            self.run(&self.scripts.release, key, &[&in_flight(token)])
                .await
                .map(|_| ())
        })
    }

    /// One pipeline: every completion's script in one round trip (loading the script first
    /// if the server lost it, e.g. after a restart).
    fn complete_all<'a>(&'a self, claims: &'a [Claim]) -> StoreFuture<'a, Vec<bool>> {
        StoreFuture::pending(async move {
            let mut pipe = redis::pipe();
            for claim in claims {
                let retain = px(claim.retain_until(), claim.claimed_at())
                    .map_or_else(String::new, |ms| ms.to_string());
                pipe.cmd("EVALSHA")
                    .arg(self.scripts.complete.get_hash())
                    .arg(1)
                    .arg(self.key(&claim.key()))
                    .arg(in_flight(claim.token()))
                    .arg(done(claim.token()))
                    .arg(retain);
            }
            let mut connection = self.connection.clone();
            let answers = match pipe.query_async::<Vec<i64>>(&mut connection).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    self.scripts
                        .complete
                        .prepare_invoke()
                        .load_async(&mut connection)
                        .await
                        .map_err(unavailable)?;
                    pipe.query_async::<Vec<i64>>(&mut connection).await
                }
                answers => answers,
            }
            .map_err(unavailable)?;
            Ok(answers.into_iter().map(|done| done == 1).collect())
        })
    }
}

impl core::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
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
        assert_eq!(px(Timestamp::MAX, now), None, "held for good: no expiry");
        assert_eq!(px(at(Duration::from_secs(1)), now), Some(1_000));
    }

    #[test]
    fn values_carry_state_and_token() {
        assert_eq!(in_flight(0xab), format!("i:{}ab", "0".repeat(30)));
        assert_eq!(done(0xab), format!("d:{}ab", "0".repeat(30)));
    }
}
