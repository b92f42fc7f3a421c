//! Moved to the tests' shared set-up crate, `countersign_test_support::postgres_server`. This
//! file only re-exports it, for test files still written as
//! `#[path = "common/postgres_server.rs"] mod postgres_server;` (tests/storm.rs and tests/claim_memory.rs, being
//! written on main). Delete it once they `use countersign_test_support::postgres_server;`.
#![allow(unused_imports)]

pub use countersign_test_support::postgres_server::*;
