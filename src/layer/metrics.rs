//! Metrics (feature `metrics`): a counter and a latency histogram per decision.

use std::time::Instant;

use super::auth::WebhookAuth;

impl WebhookAuth {
    /// Counts one decision and how long it took since the request arrived (feature
    /// `metrics`): `countersign_verifications_total{scheme, outcome}` and
    /// `countersign_verification_duration_seconds{scheme, outcome}`.
    pub(super) fn count(&self, outcome: &'static str, started: Instant) {
        #[cfg(feature = "metrics")]
        {
            let scheme = self.verifier.scheme().as_str();
            ::metrics::counter!("countersign_verifications_total", "scheme" => scheme, "outcome" => outcome)
                .increment(1);
            ::metrics::histogram!("countersign_verification_duration_seconds", "scheme" => scheme, "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (outcome, started);
    }
}
