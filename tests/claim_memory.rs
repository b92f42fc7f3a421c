//! What a claim costs each store, measured: bytes per claim held in memory (the
//! allocator's count), in Redis (`used_memory` and `MEMORY USAGE`), and in PostgreSQL (the
//! claims table with its indexes, after `VACUUM`). The figures behind the capacity advice
//! in the README and the stores' docs; each run prints them (`--nocapture`) and checks them
//! against the documented bounds. One binary of its own: its allocator counts everything.
#![cfg(all(feature = "redis", feature = "postgres"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss
)]

use std::alloc::System;
use std::time::Duration;

use countersign::claim::postgres::PgStore;
use countersign::claim::redis::RedisStore;
use countersign::claim::{Claim, ClaimKey, ClaimStore, InMemoryStore, Outcome};
use countersign::{Clock, SystemClock, Timestamp, standard_webhooks};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Claims of distinct events (`msg_<n>`), done, kept for 7 days.
fn claims(count: usize) -> Vec<Claim> {
    let now = SystemClock.now();
    let later = |d: Duration| Timestamp::from_duration(now.since_epoch() + d).unwrap();
    (0..count)
        .map(|n| {
            let key = ClaimKey::new(
                "shop",
                "/webhooks",
                &standard_webhooks::SCHEME,
                "event",
                format!("msg_2KWPBgLlAfxdpx2AI54pP{n:08}").as_bytes(),
            );
            Claim::new(
                key,
                n as u128,
                now,
                later(Duration::from_secs(60)),
                later(Duration::from_secs(7 * 86_400)),
            )
        })
        .collect()
}

async fn hold(store: &impl ClaimStore, claims: &[Claim]) {
    for claim in claims {
        assert!(matches!(
            store.claim(claim).await.unwrap(),
            Outcome::Claimed(_)
        ));
        assert!(store.complete(claim).await.unwrap());
    }
}

#[test]
fn bytes_per_claim_in_memory() {
    const COUNT: usize = 100_000;
    let claims = claims(COUNT);
    let store = InMemoryStore::new(COUNT);
    let region = Region::new(GLOBAL);
    futures_util::FutureExt::now_or_never(hold(&store, &claims)).unwrap();
    let change = region.change();
    let held = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    let per_claim = held / COUNT as f64;
    println!("in memory: {COUNT} done claims hold {held:.0} bytes, {per_claim:.0} bytes per claim");
    assert_eq!(store.len(), COUNT);
    // Documented: 228 bytes (hash-table bucket and expiry-index entry at their load).
    assert!((100.0..=300.0).contains(&per_claim), "{per_claim}");
}

#[test]
fn bytes_per_claim_in_redis_and_postgres() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    const COUNT: usize = 10_000;
    let claims = claims(COUNT);
    if let Some(redis) = countersign_test_support::redis_server::Redis::start() {
        let used = || {
            let info = match redis.command(&["INFO", "memory"]) {
                redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
                redis::Value::VerbatimString { text, .. } => text,
                other => panic!("{other:?}"),
            };
            info.lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .unwrap()
                .trim()
                .parse::<i64>()
                .unwrap()
        };
        let store = runtime
            .block_on(RedisStore::connect(&redis.url))
            .unwrap()
            .with_prefix("memory:");
        let before = used();
        runtime.block_on(hold(&store, &claims));
        let after = used();
        let per_claim = (after - before) as f64 / COUNT as f64;
        let key = format!("memory:{}", claims[0].key());
        let usage = match redis.command(&["MEMORY", "USAGE", &key]) {
            redis::Value::Int(n) => n,
            other => panic!("{other:?}"),
        };
        println!(
            "redis: {COUNT} done claims add {} bytes of used_memory, {per_claim:.0} bytes per claim (MEMORY USAGE of one key: {usage} bytes)",
            after - before
        );
        // Documented: about 240 bytes per claim (a 71-byte key, a 34-byte value, its TTL).
        assert!((150.0..=320.0).contains(&per_claim), "{per_claim}");
    }
    if let Some(pg) = countersign_test_support::postgres_server::Postgres::start() {
        let url = runtime.block_on(pg.database("memory"));
        let store = runtime.block_on(PgStore::connect(&url)).unwrap();
        runtime.block_on(hold(&store, &claims));
        let (rows, bytes): (i64, i64) = runtime.block_on(async {
            sqlx::query("VACUUM ANALYZE countersign_claims")
                .execute(store.pool())
                .await
                .unwrap();
            sqlx::query_as(
                "SELECT count(*), pg_total_relation_size('countersign_claims') FROM countersign_claims",
            )
            .fetch_one(store.pool())
            .await
            .unwrap()
        });
        let per_claim = bytes as f64 / rows as f64;
        println!(
            "postgres: {rows} done claims take {bytes} bytes (table, primary key, expiry index), {per_claim:.0} bytes per claim"
        );
        // Documented: 250 bytes per row with its two index entries.
        assert!((120.0..=400.0).contains(&per_claim), "{per_claim}");
    }
}
