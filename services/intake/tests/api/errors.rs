//! Duplicate BSNs and idempotent replays of RegisterSubject.

use tonic::Code;
use tonic_types::StatusExt;
use zvv_proto::intake::v1 as pb;

use crate::helpers::{BSN, TestApp, assert_invalid, expect_err, register_request};

#[tokio::test]
async fn a_registered_bsn_is_already_exists_with_the_existing_id() {
    let app = TestApp::spawn().await;
    let first = app.register(BSN, "Sanne").await;

    // a different request (new request_id, other names) with the same BSN
    let status = expect_err(
        app.client(&app.team_coordinator())
            .register_subject(pb::RegisterSubjectRequest {
                family_name: "Jansen".into(),
                ..register_request(BSN, "Other")
            })
            .await,
        "duplicate BSN",
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo detail");
    assert_eq!(
        info.metadata.get("subject_id"),
        Some(&first.subject_id),
        "{info:?}"
    );
    assert!(!status.message().contains(BSN), "the BSN is not echoed");
    assert_eq!(app.count_subjects().await, 1);
}

#[tokio::test]
async fn replaying_a_request_id_returns_the_first_response() {
    let app = TestApp::spawn().await;
    let mut client = app.client(&app.muni_professional());
    let request = register_request(BSN, "Sanne");

    let first = client
        .register_subject(request.clone())
        .await
        .expect("first")
        .into_inner();
    let again = client
        .register_subject(request.clone())
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(again, first, "the replay answers like the first call");
    assert_eq!(app.count_subjects().await, 1);

    // same request_id, another body: refused, nothing stored
    let status = expect_err(
        client
            .register_subject(pb::RegisterSubjectRequest {
                given_name: "Someone Else".into(),
                ..request.clone()
            })
            .await,
        "reused request_id",
    );
    assert_invalid(&status, "request_id", "reused request_id");
    let status = expect_err(
        client
            .register_subject(pb::RegisterSubjectRequest {
                bsn: crate::helpers::valid_bsn(4),
                ..request.clone()
            })
            .await,
        "reused request_id, other BSN",
    );
    assert_invalid(&status, "request_id", "reused request_id, other BSN");
    assert_eq!(app.count_subjects().await, 1);
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.outbox")
        .fetch_one(&app.pool)
        .await
        .expect("outbox");
    assert_eq!(outbox, 1, "one registration, one event");
}

#[tokio::test]
async fn request_ids_are_scoped_per_organisation() {
    let app = TestApp::spawn().await;
    let request = register_request(BSN, "Sanne");
    app.client(&app.muni_professional())
        .register_subject(request.clone())
        .await
        .expect("municipality registers");
    // another organisation with the same request_id does not get the municipality's answer:
    // its call is a new registration of an existing BSN
    let status = expect_err(
        app.client(&app.team_coordinator())
            .register_subject(request)
            .await,
        "other organisation",
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replays_register_once() {
    let app = TestApp::spawn().await;
    let request = register_request(BSN, "Sanne");
    let token = app.muni_professional();

    let calls: Vec<_> = (0..8)
        .map(|_| {
            // one connection each, so that the calls really overlap at the server
            let mut client = app.client(&token);
            let request = request.clone();
            tokio::spawn(async move { client.register_subject(request).await })
        })
        .collect();
    let mut ids = Vec::new();
    for call in calls {
        let subject = call
            .await
            .expect("task")
            .expect("every replay succeeds")
            .into_inner()
            .subject
            .expect("subject");
        ids.push(subject.subject_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one subject id for all: {ids:?}");
    assert_eq!(app.count_subjects().await, 1);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.idempotency")
        .fetch_one(&app.pool)
        .await
        .expect("idempotency");
    assert_eq!(keys, 1);
}

/// A replay returns the first response itself, even when the subject changed since.
#[tokio::test]
async fn a_replay_after_a_change_still_returns_the_first_response() {
    let app = TestApp::spawn().await;
    let mut client = app.client(&app.muni_professional());
    let request = register_request(BSN, "Noor");
    let first = client
        .register_subject(request.clone())
        .await
        .expect("register")
        .into_inner()
        .subject
        .expect("subject");
    client
        .update_subject(pb::UpdateSubjectRequest {
            subject_id: first.subject_id.clone(),
            subject: Some(pb::Subject {
                given_name: "Noortje".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["given_name".into()],
            }),
            request_id: String::new(),
        })
        .await
        .expect("update");
    let replayed = client
        .register_subject(request)
        .await
        .expect("replay")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(replayed, first, "the first response, not the current state");
    assert_eq!(app.get(&first.subject_id).await.given_name, "Noortje");
}

/// Idempotency keys, and the responses kept with them, are purged after the retention period;
/// a retry after that is a new request.
#[tokio::test]
async fn idempotency_keys_are_purged_after_the_retention_period() {
    let app = TestApp::spawn().await;
    let request = register_request(BSN, "Noor");
    app.client(&app.muni_professional())
        .register_subject(request.clone())
        .await
        .expect("register");
    let clock: zvv_platform::clock::SharedClock = std::sync::Arc::new(app.clock.clone());
    let retention = zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION;

    app.clock.advance(retention - chrono::Duration::minutes(1));
    let purged = zvv_intake::purge_idempotency_keys(&app.pool, &clock, retention)
        .await
        .expect("purge");
    assert_eq!(purged, 0, "kept within the retention period");

    app.clock.advance(chrono::Duration::minutes(2));
    let purged = zvv_intake::purge_idempotency_keys(&app.pool, &clock, retention)
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.idempotency")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(left, 0);
    let status = expect_err(
        app.client(&app.muni_professional())
            .register_subject(request)
            .await,
        "retry after the key expired",
    );
    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
}
