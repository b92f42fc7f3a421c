//! [`Signature`]: a 32-byte HMAC-SHA256 tag on the stack, and its text encodings.

use core::fmt;

use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorKind, err};

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
        // Every character is looked up (no early exit); invalid ones set the high bit.
        let mut invalid = 0u8;
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let hi = HEX_VALUES[usize::from(pair[0])];
            let lo = HEX_VALUES[usize::from(pair[1])];
            invalid |= hi | lo;
            *byte = (hi << 4) | (lo & 0x0f);
        }
        if invalid & 0x80 == 0 {
            Ok(Signature(out))
        } else {
            err(ErrorKind::MalformedSignature {
                reason: "expected only hex digits 0-9 and a-f",
            })
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

/// Each byte's hex value, or `0x80` for a byte that is not a hex digit (either case).
const HEX_VALUES: [u8; 256] = {
    let mut table = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
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
        f.write_str(self.as_str())
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
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Base64Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
