//! The outbox: changes write events in their own transaction, with ids and codes only.

use serde_json::Value;

use crate::helpers::{BSN, TestApp, now};

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    event_type: String,
    ids: Value,
    codes: Value,
    occurred_at: chrono::DateTime<chrono::Utc>,
    published_at: Option<chrono::DateTime<chrono::Utc>>,
    event_id: uuid::Uuid,
}

#[tokio::test]
async fn register_and_link_write_events_with_ids_and_codes_only() {
    let app = TestApp::spawn().await;
    let parent_bsn = crate::helpers::valid_bsn(8);
    let child = app.register(BSN, "Sanne").await;
    let parent = app.register(&parent_bsn, "Marieke").await;
    app.link(&parent.subject_id, &child.subject_id).await;

    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT event_id, event_type, ids, codes, occurred_at, published_at \
         FROM intake.outbox ORDER BY occurred_at, event_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox");
    assert_eq!(events.len(), 3, "{events:?}");

    let registered: Vec<&EventRow> = events
        .iter()
        .filter(|e| e.event_type == "intake.subject.registered")
        .collect();
    assert_eq!(registered.len(), 2);
    let registered_ids: Vec<&str> = registered
        .iter()
        .map(|e| {
            e.ids["subject_id"]
                .as_str()
                .expect("subject_id is a string")
        })
        .collect();
    assert!(registered_ids.contains(&child.subject_id.as_str()));
    assert!(registered_ids.contains(&parent.subject_id.as_str()));
    for e in &registered {
        assert_eq!(e.codes["municipality_code"], "GM0363");
    }

    let linked = events
        .iter()
        .find(|e| e.event_type == "intake.relation.linked")
        .expect("linked event");
    assert_eq!(linked.ids["parent_subject_id"], parent.subject_id.as_str());
    assert_eq!(linked.ids["child_subject_id"], child.subject_id.as_str());
    assert_eq!(linked.codes["kind"], "PARENT");

    let mut distinct = std::collections::HashSet::new();
    for e in &events {
        assert!(distinct.insert(e.event_id), "event ids are unique");
        assert_eq!(e.occurred_at, now(), "stamped by the service clock");
        assert_eq!(e.published_at, None, "not published yet");
        let text = format!("{} {}", e.ids, e.codes);
        for secret in [BSN, parent_bsn.as_str(), "Sanne", "Marieke", "de Vries"] {
            assert!(
                !text.contains(secret),
                "event {} carries {secret:?}: {text}",
                e.event_type
            );
        }
        // ids are UUIDs, codes are codes
        for (_, v) in e.ids.as_object().expect("ids object") {
            uuid::Uuid::try_parse(v.as_str().expect("id string")).expect("id is a UUID");
        }
        for (_, v) in e.codes.as_object().expect("codes object") {
            let code = v.as_str().expect("code string");
            assert!(
                !code.is_empty()
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{code:?} is a code"
            );
        }
    }
}

#[tokio::test]
async fn refused_changes_write_no_event() {
    let app = TestApp::spawn().await;
    let child = app.register(BSN, "Sanne").await;
    let mut client = app.client(&app.muni_professional());
    let _ = client
        .register_subject(crate::helpers::register_request(BSN, "Again"))
        .await
        .expect_err("duplicate");
    let _ = client
        .link_relation(crate::helpers::link_request(
            &child.subject_id,
            &child.subject_id,
        ))
        .await
        .expect_err("self");
    let _ = client
        .link_relation(crate::helpers::link_request(
            &child.subject_id,
            &uuid::Uuid::now_v7().to_string(),
        ))
        .await
        .expect_err("unknown child");
    let types: Vec<String> = sqlx::query_scalar("SELECT event_type FROM intake.outbox")
        .fetch_all(&app.pool)
        .await
        .expect("outbox");
    assert_eq!(types, ["intake.subject.registered"]);
}

/// Every kind of event intake writes maps to a suite event of its resource (the relay's
/// mapping), without an audience: intake's events reach only suite services.
#[tokio::test]
async fn every_event_maps_to_a_suite_event_of_its_resource() {
    use zvv_proto::intake::v1 as pb;
    let app = TestApp::spawn().await;
    let child = app.register(BSN, "Sanne").await;
    let parent = app.register(&crate::helpers::valid_bsn(8), "Marieke").await;
    app.link(&parent.subject_id, &child.subject_id).await;
    let mut client = app.client(&app.muni_coordinator());
    client
        .unlink_relation(pb::UnlinkRelationRequest {
            request_id: crate::helpers::request_id(),
            parent_subject_id: parent.subject_id.clone(),
            child_subject_id: child.subject_id.clone(),
            reason: pb::UnlinkReason::WrongPerson as i32,
        })
        .await
        .expect("unlink");
    client
        .update_subject(pb::UpdateSubjectRequest {
            request_id: crate::helpers::request_id(),
            subject_id: child.subject_id.clone(),
            subject: Some(pb::Subject {
                municipality_code: "GM0034".into(),
                neighbourhood_code: "WK003401".into(),
                date_of_death: "2026-06-01".into(),
                ..Default::default()
            }),
            update_mask: Some(zvv_proto::prost_types::FieldMask {
                paths: vec![
                    "municipality_code".into(),
                    "neighbourhood_code".into(),
                    "date_of_death".into(),
                ],
            }),
        })
        .await
        .expect("move and death");

    let rows: Vec<(uuid::Uuid, String, Value, Value, String)> = sqlx::query_as(
        "SELECT event_id, event_type, ids, codes, trace_id FROM intake.outbox \
         ORDER BY occurred_at, event_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox");
    let mut types = std::collections::BTreeSet::new();
    let mut relation_ids = Vec::new();
    for (event_id, event_type, ids, codes, trace_id) in rows {
        let strings = |v: &Value| -> std::collections::BTreeMap<String, String> {
            v.as_object()
                .expect("object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
                .collect()
        };
        let row = zvv_platform::relay::OutboxRow {
            event_id,
            event_type: event_type.clone(),
            occurred_at: now(),
            ids: strings(&ids),
            codes: strings(&codes),
            trace_id,
            audience_organisations: Vec::new(),
            audience_municipalities: Vec::new(),
        };
        let event = zvv_platform::relay::to_event(&row)
            .unwrap_or_else(|e| panic!("{event_type} maps to an event: {e}"));
        assert_eq!(event.source, "intake");
        let resource_id = &row.ids[&format!("{}_id", event.resource)];
        assert_eq!(&event.resource_id, resource_id, "{event_type}");
        assert!(
            event.trace_parent.starts_with("00-") && event.trace_parent.ends_with("-01"),
            "{event_type}: {}",
            event.trace_parent
        );
        if event.resource == "relation" {
            relation_ids.push(event.resource_id.clone());
            assert_eq!(event.channel, "intake.relations");
        } else {
            assert_eq!(event.channel, "intake.subjects");
        }
        types.insert(event_type);
    }
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        [
            "intake.relation.linked",
            "intake.relation.unlinked",
            "intake.subject.deceased",
            "intake.subject.moved",
            "intake.subject.registered",
            "intake.subject.updated",
        ]
    );
    assert_eq!(relation_ids.len(), 2);
    assert_eq!(
        relation_ids[0], relation_ids[1],
        "linking and unlinking one pair name one relation"
    );
    let audiences: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM intake.outbox \
         WHERE audience_organisations <> '{}' OR audience_municipalities <> '{}'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audiences");
    assert_eq!(audiences, 0, "intake's events reach suite services only");
}
