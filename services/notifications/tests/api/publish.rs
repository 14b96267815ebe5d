//! Publish: suite services only, their own events only, checked, idempotent by event id.

use tonic::Code;
use zvv_proto::notifications::v1 as pb;

use crate::helpers::*;

#[tokio::test]
async fn only_suite_services_publish_and_only_their_own_events() {
    let app = TestApp::spawn().await;
    let status = expect_err(
        app.client(SCHOOL)
            .publish(pb::PublishRequest {
                event: Some(match_event("CLIENT", &["school-1"])),
            })
            .await,
        "a school publishes",
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    // intake cannot publish as signalling
    let status = expect_err(
        app.service("intake")
            .publish(pb::PublishRequest {
                event: Some(match_event("CLIENT", &["school-1"])),
            })
            .await,
        "intake publishes a signalling event",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("own events"), "{status:?}");
    assert_eq!(app.audited("Publish", "PERMISSION_DENIED").await, 2);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn events_are_checked_field_by_field() {
    let app = TestApp::spawn().await;
    let mut service = app.service("signalling");
    type Change = Box<dyn Fn(&mut zvv_proto::events::v1::Event)>;
    let cases: Vec<(&str, Change)> = vec![
        ("event.event_id", Box::new(|e| e.event_id = "nope".into())),
        (
            "event.channel",
            Box::new(|e| e.channel = "signalling.secrets".into()),
        ),
        ("event.occurred_at", Box::new(|e| e.occurred_at = None)),
        ("event.action", Box::new(|e| e.action = "Created!".into())),
        (
            "event.attributes[\"colour\"]",
            Box::new(|e| {
                e.attributes.insert("colour".into(), "RED".into());
            }),
        ),
        (
            // the event's action is its own field; no attribute may take its key
            "event.attributes[\"action\"]",
            Box::new(|e| {
                e.attributes.insert("action".into(), "CREATED".into());
            }),
        ),
        (
            "event.attributes[\"kind\"]",
            Box::new(|e| {
                // a BSN-shaped value is refused, and not echoed
                e.attributes.insert("kind".into(), "123456782".into());
            }),
        ),
        (
            "event.attributes[\"kind\"]",
            Box::new(|e| {
                e.attributes.insert("kind".into(), "Jan Jansen".into());
            }),
        ),
        (
            "event.audience.municipality_codes[0]",
            Box::new(|e| e.audience.as_mut().unwrap().municipality_codes = vec!["0363".into()]),
        ),
        (
            "event.trace_parent",
            Box::new(|e| e.trace_parent = "x".into()),
        ),
    ];
    for (field, change) in cases {
        let mut e = match_event("CLIENT", &["school-1"]);
        change(&mut e);
        let status = expect_err(
            service.publish(pb::PublishRequest { event: Some(e) }).await,
            field,
        );
        assert_invalid(&status, field, field);
        assert!(!status.message().contains("123456782"), "{status:?}");
    }
    let status = expect_err(
        service.publish(pb::PublishRequest { event: None }).await,
        "no event",
    );
    assert_invalid(&status, "event", "no event");
}

#[tokio::test]
async fn a_publish_is_idempotent_by_event_id() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    subscribe_inbox(&mut school, vec![channel("signalling.matches", &[])]).await;
    let e = match_event("CLIENT", &["school-1"]);
    let first = publish(&app, e.clone()).await;
    assert!(!first.duplicate);
    assert_eq!(first.routed, 1);
    let again = publish(&app, e.clone()).await;
    assert!(again.duplicate);
    assert_eq!(again.routed, 0);
    let items = inbox_with(&mut school, 1).await;
    assert_eq!(items.len(), 1, "one item, however often it is published");
    assert_eq!(app.audited("Publish", "OK").await, 2);
}
