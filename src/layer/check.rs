//! Verification of a buffered request, and the one event that says why it was refused.

use std::time::Instant;

use crate::error::{Error, ErrorKind};
use crate::scheme::Scheme;
use crate::time::Timestamp;
use crate::verify::{ReceivedRequest, Verified};

use super::answer::Answer;
use super::auth::WebhookAuth;
use super::delivery::age_ms;
use super::mistake::NOT_SEARCHED;
use super::url::received_url;

impl WebhookAuth {
    /// Verifies a buffered request at `now`. A refusal is logged (`WARN`: the reason, the
    /// timestamp's age and, for a signature mismatch, the likely mistake), counted, and
    /// answered `401`.
    pub(super) fn check(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: Timestamp,
        started: Instant,
    ) -> Result<Verified, Answer> {
        match self.verify(parts, body, now) {
            Ok(verified) => Ok(verified),
            Err(e) => {
                let scheme = self.verifier.scheme();
                let age_ms = header_age(parts, scheme, now);
                // Searched only if the event is recorded (the search has a cost, bounded).
                let hypothesis = (e.kind() == &ErrorKind::SignatureMismatch).then(|| {
                    match tracing::enabled!(target: "countersign", tracing::Level::WARN) {
                        true => self.likely_mistake(parts, body),
                        false => NOT_SEARCHED,
                    }
                });
                tracing::warn!(target: "countersign", %scheme, outcome = "refused", reason = e.code(), age_ms, hypothesis, error = %e, "webhook refused");
                self.count(Answer::Unauthorized.outcome(), started);
                Err(Answer::Unauthorized)
            }
        }
    }

    fn verify(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Verified, Error> {
        let received =
            ReceivedRequest::new(&parts.headers, body).with_method(parts.method.as_str());
        match self.url_from_host {
            Some(scheme) => {
                let url = received_url(parts, scheme)?;
                self.verifier.verify_at(&received.with_url(&url), now)
            }
            None => self.verifier.verify_at(&received, now),
        }
    }
}

/// The age of the request's timestamp header, if there is exactly one and it parses.
fn header_age(parts: &http::request::Parts, scheme: &Scheme, now: Timestamp) -> Option<i64> {
    let mut values = parts.headers.get_all(scheme.timestamp_header()?).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => {
            let at = scheme.parse_timestamp(value.to_str().ok()?).ok()?;
            Some(age_ms(now, at))
        }
        _ => None,
    }
}
