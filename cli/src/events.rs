//! Sample webhook bodies for `countersign send`: the shapes the library parses
//! (`kamiokash::WebhookEvent`, `kitopay::WebhookEvent`) and the payload shape the Standard
//! Webhooks specification recommends, with realistic data and fresh ids on every run, so a
//! handler that deduplicates by id sees a new event each time.

use countersign::Timestamp;
use serde_json::{Value, json};

/// Ids and references, different on every run (not secret, not for security: a sample's
/// ids only need to look real and not repeat).
struct Ids {
    state: u64,
}

impl Ids {
    fn new(now: Timestamp) -> Self {
        let nanos =
            u64::try_from(now.since_epoch().as_nanos() % u128::from(u64::MAX)).unwrap_or_default();
        Ids {
            state: nanos ^ (u64::from(std::process::id()) << 40),
        }
    }

    /// Another stream than [`Ids::new`]'s for the same instant (a message id apart from the
    /// ids in its body).
    fn salted(now: Timestamp, salt: u64) -> Self {
        let mut ids = Ids::new(now);
        ids.state ^= salt;
        ids
    }

    /// `count` characters of `[0-9A-Za-z]`.
    fn base62(&mut self, count: usize) -> String {
        const ALPHABET: &[u8; 62] =
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..count)
            .map(|_| {
                let i = usize::try_from(self.next() % 62).unwrap_or_default();
                char::from(ALPHABET[i])
            })
            .collect()
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `prefix` and 12 lowercase hex digits, e.g. `w_3f9a0c1d7e2b`.
    fn id(&mut self, prefix: &str) -> String {
        format!("{prefix}{:012x}", self.next() >> 16)
    }

    /// A version-4 UUID.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// The body of a KamioKash webhook delivery of type `event` (one of
/// `countersign::kamiokash::WEBHOOK_EVENT_TYPES`): `{"type": ..., "data": {...}}`, minified.
pub(crate) fn kamiokash(event: &str, now: Timestamp) -> Vec<u8> {
    let mut ids = Ids::new(now);
    let at = now.to_iso_text();
    let at = at.as_str();
    let member = ids.id("mem_");
    let wallet = ids.id("w_");
    let data = match event {
        "member.new" => json!({
            "id": member,
            "email": "ada.lovelace@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "createdAt": at,
        }),
        "wallet.new" => json!({
            "id": wallet,
            "memberId": member,
            "currency": "EUR",
            "balance": 0,
            "createdAt": at,
        }),
        "transaction.successful" => json!({
            "id": ids.id("txn_"),
            "walletId": wallet,
            "type": "top_up",
            "amount": 500,
            "currency": "EUR",
            "balanceAfter": 1250,
            "createdAt": at,
        }),
        "order.successful" => json!({
            "id": ids.id("ord_"),
            "memberId": member,
            "walletId": wallet,
            "amount": 2450,
            "currency": "EUR",
            "items": [
                {"sku": "COFFEE-BEANS-250G", "quantity": 2, "unitAmount": 1025},
                {"sku": "OAT-MILK-1L", "quantity": 1, "unitAmount": 400},
            ],
            "createdAt": at,
        }),
        // voucher_code.used, and any type added later: a generic event still parses.
        _ => json!({
            "code": "WELCOME-5OFF",
            "voucherId": ids.id("vch_"),
            "memberId": member,
            "orderId": ids.id("ord_"),
            "discountAmount": 500,
            "currency": "EUR",
            "usedAt": at,
        }),
    };
    to_bytes(&json!({"type": event, "data": data}))
}

/// The body of a Kitopay webhook delivery: `{"id", "reference_id", "status"}`, minified.
pub(crate) fn kitopay(status: &str, now: Timestamp) -> Vec<u8> {
    let mut ids = Ids::new(now);
    let reference = format!("order-{:06}", ids.next() % 1_000_000);
    to_bytes(&json!({
        "id": ids.uuid(),
        "reference_id": reference,
        "status": status,
    }))
}

/// A fresh Standard Webhooks message id, e.g. `msg_p5jXN8AQM9LWM0D4loKWxJek`: `msg_` and 24
/// characters of `[0-9A-Za-z]`.
pub(crate) fn message_id(now: Timestamp) -> String {
    let mut ids = Ids::salted(now, 0x6d73_675f_6964_5f5f);
    format!("msg_{}", ids.base62(24))
}

/// The body of a Standard Webhooks delivery of type `event`, in the shape the specification
/// recommends: `{"type": ..., "timestamp": RFC 3339, "data": {...}}`, minified.
pub(crate) fn standard_webhooks(event: &str, now: Timestamp) -> Vec<u8> {
    let mut ids = Ids::new(now);
    let at = now.to_iso_text();
    // The object's id prefix from the event's first word: `invoice.paid` → `inv_…`.
    let prefix: String = event
        .split(['.', '_', ':'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(3)
        .collect::<String>()
        .to_ascii_lowercase();
    let prefix = if prefix.is_empty() {
        "obj".to_owned()
    } else {
        prefix
    };
    to_bytes(&json!({
        "type": event,
        "timestamp": at.as_str(),
        "data": {
            "id": ids.id(&format!("{prefix}_")),
            "amount": 2450,
            "currency": "EUR",
            "customer": ids.id("cus_"),
            "created_at": at.as_str(),
        },
    }))
}

fn to_bytes(value: &Value) -> Vec<u8> {
    // Serialising a `Value` fails only for non-string map keys, which it cannot hold.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_kamiokash_sample_parses_as_its_event_type() {
        let now = Timestamp::from_unix_millis(1_769_505_786_658).unwrap();
        for event in countersign::kamiokash::WEBHOOK_EVENT_TYPES {
            let body = kamiokash(event, now);
            let parsed: countersign::kamiokash::WebhookEvent =
                serde_json::from_slice(&body).unwrap();
            assert_eq!(parsed.event_type(), event);
            assert!(parsed.data().is_object());
        }
    }

    #[test]
    fn standard_webhooks_sample_has_the_recommended_shape() {
        let now = Timestamp::from_unix_millis(1_769_505_786_658).unwrap();
        let body: Value = serde_json::from_slice(&standard_webhooks("invoice.paid", now)).unwrap();
        assert_eq!(body["type"], "invoice.paid");
        assert_eq!(body["timestamp"], "2026-01-27T09:23:06.658Z");
        assert!(body["data"]["id"].as_str().unwrap().starts_with("inv_"));
        let id = message_id(now);
        assert_eq!(id.len(), 28, "{id}");
        assert!(id.starts_with("msg_"));
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        assert_ne!(
            message_id(now),
            message_id(Timestamp::from_unix_millis(1_769_505_786_659).unwrap())
        );
    }

    #[test]
    fn kitopay_sample_parses_with_a_uuid_id() {
        let now = Timestamp::from_unix_secs(1_601_234_567).unwrap();
        let body = kitopay("success", now);
        let parsed: countersign::kitopay::WebhookEvent = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.status, "success");
        let parts: Vec<usize> = parsed.id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{}", parsed.id);
        assert!(parsed.reference_id.starts_with("order-"));
    }
}
