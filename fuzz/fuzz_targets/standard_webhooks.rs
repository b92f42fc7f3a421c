//! Fuzz target `standard_webhooks`: see `tests/common/fuzz_properties.rs` for the property it asserts.
#![no_main]

#[path = "../../tests/common/fuzz_properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::standard_webhooks(data));
