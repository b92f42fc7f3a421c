//! The `metrics` feature: one counter increment and one latency sample per decision of the
//! tower layer, labelled by scheme and outcome. (Its own test binary: it installs the
//! process-wide recorder.)
#![cfg(all(feature = "metrics", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use countersign::claim::ReplayGuard;
use countersign::layer::VerifyLayer;
use countersign::{Clock, SystemClock};
use countersign_test_support::server::{auth, signed};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test]
async fn every_decision_is_counted_and_timed_by_scheme_and_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let service = VerifyLayer::new(auth(ReplayGuard::in_memory(10))).layer(service_fn(
        |_: http::Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::<Bytes>::from("processed")))
        },
    ));
    let headers = signed("{}", SystemClock.now());
    let request = || {
        let mut builder = http::Request::post("/hook");
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        builder.body(Full::<Bytes>::from("{}")).unwrap()
    };
    let unsigned = http::Request::post("/hook")
        .body(Full::<Bytes>::from("{}"))
        .unwrap();
    for request in [request(), request(), unsigned] {
        service.clone().oneshot(request).await.unwrap();
    }

    let mut counters = HashMap::new();
    let mut samples = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Histogram(values) => {
                samples.insert(name, values.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    let total = |outcome: &str| {
        counters
            .get(&format!(
                "countersign_verifications_total{{scheme=kamiokash-webhook,outcome={outcome}}}"
            ))
            .copied()
    };
    assert_eq!(total("accepted"), Some(1), "{counters:?}");
    assert_eq!(total("duplicate"), Some(1), "{counters:?}");
    assert_eq!(total("refused"), Some(1), "{counters:?}");
    let timed: usize = samples
        .iter()
        .filter(|(name, _)| {
            name.starts_with("countersign_verification_duration_seconds{scheme=kamiokash-webhook")
        })
        .map(|(_, n)| n)
        .sum();
    assert_eq!(timed, 3, "{samples:?}");
}
