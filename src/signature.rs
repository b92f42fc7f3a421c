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
    pub fn from_hex_bytes(text: &[u8]) -> Result<Self, Error> {
        if text.len() != Self::HEX_LEN {
            return err(ErrorKind::MalformedSignature {
                reason: "expected 64 hex characters (a hex HMAC-SHA256)",
            });
        }
        let mut out = [0u8; 32];
        let mut valid = true;
        for (chunk, quad) in text
            .as_chunks::<8>()
            .0
            .iter()
            .zip(out.as_chunks_mut::<4>().0)
        {
            let (value, ok) = decode_hex8(u64::from_le_bytes(*chunk));
            *quad = value;
            valid &= ok;
        }
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
    pub fn from_base64(text: &[u8]) -> Result<Self, Error> {
        const WRONG: ErrorKind = ErrorKind::MalformedSignature {
            reason: "expected 44 characters of standard base64 (a base64 HMAC-SHA256)",
        };
        if text.len() != Base64Signature::LEN {
            return err(WRONG);
        }
        let mut out = [0u8; 33];
        // The standard engine refuses non-canonical trailing bits and misplaced padding.
        match base64::Engine::decode_slice(
            &base64::engine::general_purpose::STANDARD,
            text,
            &mut out,
        ) {
            Ok(32) => {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&out[..32]);
                Ok(Signature(bytes))
            }
            _ => err(WRONG),
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
        /// `0..=15` to `'0'..='9' | 'a'..='f'` without a branch or a table: add 39 more
        /// when the nibble is above 9 (`9 - n` borrows into the sign bit). Lets the compiler
        /// vectorise the whole encoding.
        #[inline(always)]
        fn nibble(n: u8) -> u8 {
            let above_nine = ((9u8.wrapping_sub(n) as i8) >> 7) as u8;
            n + b'0' + (above_nine & 39)
        }
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = nibble(byte >> 4);
            pair[1] = nibble(byte & 0x0f);
        }
        HexSignature(out)
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

/// Decodes 8 hex characters (either case) packed little-endian into a word: 4 bytes and
/// whether all 8 were hex digits. SWAR: every byte is range-checked at once, so there is no
/// branch per character.
#[inline(always)]
fn decode_hex8(x: u64) -> ([u8; 4], bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // `(b | 0x80) - c` has its high bit set iff b >= c, and `(c | 0x80) - b` iff b <= c;
    // neither borrows across bytes while every b < 0x80. A byte >= 0x80 can borrow (hence
    // the wrapping arithmetic), but then `ascii` is false and the result is rejected.
    let ge = |v: u64, c: u8| ((v | HIGH).wrapping_sub(ONES * u64::from(c))) & HIGH;
    let le = |v: u64, c: u8| (((ONES * u64::from(c)) | HIGH).wrapping_sub(v)) & HIGH;
    let lower = x | (ONES * 0x20);
    let ascii = x & HIGH == 0;
    let digit = ge(x, b'0') & le(x, b'9');
    let letter = ge(lower, b'a') & le(lower, b'f');
    let valid = ascii & ((digit | letter) == HIGH);
    // Digits keep their low nibble; letters (low nibble 1..=6) gain 9.
    let nibbles = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    // Byte k of `packed`, for even k, is (nibble k << 4) | nibble k+1.
    let packed = (nibbles << 4) | (nibbles >> 8);
    let bytes = packed.to_le_bytes();
    ([bytes[0], bytes[2], bytes[4], bytes[6]], valid)
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

/// A signature as its scheme sends it: the prefix, then hex or base64. On the stack.
#[derive(Clone, Copy)]
pub(crate) struct SignatureText {
    buf: [u8; MAX_PREFIX + 64],
    len: usize,
}

impl SignatureText {
    /// `signature` in `format` (one signature; a list of one is the same text).
    pub(crate) fn new(format: &SignatureFormat, signature: &Signature, hex: &HexSignature) -> Self {
        let mut out = SignatureText {
            buf: [0; MAX_PREFIX + 64],
            len: 0,
        };
        let prefix = format.prefix().as_bytes();
        let base64 = signature.to_base64();
        let encoded: &[u8] = match format.encoding() {
            Encoding::Hex => &hex.0,
            Encoding::Base64 => &base64.0,
        };
        // `Scheme::check` bounds the prefix to MAX_PREFIX bytes.
        let end = prefix.len() + encoded.len();
        if let Some(slot) = out.buf.get_mut(..end) {
            slot[..prefix.len()].copy_from_slice(prefix);
            slot[prefix.len()..].copy_from_slice(encoded);
            out.len = end;
        }
        out
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only a visible-ASCII prefix and hex or base64 characters are ever written.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// The signatures a header offers, decoded: one, or (a list, during rotation) up to
/// [`MAX_SIGNATURES`].
// On the stack on purpose: boxing the list would allocate per verification, and the single
// signature (the common case) never initialises the list's 256 bytes.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Candidates {
    One(Signature),
    Many([Signature; MAX_SIGNATURES], usize),
}

impl Candidates {
    /// Reads the signature header `raw` as `format` says. Every signature is decoded before
    /// any MAC is computed, so a malformed header costs no MAC.
    ///
    /// A single signature must carry the prefix and decode. In a list, entries without the
    /// prefix (another version, e.g. `v1a,`) are skipped, and so are entries that do not
    /// decode (as the reference implementations, which compare text); at least one must
    /// decode, and at most [`MAX_SIGNATURES`] are read.
    pub(crate) fn read(format: &SignatureFormat, raw: &[u8]) -> Result<Self, Error> {
        let decode = |text: &[u8]| match format.encoding() {
            Encoding::Hex => Signature::from_hex_bytes(text),
            Encoding::Base64 => Signature::from_base64(text),
        };
        let prefix = format.prefix().as_bytes();
        let Some(separator) = format.separator() else {
            return match raw.strip_prefix(prefix) {
                Some(text) => decode(text).map(Candidates::One),
                None => err(ErrorKind::MalformedSignature {
                    reason: "the signature lacks its scheme's prefix (e.g. sha256= or v1,)",
                }),
            };
        };
        let mut found = [Signature([0; 32]); MAX_SIGNATURES];
        let mut n = 0;
        for entry in raw.split(|&b| b == separator) {
            let Some(text) = entry.strip_prefix(prefix) else {
                continue;
            };
            let Ok(signature) = decode(text) else {
                continue;
            };
            let Some(slot) = found.get_mut(n) else {
                return err(ErrorKind::MalformedSignature {
                    reason: "more than 8 signatures in one header",
                });
            };
            *slot = signature;
            n += 1;
        }
        if n == 0 {
            return err(ErrorKind::MalformedSignature {
                reason: "no signature in the scheme's form in the header (its prefix, then hex or base64, separated by the scheme's separator)",
            });
        }
        Ok(Candidates::Many(found, n))
    }

    /// Whether `mac` equals one of the candidates. Each comparison is constant-time; which
    /// candidate matched (public: the sender wrote it) is all the timing can tell.
    #[inline]
    pub(crate) fn matches(&self, mac: &Signature) -> bool {
        match self {
            Candidates::One(signature) => signature == mac,
            Candidates::Many(found, n) => found[..*n]
                .iter()
                .fold(false, |matched, candidate| matched | (candidate == mac)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
