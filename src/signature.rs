//! [`Signature`]: a 32-byte HMAC-SHA256 tag on the stack, and its text encodings.

use core::fmt;

use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorKind, err};
use crate::scheme::{Encoding, MAX_PREFIX, MAX_SIGNATURES, SignatureFormat};

/// An HMAC-SHA256 signature: 32 bytes on the stack.
///
/// Equality is constant-time. `Display` writes lowercase hex, as every scheme here sends it;
/// [`Signature::to_hex`] and [`Signature::to_base64`] encode into stack buffers without
/// allocating. A signature is not secret, so `Debug` shows it.
///
/// # Examples
///
/// ```
/// use countersign::Signature;
///
/// let hex = "656b4d8be9283517dd5e521f157ab52fbe187cd6cbda197a3af1e58958d41f5c";
/// let sig = Signature::from_hex(hex).unwrap();
/// assert_eq!(sig.to_string(), hex);
/// assert_eq!(sig, Signature::from_hex(hex).unwrap());
/// assert!(Signature::from_hex("abc").is_err());
/// ```
#[derive(Clone, Copy)]
pub struct Signature([u8; 32]);

impl Signature {
    /// The length of a hex-encoded signature.
    pub const HEX_LEN: usize = 64;

    /// Wraps raw tag bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// assert_eq!(Signature::from_bytes([0; 32]).as_bytes(), &[0; 32]);
    /// ```
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Signature(bytes)
    }

    /// Decodes 64 hex characters (either case). The length is checked before anything else.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedSignature`] for any other length or a non-hex character.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// assert!(Signature::from_hex(&"AB".repeat(32)).is_ok());
    /// assert!(Signature::from_hex(&"zz".repeat(32)).is_err());
    /// ```
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        Self::from_hex_bytes(text.as_bytes())
    }

    /// [`Signature::from_hex`] over raw header bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedSignature`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// assert!(Signature::from_hex_bytes(&[0xff; 64]).is_err());
    /// ```
    #[inline]
    pub fn from_hex_bytes(text: &[u8]) -> Result<Self, Error> {
        if text.len() != Self::HEX_LEN {
            return err(ErrorKind::MalformedSignature {
                reason: "expected 64 hex characters (a hex HMAC-SHA256)",
            });
        }
        let Ok(text) = <&[u8; 64]>::try_from(text) else {
            return err(ErrorKind::MalformedSignature {
                reason: "expected 64 hex characters (a hex HMAC-SHA256)",
            });
        };
        let (out, valid) = decode_hex64(text);
        if valid {
            Ok(Signature(out))
        } else {
            err(ErrorKind::MalformedSignature {
                reason: "expected only hex digits 0-9 and a-f",
            })
        }
    }

    /// Decodes 44 characters of standard base64 with padding (RFC 4648 §4). The length is
    /// checked before anything else.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedSignature`] for any other length, a character outside the
    /// alphabet, or padding bits that are not zero (a second spelling of the same bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// let sig = Signature::from_base64(b"g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")?;
    /// assert_eq!(sig.to_base64().as_str(), "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /// assert!(Signature::from_base64(b"g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=").is_err());
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[inline]
    pub fn from_base64(text: &[u8]) -> Result<Self, Error> {
        const WRONG: ErrorKind = ErrorKind::MalformedSignature {
            reason: "expected 44 characters of standard base64 (a base64 HMAC-SHA256)",
        };
        if text.len() != Base64Signature::LEN {
            return err(WRONG);
        }
        match decode_base64_32(text) {
            Some(bytes) => Ok(Signature(bytes)),
            None => err(WRONG),
        }
    }

    /// The raw tag.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// assert_eq!(Signature::from_bytes([7; 32]).as_bytes()[0], 7);
    /// ```
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex in a stack buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// assert_eq!(Signature::from_bytes([0xab; 32]).to_hex().as_str(), "ab".repeat(32));
    /// ```
    #[must_use]
    pub fn to_hex(&self) -> HexSignature {
        let mut out = [0u8; 64];
        self.write_hex(&mut out);
        HexSignature(out)
    }

    /// Writes the 64 lower-case hex digits into `out` (which holds at least 64 bytes).
    #[inline]
    pub(crate) fn write_hex(&self, out: &mut [u8]) {
        /// `0..=15` to `'0'..='9' | 'a'..='f'` without a branch or a table: add 39 more
        /// when the nibble is above 9 (`9 - n` borrows into the sign bit). Lets the compiler
        /// vectorise the whole encoding.
        #[inline(always)]
        fn nibble(n: u8) -> u8 {
            let above_nine = ((9u8.wrapping_sub(n) as i8) >> 7) as u8;
            n + b'0' + (above_nine & 39)
        }
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = nibble(byte >> 4);
            pair[1] = nibble(byte & 0x0f);
        }
    }

    /// Standard base64 (with padding) in a stack buffer, for schemes that send base64.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// assert_eq!(Signature::from_bytes([0; 32]).to_base64().as_str(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    /// ```
    #[must_use]
    #[inline]
    pub fn to_base64(&self) -> Base64Signature {
        use base64::Engine as _;
        let mut out = [0u8; 44];
        // 32 bytes always encode to exactly 44 characters.
        let _ = base64::engine::general_purpose::STANDARD.encode_slice(self.0, &mut out);
        Base64Signature(out)
    }

    /// Constant-time comparison with a tag received as bytes of any length. A length other
    /// than 32 is unequal without looking at the contents.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// let sig = Signature::from_bytes([1; 32]);
    /// assert!(sig.ct_eq_slice(&[1; 32]));
    /// assert!(!sig.ct_eq_slice(&[1; 31]));
    /// ```
    #[must_use]
    pub fn ct_eq_slice(&self, other: &[u8]) -> bool {
        match <&[u8; 32]>::try_from(other) {
            Ok(other) => bool::from(self.ct_eq(&Signature(*other))),
            Err(_) => false,
        }
    }
}

impl ConstantTimeEq for Signature {
    /// Folds the XOR of the two tags into one word with OR (no data-dependent branch or
    /// early exit), then compares that word with zero through `subtle`, whose optimisation
    /// barrier keeps the result from being turned back into a branch on the contents.
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        let mut diff = 0u64;
        for (a, b) in self
            .0
            .as_chunks::<8>()
            .0
            .iter()
            .zip(other.0.as_chunks::<8>().0)
        {
            diff |= u64::from_ne_bytes(*a) ^ u64::from_ne_bytes(*b);
        }
        diff.ct_eq(&0)
    }
}

impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other))
    }
}

impl Eq for Signature {}

/// Decodes 64 hex characters (either case): the 32 bytes, and whether all were hex digits.
/// Branch-free per byte, in two passes simple enough for the compiler to vectorise (16 or
/// 32 characters per instruction): classify and convert each character to its nibble, then
/// pair the nibbles.
#[inline]
fn decode_hex64(text: &[u8; 64]) -> ([u8; 32], bool) {
    let mut nibbles = [0u8; 64];
    let mut bad = 0u8;
    for (nibble, &c) in nibbles.iter_mut().zip(text) {
        let digit = c.wrapping_sub(b'0');
        let letter = (c | 0x20).wrapping_sub(b'a');
        let is_digit = digit < 10;
        let is_letter = letter < 6;
        bad |= u8::from(!(is_digit | is_letter));
        *nibble = if is_digit {
            digit
        } else {
            letter.wrapping_add(10)
        };
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(nibbles.as_chunks::<2>().0) {
        *byte = (pair[0] << 4) | (pair[1] & 0x0f);
    }
    (out, bad == 0)
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.to_hex().as_str())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// A signature as 64 lowercase hex characters, on the stack.
///
/// # Examples
///
/// ```
/// use countersign::Signature;
///
/// let hex = Signature::from_bytes([0x0f; 32]).to_hex();
/// assert_eq!(hex.as_str().len(), 64);
/// assert_eq!(hex.to_string(), hex.as_str());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexSignature([u8; 64]);

impl HexSignature {
    /// The hex text.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// assert!(Signature::from_bytes([0; 32]).to_hex().as_str().starts_with("0000"));
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for HexSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for HexSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The 6-bit value of each standard base64 character; `0x40` marks a byte outside the
/// alphabet (including `=`).
const BASE64_VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut values = [0x40u8; 256];
    let mut i = 0;
    while i < 64 {
        values[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    values
};

/// Decodes exactly 44 characters of standard base64 (43 of the alphabet, then `=`) into 32
/// bytes, refusing anything else: another character, misplaced or missing padding, and
/// non-canonical text (the last character's two unused bits set), as RFC 4648 §3.5 allows
/// a decoder to. The same accept set as the `base64` crate's standard engine (checked in
/// the tests), in straight-line table lookups: a signature is public, so this need not be
/// constant-time.
#[inline]
fn decode_base64_32(text: &[u8]) -> Option<[u8; 32]> {
    let text: &[u8; 44] = text.try_into().ok()?;
    if text[43] != b'=' {
        return None;
    }
    let value = |i: usize| u32::from(BASE64_VALUES[text[i] as usize]);
    let mut out = [0u8; 32];
    let mut invalid = 0u32;
    // Eight characters (48 bits, six bytes) at a time: few live values, so the lookups
    // stay in registers.
    for (group, bytes) in out[..30].chunks_exact_mut(6).enumerate() {
        let at = group * 8;
        let mut n = 0u64;
        for i in at..at + 8 {
            let v = value(i);
            invalid |= v;
            n = n << 6 | u64::from(v);
        }
        bytes.copy_from_slice(&n.to_be_bytes()[2..]);
    }
    // The last character carries 4 bits of the tag and 2 unused bits, which must be zero.
    let (a, b, c) = (value(40), value(41), value(42));
    invalid |= a | b | c | (c & 0b11) << 6;
    if invalid & 0xc0 != 0 {
        return None;
    }
    let n = a << 10 | b << 4 | c >> 2;
    out[30..].copy_from_slice(&n.to_be_bytes()[2..]);
    Some(out)
}

/// A signature as 44 characters of standard base64, on the stack.
///
/// # Examples
///
/// ```
/// use countersign::Signature;
///
/// assert_eq!(Signature::from_bytes([0xff; 32]).to_base64().as_str().len(), 44);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Base64Signature([u8; 44]);

impl Base64Signature {
    /// The length of a base64-encoded signature.
    pub const LEN: usize = 44;

    /// The base64 text.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Signature;
    ///
    /// assert!(Signature::from_bytes([0; 32]).to_base64().as_str().ends_with('='));
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Base64Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for Base64Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A signature as its scheme sends it (the prefix, then hex or base64), and as hex. On the
/// stack. The hex digits sit right after room for a prefix, so a hex scheme's header value
/// is one contiguous slice with no copy.
#[derive(Clone, Copy)]
pub(crate) struct SignatureText {
    /// `[prefix room (MAX_PREFIX)][64 hex digits]`.
    hex: [u8; MAX_PREFIX + 64],
    /// `[prefix][44 base64 characters]`, for base64 schemes (left uninitialised otherwise).
    base64: Option<[u8; MAX_PREFIX + 44]>,
    /// The header value: `hex[start..]`, or `base64[..len]` for a base64 scheme.
    start: u8,
    len: u8,
}

impl SignatureText {
    /// `signature` in `format` (one signature; a list of one is the same text).
    #[inline(always)]
    pub(crate) fn new(format: &SignatureFormat, signature: &Signature) -> Self {
        let mut out = SignatureText {
            hex: [0; MAX_PREFIX + 64],
            base64: None,
            start: MAX_PREFIX as u8,
            len: 0,
        };
        signature.write_hex(&mut out.hex[MAX_PREFIX..]);
        // `Scheme::check` bounds the prefix to MAX_PREFIX bytes.
        let prefix = format.prefix().as_bytes();
        let plen = prefix.len().min(MAX_PREFIX);
        match format.encoding() {
            Encoding::Hex => {
                crate::mac::put(&mut out.hex, MAX_PREFIX - plen, &prefix[..plen]);
                out.start = (MAX_PREFIX - plen) as u8;
            }
            Encoding::Base64 => {
                let text = out.base64.insert([0; MAX_PREFIX + 44]);
                text[..plen].copy_from_slice(&prefix[..plen]);
                text[plen..plen + 44].copy_from_slice(&signature.to_base64().0);
                out.len = (plen + 44) as u8;
            }
        }
        out
    }

    /// The header value.
    pub(crate) fn as_str(&self) -> &str {
        let bytes = match &self.base64 {
            Some(text) => text.get(..usize::from(self.len)).unwrap_or(&[]),
            None => self.hex.get(usize::from(self.start)..).unwrap_or(&[]),
        };
        // Only a visible-ASCII prefix and hex or base64 characters are ever written.
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    /// The signature as lower-case hex.
    pub(crate) fn hex(&self) -> &str {
        core::str::from_utf8(&self.hex[MAX_PREFIX..]).unwrap_or_default()
    }
}

/// `text` without `prefix`, if it starts with it. Compares in place, byte by byte: prefixes
/// are a few bytes (`sha256=`, `v1,`) or none, and a library call per signature costs more
/// than the comparison.
#[inline(always)]
fn strip<'t>(text: &'t [u8], prefix: &[u8]) -> Option<&'t [u8]> {
    let (head, rest) = text.split_at_checked(prefix.len())?;
    let mut differ = 0u8;
    for (a, b) in head.iter().zip(prefix) {
        differ |= a ^ b;
    }
    (differ == 0).then_some(rest)
}

/// The signatures a header offers, decoded: one, or (a list, during rotation) up to
/// [`MAX_SIGNATURES`]. Filled in place on the caller's stack.
pub(crate) struct Candidates {
    first: Signature,
    /// The others, for a list (left uninitialised for a single signature).
    rest: Option<[Signature; MAX_SIGNATURES - 1]>,
    len: usize,
}

impl Candidates {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Candidates {
            first: Signature([0; 32]),
            rest: None,
            len: 0,
        }
    }

    #[inline(always)]
    fn decode(format: &SignatureFormat, text: &[u8]) -> Result<Signature, Error> {
        match format.encoding() {
            Encoding::Hex => Signature::from_hex_bytes(text),
            Encoding::Base64 => Signature::from_base64(text),
        }
    }

    /// Reads the signature header `raw` as `format` says. Every signature is decoded before
    /// any MAC is computed, so a malformed header costs no MAC.
    ///
    /// A single signature must carry the prefix and decode. In a list, entries without the
    /// prefix (another version, e.g. `v1a,`) are skipped, and so are entries that do not
    /// decode (as the reference implementations, which compare text); at least one must
    /// decode, and at most [`MAX_SIGNATURES`] are read.
    #[inline(never)]
    pub(crate) fn read(&mut self, format: &SignatureFormat, raw: &[u8]) -> Result<(), Error> {
        let prefix = format.prefix().as_bytes();
        self.len = 0;
        let Some(separator) = format.separator() else {
            let Some(text) = strip(raw, prefix) else {
                return err(ErrorKind::MalformedSignature {
                    reason: "the signature lacks its scheme's prefix (e.g. sha256= or v1,)",
                });
            };
            self.first = Self::decode(format, text)?;
            self.len = 1;
            return Ok(());
        };
        let rest = self.rest.insert([Signature([0; 32]); MAX_SIGNATURES - 1]);
        // Entry by entry, as `raw.split(separator)` would. The usual entry (the prefix, one
        // signature, then the separator or the end) is taken without searching for the
        // separator: it decodes, so it holds no separator (a scheme's separator is never a
        // digit of its encoding), and the split would have cut it exactly there.
        let width = prefix.len() + format.encoding().text_len();
        let mut text = raw;
        loop {
            let usual = match text.get(width) {
                Some(&next) => next == separator,
                None => text.len() == width,
            };
            let fast = usual
                .then(|| strip(&text[..width], prefix))
                .flatten()
                .and_then(|signature| Self::decode(format, signature).ok());
            let (signature, next) = match fast {
                Some(signature) => (Some(signature), text.get(width + 1..)),
                None => {
                    let (entry, next) = match text.iter().position(|&b| b == separator) {
                        Some(at) => (&text[..at], text.get(at + 1..)),
                        None => (text, None),
                    };
                    let signature = strip(entry, prefix)
                        .and_then(|signature| Self::decode(format, signature).ok());
                    (signature, next)
                }
            };
            if let Some(signature) = signature {
                let slot = match self.len {
                    0 => &mut self.first,
                    n => match rest.get_mut(n - 1) {
                        Some(slot) => slot,
                        None => {
                            return err(ErrorKind::MalformedSignature {
                                reason: "more than 8 signatures in one header",
                            });
                        }
                    },
                };
                *slot = signature;
                self.len += 1;
            }
            match next {
                Some(next) => text = next,
                None => break,
            }
        }
        if self.len == 0 {
            return err(ErrorKind::MalformedSignature {
                reason: "no signature in the scheme's form in the header (its prefix, then hex or base64, separated by the scheme's separator)",
            });
        }
        Ok(())
    }

    /// Whether `mac` equals one of the candidates. Each comparison is constant-time; which
    /// candidate matched (public: the sender wrote it) is all the timing can tell.
    #[inline]
    pub(crate) fn matches(&self, mac: &Signature) -> bool {
        let rest = match &self.rest {
            Some(rest) => rest.get(..self.len.saturating_sub(1)).unwrap_or(&[]),
            None => &[],
        };
        rest.iter()
            .fold(self.len > 0 && self.first == *mac, |matched, candidate| {
                matched | (candidate == mac)
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    /// `Candidates::read` for a list, written the plain way: split on the separator, keep
    /// the entries with the prefix that decode (the reference the fast path must match).
    fn reference_read(
        format: &crate::scheme::SignatureFormat,
        raw: &[u8],
    ) -> Result<Vec<super::Signature>, ()> {
        let separator = format.separator().unwrap();
        let found: Vec<_> = raw
            .split(|&b| b == separator)
            .filter_map(|entry| super::strip(entry, format.prefix().as_bytes()))
            .filter_map(|text| super::Candidates::decode(format, text).ok())
            .collect();
        if found.is_empty() || found.len() > crate::scheme::MAX_SIGNATURES {
            return Err(());
        }
        Ok(found)
    }

    #[test]
    fn the_list_reader_matches_a_plain_split_on_random_lists() {
        use crate::scheme::SignatureFormat;
        let formats = [
            SignatureFormat::base64("webhook-signature")
                .with_prefix("v1,")
                .with_list(b' '),
            SignatureFormat::hex("x-signatures")
                .with_prefix("sha256=")
                .with_list(b','),
            SignatureFormat::hex("x-signatures").with_list(b';'),
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for format in &formats {
            let separator = format.separator().unwrap();
            let good = |n: u8| {
                let signature = super::Signature([n; 32]);
                let text = match format.encoding() {
                    crate::scheme::Encoding::Hex => signature.to_hex().as_str().to_owned(),
                    crate::scheme::Encoding::Base64 => signature.to_base64().as_str().to_owned(),
                };
                format!("{}{text}", format.prefix()).into_bytes()
            };
            for _ in 0..20_000 {
                let mut raw = Vec::new();
                for i in 0..(next() % 6) {
                    if i > 0 || next() % 5 == 0 {
                        raw.push(separator);
                    }
                    let mut entry = good(next() as u8);
                    match next() % 8 {
                        // Damaged: a byte changed, cut, lengthened, another version.
                        0 => {
                            let at = (next() as usize) % entry.len();
                            entry[at] = next() as u8;
                        }
                        1 => entry.truncate((next() as usize) % entry.len()),
                        2 => entry.push(b'A'),
                        3 => entry.insert(0, b'x'),
                        4 => entry.clear(),
                        _ => {}
                    }
                    raw.extend_from_slice(&entry);
                }
                if next() % 7 == 0 {
                    raw.push(separator);
                }
                let mut candidates = super::Candidates::new();
                let read = candidates.read(format, &raw);
                let expected = reference_read(format, &raw);
                match (&read, &expected) {
                    (Ok(()), Ok(found)) => {
                        assert_eq!(candidates.len, found.len(), "{raw:?}");
                        for signature in found {
                            assert!(candidates.matches(signature), "{raw:?}");
                        }
                    }
                    (Err(_), Err(())) => {}
                    _ => panic!(
                        "{read:?} vs {expected:?} for {:?}",
                        String::from_utf8_lossy(&raw)
                    ),
                }
            }
        }
    }

    #[test]
    fn list_edges_eight_entries_junk_after_a_full_entry_and_non_canonical_text() {
        // Attacks of the review on the list reader, each checked against the plain split
        // and the `base64` crate's canonical decoder (no library code in the reference).
        use base64::Engine as _;
        let format = crate::standard_webhooks::SCHEME.signature();
        let entry = |n: u8| {
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode([n; 32])
            )
        };
        let reference = |raw: &str| -> Option<Vec<[u8; 32]>> {
            let found: Vec<[u8; 32]> = raw
                .split(' ')
                .filter_map(|e| e.strip_prefix("v1,"))
                .filter_map(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
                .filter_map(|b| <[u8; 32]>::try_from(b).ok())
                .collect();
            (!found.is_empty() && found.len() <= crate::scheme::MAX_SIGNATURES).then_some(found)
        };
        // The last character of a 32-byte tag carries two unused bits: set, it is not
        // canonical (the `base64` crate refuses it too).
        let non_canonical = {
            let mut text = entry(0);
            text.replace_range(text.len() - 2..text.len() - 1, "B");
            text
        };
        let eight: Vec<String> = (1..=8).map(entry).collect();
        let cases = [
            eight.join(" "),
            format!("{} {}", eight.join(" "), entry(9)),
            format!("{} {}", entry(9), eight.join(" ")),
            format!("{} x v2,abc  {}", eight.join(" "), " "),
            format!("  {}  ", entry(1)),
            format!("{}x", entry(1)),
            format!("{}x {}", entry(1), entry(2)),
            format!("{}\t{}", entry(1), entry(2)),
            format!("{}={}", entry(1), entry(2)),
            format!("{}, {}", entry(1), entry(2)),
            format!("{}{}", entry(1), entry(2)),
            non_canonical.clone(),
            format!("{non_canonical} {}", entry(3)),
            entry(1)[..entry(1).len() - 1].to_owned(),
            format!("{} ", &entry(1)[..46]),
            format!("V1,{}", &entry(1)[3..]),
            " ".repeat(10_000),
            format!("{}{}", " ".repeat(10_000), entry(4)),
            String::new(),
        ];
        for raw in &cases {
            let mut candidates = Candidates::new();
            let read = candidates.read(format, raw.as_bytes());
            match (read, reference(raw)) {
                (Ok(()), Some(found)) => {
                    assert_eq!(candidates.len, found.len(), "{raw:?}");
                    for bytes in found {
                        assert!(candidates.matches(&Signature(bytes)), "{raw:?}");
                    }
                }
                (Err(_), None) => {}
                (read, expected) => panic!("{read:?} vs {expected:?} for {raw:?}"),
            }
        }
        // Nine well-formed signatures are refused whole, even with the right one among
        // them (documented: at most MAX_SIGNATURES; the official libraries read any number).
        let mut candidates = Candidates::new();
        let nine = format!("{} {}", eight.join(" "), entry(9));
        assert!(candidates.read(format, nine.as_bytes()).is_err());
    }

    #[test]
    fn the_base64_decoder_accepts_exactly_what_the_base64_crate_accepts() {
        use base64::Engine as _;
        let engine = &base64::engine::general_purpose::STANDARD;
        let reference = |text: &[u8]| {
            let mut out = [0u8; 33];
            match engine.decode_slice(text, &mut out) {
                Ok(32) => Some(<[u8; 32]>::try_from(&out[..32]).unwrap()),
                _ => None,
            }
        };
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = [0u8; 32];
            bytes.iter_mut().for_each(|b| *b = next() as u8);
            let mut text = [0u8; 44];
            engine.encode_slice(bytes, &mut text).unwrap();
            assert_eq!(super::decode_base64_32(&text), Some(bytes));
            // One character changed to any byte: both agree on accept and value.
            let mut changed = text;
            changed[(next() % 44) as usize] = next() as u8;
            assert_eq!(
                super::decode_base64_32(&changed),
                reference(&changed),
                "{changed:?}"
            );
            // Every value of the last data character: only the canonical ones decode.
            for last in (0..=255u8).filter(|_| text[0] < b'E') {
                let mut tail = text;
                tail[42] = last;
                assert_eq!(super::decode_base64_32(&tail), reference(&tail), "{last}");
            }
        }
        // Every byte at every position (each eight-character group and the tail).
        let mut text = [0u8; 44];
        engine.encode_slice([0xa5; 32], &mut text).unwrap();
        for position in 0..44 {
            for byte in 0..=255u8 {
                let mut changed = text;
                changed[position] = byte;
                assert_eq!(
                    super::decode_base64_32(&changed),
                    reference(&changed),
                    "{position} {byte}"
                );
            }
        }
        for wrong in [&b""[..], &[b'A'; 43], &[b'A'; 45], &[b'A'; 44]] {
            assert_eq!(super::decode_base64_32(wrong), None);
        }
    }
    use super::*;

    #[test]
    fn hex_decoding_agrees_with_the_reference_for_every_byte_at_every_position() {
        let valid = "0123456789abcdefABCDEF0123456789abcdef0123456789ABCDEF0123456789".as_bytes();
        for position in 0..64 {
            for byte in 0..=255u8 {
                let mut text = valid.to_vec();
                text[position] = byte;
                let mut reference = [0u8; 32];
                let expected = hex::decode_to_slice(&text, &mut reference)
                    .ok()
                    .map(|()| reference);
                let got = Signature::from_hex_bytes(&text).ok().map(|s| s.0);
                assert_eq!(got, expected, "byte {byte:#04x} at {position}");
            }
        }
    }

    #[test]
    fn encodings_and_formats() {
        use base64::Engine as _;
        let sig = Signature([0xfe; 32]);
        let expected = base64::engine::general_purpose::STANDARD.encode([0xfe; 32]);
        assert_eq!(sig.to_base64().as_str(), expected);
        assert_eq!(sig.to_base64().to_string(), expected);
        assert_eq!(format!("{:?}", sig.to_base64()), format!("{expected:?}"));
        assert_eq!(
            format!("{sig:?}"),
            format!("Signature({})", "fe".repeat(32))
        );
        assert_eq!(
            format!("{:?}", sig.to_hex()),
            format!("{:?}", "fe".repeat(32))
        );
    }

    #[test]
    fn hex_round_trips_and_constant_time_equality() {
        for seed in 0..=255u8 {
            let bytes: [u8; 32] =
                core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7));
            let sig = Signature(bytes);
            assert_eq!(sig.to_hex().as_str(), hex::encode(bytes));
            assert_eq!(Signature::from_hex(sig.to_hex().as_str()).unwrap(), sig);
            for i in 0..32 {
                let mut other = bytes;
                other[i] ^= 1 << (seed % 8);
                assert_ne!(Signature(other), sig);
                assert!(!sig.ct_eq_slice(&other));
            }
            assert!(sig.ct_eq_slice(&bytes));
        }
    }
}
