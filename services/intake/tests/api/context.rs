//! GetSubjectContext: what a suite service needs about one subject (facts and families) from one
//! transaction with one audit record naming every id read.

use tonic::Code;
use tonic_types::StatusExt;
use zvv_proto::intake::v1::{self as pb, get_subject_context_request::Subject};

use crate::helpers::{TestApp, assert_invalid, expect_err, valid_bsn};

fn by_bsn(bsn: &str) -> pb::GetSubjectContextRequest {
    pb::GetSubjectContextRequest {
        subject: Some(Subject::Bsn(bsn.to_owned())),
        ..Default::default()
    }
}

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::try_parse(s).expect("uuid")
}

#[tokio::test]
async fn facts_and_families_come_from_one_audited_read() {
    let app = TestApp::spawn().await;
    let child_bsn = valid_bsn(1);
    let child = app.register(&child_bsn, "Noor").await;
    let sister = app.register(&valid_bsn(2), "Fenna").await;
    let half = app.register(&valid_bsn(3), "Bram").await;
    let mother = app.register(&valid_bsn(4), "Ingrid").await;
    let father = app.register(&valid_bsn(5), "Karel").await;
    app.link(&mother.subject_id, &child.subject_id).await;
    app.link(&mother.subject_id, &sister.subject_id).await;
    app.link(&father.subject_id, &child.subject_id).await;
    app.link(&father.subject_id, &half.subject_id).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.audit_entries")
        .fetch_one(&app.pool)
        .await
        .expect("count");

    let context = app
        .client(&app.service())
        .get_subject_context(by_bsn(&child_bsn))
        .await
        .expect("context")
        .into_inner();
    assert_eq!(context.subject_id, child.subject_id);
    assert_eq!(context.birth_date, "2015-03-14");
    assert_eq!(context.municipality_code, "GM0363");
    assert_eq!(context.neighbourhood_code, "WK036305");
    assert_eq!(context.date_of_death, "");
    assert!(!context.created);
    assert!(!context.lookup_ref.is_empty());
    let mut families: Vec<(String, Vec<String>)> = context
        .families
        .iter()
        .map(|f| {
            let mut children = f.child_subject_ids.clone();
            children.sort();
            (f.parent_subject_id.clone(), children)
        })
        .collect();
    families.sort();
    let mut expected = vec![
        (mother.subject_id.clone(), {
            let mut c = vec![child.subject_id.clone(), sister.subject_id.clone()];
            c.sort();
            c
        }),
        (father.subject_id.clone(), {
            let mut c = vec![child.subject_id.clone(), half.subject_id.clone()];
            c.sort();
            c
        }),
    ];
    expected.sort();
    assert_eq!(families, expected);

    // one record, naming every id read (and the lookup reference)
    let records: Vec<(String, Vec<uuid::Uuid>)> = sqlx::query_as(
        "SELECT action, object_ids FROM intake.audit_entries WHERE entry_id > $1 ORDER BY entry_id",
    )
    .bind(before)
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].0.ends_with("/GetSubjectContext"));
    let mut ids = records[0].1.clone();
    ids.sort();
    let mut want: Vec<uuid::Uuid> = [
        &child.subject_id,
        &sister.subject_id,
        &half.subject_id,
        &mother.subject_id,
        &father.subject_id,
        &context.lookup_ref,
    ]
    .iter()
    .map(|s| uuid(s))
    .collect();
    want.sort();
    assert_eq!(ids, want);

    // by subject_id: the same facts, no lookup reference
    let by_id = app
        .client(&app.service())
        .get_subject_context(pb::GetSubjectContextRequest {
            subject: Some(Subject::SubjectId(sister.subject_id.clone())),
            ..Default::default()
        })
        .await
        .expect("by id")
        .into_inner();
    assert_eq!(by_id.subject_id, sister.subject_id);
    assert_eq!(by_id.lookup_ref, "");
    assert_eq!(by_id.families.len(), 1);
}

#[tokio::test]
async fn unknown_subjects_are_not_found_or_registered_on_request() {
    let app = TestApp::spawn().await;
    let mut service = app.client(&app.service());
    let bsn = valid_bsn(6);
    let status = expect_err(service.get_subject_context(by_bsn(&bsn)).await, "unknown");
    assert_eq!(status.code(), Code::NotFound);
    let lookup_ref = status
        .get_error_details()
        .error_info()
        .expect("info")
        .metadata["lookup_ref"]
        .clone();
    let created = service
        .get_subject_context(pb::GetSubjectContextRequest {
            create_if_missing: true,
            municipality_code: "GM0034".into(),
            birth_date: "2019-01-02".into(),
            ..by_bsn(&bsn)
        })
        .await
        .expect("create")
        .into_inner();
    assert!(created.created);
    assert_eq!(created.lookup_ref, lookup_ref);
    assert_eq!(created.municipality_code, "GM0034");
    assert_eq!(created.birth_date, "2019-01-02");
    assert!(created.families.is_empty());
    let again = service
        .get_subject_context(by_bsn(&bsn))
        .await
        .expect("found now")
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.subject_id, created.subject_id);

    let status = expect_err(
        service
            .get_subject_context(pb::GetSubjectContextRequest {
                subject: Some(Subject::SubjectId(uuid::Uuid::now_v7().to_string())),
                ..Default::default()
            })
            .await,
        "unknown id",
    );
    assert_eq!(status.code(), Code::NotFound);
    assert_invalid(
        &expect_err(
            service
                .get_subject_context(pb::GetSubjectContextRequest::default())
                .await,
            "no subject",
        ),
        "subject",
        "no subject",
    );
    assert_invalid(
        &expect_err(
            service
                .get_subject_context(pb::GetSubjectContextRequest {
                    create_if_missing: true,
                    municipality_code: "Almere".into(),
                    ..by_bsn(&valid_bsn(7))
                })
                .await,
            "bad municipality",
        ),
        "municipality_code",
        "bad municipality",
    );
    // refusals are audited by the call layer with the lookup reference
    let results: Vec<(String, Vec<uuid::Uuid>)> = sqlx::query_as(
        "SELECT result, object_ids FROM intake.audit_entries \
         WHERE action LIKE '%GetSubjectContext' ORDER BY entry_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(results[0].0, "NOT_FOUND");
    assert_eq!(results[0].1, [uuid(&lookup_ref)]);
    assert_eq!(results.len(), 6);
}
