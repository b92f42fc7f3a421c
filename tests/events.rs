//! Typed webhook events: the five documented KamioKash types, unknown types kept with their
//! data, Kitopay status changes with unknown fields kept.
#![cfg(feature = "serde")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign::kamiokash::{WEBHOOK_EVENT_TYPES, WebhookEvent};
use serde_json::json;

#[test]
fn every_documented_kamiokash_type_has_a_variant_and_round_trips() {
    for event_type in WEBHOOK_EVENT_TYPES {
        let raw = json!({"type": event_type, "data": {"id": "x_1"}});
        let event: WebhookEvent = serde_json::from_value(raw.clone()).unwrap();
        assert!(
            !matches!(event, WebhookEvent::Unknown { .. }),
            "{event_type}"
        );
        assert_eq!(event.event_type(), event_type);
        assert_eq!(event.data()["id"], "x_1");
        assert_eq!(serde_json::to_value(&event).unwrap(), raw);
    }
}

#[test]
fn an_unknown_kamiokash_type_is_kept_not_rejected() {
    let raw = json!({"type": "points.expired", "data": {"points": 50}});
    let event: WebhookEvent = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(
        event,
        WebhookEvent::Unknown {
            event_type: "points.expired".into(),
            data: json!({"points": 50})
        }
    );
    assert_eq!(serde_json::to_value(&event).unwrap(), raw);
    // No data at all is null data, not an error; no type is an error.
    let bare: WebhookEvent = serde_json::from_str(r#"{"type":"wallet.new"}"#).unwrap();
    assert!(bare.data().is_null());
    assert!(serde_json::from_str::<WebhookEvent>(r#"{"data":{}}"#).is_err());
}

#[test]
fn kitopay_status_change_keeps_unknown_fields() {
    let body = r#"{"id":"6956d4fc-d7b7-4514-9759-c699fc029b25","reference_id":"id-in-merchant-system-485","status":"new","amount":{"value":"49.23"}}"#;
    let event: countersign::kitopay::WebhookEvent = serde_json::from_str(body).unwrap();
    assert_eq!(event.reference_id, "id-in-merchant-system-485");
    assert_eq!(event.extra["amount"]["value"], "49.23");
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        serde_json::from_str::<serde_json::Value>(body).unwrap()
    );
    assert!(serde_json::from_str::<countersign::kitopay::WebhookEvent>(r#"{"id":"1"}"#).is_err());
}
