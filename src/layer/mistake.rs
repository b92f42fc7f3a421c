//! Naming the likely mistake behind a refused signature: the `hypothesis` field of the
//! layer's refusal event, found by a bounded search of the cheap, common mistakes.
//!
//! A slash mistake and a tampered body are both a signature mismatch; the log line says
//! which one is likely. The search tries, in order, only where the scheme signs the part
//! concerned: the URL's other trailing-slash form; the body with a trailing newline added
//! or removed; the JSON body minified or pretty-printed (2-space indent, as
//! `JSON.stringify(v, null, 2)` and `serde_json::to_vec_pretty` write it). Each variant is
//! laid out by the scheme's one layout function and MACed with each key; a hypothesis is
//! named only if the signature verifies under it. Its id is the one
//! `countersign::diagnose::Hypothesis::id` gives (`trailing_slash_added`, ...); `none` when
//! no cheap mistake explains the mismatch (a wrong secret, a tampered body, or a mistake
//! only `countersign diagnose` tries); `not_searched` when the search was not made.
//!
//! The cost is bounded per refusal and overall, so a flood of forged requests cannot make
//! it expensive: bodies over [`MAX_BODY`] are not searched; at most [`MAX_MACS`] MACs
//! (variants × keys) per refusal; and a token bucket shared by every clone of a
//! [`WebhookAuth`] allows [`DEFAULT_DIAGNOSIS_RATE`] searches a second (in bursts of as
//! many; [`WebhookAuth::with_diagnosis_rate`]). Nothing is searched unless the refusal event
//! is enabled (`WARN` for target `countersign`). The signature, the secret and the body are
//! never logged: only the hypothesis id.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::message::{Inputs, StringToSign};
use crate::scheme::MAX_VALUES;
use crate::signature::Candidates;
use crate::url::CanonicalUrl;

use super::auth::WebhookAuth;
use super::url::received_url;

/// The default number of refused signatures a [`WebhookAuth`] searches for the likely
/// mistake, per second (and in one burst): 10.
pub const DEFAULT_DIAGNOSIS_RATE: u32 = 10;

/// Bodies larger than this (16 KiB) are not searched: the search lays a body out again for
/// each body variant, and re-formats it as JSON.
pub(super) const MAX_BODY: usize = 16 << 10;

/// The most MACs one search computes (variants × keys): 16. A key ring so large that the
/// variants would need more is not searched.
pub(super) const MAX_MACS: usize = 16;

/// The search was not made (over budget, a large body, many keys, or turned off).
pub(super) const NOT_SEARCHED: &str = "not_searched";
/// No cheap mistake explains the mismatch.
pub(super) const NONE: &str = "none";

// The hypotheses tried, by `countersign::diagnose::Hypothesis` id.
const TRAILING_SLASH_ADDED: &str = "trailing_slash_added";
const TRAILING_SLASH_REMOVED: &str = "trailing_slash_removed";
const BODY_TRAILING_NEWLINE_ADDED: &str = "body_trailing_newline_added";
const BODY_TRAILING_NEWLINE_REMOVED: &str = "body_trailing_newline_removed";
const BODY_MINIFIED: &str = "body_minified";
const BODY_PRETTY_PRINTED: &str = "body_pretty_printed";

/// How many searches may start: a token bucket (the generic cell rate algorithm: one
/// atomic, the time the bucket is next empty), shared by every clone of a [`WebhookAuth`].
pub(super) struct Budget {
    rate: u32,
    start: Instant,
    /// Nanoseconds per token.
    interval: u64,
    /// Nanoseconds of tokens the bucket holds (`rate` tokens).
    burst: u64,
    /// When, in nanoseconds since `start`, the bucket would be empty of the tokens taken.
    empty_at: AtomicU64,
}

impl Budget {
    /// `rate` searches a second, in bursts of up to `rate`; none if `rate` is 0.
    pub(super) fn per_second(rate: u32) -> Self {
        let interval = match rate {
            0 => 0,
            rate => 1_000_000_000 / u64::from(rate),
        };
        Budget {
            rate,
            start: Instant::now(),
            interval,
            burst: interval.saturating_mul(u64::from(rate)),
            empty_at: AtomicU64::new(0),
        }
    }

    pub(super) fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes a token, if one is left.
    pub(super) fn take(&self) -> bool {
        if self.rate == 0 {
            return false;
        }
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut empty_at = self.empty_at.load(Ordering::Relaxed);
        loop {
            let next = empty_at.max(now).saturating_add(self.interval);
            if next - now > self.burst {
                return false;
            }
            match self.empty_at.compare_exchange_weak(
                empty_at,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => empty_at = seen,
            }
        }
    }
}

/// One hypothesis: the URL or the body the sender may have signed instead.
struct Variant<'a> {
    id: &'static str,
    url: Option<[&'a str; 3]>,
    body: Cow<'a, [u8]>,
}

impl WebhookAuth {
    /// The likely mistake behind a signature mismatch of this request: a hypothesis id,
    /// [`NONE`] or [`NOT_SEARCHED`].
    pub(super) fn likely_mistake(&self, parts: &http::request::Parts, body: &[u8]) -> &'static str {
        if body.len() > MAX_BODY || self.mistakes.rate() == 0 {
            return NOT_SEARCHED;
        }
        let received;
        let url = match self.url_from_host {
            Some(scheme) => {
                received = received_url(parts, scheme).ok();
                received.as_ref()
            }
            None => self.verifier.url(),
        };
        self.search(parts, body, url).unwrap_or(NOT_SEARCHED)
    }

    /// `None` when the search is not made.
    fn search(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        url: Option<&CanonicalUrl>,
    ) -> Option<&'static str> {
        let scheme = self.verifier.scheme();
        let header = |name: &str| only(parts, name);
        let mut candidates = Candidates::new();
        candidates
            .read(scheme.signature(), header(scheme.signature_header())?)
            .ok()?;
        // What the verifier laid out: the identity it checked against the header, the
        // timestamp's text, the request's method, the values' headers.
        let mut inputs = Inputs {
            identity: match scheme.identity_header() {
                Some(name) => Some(header(name)?),
                None => None,
            },
            timestamp: match scheme.timestamp_header() {
                Some(name) => header(name)?,
                None => &[],
            },
            method: Some(parts.method.as_str()),
            url: url.map(|url| [url.as_str(), "", ""]),
            body,
            values: [None; MAX_VALUES],
        };
        for (slot, spec) in inputs.values.iter_mut().zip(scheme.values()) {
            *slot = Some(header(spec.header_name()?)?);
        }

        // The bounds are checked, and the token taken, before any variant is made: a
        // refusal that is not searched costs a few comparisons.
        let url = scheme.signs_url().then_some(url).flatten();
        let most = most_variants(url, body, scheme.signs_body());
        if most == 0 {
            return Some(NONE);
        }
        let keys = self.verifier.keys();
        let keys = keys.read();
        if keys.len().saturating_mul(most) > MAX_MACS || !self.mistakes.take() {
            return None;
        }
        let variants = variants(url, body, scheme.signs_body());
        for variant in &variants {
            let inputs = Inputs {
                url: variant.url.or(inputs.url),
                body: &variant.body,
                ..inputs
            };
            let Ok(message) = StringToSign::layout(scheme, &inputs) else {
                continue;
            };
            for (_, key) in keys.iter() {
                if candidates.matches(&message.sign(key)) {
                    return Some(variant.id);
                }
            }
        }
        Some(NONE)
    }
}

/// The value of a header the request carries exactly once.
fn only<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a [u8]> {
    let mut values = parts.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value.as_bytes()),
        _ => None,
    }
}

/// How many variants [`variants`] makes at most, without making them.
fn most_variants(url: Option<&CanonicalUrl>, body: &[u8], signs_body: bool) -> usize {
    let slash = usize::from(url.and_then(CanonicalUrl::toggled_slash).is_some());
    let json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    let body = match signs_body {
        true => 1 + usize::from(body.ends_with(b"\n")) + 2 * usize::from(json),
        false => 0,
    };
    slash + body
}

/// The hypotheses that apply, cheapest first: the URL's other trailing-slash form (where
/// the scheme signs the URL), then the body's (where it signs the body).
fn variants<'a>(
    url: Option<&'a CanonicalUrl>,
    body: &'a [u8],
    signs_body: bool,
) -> Vec<Variant<'a>> {
    let mut out = Vec::new();
    if let Some(pieces) = url.and_then(CanonicalUrl::toggled_slash) {
        let id = match url.is_some_and(|url| url.path().ends_with('/')) {
            true => TRAILING_SLASH_REMOVED,
            false => TRAILING_SLASH_ADDED,
        };
        out.push(Variant {
            id,
            url: Some(pieces),
            body: Cow::Borrowed(body),
        });
    }
    if !signs_body {
        return out;
    }
    let mut with_newline = body.to_vec();
    with_newline.push(b'\n');
    out.push(Variant {
        id: BODY_TRAILING_NEWLINE_ADDED,
        url: None,
        body: Cow::Owned(with_newline),
    });
    if let Some(trimmed) = body.strip_suffix(b"\n") {
        out.push(Variant {
            id: BODY_TRAILING_NEWLINE_REMOVED,
            url: None,
            body: Cow::Borrowed(trimmed.strip_suffix(b"\r").unwrap_or(trimmed)),
        });
    }
    for (id, json) in [
        (BODY_MINIFIED, minified(body)),
        (BODY_PRETTY_PRINTED, pretty(body)),
    ] {
        if let Some(json) = json.filter(|json| json.as_slice() != body) {
            out.push(Variant {
                id,
                url: None,
                body: Cow::Owned(json),
            });
        }
    }
    out
}

/// A JSON object or array's tokens, whitespace outside strings dropped: `(byte, in a
/// string)`. `None` unless the text is an object or array whose brackets balance and whose
/// strings end (a cheap check, not a parser: a body that is not JSON gives a variant that
/// does not verify).
fn tokens(body: &[u8]) -> Option<impl Iterator<Item = (u8, bool)> + '_> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if !matches!(first, b'{' | b'[') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'{' | b'[') => depth += 1,
            (false, b'}' | b']') => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    if depth != 0 || in_string {
        return None;
    }
    let (mut in_string, mut escaped) = (false, false);
    Some(body.iter().filter_map(move |&b| {
        let inside = in_string;
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (_, b'"') => in_string = !in_string,
            _ => {}
        }
        (inside || b == b'"' || !b.is_ascii_whitespace()).then_some((b, inside))
    }))
}

/// The JSON text without whitespace between tokens (`JSON.stringify(v)`).
fn minified(body: &[u8]) -> Option<Vec<u8>> {
    Some(tokens(body)?.map(|(b, _)| b).collect())
}

/// The JSON text pretty-printed with a 2-space indent, as `JSON.stringify(v, null, 2)` and
/// `serde_json::to_vec_pretty` write it: `{}` and `[]` stay empty, `": "` after keys.
fn pretty(body: &[u8]) -> Option<Vec<u8>> {
    let tokens: Vec<(u8, bool)> = tokens(body)?.collect();
    let mut out = Vec::with_capacity(body.len() * 2);
    let mut depth = 0usize;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(core::iter::repeat_n(b' ', 2 * depth));
    };
    let mut i = 0;
    while let Some(&(b, inside)) = tokens.get(i) {
        i += 1;
        if inside {
            out.push(b);
            continue;
        }
        match b {
            b'{' | b'[' => {
                out.push(b);
                if matches!(tokens.get(i), Some((b'}' | b']', false))) {
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            b'}' | b']' => {
                if !matches!(out.last(), Some(b'{' | b'[')) {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn json_is_reformatted_as_serde_json_and_javascript_write_it() {
        for text in [
            r#"{"a":1,"b":[1,2,{"c":null}],"d":{},"e":[],"f":"x, y: {z} [\"q\\\"]"}"#,
            r#"[{"id":"6956d4fc","status":"new"},true,false,-1.5]"#,
            r#"{"nested":{"deeper":{"deepest":[[],[{}]]}}}"#,
        ] {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let pretty_text = serde_json::to_vec_pretty(&value).unwrap();
            assert_eq!(
                String::from_utf8(pretty(text.as_bytes()).unwrap()).unwrap(),
                String::from_utf8(pretty_text.clone()).unwrap()
            );
            assert_eq!(minified(&pretty_text).unwrap(), text.as_bytes());
            assert_eq!(pretty(&pretty_text).unwrap(), pretty_text, "idempotent");
        }
    }

    #[test]
    fn text_that_is_not_a_json_object_or_array_is_not_reformatted() {
        for text in [
            "",
            "  ",
            "42",
            "\"a\"",
            "{\"a\":1",
            "{\"a\":\"1}",
            "[1]]",
            "x{}",
        ] {
            assert_eq!(minified(text.as_bytes()), None, "{text:?}");
            assert_eq!(pretty(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn the_bound_on_variants_is_never_below_the_variants_made() {
        let with_slash = CanonicalUrl::parse("https://shop.example.com/hooks/").unwrap();
        let without = CanonicalUrl::parse("https://shop.example.com/hooks").unwrap();
        let root = CanonicalUrl::parse("https://shop.example.com/").unwrap();
        for url in [None, Some(&with_slash), Some(&without), Some(&root)] {
            for body in ["", "\n", "{}", "{\"a\":1}\n", " [1, 2]", "[1", "text\r\n"] {
                for signs_body in [false, true] {
                    let made = variants(url, body.as_bytes(), signs_body).len();
                    let most = most_variants(url, body.as_bytes(), signs_body);
                    assert!(
                        made <= most && most <= 5,
                        "{url:?} {body:?}: {made} > {most}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_budget_allows_a_burst_then_the_rate() {
        let budget = Budget::per_second(3);
        assert_eq!((0..10).filter(|_| budget.take()).count(), 3, "a burst of 3");
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(budget.take(), "one more after a third of a second");
        assert!(!Budget::per_second(0).take(), "0 turns the search off");
    }

    #[cfg(feature = "diagnose")]
    #[test]
    fn ids_are_diagnose_hypothesis_ids() {
        use crate::diagnose::Hypothesis;
        for (id, hypothesis) in [
            (TRAILING_SLASH_ADDED, Hypothesis::TrailingSlashAdded),
            (TRAILING_SLASH_REMOVED, Hypothesis::TrailingSlashRemoved),
            (
                BODY_TRAILING_NEWLINE_ADDED,
                Hypothesis::BodyTrailingNewlineAdded,
            ),
            (
                BODY_TRAILING_NEWLINE_REMOVED,
                Hypothesis::BodyTrailingNewlineRemoved,
            ),
            (BODY_MINIFIED, Hypothesis::BodyMinified),
            (BODY_PRETTY_PRINTED, Hypothesis::BodyPrettyPrinted),
        ] {
            assert_eq!(id, hypothesis.id());
        }
    }
}
