//! The audit log: one record per call (allowed, denied, unauthenticated, invalid), sealed into a
//! chain behind the calls, and carrying the caller's trace id. Tampering: see `audit_chain`.

use tonic::{Code, Request};
use zvv_proto::intake::v1 as pb;

use crate::helpers::{BSN, TestApp, action, expect_err, register_request, valid_bsn};

fn get(id: &str) -> pb::GetSubjectRequest {
    pb::GetSubjectRequest {
        subject_id: id.to_owned(),
    }
}

/// Five calls of every kind of outcome; returns the registered subject's id.
async fn five_calls(app: &TestApp) -> uuid::Uuid {
    let subject = app.register(BSN, "Sanne").await;
    let id = uuid::Uuid::try_parse(&subject.subject_id).expect("uuid");
    app.client(&app.service())
        .get_subject(get(&subject.subject_id))
        .await
        .expect("get");
    let denied = app
        .client(&app.school_professional())
        .register_subject(register_request(&valid_bsn(1), "X"))
        .await;
    assert_eq!(expect_err(denied, "denied").code(), Code::PermissionDenied);
    let unauthenticated = app
        .bare_client()
        .get_subject(get(&subject.subject_id))
        .await;
    assert_eq!(
        expect_err(unauthenticated, "unauthenticated").code(),
        Code::Unauthenticated
    );
    let invalid = app
        .client(&app.muni_professional())
        .register_subject(register_request("123456789", "X"))
        .await;
    assert_eq!(expect_err(invalid, "invalid").code(), Code::InvalidArgument);
    id
}

#[tokio::test]
async fn every_call_leaves_one_audit_record() {
    let app = TestApp::spawn().await;
    let id = five_calls(&app).await;

    let rows = app.audit_rows().await;
    let summary: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.action.clone(), r.result.clone(), r.actor_org.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (action("RegisterSubject"), "OK".into(), "gm0363".into()),
            (action("GetSubject"), "OK".into(), "signalling".into()),
            (
                action("RegisterSubject"),
                "PERMISSION_DENIED".into(),
                "school-1".into()
            ),
            (
                action("GetSubject"),
                "UNAUTHENTICATED".into(),
                String::new()
            ),
            (
                action("RegisterSubject"),
                "INVALID_ARGUMENT".into(),
                "gm0363".into()
            ),
        ]
    );
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5],
        "gapless sequence"
    );
    assert_eq!(rows[0].object_ids, [id], "register names the new subject");
    assert_eq!(rows[1].object_ids, [id], "get names the subject read");
    assert_eq!(rows[0].actor_org_type, "MUNICIPALITY");
    assert_eq!(rows[1].actor_org_type, "SUITE");
    assert_eq!(rows[2].actor_org_type, "SCHOOL");
    for allowed in [&rows[0], &rows[1], &rows[4]] {
        assert!(
            !allowed.legal_basis.trim().is_empty(),
            "{} has a legal basis",
            allowed.action
        );
    }
    assert!(rows[3].legal_basis.is_empty() && rows[3].actor_org_type.is_empty());

    let who: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor_sub, actor_roles, peer FROM intake.audit_log ORDER BY seq")
            .fetch_all(&app.pool)
            .await
            .expect("actors");
    assert_eq!(who[0].0, "gm0363-user");
    assert_eq!(who[0].1, "PROFESSIONAL");
    assert_eq!(who[1].1, "SERVICE");
    for (_, _, peer) in &who {
        assert!(
            peer.starts_with("127.0.0.1:"),
            "peer address recorded: {peer:?}"
        );
    }

    let report = app.verify_audit().await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.entries, report.seals), (5, 5));
}

#[tokio::test]
async fn the_audit_record_carries_the_callers_trace_id() {
    let app = TestApp::spawn().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");

    let mut request = Request::new(register_request(BSN, "Sanne"));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().expect("header"));
    app.client(&app.muni_professional())
        .register_subject(request)
        .await
        .expect("register");

    // a refused call continues the caller's trace too
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let mut request = Request::new(get(&uuid::Uuid::now_v7().to_string()));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{other_trace}-b7ad6b7169203331-01")
            .parse()
            .expect("header"),
    );
    let _ = app
        .bare_client()
        .get_subject(request)
        .await
        .expect_err("no token");

    // without a traceparent the call gets a trace id of its own
    app.client(&app.service())
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: BSN.into(),
            create_if_missing: false,
            ..Default::default()
        })
        .await
        .expect("resolve");

    let rows = app.audit_rows().await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].trace_id, trace_id);
    assert_eq!(rows[1].result, "UNAUTHENTICATED");
    assert_eq!(rows[1].trace_id, other_trace);
    assert_eq!(rows[2].trace_id.len(), 32, "{:?}", rows[2].trace_id);
    assert!(rows[2].trace_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(rows[2].trace_id, trace_id);
    assert_ne!(rows[2].trace_id, "0".repeat(32));

    // the outbox event of the registration belongs to the same trace
    let event_trace: String = sqlx::query_scalar(
        "SELECT trace_id FROM intake.outbox WHERE event_type = 'intake.subject.registered'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("outbox");
    assert_eq!(event_trace, trace_id);
}

#[tokio::test]
async fn failed_reads_and_writes_are_audited_with_their_subject() {
    let app = TestApp::spawn().await;
    let a = app.register(BSN, "Sanne").await;
    let ghost = uuid::Uuid::now_v7();
    let mut client = app.client(&app.muni_professional());
    let _ = client
        .get_subject(get(&ghost.to_string()))
        .await
        .expect_err("unknown");
    let _ = client
        .register_subject(register_request(BSN, "Again"))
        .await
        .expect_err("duplicate");
    let _ = app
        .client(&app.muni_coordinator())
        .link_relation(crate::helpers::link_request(
            &a.subject_id,
            &ghost.to_string(),
        ))
        .await
        .expect_err("unknown child");
    let rows = app.audit_rows().await;
    let a_id = uuid::Uuid::try_parse(&a.subject_id).expect("uuid");
    let results: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.result.as_str()))
        .collect();
    assert_eq!(
        results,
        [
            (action("RegisterSubject").as_str(), "OK"),
            (action("GetSubject").as_str(), "NOT_FOUND"),
            (action("RegisterSubject").as_str(), "ALREADY_EXISTS"),
            (action("LinkRelation").as_str(), "NOT_FOUND"),
        ]
    );
    assert_eq!(rows[1].object_ids, [ghost]);
    assert_eq!(rows[2].object_ids, [a_id], "the existing subject");
    assert_eq!(rows[3].object_ids, [a_id, ghost]);
}

#[tokio::test]
async fn every_rpc_is_audited_at_the_service_clock() {
    let app = TestApp::spawn().await;
    let parent = app.register(BSN, "Marieke").await;
    let mut service = app.client(&app.service());
    let resolved = service
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: valid_bsn(1),
            create_if_missing: true,
            municipality_code: "GM0363".into(),
            ..Default::default()
        })
        .await
        .expect("resolve")
        .into_inner();
    let child_id = resolved.subject_id;
    let lookup_ref = uuid::Uuid::try_parse(&resolved.lookup_ref).expect("lookup_ref");
    let mut client = app.client(&app.muni_professional());
    client
        .update_subject(pb::UpdateSubjectRequest {
            subject_id: child_id.clone(),
            subject: Some(pb::Subject {
                given_name: "Sanne".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["given_name".into()],
            }),
            request_id: String::new(),
        })
        .await
        .expect("update");
    app.link(&parent.subject_id, &child_id).await;
    service
        .list_relations(pb::ListRelationsRequest {
            subject_id: child_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list");
    service
        .list_family(pb::ListFamilyRequest {
            subject_id: child_id.clone(),
        })
        .await
        .expect("family");
    let _ = app
        .client(&app.school_professional())
        .get_subject(get(&child_id))
        .await
        .expect_err("denied");

    let p = uuid::Uuid::try_parse(&parent.subject_id).expect("uuid");
    let c = uuid::Uuid::try_parse(&child_id).expect("uuid");
    let rows = app.audit_rows().await;
    let seen: Vec<(String, String, Vec<uuid::Uuid>)> = rows
        .iter()
        .map(|r| (r.action.clone(), r.result.clone(), r.object_ids.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (action("RegisterSubject"), "OK".into(), vec![p]),
            (action("ResolveSubject"), "OK".into(), vec![c, lookup_ref]),
            (action("UpdateSubject"), "OK".into(), vec![c]),
            (action("LinkRelation"), "OK".into(), vec![p, c]),
            (action("ListRelations"), "OK".into(), vec![c, p]),
            (action("ListFamily"), "OK".into(), vec![c, p]),
            (action("GetSubject"), "PERMISSION_DENIED".into(), vec![]),
        ]
    );
    let stamps: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT occurred_at FROM intake.audit_log ORDER BY seq")
            .fetch_all(&app.pool)
            .await
            .expect("stamps");
    assert!(
        stamps.iter().all(|t| *t == crate::helpers::now()),
        "every record is stamped by the injected clock: {stamps:?}"
    );
    let events: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT event_type, occurred_at FROM intake.outbox ORDER BY event_type")
            .fetch_all(&app.pool)
            .await
            .expect("events");
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        events.iter().all(|(_, t)| *t == crate::helpers::now()),
        "every event is stamped by the injected clock: {events:?}"
    );
    let report = app.verify_audit().await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries, 7);
}
