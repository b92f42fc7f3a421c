//! Fuzz target `verify_webhook`: see `test-support/src/fuzz_properties.rs` for the property it asserts.
#![no_main]

use countersign_test_support::fuzz_properties as properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::verify_webhook(data));
