//! Fuzz target `verify_webhook`: see `properties.rs` for the property it asserts.
#![no_main]

#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::verify_webhook(data));
