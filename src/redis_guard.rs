//! Fleet-wide replay protection backed by Redis (feature `redis`).
//!
//! [`RedisReplayGuard`] claims a delivery with `SET <prefix><scheme>:<signature> 1 NX PX
//! <ms until the timestamp expires>`: atomic across every instance sharing the Redis, and
//! self-cleaning (the key expires when the delivery could no longer pass the freshness
//! check). Releasing is `DEL`.
//!
//! All tasks share one multiplexed, auto-reconnecting connection (redis'
//! `ConnectionManager`): commands are pipelined on it, which serves what a pool would for
//! single-key commands without a pool's per-request checkout. Every command has a timeout;
//! a timeout or connection error is [`ErrorKind::ReplayGuardUnavailable`], and by default
//! ([`FailurePolicy::Closed`]) the delivery is then refused: a provider retries, an attacker
//! does not get a replay window out of a Redis outage.
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

use redis::aio::ConnectionManager;

use crate::error::{Error, ErrorKind, err};
use crate::replay::{AsyncReplayGuard, GuardFuture, ReplayKey};
use crate::time::Timestamp;

/// What the guard does when Redis cannot answer.
///
/// # Examples
///
/// ```
/// use countersign::redis_guard::FailurePolicy;
///
/// assert_eq!(FailurePolicy::default(), FailurePolicy::Closed);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse the delivery ([`ErrorKind::ReplayGuardUnavailable`]). The default.
    #[default]
    Closed,
    /// Accept the delivery without replay protection (availability over safety).
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
    /// [`ErrorKind::ReplayGuardUnavailable`] if the URL is invalid or Redis cannot be
    /// reached within the timeout.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let timeout = Duration::from_secs(1);
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
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
        Ok(RedisReplayGuard {
            connection,
            prefix: "countersign:replay:".to_owned(),
            timeout,
            policy: FailurePolicy::Closed,
        })
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

    /// The time allowed per command. Defaults to 1 s.
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
        self.timeout = timeout;
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

    fn failed(&self, e: Error) -> Result<(), Error> {
        match self.policy {
            FailurePolicy::Closed => Err(e),
            FailurePolicy::Open => Ok(()),
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, Error> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, command.query_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("command timed out")),
        }
    }
}

impl AsyncReplayGuard for RedisReplayGuard {
    fn claim_async(
        &self,
        key: ReplayKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> GuardFuture<'_> {
        Box::pin(async move {
            let ttl = expires_at.since_epoch().saturating_sub(now.since_epoch());
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut command = redis::cmd("SET");
            command
                .arg(format!("{}{key}", self.prefix))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms);
            match self.run::<Option<String>>(command).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => err(ErrorKind::Replayed),
                Err(e) => self.failed(e),
            }
        })
    }

    fn release_async(&self, key: ReplayKey) -> GuardFuture<'_> {
        Box::pin(async move {
            let mut command = redis::cmd("DEL");
            command.arg(format!("{}{key}", self.prefix));
            self.run::<i64>(command).await.map(|_| ())
        })
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
