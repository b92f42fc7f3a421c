//! Timestamps, their two wire formats, the injected [`Clock`], and the [`Freshness`] window.
//!
//! Kitopay writes UNIX seconds as ASCII digits (`1601234567`); KamioKash writes the instant as
//! JavaScript's `toISOString()` does (`2026-01-27T09:23:06.658Z`) and accepts any RFC 3339
//! time with `Z` or an offset. Both parsers are strict and allocation-free; both formatters
//! write into a stack buffer ([`TimestampText`]).

use core::fmt;
use core::time::Duration;
use std::time::SystemTime;

use crate::error::{Error, ErrorKind, err};

/// The last instant representable in both formats: 9999-12-31T23:59:59.999999999Z.
const MAX_SECS: u64 = 253_402_300_799;

/// An instant between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z.
///
/// It is what signers take as the signing time (always an input, never read inside) and what
/// the parsers produce for the freshness check. Comparing is exact to the nanosecond.
///
/// # Examples
///
/// ```
/// use countersign::Timestamp;
///
/// let t = Timestamp::from_unix_millis(1_769_505_786_658).unwrap();
/// assert_eq!(t.to_iso_text().as_str(), "2026-01-27T09:23:06.658Z");
/// assert_eq!(t.to_unix_text().as_str(), "1769505786");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(Duration);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(Duration::ZERO);

    /// The latest representable instant, 9999-12-31T23:59:59.999999999Z.
    pub const MAX: Timestamp = Timestamp(Duration::new(MAX_SECS, 999_999_999));

    /// From whole seconds since the Unix epoch.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`] after year 9999.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::from_unix_secs(1_601_234_567).unwrap().unix_secs(), 1_601_234_567);
    /// assert!(Timestamp::from_unix_secs(u64::MAX).is_err());
    /// ```
    pub fn from_unix_secs(secs: u64) -> Result<Self, Error> {
        Self::from_duration(Duration::from_secs(secs))
    }

    /// From milliseconds since the Unix epoch (the resolution KamioKash timestamps carry).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`] after year 9999.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::from_unix_millis(1_500).unwrap().unix_millis(), 1_500);
    /// ```
    pub fn from_unix_millis(millis: u64) -> Result<Self, Error> {
        Self::from_duration(Duration::from_millis(millis))
    }

    /// From the time elapsed since the Unix epoch.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`] after year 9999.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    /// use std::time::Duration;
    ///
    /// let t = Timestamp::from_duration(Duration::from_nanos(1_500_000_001)).unwrap();
    /// assert_eq!(t.unix_secs(), 1);
    /// ```
    #[inline]
    pub fn from_duration(since_epoch: Duration) -> Result<Self, Error> {
        if since_epoch > Self::MAX.0 {
            return err(ErrorKind::MalformedTimestamp {
                reason: "out of range: timestamps must lie between 1970 and 9999",
            });
        }
        Ok(Timestamp(since_epoch))
    }

    /// Time elapsed since the Unix epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::UNIX_EPOCH.since_epoch().as_secs(), 0);
    /// ```
    #[must_use]
    #[inline]
    pub fn since_epoch(self) -> Duration {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::from_unix_millis(1_999).unwrap().unix_secs(), 1);
    /// ```
    #[must_use]
    pub fn unix_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Whole milliseconds since the Unix epoch (rounded down).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::from_unix_secs(2).unwrap().unix_millis(), 2_000);
    /// ```
    #[must_use]
    pub fn unix_millis(self) -> u64 {
        self.0.as_secs() * 1000 + u64::from(self.0.subsec_millis())
    }

    /// This instant rounded down to whole seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// let t = Timestamp::from_unix_millis(1_999).unwrap();
    /// assert_eq!(t.truncate_to_secs(), Timestamp::from_unix_secs(1).unwrap());
    /// ```
    #[must_use]
    pub fn truncate_to_secs(self) -> Self {
        Timestamp(Duration::from_secs(self.0.as_secs()))
    }

    /// Parses a Kitopay timestamp: UNIX seconds as ASCII digits, nothing else.
    ///
    /// No sign, no spaces, no decimals, no leading zeros, no non-ASCII digits; a value that
    /// overflows or lies after year 9999 is malformed. An accepted value formats back to the
    /// same text.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::parse_unix("1601234567").unwrap().unix_secs(), 1_601_234_567);
    /// assert!(Timestamp::parse_unix("+1601234567").is_err());
    /// assert!(Timestamp::parse_unix("1601234567.0").is_err());
    /// ```
    pub fn parse_unix(text: &str) -> Result<Self, Error> {
        parse_unix(text.as_bytes())
    }

    /// Parses a KamioKash timestamp: RFC 3339 with `Z` or a numeric offset.
    ///
    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `T` and `Z` may be lowercase (RFC 3339
    /// 5.6); the fraction has 1 to 9 digits; dates are checked (no 30 February, no leap
    /// second); the resulting instant must lie between 1970 and 9999.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// let a = Timestamp::parse_rfc3339("2026-01-27T09:23:06.658Z").unwrap();
    /// let b = Timestamp::parse_rfc3339("2026-01-27T10:23:06.658+01:00").unwrap();
    /// assert_eq!(a, b);
    /// assert!(Timestamp::parse_rfc3339("2026-01-27T09:23:06.658").is_err()); // no offset
    /// ```
    pub fn parse_rfc3339(text: &str) -> Result<Self, Error> {
        parse_rfc3339(text.as_bytes()).ok_or(Error::from(RFC3339_MALFORMED))?
    }

    /// Writes UNIX seconds as ASCII digits, the Kitopay format.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::UNIX_EPOCH.to_unix_text().as_str(), "0");
    /// ```
    #[must_use]
    #[inline]
    pub fn to_unix_text(self) -> TimestampText {
        // At most 12 digits (year 9999). Split into a high part and eight low digits so the
        // digit pairs come from independent 32-bit divisions, written right-aligned so
        // nothing moves afterwards.
        let secs = self.unix_secs();
        let mut buf = [0u8; TimestampText::CAP];
        let high = (secs / 100_000_000) as u32;
        let low = (secs % 100_000_000) as u32;
        let (low_hi, low_lo) = (low / 10_000, low % 10_000);
        let end = TimestampText::CAP;
        put4(&mut buf[end - 8..end - 4], low_hi);
        put4(&mut buf[end - 4..end], low_lo);
        let mut start = end - 8;
        if high > 0 {
            put4(&mut buf[end - 12..end - 8], high);
            start = end - 12;
        }
        // Drop leading zeros, keeping at least one digit.
        while start < end - 1 && buf[start] == b'0' {
            start += 1;
        }
        TimestampText {
            buf,
            start: start as u8,
        }
    }

    /// Writes the instant as JavaScript's `toISOString()` does: UTC, milliseconds, `Z`
    /// (`2026-01-27T09:23:06.658Z`), the KamioKash format. Sub-millisecond digits are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::UNIX_EPOCH.to_iso_text().as_str(), "1970-01-01T00:00:00.000Z");
    /// ```
    #[must_use]
    #[inline]
    pub fn to_iso_text(self) -> TimestampText {
        let secs = self.0.as_secs();
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        let mut b = [0u8; TimestampText::CAP];
        put4(&mut b[0..4], year);
        b[4] = b'-';
        put2(&mut b[5..7], month);
        b[7] = b'-';
        put2(&mut b[8..10], day);
        b[10] = b'T';
        put2(&mut b[11..13], (rem / 3600) as u32);
        b[13] = b':';
        put2(&mut b[14..16], (rem / 60 % 60) as u32);
        b[16] = b':';
        put2(&mut b[17..19], (rem % 60) as u32);
        b[19] = b'.';
        let ms = self.0.subsec_millis();
        b[20] = b'0' + (ms / 100) as u8;
        put2(&mut b[21..23], ms);
        b[23] = b'Z';
        TimestampText { buf: b, start: 0 }
    }

    /// Reads the clock; a convenience for `clock.now()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{FixedClock, Timestamp};
    ///
    /// let clock = FixedClock::new(Timestamp::from_unix_secs(7).unwrap());
    /// assert_eq!(Timestamp::now(&clock).unix_secs(), 7);
    /// ```
    #[must_use]
    pub fn now(clock: &dyn Clock) -> Self {
        clock.now()
    }
}

impl TryFrom<SystemTime> for Timestamp {
    type Error = Error;

    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`] before 1970 or after 9999.
    fn try_from(t: SystemTime) -> Result<Self, Error> {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Self::from_duration(d),
            Err(_) => err(ErrorKind::MalformedTimestamp {
                reason: "out of range: timestamps must lie between 1970 and 9999",
            }),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> SystemTime {
        SystemTime::UNIX_EPOCH + t.0
    }
}

impl TryFrom<time::OffsetDateTime> for Timestamp {
    type Error = Error;

    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`] before 1970 or after 9999.
    fn try_from(t: time::OffsetDateTime) -> Result<Self, Error> {
        match u64::try_from(t.unix_timestamp()) {
            Ok(secs) if secs <= MAX_SECS => Ok(Timestamp(Duration::new(secs, t.nanosecond()))),
            _ => err(ErrorKind::MalformedTimestamp {
                reason: "out of range: timestamps must lie between 1970 and 9999",
            }),
        }
    }
}

impl From<Timestamp> for time::OffsetDateTime {
    fn from(t: Timestamp) -> time::OffsetDateTime {
        time::OffsetDateTime::UNIX_EPOCH + t.0
    }
}

/// A formatted timestamp in a stack buffer (at most 24 bytes): what goes into the
/// `x-timestamp` / `X-Timestamp` header and into the message.
///
/// # Examples
///
/// ```
/// use countersign::Timestamp;
///
/// let text = Timestamp::from_unix_secs(1_601_234_567).unwrap().to_unix_text();
/// assert_eq!(text.as_str(), "1601234567");
/// assert_eq!(text.to_string(), "1601234567");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimestampText {
    /// The text is `buf[start..]`.
    buf: [u8; TimestampText::CAP],
    start: u8,
}

impl TimestampText {
    const CAP: usize = 24;

    /// The text.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::UNIX_EPOCH.to_unix_text().as_str(), "0");
    /// ```
    #[must_use]
    #[inline]
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into the buffer.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text's bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Timestamp;
    ///
    /// assert_eq!(Timestamp::UNIX_EPOCH.to_unix_text().as_bytes(), b"0");
    /// ```
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[usize::from(self.start)..]
    }
}

impl fmt::Display for TimestampText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for TimestampText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A source of the current time, injected into verifiers so tests can fix it.
///
/// # Examples
///
/// ```
/// use countersign::{Clock, SystemClock, Timestamp};
///
/// struct Frozen;
/// impl Clock for Frozen {
///     fn now(&self) -> Timestamp {
///         Timestamp::from_unix_secs(1_601_234_567).unwrap_or(Timestamp::UNIX_EPOCH)
///     }
/// }
/// assert_eq!(Frozen.now().unix_secs(), 1_601_234_567);
/// assert!(SystemClock.now().unix_secs() > 1_700_000_000);
/// ```
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock. Before 1970 it reads as the epoch, after 9999 as
/// [`Timestamp::MAX`] (so every timestamp is then judged stale rather than anything panicking).
///
/// # Examples
///
/// ```
/// use countersign::{Clock, SystemClock};
///
/// let now = SystemClock.now();
/// assert!(now.unix_secs() > 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Timestamp::from_duration(d).unwrap_or(Timestamp::MAX),
            Err(_) => Timestamp::UNIX_EPOCH,
        }
    }
}

/// A clock that always reads the same instant: for tests, replays of captured traffic, and
/// the CLI's `--now`.
///
/// # Examples
///
/// ```
/// use countersign::{Clock, FixedClock, Timestamp};
///
/// let t = Timestamp::from_unix_secs(1_601_234_567).unwrap();
/// assert_eq!(FixedClock::new(t).now(), t);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(Timestamp);

impl FixedClock {
    /// A clock stopped at `at`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Clock, FixedClock, Timestamp};
    ///
    /// assert_eq!(FixedClock::new(Timestamp::UNIX_EPOCH).now(), Timestamp::UNIX_EPOCH);
    /// ```
    #[must_use]
    pub fn new(at: Timestamp) -> Self {
        FixedClock(at)
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// How far a timestamp may lie from now, either way.
///
/// A timestamp exactly `max_age` old (or exactly `max_future` ahead) is fresh; one
/// nanosecond more is not.
///
/// # Examples
///
/// ```
/// use countersign::{ErrorKind, Freshness, Timestamp};
///
/// let now = Timestamp::from_unix_secs(1_601_234_567).unwrap();
/// let fresh = Freshness::default();
/// assert!(fresh.check(Timestamp::from_unix_secs(1_601_234_507).unwrap(), now).is_ok());
/// let err = fresh.check(Timestamp::from_unix_secs(1_601_234_628).unwrap(), now).unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::Future { .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// The oldest a timestamp may be. Defaults to 60 seconds (the providers' window). A
    /// replay claim lasts `max_age + max_future` and a bit: a window so large that this
    /// passes year 9999 makes every claim permanent (and an in-memory guard fills up).
    pub max_age: Duration,
    /// How far in the future a timestamp may be (clock skew). Defaults to 60 seconds.
    pub max_future: Duration,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness::DEFAULT
    }
}

impl Freshness {
    /// 60 s either way: the KamioKash and Kitopay window, and the default of a
    /// [`Scheme`](crate::Scheme) that says nothing else.
    pub const DEFAULT: Freshness = Freshness::symmetric(Duration::from_secs(60));

    /// The same window both ways (Standard Webhooks: 5 minutes).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::Freshness;
    /// use std::time::Duration;
    ///
    /// let five = Freshness::symmetric(Duration::from_secs(300));
    /// assert_eq!(five.max_age, five.max_future);
    /// ```
    #[must_use]
    pub const fn symmetric(window: Duration) -> Self {
        Freshness {
            max_age: window,
            max_future: window,
        }
    }

    /// Checks `timestamp` against `now`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Expired`] or [`ErrorKind::Future`], with the distance and the window.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{Freshness, Timestamp};
    /// use std::time::Duration;
    ///
    /// let now = Timestamp::from_unix_secs(100).unwrap();
    /// let tight = Freshness { max_age: Duration::from_secs(5), max_future: Duration::ZERO };
    /// assert!(tight.check(Timestamp::from_unix_secs(95).unwrap(), now).is_ok());
    /// assert!(tight.check(Timestamp::from_unix_secs(101).unwrap(), now).is_err());
    /// ```
    #[inline]
    pub fn check(&self, timestamp: Timestamp, now: Timestamp) -> Result<(), Error> {
        if timestamp <= now {
            let age = now.0 - timestamp.0;
            if age > self.max_age {
                return err(ErrorKind::Expired {
                    age,
                    max_age: self.max_age,
                });
            }
        } else {
            let ahead = timestamp.0 - now.0;
            if ahead > self.max_future {
                return err(ErrorKind::Future {
                    ahead,
                    max_future: self.max_future,
                });
            }
        }
        Ok(())
    }

    /// Until when a replay claim of a message signed at `timestamp` must be held (held
    /// while `now <` it): the last instant any verifier with a clock at most `max_future`
    /// off could accept it, plus one step of the timestamp's `resolution`. Saturates at
    /// [`Timestamp::MAX`] (a claim that never expires).
    #[inline]
    pub(crate) fn claim_expiry(&self, timestamp: Timestamp, resolution: Duration) -> Timestamp {
        let lifetime = self
            .max_age
            .saturating_add(resolution)
            .saturating_add(self.max_future);
        Timestamp::from_duration(timestamp.0.saturating_add(lifetime)).unwrap_or(Timestamp::MAX)
    }
}

/// How a scheme writes its timestamp.
///
/// # Examples
///
/// ```
/// use countersign::{TimeFormat, Timestamp};
///
/// let t = TimeFormat::UnixSecs.parse("1601234567")?;
/// assert_eq!(TimeFormat::Rfc3339.format(t).as_str(), "2020-09-27T19:22:47.000Z");
/// # Ok::<(), countersign::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// UNIX seconds as ASCII digits (Kitopay, Standard Webhooks); see
    /// [`Timestamp::parse_unix`].
    UnixSecs,
    /// RFC 3339, written as JavaScript's `toISOString()` writes it (KamioKash); see
    /// [`Timestamp::parse_rfc3339`].
    Rfc3339,
}

impl TimeFormat {
    /// Parses a timestamp in this format.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MalformedTimestamp`], saying what the format should be.
    ///
    /// # Examples
    ///
    /// See [`TimeFormat`].
    pub fn parse(self, text: &str) -> Result<Timestamp, Error> {
        self.parse_bytes(text.as_bytes())
    }

    /// Parses raw header bytes; both grammars accept only ASCII, so bytes that parse are
    /// also the valid UTF-8 text that was signed.
    #[inline]
    pub(crate) fn parse_bytes(self, text: &[u8]) -> Result<Timestamp, Error> {
        match self {
            TimeFormat::UnixSecs => parse_unix(text),
            TimeFormat::Rfc3339 => match parse_iso_millis(text) {
                Some(timestamp) => Ok(timestamp),
                None => parse_rfc3339(text).ok_or(Error::from(RFC3339_MALFORMED))?,
            },
        }
    }

    /// Writes `at` in this format.
    ///
    /// # Examples
    ///
    /// See [`TimeFormat`].
    #[must_use]
    #[inline]
    pub fn format(self, at: Timestamp) -> TimestampText {
        match self {
            TimeFormat::UnixSecs => at.to_unix_text(),
            TimeFormat::Rfc3339 => at.to_iso_text(),
        }
    }

    /// A clock reading at this format's resolution: a whole-second timestamp is compared
    /// with now rounded down to whole seconds, so "60 s exactly" means what the sender meant
    /// (a Kitopay timestamp `t` is fresh until the clock reads `t + 61 s - 1 ns`).
    #[inline]
    pub(crate) fn truncate(self, now: Timestamp) -> Timestamp {
        match self {
            TimeFormat::UnixSecs => now.truncate_to_secs(),
            TimeFormat::Rfc3339 => now,
        }
    }

    /// The step by which the freshness comparison advances: 1 s for whole-second "now",
    /// 1 ns where the clock is compared as read.
    #[inline]
    pub(crate) fn resolution(self) -> Duration {
        match self {
            TimeFormat::UnixSecs => Duration::from_secs(1),
            TimeFormat::Rfc3339 => Duration::from_nanos(1),
        }
    }
}

const RFC3339_MALFORMED: ErrorKind = ErrorKind::MalformedTimestamp {
    reason: "expected RFC 3339 with Z or an offset (e.g. 2026-01-27T09:23:06.658Z)",
};

fn parse_unix(bytes: &[u8]) -> Result<Timestamp, Error> {
    const BAD: ErrorKind = ErrorKind::MalformedTimestamp {
        reason: "expected UNIX seconds as ASCII digits without sign, spaces, decimals or leading zeros (e.g. 1601234567)",
    };
    if bytes.is_empty() || bytes.len() > 20 || (bytes.len() > 1 && bytes[0] == b'0') {
        return err(BAD);
    }
    let mut secs: u64 = 0;
    if bytes.len() <= 19 {
        // Up to 19 digits cannot overflow: no check per digit, no branch per digit (a
        // non-digit makes `invalid` non-zero, and the value is then discarded).
        let mut invalid = 0u8;
        for &b in bytes {
            let digit = b.wrapping_sub(b'0');
            invalid |= u8::from(digit > 9);
            secs = secs.wrapping_mul(10).wrapping_add(u64::from(digit));
        }
        if invalid != 0 {
            return err(BAD);
        }
    } else {
        for &b in bytes {
            if !b.is_ascii_digit() {
                return err(BAD);
            }
            secs = match secs
                .checked_mul(10)
                .and_then(|s| s.checked_add(u64::from(b - b'0')))
            {
                Some(s) => s,
                None => return err(BAD),
            };
        }
    }
    // 13 digits or more (no leading zero: past year 9999 as seconds), and a year before
    // 10000 once read as milliseconds: `Date.now()`.
    if bytes.len() >= 13 && secs / 1000 <= MAX_SECS {
        return err(ErrorKind::MalformedTimestamp {
            reason: "this looks like milliseconds: Kitopay timestamps are UNIX seconds (e.g. 1601234567), not Date.now()",
        });
    }
    Timestamp::from_unix_secs(secs)
}

/// "00" to "99": two digits per lookup instead of a division and a remainder each.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `v % 100` as two digits.
#[inline(always)]
fn put2(out: &mut [u8], v: u32) {
    let i = (v % 100) as usize * 2;
    out[..2].copy_from_slice(&DIGIT_PAIRS[i..i + 2]);
}

/// Writes `v % 10000` as four digits.
#[inline(always)]
fn put4(out: &mut [u8], v: u32) {
    put2(&mut out[..2], v / 100);
    put2(&mut out[2..4], v);
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian, by Neri and
/// Schneider's Euclidean affine functions ("Euclidean affine functions and their
/// application to calendar algorithms", 2022): multiplications and shifts, one division by
/// a constant. Checked against [`civil_from_days_reference`] for every day up to
/// 9999-12-31.
#[inline]
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    // Days since 0000-03-01 (a year starts in March, so the leap day is its last).
    let n = days as u32 + 719_468;
    // Century and day of the century.
    let n1 = 4 * n + 3;
    let century = n1 / 146_097;
    let n2 = (n1 % 146_097) | 3;
    // Year of the century and day of the year.
    let p = 2_939_745u64 * u64::from(n2);
    let year_of_century = (p >> 32) as u32;
    let day_of_year = (p as u32) / 2_939_745 / 4;
    // Month and day (March = 3 ... February = 14).
    let n3 = 2_141 * day_of_year + 197_913;
    let month = n3 >> 16;
    let day = (n3 & 0xffff) / 2_141 + 1;
    let january_or_february = u32::from(day_of_year >= 306);
    (
        100 * century + year_of_century + january_or_february,
        month - 12 * january_or_february,
        day,
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm): the reference [`civil_from_days`] is checked against.
#[cfg(test)]
fn civil_from_days_reference(days: u64) -> (u32, u32, u32) {
    let z = days as u32 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u32::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01; negative before it.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `None` when the text is not RFC 3339; `Some(Err)` when it is but out of range.
/// The fast path for exactly what `toISOString()` writes, `YYYY-MM-DDTHH:MM:SS.sssZ`: every
/// digit checked at once, calendar arithmetic without loops. `None` for anything else
/// (including a valid RFC 3339 timestamp of another shape, which [`parse_rfc3339`] then
/// reads); where it returns a timestamp, it is the one `parse_rfc3339` returns (a test
/// checks both at every field edge and on every one-byte change).
#[inline]
fn parse_iso_millis(b: &[u8]) -> Option<Timestamp> {
    let b: &[u8; 24] = b.try_into().ok()?;
    let separators = (b[4] ^ b'-')
        | (b[7] ^ b'-')
        | (b[10] ^ b'T')
        | (b[13] ^ b':')
        | (b[16] ^ b':')
        | (b[19] ^ b'.')
        | (b[23] ^ b'Z');
    // Each digit's value; any byte that is not a digit makes `bad` non-zero.
    let d = |i: usize| u32::from(b[i].wrapping_sub(b'0'));
    let mut bad = separators;
    for i in [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22] {
        bad |= u8::from(b[i].wrapping_sub(b'0') > 9);
    }
    if bad != 0 {
        return None;
    }
    let year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
    let month = d(5) * 10 + d(6);
    let day = d(8) * 10 + d(9);
    let hour = d(11) * 10 + d(12);
    let minute = d(14) * 10 + d(15);
    let second = d(17) * 10 + d(18);
    let millis = d(20) * 100 + d(21) * 10 + d(22);
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let month_days = match month {
        2 => 28 + u32::from(leap),
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > month_days
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Days before this year since 1970 (leap days counted to the end of the previous
    // year), before this month in the year, and before this day.
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let y = year - 1;
    let leap_days = y / 4 - y / 100 + y / 400 - 477;
    let days = (year - 1970) * 365
        + leap_days
        + BEFORE[(month - 1) as usize]
        + u32::from(leap && month > 2)
        + day
        - 1;
    let secs = u64::from(days) * 86_400 + u64::from(hour * 3600 + minute * 60 + second);
    // At most 9999-12-31T23:59:59.999, within `Timestamp::MAX`.
    Some(Timestamp(Duration::new(secs, millis * 1_000_000)))
}

fn parse_rfc3339(b: &[u8]) -> Option<Result<Timestamp, Error>> {
    fn digits(b: &[u8], from: usize, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(from..from + n)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }
    fn byte(b: &[u8], i: usize) -> Option<u8> {
        b.get(i).copied()
    }

    // The fixed-width head `YYYY-MM-DDTHH:MM:SS`, parsed from a fixed-size array.
    let head: &[u8; 19] = b.first_chunk()?;
    let d = |i: usize| -> Option<u32> {
        let c = head[i];
        c.is_ascii_digit().then(|| u32::from(c - b'0'))
    };
    let year = d(0)? * 1000 + d(1)? * 100 + d(2)? * 10 + d(3)?;
    let month = d(5)? * 10 + d(6)?;
    let day = d(8)? * 10 + d(9)?;
    let hour = d(11)? * 10 + d(12)?;
    let minute = d(14)? * 10 + d(15)?;
    let second = d(17)? * 10 + d(18)?;
    if head[4] != b'-'
        || head[7] != b'-'
        || !matches!(head[10], b'T' | b't')
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }

    let mut i = 19;
    let mut nanos = 0u32;
    if byte(b, i) == Some(b'.') {
        i += 1;
        let start = i;
        while let Some(c @ b'0'..=b'9') = byte(b, i) {
            if i - start == 9 {
                return None;
            }
            nanos = nanos * 10 + u32::from(c - b'0');
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        nanos *= 10u32.pow(9 - n as u32);
    }

    let offset_secs: i64 = match byte(b, i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() => {
            let oh = digits(b, i + 1, 2)?;
            (byte(b, i + 3)? == b':').then_some(())?;
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if sign == b'+' { off } else { -off }
        }
        _ => return None,
    };

    let local = days_from_civil(i64::from(year), month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second);
    let utc = local - offset_secs;
    Some(match u64::try_from(utc) {
        Ok(secs) => Timestamp::from_duration(Duration::new(secs, nanos)),
        Err(_) => err(ErrorKind::MalformedTimestamp {
            reason: "out of range: timestamps must lie between 1970 and 9999",
        }),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn reason(e: Error) -> &'static str {
        match e.into_kind() {
            ErrorKind::MalformedTimestamp { reason } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn civil_from_days_agrees_with_the_reference_on_every_day_to_year_9999() {
        let last = Timestamp::MAX.unix_secs() / 86_400;
        for days in 0..=last {
            assert_eq!(
                civil_from_days(days),
                civil_from_days_reference(days),
                "day {days}"
            );
        }
        assert_eq!(civil_from_days(last), (9999, 12, 31));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn the_iso_fast_path_agrees_with_the_general_parser() {
        // Every shape the fast path accepts, at field edges and beyond, and one byte
        // changed at every position: where the fast path answers, the general parser
        // answers the same; where it declines, only the general parser decides.
        let mut cases = Vec::new();
        for year in [0, 1969, 1970, 1971, 2000, 2024, 2100, 2400, 9999] {
            for (month, day) in [
                (1, 1),
                (2, 28),
                (2, 29),
                (2, 30),
                (3, 31),
                (4, 30),
                (4, 31),
                (12, 31),
                (13, 1),
                (0, 1),
                (1, 0),
            ] {
                for (h, m, s) in [(0, 0, 0), (23, 59, 59), (24, 0, 0), (0, 60, 0), (0, 0, 60)] {
                    let ms = (year + month + day) % 1000;
                    cases.push(format!(
                        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"
                    ));
                }
            }
        }
        let base = "2026-01-27T09:23:06.658Z".as_bytes().to_vec();
        for i in 0..base.len() {
            for b in [
                b'0', b'9', b'/', b':', b'Z', b'z', b't', b'T', b'.', b'-', b'+', 0x80, 0xff,
            ] {
                let mut v = base.clone();
                v[i] = b;
                cases.push(String::from_utf8_lossy(&v).into_owned());
            }
        }
        for text in &cases {
            let fast = parse_iso_millis(text.as_bytes());
            let general = parse_rfc3339(text.as_bytes()).and_then(Result::ok);
            if let Some(fast) = fast {
                assert_eq!(Some(fast), general, "{text}");
            }
            assert_eq!(TimeFormat::Rfc3339.parse(text).ok(), general, "{text}");
        }
        assert!(parse_iso_millis(base.as_slice()).is_some());
    }

    #[test]
    fn range_edges_and_conversions() {
        assert_eq!(
            Timestamp::from_duration(Timestamp::MAX.0).unwrap(),
            Timestamp::MAX
        );
        assert!(Timestamp::from_duration(Timestamp::MAX.0 + Duration::from_nanos(1)).is_err());
        assert_eq!(
            Timestamp::from_unix_millis(1_234_567)
                .unwrap()
                .unix_millis(),
            1_234_567
        );
        assert_eq!(Timestamp::from_unix_millis(999).unwrap().unix_millis(), 999);
        for (secs, text) in [
            (0, "0"),
            (7, "7"),
            (99_999_999, "99999999"),
            (100_000_000, "100000000"),
            (1_601_234_567, "1601234567"),
            (MAX_SECS, "253402300799"),
        ] {
            assert_eq!(
                Timestamp::from_unix_secs(secs)
                    .unwrap()
                    .to_unix_text()
                    .as_str(),
                text
            );
        }
        assert_eq!(
            format!("{:?}", Timestamp::UNIX_EPOCH.to_unix_text()),
            "\"0\""
        );
        let five = Timestamp::from_unix_secs(5).unwrap();
        assert_eq!(
            SystemTime::from(five),
            SystemTime::UNIX_EPOCH + Duration::from_secs(5)
        );
        let last = time::OffsetDateTime::from_unix_timestamp(MAX_SECS as i64).unwrap();
        assert_eq!(Timestamp::try_from(last).unwrap().unix_secs(), MAX_SECS);
        let before = time::OffsetDateTime::from_unix_timestamp(-1).unwrap();
        assert!(Timestamp::try_from(before).is_err());
        assert_eq!(
            Timestamp::MAX.to_iso_text().as_str(),
            "9999-12-31T23:59:59.999Z"
        );
        let leap_2400 = Timestamp::parse_rfc3339("2400-02-29T12:00:00Z").unwrap();
        assert_eq!(leap_2400.to_iso_text().as_str(), "2400-02-29T12:00:00.000Z");
    }

    #[test]
    fn unix_text_length_and_millisecond_edges() {
        // 20 digits fit in u64: out of range, not "malformed digits".
        assert!(reason(parse_unix(b"10000000000000000000").unwrap_err()).contains("out of range"));
        assert!(reason(parse_unix(b"100000000000000000000").unwrap_err()).contains("ASCII digits"));
        // Year 10000 in seconds is out of range, not milliseconds.
        assert!(reason(parse_unix(b"253402300800").unwrap_err()).contains("out of range"));
        for ms in ["1601234567123", "253402300799999"] {
            assert!(
                reason(parse_unix(ms.as_bytes()).unwrap_err()).contains("milliseconds"),
                "{ms}"
            );
        }
        assert!(reason(parse_unix(b"253402300800000").unwrap_err()).contains("out of range"));
    }

    #[test]
    fn rfc3339_grammar_edges() {
        let z = Timestamp::parse_rfc3339("2026-01-27T09:23:06Z").unwrap();
        let ok = |t: &str| Timestamp::parse_rfc3339(t).unwrap();
        assert_eq!(ok("2026-01-27T10:53:06+01:30"), z);
        assert_eq!(ok("2026-01-27T08:53:06-00:30"), z);
        assert_eq!(
            ok("2026-01-27T09:23:06+23:59").since_epoch()
                + Duration::from_secs(23 * 3600 + 59 * 60),
            z.since_epoch()
        );
        for bad in [
            "2026-01-27X09:23:06Z",
            "2026/01-27T09:23:06Z",
            "2026-01/27T09:23:06Z",
            "2026-01-27T09-23:06Z",
            "2026-01-27T09:23-06Z",
            "2026-04-31T00:00:00Z",
            "2026-06-31T00:00:00Z",
            "2026-09-31T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-01-27T24:00:00Z",
            "2026-01-27T23:60:00Z",
            "2026-01-27T23:59:60Z",
            "2026-01-27T09:23:06+24:00",
            "2026-01-27T09:23:06+00:60",
            "2026-01-27T09:23:06+01:00x",
            "2026-01-27T09:23:06+01:0",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert!(Timestamp::parse_rfc3339("2026-04-30T23:59:59+23:59").is_ok());
    }

    #[test]
    fn calendar_math_agrees_with_the_time_crate() {
        // Every day from 1970 to 9999 would take long; step through it coprime to 7 and 365.
        let mut day = 0u64;
        while day * 86_400 <= MAX_SECS {
            let t = Timestamp::from_unix_secs(day * 86_400 + 3_723).unwrap();
            let odt = time::OffsetDateTime::from(t);
            let (y, m, d) = civil_from_days(day);
            assert_eq!(
                (y as i32, m as u8, d as u8),
                (odt.year(), odt.month() as u8, odt.day())
            );
            assert_eq!(days_from_civil(i64::from(y), m, d), day as i64);
            let iso = t.to_iso_text();
            assert_eq!(Timestamp::parse_rfc3339(iso.as_str()).unwrap(), t);
            day += 97;
        }
    }

    #[test]
    fn rfc3339_edge_cases() {
        let ok = |s: &str| Timestamp::parse_rfc3339(s).is_ok();
        assert!(ok("2024-02-29T00:00:00Z"));
        assert!(!ok("2023-02-29T00:00:00Z"));
        assert!(!ok("2026-01-27T24:00:00Z"));
        assert!(!ok("2026-01-27T23:59:60Z"));
        assert!(ok("2026-01-27t09:23:06z"));
        assert!(ok("2026-01-27T09:23:06.123456789Z"));
        assert!(!ok("2026-01-27T09:23:06.1234567891Z"));
        assert!(!ok("2026-01-27T09:23:06.Z"));
        assert!(!ok("2026-01-27T09:23:06Z "));
        assert!(!ok("2026-01-27 09:23:06Z"));
        assert!(!ok("2026-01-27T09:23:06+0100"));
        assert!(!ok("2026-01-27T09:23:06+24:00"));
        assert!(!ok("1970-01-01T00:00:00+00:01"));
        assert!(ok("1970-01-01T00:00:00-00:01"));
        assert!(!ok("+2026-01-27T09:23:06Z"));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-01-27T09:23:06.5Z")
                .unwrap()
                .since_epoch()
                .subsec_nanos(),
            500_000_000
        );
    }

    #[test]
    fn unix_text_round_trips_at_the_edges() {
        for secs in [0, 1, 9, 10, 1_601_234_567, MAX_SECS] {
            let t = Timestamp::from_unix_secs(secs).unwrap();
            assert_eq!(Timestamp::parse_unix(t.to_unix_text().as_str()).unwrap(), t);
        }
        assert!(Timestamp::parse_unix(&(MAX_SECS + 1).to_string()).is_err());
        assert!(Timestamp::parse_unix("00").is_err());
        assert!(Timestamp::parse_unix("0").is_ok());
        assert_eq!(
            Timestamp::MAX.to_iso_text().as_str(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn freshness_boundaries_are_inclusive() {
        let now = Timestamp::from_unix_secs(1000).unwrap();
        let f = Freshness::default();
        let at = |n: u64| Timestamp::from_duration(Duration::from_nanos(n)).unwrap();
        assert!(f.check(at(940_000_000_000), now).is_ok());
        assert!(f.check(at(939_999_999_999), now).is_err());
        assert!(f.check(at(1_060_000_000_000), now).is_ok());
        assert!(f.check(at(1_060_000_000_001), now).is_err());
    }
}
