//! Claims in PostgreSQL (feature `postgres`): [`PgStore`], a store beside your data like
//! Redis, and [`PgTransactionalStore`], which writes the claim **in the handler's own
//! transaction**, so that the handler's side effect and "done" commit together or not at
//! all: exactly once per event, across crashes.
//!
//! The client is [sqlx](https://docs.rs/sqlx): what an axum service already talks to
//! PostgreSQL with (async on Tokio, pooled, pure Rust: no C library to install), and the
//! handler's transaction is an ordinary `sqlx::Transaction` it writes its own rows in.
//! No macros, no database needed at compile time.
//!
//! # The table
//!
//! Both stores keep claims in one table (default `countersign_claims`, created if
//! missing):
//!
//! ```sql
//! CREATE TABLE countersign_claims (
//!     key      bytea   PRIMARY KEY,  -- the claim key (32 bytes)
//!     token    bytea   NOT NULL,     -- the claim's token (16 bytes)
//!     done     boolean NOT NULL,
//!     until_us bigint  NOT NULL      -- held while now < until (UNIX µs, rounded up)
//! );
//! CREATE INDEX countersign_claims_until ON countersign_claims (until_us);
//! ```
//!
//! A claim is one `INSERT … ON CONFLICT (key) DO UPDATE … WHERE until_us <= now` (a
//! lapsed claim is taken over, a held one is left and its state read in the same
//! statement). Lapsed rows are deleted without a cron job: at most once a minute, a claim
//! starts a sweep of up to 10,000 lapsed rows in the background. Times are the verifier's
//! clock (the claim's instants), not the database's.
//!
//! # Plain: [`PgStore`]
//!
//! Claims, completes and releases like the Redis store, each in its own statement: the
//! claim is in flight for the lease and done for the retention. A process that dies between
//! the handler's commit and the completion leaves the claim in flight until its lease
//! lapses, and the retry is then processed a second time.
//!
//! # Transactional: [`PgTransactionalStore`]
//!
//! A claim opens a transaction and inserts the claim **as done** in it; the handler gets
//! that transaction ([`ClaimTransaction`], or [`PgClaim::take`]), writes its own rows in
//! it and commits: the side effect and "done" become visible together. Before the commit
//! nobody else sees the claim: a concurrent duplicate waits on its row lock (at most the
//! lock timeout, 100 ms by default) and is answered `409`; after the commit it is
//! acknowledged as done.
//!
//! - a crash (the process aborted, the connection killed) **before** the commit rolls
//!   back both the side effect and the claim: the provider's retry is processed;
//! - a crash **after** the commit leaves both: the retry is acknowledged as a duplicate;
//! - a handler that answers without taking the transaction has it committed by the tower
//!   layer on a 2xx answer and rolled back otherwise; a handler that takes it and drops it
//!   uncommitted has it rolled back (the retry is processed);
//! - a handler that stalls with the transaction open is cut off after the lease
//!   (`idle_in_transaction_session_timeout`), rolling it back.
//!
//! **Space.** A claim is one row with two index entries, 250 bytes on disk (measured in
//! `tests/claim_memory.rs`, after `VACUUM`), kept for the retention once done: 100 events/s
//! for 7 days is 60 million rows, 15 GB.
//!
//! Each delivery being handled holds one pooled connection until it commits: size the
//! pool for the deliveries you handle at once (a claim waiting longer than the guard's
//! timeout for a connection is answered `503`).
//!
//! ```no_run
//! use countersign::claim::postgres::{ClaimTransaction, PgStore};
//! use countersign::claim::ReplayGuard;
//! use countersign::layer::{VerifyLayer, WebhookAuth};
//! use countersign::{SecretKey, Verifier};
//! use axum::{http::StatusCode, routing::post, Router};
//!
//! async fn handler(ClaimTransaction(mut tx): ClaimTransaction) -> StatusCode {
//!     let written = sqlx::query("INSERT INTO orders_paid (id) VALUES ($1)")
//!         .bind("6956d4fc")
//!         .execute(&mut *tx)
//!         .await;
//!     match written {
//!         // The order and the claim's "done" commit together.
//!         Ok(_) if tx.commit().await.is_ok() => StatusCode::OK,
//!         _ => StatusCode::SERVICE_UNAVAILABLE, // rolled back: the retry is processed
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PgStore::connect("postgres://app@localhost/shop").await?.transactional();
//! let auth = WebhookAuth::new(Verifier::standard_webhooks(SecretKey::from_bytes(b"a key of 32 bytes or more, sure!")?))
//!     .with_replay_guard(ReplayGuard::new(store, "shop")?);
//! let app: Router = Router::new().route("/webhooks", post(handler)).layer(VerifyLayer::new(auth));
//! # Ok(())
//! # }
//! ```

use core::any::Any;
use core::fmt;
use core::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use super::guard::Claim;
use super::state::ClaimState;
use super::store::{Attachment, ClaimStore, Outcome, StoreFuture};
use crate::error::{Error, ErrorKind, err};
use crate::time::Timestamp;

/// How often lapsed rows are swept at most, and how many per sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const SWEEP_ROWS: i64 = 10_000;
/// The default time a duplicate waits on an uncommitted claim before it is answered `409`.
const LOCK_TIMEOUT: Duration = Duration::from_millis(100);
/// The time allowed to connect and create the table.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn unavailable(what: impl fmt::Display) -> Error {
    ErrorKind::ReplayGuardUnavailable(format!("postgres: {what}")).into()
}

/// Whether `error` is PostgreSQL's `lock_not_available` (a lock timeout).
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

/// A [`ClaimStore`] in a PostgreSQL table, beside your data. Cheap to clone.
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    sql: Arc<Sql>,
    /// The UNIX second of the last sweep of lapsed rows.
    swept: Arc<AtomicU64>,
}

/// The statements, with the table's name in them.
struct Sql {
    table: String,
    claim: String,
    complete: String,
    release: String,
    complete_all: String,
    sweep: String,
}

impl Sql {
    fn new(table: &str) -> Self {
        let claim = format!(
            "WITH claimed AS (
                INSERT INTO {table} AS c (key, token, done, until_us) VALUES ($1, $2, $3, $4)
                ON CONFLICT (key) DO UPDATE
                    SET token = EXCLUDED.token, done = EXCLUDED.done, until_us = EXCLUDED.until_us
                    WHERE c.until_us <= $5
                RETURNING 1
            )
            SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,
                   (SELECT done FROM {table} WHERE key = $1) AS done"
        );
        Sql {
            claim,
            complete: format!(
                "UPDATE {table} SET done = true, until_us = $3 WHERE key = $1 AND token = $2 AND NOT done"
            ),
            release: format!("DELETE FROM {table} WHERE key = $1 AND token = $2 AND NOT done"),
            complete_all: format!(
                "UPDATE {table} AS c SET done = true, until_us = u.until_us
                 FROM unnest($1::bytea[], $2::bytea[], $3::int8[]) AS u(key, token, until_us)
                 WHERE c.key = u.key AND c.token = u.token AND NOT c.done
                 RETURNING c.key"
            ),
            sweep: format!(
                "DELETE FROM {table} WHERE key IN (SELECT key FROM {table} WHERE until_us <= $1 LIMIT $2)"
            ),
            table: table.to_owned(),
        }
    }
}

/// Whether `name` is a plain lower-case SQL identifier (it is written into statements).
fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 63
}

/// UNIX microseconds of `at`, rounded up (a claim is held at least until `at`); a claim
/// held for good is `i64::MAX`.
fn until_us(at: Timestamp) -> i64 {
    if at == Timestamp::MAX {
        return i64::MAX;
    }
    let since = at.since_epoch();
    let us = since.as_micros() + u128::from(!since.subsec_nanos().is_multiple_of(1_000));
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// UNIX microseconds of `now`, rounded down.
fn now_us(now: Timestamp) -> i64 {
    i64::try_from(now.since_epoch().as_micros()).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects a pool of 10 connections to `url` (`postgres://user@host/db`) and creates
    /// the claims table `countersign_claims` if it is missing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReplayGuardUnavailable`] if PostgreSQL cannot be reached within 5 s or
    /// the table cannot be created.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(unavailable)?;
        PgStore::from_pool(pool, "countersign_claims").await
    }

    /// A store on your own pool, with its claims in `table` (created if missing).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidGuard`] if `table` is not a plain lower-case identifier
    /// (`[a-z_][a-z0-9_]*`, at most 63 bytes); [`ErrorKind::ReplayGuardUnavailable`] if the
    /// table cannot be created.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use countersign::claim::postgres::PgStore;
    ///
    /// let pool = sqlx::PgPool::connect("postgres://app@localhost/shop").await?;
    /// let store = PgStore::from_pool(pool, "webhook_claims").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn from_pool(pool: PgPool, table: &str) -> Result<Self, Error> {
        if !is_identifier(table) {
            return err(ErrorKind::InvalidGuard(
                "the claims table must be a plain lower-case identifier ([a-z_][a-z0-9_]*, at most 63 bytes)",
            ));
        }
        let store = PgStore {
            pool,
            sql: Arc::new(Sql::new(table)),
            swept: Arc::new(AtomicU64::new(0)),
        };
        store.create_table().await?;
        Ok(store)
    }

    /// Creates the table and its index if missing. Instances starting together may race
    /// on `CREATE … IF NOT EXISTS` (PostgreSQL then reports a duplicate): one advisory lock
    /// makes them take turns.
    async fn create_table(&self) -> Result<(), Error> {
        let table = &self.sql.table;
        let create = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(table)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    key bytea PRIMARY KEY,
                    token bytea NOT NULL,
                    done boolean NOT NULL,
                    until_us bigint NOT NULL
                )"
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "CREATE INDEX IF NOT EXISTS {table}_until ON {table} (until_us)"
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, create).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(format!(
                "could not create the claims table: {e}"
            ))),
            Err(_) => Err(unavailable("timed out creating the claims table")),
        }
    }

    /// The same table, with each claim written in the handler's own transaction (see the
    /// [module documentation](self)).
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    #[must_use]
    pub fn transactional(self) -> PgTransactionalStore {
        PgTransactionalStore {
            store: self,
            lock_timeout: LOCK_TIMEOUT,
        }
    }

    /// The pool (for the handler's own queries, or a test's).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(store: countersign::claim::postgres::PgStore) -> Result<(), sqlx::Error> {
    /// let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM countersign_claims")
    ///     .fetch_one(store.pool())
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a sweep of lapsed rows in the background, at most once per [`SWEEP_EVERY`]
    /// (by the claims' clock).
    fn sweep_if_due(&self, now: Timestamp) {
        let second = now.since_epoch().as_secs();
        let last = self.swept.load(Ordering::Relaxed);
        if second < last.saturating_add(SWEEP_EVERY.as_secs())
            || self
                .swept
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pool, sql) = (self.pool.clone(), Arc::clone(&self.sql));
        runtime.spawn(async move {
            let swept = sqlx::query(&sql.sweep)
                .bind(now_us(now))
                .bind(SWEEP_ROWS)
                .execute(&pool)
                .await;
            if let Err(e) = swept {
                tracing::warn!(target: "countersign", "could not delete lapsed claims ({e}); the next sweep tries again");
            }
        });
    }

    /// Runs the claim statement on `connection`: claims `claim` as done (`done`, until its
    /// retention) or in flight (until its lease).
    async fn claim_with(
        &self,
        connection: &mut PgConnection,
        claim: &Claim,
        done: bool,
    ) -> Result<Outcome, sqlx::Error> {
        let until = if done {
            claim.retain_until()
        } else {
            claim.lease_until()
        };
        let row = sqlx::query(&self.sql.claim)
            .bind(claim.key().as_bytes().as_slice())
            .bind(claim.token().to_be_bytes().as_slice())
            .bind(done)
            .bind(until_us(until))
            .bind(now_us(claim.claimed_at()))
            .fetch_one(connection)
            .await?;
        let claimed: bool = row.try_get("claimed")?;
        let held_done: Option<bool> = row.try_get("done")?;
        Ok(if claimed {
            Outcome::Claimed(None)
        } else if held_done == Some(true) {
            Outcome::Held(ClaimState::Done)
        } else {
            // In flight, or claimed by a transaction that committed after this statement
            // began (not visible to it yet): retry later.
            Outcome::Held(ClaimState::InFlight)
        })
    }
}

impl ClaimStore for PgStore {
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome> {
        let claim = *claim;
        StoreFuture::pending(async move {
            self.sweep_if_due(claim.claimed_at());
            let mut connection = self.pool.acquire().await.map_err(unavailable)?;
            self.claim_with(&mut connection, &claim, false)
                .await
                .map_err(unavailable)
        })
    }

    fn complete(&self, claim: &Claim) -> StoreFuture<'_, bool> {
        let claim = *claim;
        StoreFuture::pending(async move {
            let done = sqlx::query(&self.sql.complete)
                .bind(claim.key().as_bytes().as_slice())
                .bind(claim.token().to_be_bytes().as_slice())
                .bind(until_us(claim.retain_until()))
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// One statement for every completion.
    fn complete_all<'a>(&'a self, claims: &'a [Claim]) -> StoreFuture<'a, Vec<bool>> {
        StoreFuture::pending(async move {
            let keys: Vec<Vec<u8>> = claims.iter().map(|c| c.key().as_bytes().to_vec()).collect();
            let tokens: Vec<Vec<u8>> = claims
                .iter()
                .map(|c| c.token().to_be_bytes().to_vec())
                .collect();
            let untils: Vec<i64> = claims.iter().map(|c| until_us(c.retain_until())).collect();
            let done: Vec<Vec<u8>> = sqlx::query_scalar(&self.sql.complete_all)
                .bind(&keys)
                .bind(&tokens)
                .bind(&untils)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(keys.iter().map(|key| done.contains(key)).collect())
        })
    }

    fn release(&self, claim: &Claim) -> StoreFuture<'_, ()> {
        let claim = *claim;
        StoreFuture::pending(async move {
            sqlx::query(&self.sql.release)
                .bind(claim.key().as_bytes().as_slice())
                .bind(claim.token().to_be_bytes().as_slice())
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("table", &self.sql.table)
            .finish_non_exhaustive()
    }
}

/// A [`ClaimStore`] that writes each claim, as done, in a transaction it hands to the
/// handler ([`PgClaim`]); see the [module documentation](self). Cheap to clone.
///
/// # Examples
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct PgTransactionalStore {
    store: PgStore,
    lock_timeout: Duration,
}

impl PgTransactionalStore {
    /// How long a duplicate waits for an uncommitted claim of the same key before it is
    /// answered as in flight (`409`). Keep it below the guard's timeout. Defaults to
    /// 100 ms.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), countersign::Error> {
    /// use countersign::claim::postgres::PgStore;
    /// use std::time::Duration;
    ///
    /// let store = PgStore::connect("postgres://app@localhost/shop").await?
    ///     .transactional()
    ///     .with_lock_timeout(Duration::from_millis(250));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The pool.
    ///
    /// # Examples
    ///
    /// See [`PgStore::pool`].
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.store.pool
    }

    async fn claim_in_transaction(&self, claim: &Claim) -> Result<Outcome, Error> {
        let mut tx = self.store.pool.begin().await.map_err(unavailable)?;
        let lease = claim
            .lease_until()
            .since_epoch()
            .saturating_sub(claim.claimed_at().since_epoch());
        limit(&mut tx, self.lock_timeout, lease)
            .await
            .map_err(unavailable)?;
        match self.store.claim_with(&mut tx, claim, true).await {
            Ok(Outcome::Claimed(_)) => Ok(Outcome::Claimed(Some(Arc::new(PgClaim {
                transaction: Mutex::new(Some(tx)),
            })))),
            // Held: the transaction is dropped, rolled back.
            Ok(held) => Ok(held),
            Err(e) if is_lock_timeout(&e) => Ok(Outcome::Held(ClaimState::InFlight)),
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl ClaimStore for PgTransactionalStore {
    fn claim(&self, claim: &Claim) -> StoreFuture<'_, Outcome> {
        let claim = *claim;
        StoreFuture::pending(async move {
            self.store.sweep_if_due(claim.claimed_at());
            self.claim_in_transaction(&claim).await
        })
    }

    /// The claim was written done in the handler's transaction: its commit completes it.
    fn complete(&self, _claim: &Claim) -> StoreFuture<'_, bool> {
        StoreFuture::ready(Ok(true))
    }

    /// The claim was never visible outside the handler's transaction: its rollback
    /// releases it.
    fn release(&self, _claim: &Claim) -> StoreFuture<'_, ()> {
        StoreFuture::ready(Ok(()))
    }
}

impl fmt::Debug for PgTransactionalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTransactionalStore")
            .field("table", &self.store.sql.table)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

/// Sets the transaction's lock timeout (how long a duplicate waits on an uncommitted claim)
/// and its idle timeout (the lease: a handler stalled with it open is cut off).
async fn limit(
    connection: &mut PgConnection,
    lock_timeout: Duration,
    lease: Duration,
) -> Result<(), sqlx::Error> {
    let ms = |d: Duration| d.as_millis().clamp(1, i32::MAX as u128).to_string();
    sqlx::query(
        "SELECT set_config('lock_timeout', $1, true), set_config('idle_in_transaction_session_timeout', $2, true)",
    )
    .bind(ms(lock_timeout))
    .bind(ms(lease))
    .execute(connection)
    .await
    .map(|_| ())
}

/// The open transaction holding a delivery's claim (as done), for the handler to write its
/// side effect in and commit; see the [module documentation](self).
///
/// # Examples
///
/// See the [module documentation](self).
pub struct PgClaim {
    transaction: Mutex<Option<Transaction<'static, Postgres>>>,
}

impl PgClaim {
    /// Takes the transaction (once; `None` afterwards). Commit it to record the side effect
    /// and the claim's "done" together; dropping it uncommitted rolls both back.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub fn take(&self) -> Option<Transaction<'static, Postgres>> {
        self.transaction
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Attachment for PgClaim {
    fn settle(&self, success: bool) -> StoreFuture<'_, bool> {
        let Some(transaction) = self.take() else {
            // The handler took it: its commit (or not) decided.
            return StoreFuture::ready(Ok(success));
        };
        StoreFuture::pending(async move {
            if success {
                transaction.commit().await.map_err(unavailable)?;
            } else {
                transaction.rollback().await.map_err(unavailable)?;
            }
            Ok(success)
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl fmt::Debug for PgClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgClaim").finish_non_exhaustive()
    }
}

/// The axum extractor for a delivery's claim transaction: the handler's writes in it and
/// the claim's "done" commit together.
///
/// # Examples
///
/// See the [module documentation](self).
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[derive(Debug)]
pub struct ClaimTransaction(pub Transaction<'static, Postgres>);

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClaimTransaction {
    type Rejection = (http::StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<dyn Attachment>>()
            .and_then(|attachment| attachment.as_any().downcast_ref::<PgClaim>())
            .and_then(PgClaim::take)
            .map(ClaimTransaction)
            .ok_or((
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "no claim transaction: the route must be behind the VerifyLayer with a transactional PostgreSQL store, and take it once",
            ))
    }
}

/// `Option<ClaimTransaction>`: `None` on a route whose store hands over no transaction.
#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for ClaimTransaction {
    type Rejection = core::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Arc<dyn Attachment>>()
            .and_then(|attachment| attachment.as_any().downcast_ref::<PgClaim>())
            .and_then(PgClaim::take)
            .map(ClaimTransaction))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn instants_round_so_a_claim_is_held_at_least_until_its_instant() {
        let at = |nanos: u64| Timestamp::from_duration(Duration::from_nanos(nanos)).unwrap();
        assert_eq!(until_us(at(5_000)), 5);
        assert_eq!(until_us(at(5_001)), 6);
        assert_eq!(until_us(at(5_999)), 6);
        assert_eq!(now_us(at(5_999)), 5);
        assert_eq!(now_us(at(6_000)), 6);
        assert_eq!(until_us(Timestamp::MAX), i64::MAX);
    }

    #[test]
    fn only_plain_identifiers_name_the_table() {
        for good in ["countersign_claims", "_c", "claims2", &"a".repeat(63)] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in [
            "",
            "2claims",
            "Claims",
            "claims;drop",
            "a b",
            "\"c\"",
            &"a".repeat(64),
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
