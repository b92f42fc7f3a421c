//! Fuzz target `http_adapter`: see `properties.rs` for the property it asserts.
#![no_main]

#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::http_adapter(data));
