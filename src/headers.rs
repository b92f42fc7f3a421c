//! [`HeaderLookup`]: case-insensitive, duplicate-refusing header access over whatever a
//! transport uses for headers.

use core::fmt;

/// Case-insensitive header lookup over whatever a transport uses for headers.
///
/// Implemented for slices, arrays and vectors of `(name, value)` pairs, `HashMap` and
/// `BTreeMap` of string names to values, and (feature `http`) `http::HeaderMap`.
///
/// A header that appears more than once (in any spelling) is a [`DuplicateHeader`]: a
/// verifier refuses the request instead of choosing one of the values, because two layers
/// that choose differently (first wins, last wins, exact spelling wins) can be made to
/// check one value and act on another.
///
/// # Examples
///
/// ```
/// use countersign::{DuplicateHeader, HeaderLookup};
///
/// let headers = [("X-Timestamp", "1601234567")];
/// assert_eq!(headers.header("x-timestamp"), Ok(Some(&b"1601234567"[..])));
/// assert_eq!(headers.header("x-signature"), Ok(None));
/// let twice = [("x-timestamp", "1"), ("X-Timestamp", "2")];
/// assert_eq!(twice.header("x-timestamp"), Err(DuplicateHeader));
/// ```
pub trait HeaderLookup {
    /// The value of the header `name` (ASCII case-insensitive) as raw bytes, or `None`.
    ///
    /// # Errors
    ///
    /// [`DuplicateHeader`] when the header appears more than once.
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader>;
}

/// A header appeared more than once where one value was expected; see [`HeaderLookup`].
///
/// # Examples
///
/// See [`HeaderLookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateHeader;

impl fmt::Display for DuplicateHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the header appears more than once")
    }
}

impl std::error::Error for DuplicateHeader {}

/// The only value among `pairs` whose name matches `name` in any case.
fn only<'a, K: AsRef<str> + 'a, V: AsRef<[u8]> + ?Sized + 'a>(
    pairs: impl Iterator<Item = (&'a K, &'a V)>,
    name: &str,
) -> Result<Option<&'a [u8]>, DuplicateHeader> {
    let mut found = None;
    for (k, v) in pairs {
        let k = k.as_ref();
        // Lengths first (one compare), then any case, in place (no library call).
        if k.len() == name.len() && k.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(DuplicateHeader);
            }
            found = Some(v.as_ref());
        }
    }
    Ok(found)
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for [(K, V)] {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        only(self.iter().map(|(k, v)| (k, v)), name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> HeaderLookup for [(K, V); N] {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        self.as_slice().header(name)
    }
}

/// For a borrowed slice (a `&[(K, V)]` is sized, so it can stand behind `&dyn HeaderLookup`).
impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for &[(K, V)] {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        (**self).header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for Vec<(K, V)> {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        self.as_slice().header(name)
    }
}

/// Names are compared in any case, so `{"X-A": .., "x-a": ..}` holds a duplicate.
///
/// ```
/// use countersign::HeaderLookup;
/// use std::collections::HashMap;
///
/// let headers = HashMap::from([("X-Timestamp".to_owned(), "1601234567".to_owned())]);
/// assert_eq!(headers.header("x-timestamp"), Ok(Some(&b"1601234567"[..])));
/// ```
impl<K: AsRef<str>, V: AsRef<[u8]>, S> HeaderLookup for std::collections::HashMap<K, V, S> {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        only(self.iter(), name)
    }
}

/// Names are compared in any case, so `{"X-A": .., "x-a": ..}` holds a duplicate.
///
/// ```
/// use countersign::HeaderLookup;
/// use std::collections::BTreeMap;
///
/// let headers = BTreeMap::from([("x-timestamp", "1601234567")]);
/// assert_eq!(headers.header("X-Timestamp"), Ok(Some(&b"1601234567"[..])));
/// ```
impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for std::collections::BTreeMap<K, V> {
    fn header(&self, name: &str) -> Result<Option<&[u8]>, DuplicateHeader> {
        only(self.iter(), name)
    }
}
