//! The layer's own answers: status, body and `Retry-After` of every request it does not
//! pass on.

use core::time::Duration;

use http::{HeaderValue, Response, StatusCode};

/// The default `Retry-After` on `409` and `503`: 5 s.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The layer's own answer to a request it does not pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Unauthorized,
    TooLarge,
    BadBody,
    Timeout,
    Duplicate,
    InFlight,
    Unavailable,
}

impl Answer {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Answer::Unauthorized => StatusCode::UNAUTHORIZED,
            Answer::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Answer::BadBody => StatusCode::BAD_REQUEST,
            Answer::Timeout => StatusCode::REQUEST_TIMEOUT,
            Answer::Duplicate => StatusCode::OK,
            Answer::InFlight => StatusCode::CONFLICT,
            Answer::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn body(self) -> &'static str {
        match self {
            Answer::Unauthorized => "unauthorized\n",
            Answer::TooLarge => "payload too large\n",
            Answer::BadBody => "bad request\n",
            Answer::Timeout => "request body timeout\n",
            Answer::Duplicate => "duplicate delivery: already processed\n",
            Answer::InFlight => "duplicate delivery: still being processed, retry later\n",
            Answer::Unavailable => "replay protection unavailable, retry later\n",
        }
    }

    /// The outcome as logged and counted.
    pub(crate) fn outcome(self) -> &'static str {
        match self {
            Answer::Unauthorized => "refused",
            Answer::TooLarge => "too_large",
            Answer::BadBody => "bad_body",
            Answer::Timeout => "timeout",
            Answer::Duplicate => "duplicate",
            Answer::InFlight => "in_flight",
            Answer::Unavailable => "unavailable",
        }
    }

    pub(super) fn response<B: From<&'static str>>(self, retry_after: Duration) -> Response<B> {
        let mut response = Response::new(B::from(self.body()));
        *response.status_mut() = self.status();
        if matches!(self, Answer::InFlight | Answer::Unavailable) {
            let secs = retry_after
                .as_secs()
                .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn retry_after_is_in_whole_seconds_rounded_up_and_at_least_one() {
        for (retry_after, header) in [
            (DEFAULT_RETRY_AFTER, "5"),
            (Duration::from_millis(2_500), "3"),
            (Duration::ZERO, "1"),
        ] {
            for answer in [Answer::InFlight, Answer::Unavailable] {
                let response: Response<String> = answer.response(retry_after);
                assert_eq!(response.headers()["retry-after"], header);
            }
        }
        let refused: Response<String> = Answer::Unauthorized.response(DEFAULT_RETRY_AFTER);
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().get("retry-after").is_none());
    }
}
