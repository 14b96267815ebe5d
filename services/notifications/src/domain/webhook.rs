//! What a webhook receives: the ZGW Notificatie body (so that receivers written for Open
//! Notificaties work unchanged) and the Standard Webhooks headers that sign it.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::events::Event;

/// The prefix of a signing secret in its Standard Webhooks form.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: 32 random bytes.
pub fn new_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// The secret as it is handed out once: `whsec_` + base64.
pub fn secret_text(secret: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(secret))
}

/// The secret bytes of a `whsec_…` text (for receivers such as `zvv webhook-sink`).
pub fn parse_secret(text: &str) -> Result<Vec<u8>, &'static str> {
    let body = text
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .unwrap_or(text.trim());
    STANDARD
        .decode(body)
        .map_err(|_| "a signing secret is whsec_ followed by base64")
}

fn mac(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` (Standard Webhooks).
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// Whether one of the space-separated signatures of a `webhook-signature` header is the right
/// one (compared in constant time).
pub fn verify(secret: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split(' ').any(|candidate| {
        candidate
            .strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|given| {
                mac(secret, id, timestamp, body)
                    .verify_slice(&given)
                    .is_ok()
            })
    })
}

/// The ZGW `actie` for one of the suite's actions: the verbs of the Common Ground APIs.
pub fn zgw_action(action: &str) -> &'static str {
    match action {
        "registered" | "created" | "submitted" | "linked" | "opened" | "assigned" | "test" => {
            "create"
        }
        "expired" | "unlinked" | "destroyed" => "destroy",
        _ => "update",
    }
}

/// The URL of the resource an event is about: the suite's public base URL, the service, its
/// API version and the resource's collection, e.g. `<base>/signalling/v1/matches/<id>`.
pub fn resource_url(base_url: &str, event: &Event) -> String {
    let collection = event
        .channel
        .split_once('.')
        .map_or(event.channel.as_str(), |(_, c)| c);
    format!(
        "{}/{}/v1/{}/{}",
        base_url.trim_end_matches('/'),
        event.source,
        collection,
        event.resource_id
    )
}

/// The ZGW Notificatie body: `kanaal`, `hoofdObject`, `resource`, `resourceUrl`, `actie`,
/// `aanmaakdatum`, `kenmerken` (the event's attributes plus its exact action).
pub fn zgw_body(base_url: &str, event: &Event) -> serde_json::Value {
    let url = resource_url(base_url, event);
    let mut kenmerken: serde_json::Map<String, serde_json::Value> = event
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    kenmerken.insert(
        super::channels::ACTION_KEY.to_owned(),
        serde_json::Value::String(event.action.clone()),
    );
    serde_json::json!({
        "kanaal": event.channel,
        "hoofdObject": url,
        "resource": event.resource,
        "resourceUrl": url,
        "actie": zgw_action(&event.action),
        "aanmaakdatum": event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "kenmerken": kenmerken,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::domain::events::Audience;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // the test vector of the Standard Webhooks specification
        let secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bm90IGl0 {sig}")
        ));
        assert!(!verify(&secret, "msg_other", 1614265330, body, &sig));
        let fresh = new_secret();
        assert_eq!(parse_secret(&secret_text(&fresh)).unwrap(), fresh);
    }

    #[test]
    fn the_body_is_a_zgw_notificatie() {
        let event = Event {
            id: uuid::Uuid::nil(),
            source: "signalling".into(),
            channel: "signalling.matches".into(),
            resource: "match".into(),
            resource_id: "0191e3a4-0000-7000-8000-000000000001".into(),
            action: "created".into(),
            occurred_at: chrono::Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap(),
            attributes: BTreeMap::from([("kind".into(), "CLIENT".into())]),
            audience: Audience::default(),
            trace_parent: String::new(),
        };
        let body = zgw_body("http://127.0.0.1:50054/", &event);
        assert_eq!(body["kanaal"], "signalling.matches");
        assert_eq!(
            body["hoofdObject"],
            "http://127.0.0.1:50054/signalling/v1/matches/0191e3a4-0000-7000-8000-000000000001"
        );
        assert_eq!(body["resourceUrl"], body["hoofdObject"]);
        assert_eq!(body["resource"], "match");
        assert_eq!(body["actie"], "create");
        assert_eq!(body["aanmaakdatum"], "2026-12-03T10:00:00.000Z");
        assert_eq!(body["kenmerken"]["kind"], "CLIENT");
        assert_eq!(body["kenmerken"]["action"], "created");
    }

    #[test]
    fn actions_map_to_zgw_verbs() {
        for (action, actie) in [
            ("registered", "create"),
            ("opened", "create"),
            ("assigned", "create"),
            ("withdrawn", "update"),
            ("approaching", "update"),
            ("missed", "update"),
            ("destroyed", "destroy"),
        ] {
            assert_eq!(zgw_action(action), actie, "{action}");
        }
    }
}
