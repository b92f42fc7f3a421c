//! Fuzz target `signature_hex`: see `properties.rs` for the property it asserts.
#![no_main]

#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::signature_hex(data));
