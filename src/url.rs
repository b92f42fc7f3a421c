//! [`CanonicalUrl`]: the exact URL bytes that are signed and sent.
//!
//! The canonical form is the WHATWG serialisation (what the `url` crate produces and reqwest
//! puts on the wire), without fragment, without an empty `?`, with a [`TrailingSlash`] policy
//! applied to the path. Query parameter order is never changed.
//!
//! Most URLs a program signs are already canonical (`https://api.host/path?x=1`). Parsing
//! them with a full WHATWG parser costs as much as the MAC itself, so [`fast_path`] first
//! recognises, in one scan, input that the parser would return unchanged; anything it is not
//! sure about goes to the `url` crate. The property tests and the `canonical_url` fuzz target
//! check that both paths agree.

use core::fmt;
use core::str::FromStr;

use crate::error::{Error, ErrorKind, UrlRule, err};

/// What to do with a trailing slash at the end of the path.
///
/// The providers compare bytes: `/payins/` and `/payins` sign differently. Pick the policy
/// that matches the URL the provider documents; [`TrailingSlash::Preserve`] signs exactly
/// what you wrote.
///
/// # Examples
///
/// ```
/// use countersign::{CanonicalUrl, TrailingSlash};
///
/// let strip = CanonicalUrl::parse_with("https://example.com/a/", TrailingSlash::Strip)?;
/// assert_eq!(strip.as_str(), "https://example.com/a");
/// let require = CanonicalUrl::parse_with("https://example.com/a?x=1", TrailingSlash::Require)?;
/// assert_eq!(require.as_str(), "https://example.com/a/?x=1");
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TrailingSlash {
    /// Leave the path as written. The default.
    #[default]
    Preserve,
    /// Remove trailing slashes, except the root path's `/`.
    Strip,
    /// Add a trailing slash when the path has none.
    Require,
}

impl TrailingSlash {
    /// The policy's name as the CLI spells it: `preserve`, `strip`, `require`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::TrailingSlash;
    ///
    /// assert_eq!(TrailingSlash::Strip.as_str(), "strip");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TrailingSlash::Preserve => "preserve",
            TrailingSlash::Strip => "strip",
            TrailingSlash::Require => "require",
        }
    }
}

impl FromStr for TrailingSlash {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "preserve" => Ok(TrailingSlash::Preserve),
            "strip" => Ok(TrailingSlash::Strip),
            "require" => Ok(TrailingSlash::Require),
            _ => err(ErrorKind::UnknownName {
                what: "trailing-slash policy",
                expected: "preserve, strip, require",
            }),
        }
    }
}

/// An absolute http(s) URL in canonical form: parse once, sign many times.
///
/// Signers take a `CanonicalUrl`, never a `&str`, and the http adapter sends exactly
/// [`CanonicalUrl::as_str`], so the URL signed is the URL sent.
///
/// # Examples
///
/// ```
/// use countersign::CanonicalUrl;
///
/// let url = CanonicalUrl::parse("https://API.Dev.Kitopay.com:443/api/v1/merchants/payins/#top")?;
/// assert_eq!(url.as_str(), "https://api.dev.kitopay.com/api/v1/merchants/payins/");
/// assert_eq!(url.path(), "/api/v1/merchants/payins/");
/// # Ok::<(), countersign::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CanonicalUrl {
    text: String,
    /// Byte range of the path inside `text`.
    path_start: usize,
    path_end: usize,
}

impl CanonicalUrl {
    /// Canonicalises with [`TrailingSlash::Preserve`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`] with [`UrlRule::Syntax`] or [`UrlRule::Relative`] when the
    /// text is not an absolute URL, [`UrlRule::Scheme`] for a scheme other than http(s),
    /// [`UrlRule::Credentials`] for `user:password@`.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, ErrorKind, UrlRule};
    ///
    /// assert_eq!(CanonicalUrl::parse("https://example.com")?.as_str(), "https://example.com/");
    /// let err = CanonicalUrl::parse("/relative/path").unwrap_err();
    /// assert_eq!(err.kind(), &ErrorKind::InvalidUrl(UrlRule::Relative));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::parse_with(input, TrailingSlash::Preserve)
    }

    /// Canonicalises with the given trailing-slash policy.
    ///
    /// # Errors
    ///
    /// As [`CanonicalUrl::parse`].
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, TrailingSlash};
    ///
    /// let url = CanonicalUrl::parse_with("https://example.com/a//", TrailingSlash::Strip)?;
    /// assert_eq!(url.as_str(), "https://example.com/a");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    pub fn parse_with(input: &str, policy: TrailingSlash) -> Result<Self, Error> {
        let mut url = match fast_path(input.as_bytes()) {
            Some((path_start, path_end)) => CanonicalUrl {
                text: input.to_owned(),
                path_start,
                path_end,
            },
            None => Self::parse_slow(input)?,
        };
        url.apply(policy);
        Ok(url)
    }

    fn parse_slow(input: &str) -> Result<Self, Error> {
        let mut url = match url::Url::parse(input) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                return err(ErrorKind::InvalidUrl(UrlRule::Relative));
            }
            Err(_) => return err(ErrorKind::InvalidUrl(UrlRule::Syntax)),
        };
        if !matches!(url.scheme(), "http" | "https") {
            return err(ErrorKind::InvalidUrl(UrlRule::Scheme));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return err(ErrorKind::InvalidUrl(UrlRule::Credentials));
        }
        url.set_fragment(None);
        if url.query() == Some("") {
            url.set_query(None);
        }
        let path_start = url[..url::Position::BeforePath].len();
        let path_end = url[..url::Position::AfterPath].len();
        Ok(CanonicalUrl {
            text: url.into(),
            path_start,
            path_end,
        })
    }

    fn apply(&mut self, policy: TrailingSlash) {
        let path = &self.text[self.path_start..self.path_end];
        match policy {
            TrailingSlash::Preserve => {}
            TrailingSlash::Strip => {
                let kept = path.trim_end_matches('/').len().max(1);
                if kept < path.len() {
                    let cut = self.path_start + kept;
                    self.text.replace_range(cut..self.path_end, "");
                    self.path_end = cut;
                }
            }
            TrailingSlash::Require => {
                if !path.ends_with('/') {
                    self.text.insert(self.path_end, '/');
                    self.path_end += 1;
                }
            }
        }
    }

    /// The canonical URL: exactly the bytes signed and sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::CanonicalUrl;
    ///
    /// assert_eq!(CanonicalUrl::parse("http://example.com:80/a?")?.as_str(), "http://example.com/a");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The path (starts with `/`).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::CanonicalUrl;
    ///
    /// assert_eq!(CanonicalUrl::parse("https://example.com/a/b?x=1")?.path(), "/a/b");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn path(&self) -> &str {
        &self.text[self.path_start..self.path_end]
    }

    /// The query without its `?`, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::CanonicalUrl;
    ///
    /// assert_eq!(CanonicalUrl::parse("https://example.com/a?b=1&a=2")?.query(), Some("b=1&a=2"));
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.text[self.path_end..].strip_prefix('?')
    }

    /// The same URL under another trailing-slash policy (no re-parse).
    ///
    /// # Examples
    ///
    /// ```
    /// use countersign::{CanonicalUrl, TrailingSlash};
    ///
    /// let url = CanonicalUrl::parse("https://example.com/a/")?;
    /// assert_eq!(url.with_policy(TrailingSlash::Strip).as_str(), "https://example.com/a");
    /// # Ok::<(), countersign::Error>(())
    /// ```
    #[must_use]
    pub fn with_policy(&self, policy: TrailingSlash) -> Self {
        let mut url = self.clone();
        url.apply(policy);
        url
    }

    /// The URL with its trailing slash toggled, as three pieces to concatenate (no
    /// allocation): a path ending in `/` loses its trailing slashes, any other gains one.
    /// `None` for the root path, which has no other form.
    pub(crate) fn toggled_slash(&self) -> Option<[&str; 3]> {
        let path = self.path();
        if path == "/" {
            return None;
        }
        let rest = &self.text[self.path_end..];
        if path.ends_with('/') {
            let kept = path.trim_end_matches('/').len().max(1);
            Some([&self.text[..self.path_start + kept], "", rest])
        } else {
            Some([&self.text[..self.path_end], "/", rest])
        }
    }
}

impl fmt::Display for CanonicalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.text)
    }
}

impl fmt::Debug for CanonicalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CanonicalUrl").field(&self.text).finish()
    }
}

impl AsRef<str> for CanonicalUrl {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl FromStr for CanonicalUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        CanonicalUrl::parse(s)
    }
}

impl TryFrom<&str> for CanonicalUrl {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self, Error> {
        CanonicalUrl::parse(s)
    }
}

impl From<CanonicalUrl> for String {
    fn from(url: CanonicalUrl) -> String {
        url.text
    }
}

/// Recognises input that the WHATWG parser would serialise unchanged, in one pass, and
/// returns the path's byte range. Deliberately conservative: `None` only means "let the full
/// parser decide", never "invalid".
///
/// Accepted shape: `http://` or `https://` in lowercase; a host of lowercase ASCII DNS labels
/// (`a-z0-9-`, none empty, none starting `xn--`, the last starting with a letter so it cannot
/// be read as an IPv4 number); an optional port that is not the scheme's default and has no
/// leading zero; a path that starts with `/`, has no `.`/`..` segment and no `%2e`, and uses
/// only characters the path serialiser keeps; an optional non-empty query of characters the
/// query serialiser keeps (not `'`, which http(s) queries encode); no fragment.
pub(crate) fn fast_path(b: &[u8]) -> Option<(usize, usize)> {
    let (mut i, default_port) = if b.starts_with(b"https://") {
        (8, &b"443"[..])
    } else if b.starts_with(b"http://") {
        (7, &b"80"[..])
    } else {
        return None;
    };

    // Host: lowercase LDH labels.
    let mut label_start = i;
    loop {
        match b.get(i) {
            Some(b'a'..=b'z' | b'0'..=b'9' | b'-') => i += 1,
            Some(b'.') => {
                if i == label_start || b.get(label_start..label_start + 4) == Some(b"xn--") {
                    return None;
                }
                i += 1;
                label_start = i;
            }
            Some(b':' | b'/') => break,
            _ => return None,
        }
    }
    // The last label must start with a letter, so the host cannot be read as an IPv4 number.
    if i == label_start
        || b.get(label_start..label_start + 4) == Some(b"xn--")
        || !b.get(label_start).is_some_and(u8::is_ascii_lowercase)
    {
        return None;
    }

    // Port.
    if b.get(i) == Some(&b':') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let port = &b[start..i];
        if port.is_empty() || port.len() > 5 || port[0] == b'0' || port == default_port {
            return None;
        }
        if port.len() == 5 && port > &b"65535"[..] {
            return None;
        }
        if b.get(i) != Some(&b'/') {
            return None;
        }
    }

    // Path.
    let path_start = i;
    let mut seg_start = i + 1;
    loop {
        match b.get(i) {
            Some(b'/') => {
                if is_dot_segment(&b[seg_start.min(i)..i]) {
                    return None;
                }
                seg_start = i + 1;
                i += 1;
            }
            Some(b'%') => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                    || matches!(b.get(i + 1..i + 3), Some(b"2e" | b"2E"))
                {
                    return None;
                }
                i += 3;
            }
            Some(&c) if is_kept(c) => i += 1,
            Some(b'?') | None => break,
            _ => return None,
        }
    }
    if is_dot_segment(&b[seg_start.min(i)..i]) {
        return None;
    }
    let path_end = i;

    // Query.
    if b.get(i) == Some(&b'?') {
        i += 1;
        if i == b.len() {
            return None; // an empty query is dropped: let the parser do it
        }
        while i < b.len() {
            match b[i] {
                b'%' => {
                    if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                    {
                        return None;
                    }
                    i += 3;
                }
                b'\'' => return None,
                b'?' => i += 1,
                c if is_kept(c) => i += 1,
                _ => return None,
            }
        }
    }
    Some((path_start, path_end))
}

/// Characters both the path and the query serialisers leave alone (RFC 3986 unreserved and
/// sub-delims, `:`, `@`, `/`), which are also safe in every shape of WHATWG URL.
fn is_kept(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

fn is_dot_segment(seg: &[u8]) -> bool {
    seg == b"." || seg == b".."
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn fast_path_accepts_only_what_the_parser_keeps() {
        for s in [
            "https://api.dev.kitopay.com/api/v1/merchants/payins/",
            "https://example.com:8443/a?x=1&y=2",
            "http://a-b.c1.example/%7Euser/x;y=z?q=a/b?c",
            "https://example.com:65535/",
            "https://example.com:10000/",
        ] {
            assert!(fast_path(s.as_bytes()).is_some(), "{s}");
            assert_eq!(url::Url::parse(s).unwrap().as_str(), s);
        }
        for s in [
            "https://example.com",
            "https://Example.com/",
            "https://example.com:443/",
            "https://example.com:0443/",
            "https://1.2.3.4/",
            "https://example.123/",
            "https://xn--bcher-kva.example/",
            "https://example.com/a/./b",
            "https://example.com/a/..",
            "https://example.com/%2e/",
            "https://example.com/a?",
            "https://example.com/a?it's",
            "https://example.com/a#x",
            "https://example.com/a b",
            "https://u@example.com/",
            "https://example..com/",
            "https://example.com:123456/",
            "https://example.com:65536/",
            "https://a.xn--zzzz/",
        ] {
            assert!(fast_path(s.as_bytes()).is_none(), "{s}");
        }
    }

    /// Every input the fast path accepts must be exactly what the WHATWG parser serialises,
    /// with the path where the fast path says: checked for every printable ASCII byte (and
    /// a non-ASCII one) at every position of URLs shaped to reach each branch (host labels,
    /// ports, dot segments, escapes in path and query).
    #[test]
    fn fast_path_agrees_with_the_parser_on_every_single_byte_variant() {
        let templates = [
            "https://api.dev.kitopay.com/api/v1/merchants/payins/",
            "http://a-b.c1.example:8080/x/%41y/z?q=%7E&r=a/b",
            "https://e.com:65535/a.b/..c/.d/%2f?%zz=1",
            "http://x.yz:9/./?a",
            "https://xn--zz.ab/x",
            "https://a.xn--zzzz/x",
        ];
        let mut accepted = 0;
        for template in templates {
            let bytes = template.as_bytes();
            for position in 0..=bytes.len() {
                for replacement in (0x20u8..0x7f)
                    .map(|c| vec![c])
                    .chain([vec![0xc3, 0xa9], vec![]])
                {
                    let mut text = bytes[..position.min(bytes.len())].to_vec();
                    text.extend_from_slice(&replacement);
                    text.extend_from_slice(&bytes[(position + 1).min(bytes.len())..]);
                    let Ok(text) = String::from_utf8(text) else {
                        continue;
                    };
                    let Some((start, end)) = fast_path(text.as_bytes()) else {
                        continue;
                    };
                    accepted += 1;
                    let parsed = url::Url::parse(&text)
                        .unwrap_or_else(|e| panic!("fast path accepted {text:?}, the parser: {e}"));
                    assert_eq!(
                        parsed.as_str(),
                        text,
                        "fast path accepted a non-canonical {text:?}"
                    );
                    assert_eq!(parsed.fragment(), None, "{text:?}");
                    assert_ne!(parsed.query(), Some(""), "{text:?}");
                    assert_eq!(&text[start..end], parsed.path(), "{text:?}");
                }
            }
        }
        // The fast path is also the fast one: most variants of canonical URLs stay on it.
        assert!(
            accepted > 5_000,
            "only {accepted} variants took the fast path"
        );
    }

    #[test]
    fn a_user_name_alone_or_a_password_alone_is_credentials() {
        for text in [
            "https://u@example.com/",
            "https://:pw@example.com/",
            "https://u:pw@example.com/",
        ] {
            assert_eq!(
                CanonicalUrl::parse(text).unwrap_err().into_kind(),
                ErrorKind::InvalidUrl(UrlRule::Credentials),
                "{text}"
            );
        }
    }

    #[test]
    fn names_and_conversions() {
        assert_eq!(TrailingSlash::Preserve.as_str(), "preserve");
        assert_eq!(TrailingSlash::Strip.as_str(), "strip");
        assert_eq!(TrailingSlash::Require.as_str(), "require");
        let text = "https://e.com/a?q=1";
        let url = CanonicalUrl::parse(text).unwrap();
        assert_eq!(url.query(), Some("q=1"));
        assert_eq!(
            CanonicalUrl::parse("https://e.com/a").unwrap().query(),
            None
        );
        assert_eq!(url.to_string(), text);
        assert_eq!(format!("{url:?}"), format!("CanonicalUrl({text:?})"));
        assert_eq!(AsRef::<str>::as_ref(&url), text);
        assert_eq!(String::from(url), text);
    }

    #[test]
    fn toggled_slash_pieces() {
        let u = CanonicalUrl::parse("https://e.com/a//?q=1").unwrap();
        assert_eq!(u.toggled_slash().unwrap().concat(), "https://e.com/a?q=1");
        let u = CanonicalUrl::parse("https://e.com/a?q=1").unwrap();
        assert_eq!(u.toggled_slash().unwrap().concat(), "https://e.com/a/?q=1");
        assert!(
            CanonicalUrl::parse("https://e.com/")
                .unwrap()
                .toggled_slash()
                .is_none()
        );
    }
}
