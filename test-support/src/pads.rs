//! HMAC-SHA256 pad states computed independently of the library (SHA-256's compression
//! function from the `sha2` crate): what the hardware-limit benchmark starts from, and what
//! the memory-residue tests search for (a key-equivalent: whoever holds them can sign).

/// SHA-256's initial chaining value (FIPS 180-4, 5.3.3).
pub const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The (inner, outer) chaining values after the blocks `key ^ ipad` and `key ^ opad`
/// (RFC 2104; a key longer than a block is hashed first).
pub fn pad_states(key: &[u8]) -> ([u32; 8], [u32; 8]) {
    use sha2::Digest;
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| {
        let mut state = IV;
        sha2::block_api::compress256(&mut state, &[block.map(|b| b ^ byte)]);
        state
    };
    (pad(0x36), pad(0x5c))
}

/// The words as they sit in memory (native endian).
pub fn in_memory(words: [u32; 8]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}
