//! Bad input gets INVALID_ARGUMENT naming each field, and changes nothing; a moved date needs a
//! reason code; only partner types may hold a task.

use zvv_proto::reintegration::v1::{self as pb, record_detention_event_request::Subject};

use crate::helpers::{
    PRISON, TILBURG_DESK, TestApp, assert_invalid, begin, condition, contact, expect_err,
    request_id, valid_bsn,
};

#[tokio::test]
async fn each_bad_field_of_an_event_is_named() {
    let app = TestApp::spawn().await;
    let good = begin("DJI-V1", &valid_bsn(70), "2026-06-01", "2026-06-30");
    let cases: Vec<(&str, pb::RecordDetentionEventRequest)> = vec![
        (
            "request_id",
            pb::RecordDetentionEventRequest {
                request_id: String::new(),
                ..good.clone()
            },
        ),
        (
            "external_ref",
            pb::RecordDetentionEventRequest {
                external_ref: "a b".into(),
                ..good.clone()
            },
        ),
        (
            "external_ref",
            pb::RecordDetentionEventRequest {
                external_ref: String::new(),
                ..good.clone()
            },
        ),
        (
            "bsn",
            pb::RecordDetentionEventRequest {
                subject: Some(Subject::Bsn("123456789".into())),
                ..good.clone()
            },
        ),
        (
            "subject_id",
            pb::RecordDetentionEventRequest {
                subject: Some(Subject::SubjectId("x".into())),
                ..good.clone()
            },
        ),
        (
            "subject",
            pb::RecordDetentionEventRequest {
                subject: None,
                ..good.clone()
            },
        ),
        (
            "birth_date",
            pb::RecordDetentionEventRequest {
                birth_date: "2030-01-01".into(),
                ..good.clone()
            },
        ),
        (
            "kind",
            pb::RecordDetentionEventRequest {
                kind: 0,
                ..good.clone()
            },
        ),
        (
            "kind",
            pb::RecordDetentionEventRequest {
                kind: 99,
                ..good.clone()
            },
        ),
        (
            "institution_code",
            pb::RecordDetentionEventRequest {
                institution_code: String::new(),
                ..good.clone()
            },
        ),
        (
            "institution_type",
            pb::RecordDetentionEventRequest {
                institution_type: 0,
                ..good.clone()
            },
        ),
        (
            "occurred_on",
            pb::RecordDetentionEventRequest {
                occurred_on: String::new(),
                ..good.clone()
            },
        ),
        (
            "occurred_on",
            pb::RecordDetentionEventRequest {
                occurred_on: "2026-06-16".into(),
                ..good.clone()
            },
        ),
        (
            "occurred_on",
            pb::RecordDetentionEventRequest {
                occurred_on: "1-6-2026".into(),
                ..good.clone()
            },
        ),
        (
            "expected_release_on",
            pb::RecordDetentionEventRequest {
                expected_release_on: "2026-05-01".into(),
                ..good.clone()
            },
        ),
        (
            "expected_release_on",
            pb::RecordDetentionEventRequest {
                expected_release_on: "2026-02-30".into(),
                ..good.clone()
            },
        ),
        (
            "municipality_code",
            pb::RecordDetentionEventRequest {
                municipality_code: "0855".into(),
                ..good.clone()
            },
        ),
    ];
    for (field, request) in cases {
        let status = expect_err(
            app.detentions(PRISON).record_detention_event(request).await,
            field,
        );
        assert_invalid(&status, field, field);
        assert!(!status.message().contains("123456789"), "no BSN echoed");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.detentions")
            .await,
        0,
        "nothing recorded"
    );
}

#[tokio::test]
async fn a_moved_date_needs_a_reason_and_a_task_a_partner() {
    let app = TestApp::spawn().await;
    let d = app
        .record(begin("DJI-V2", &valid_bsn(71), "2026-06-01", "2026-06-30"))
        .await
        .detention
        .expect("detention");
    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    let income = condition(&plan, pb::ConditionKind::Income)
        .condition_id
        .clone();
    let update = |f: fn(&mut pb::UpdateConditionRequest)| {
        let mut r = pb::UpdateConditionRequest {
            request_id: request_id(),
            condition_id: income.clone(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let cases: Vec<(&str, pb::UpdateConditionRequest)> = vec![
        ("reason_code", update(|r| r.due_on = "2026-07-01".into())),
        (
            "reason_code",
            update(|r| {
                r.status = pb::ConditionStatus::Arranged as i32;
                r.reason_code = pb::DueDateReason::AuthorityTerm as i32;
            }),
        ),
        (
            "reason_code",
            update(|r| {
                r.due_on = "2026-07-01".into();
                r.reason_code = 42;
            }),
        ),
        (
            "due_on",
            update(|r| {
                r.due_on = "01-07-2026".into();
                r.reason_code = pb::DueDateReason::AuthorityTerm as i32;
            }),
        ),
        ("status", update(|_| {})),
        ("status", update(|r| r.status = 77)),
        (
            "condition_id",
            update(|r| {
                r.condition_id = "nope".into();
                r.status = pb::ConditionStatus::Arranged as i32;
            }),
        ),
        (
            "action",
            update(|r| {
                r.due_on = "2026-07-01".into();
                r.reason_code = pb::DueDateReason::AuthorityTerm as i32;
                r.action = "free text about the person".into();
            }),
        ),
    ];
    for (field, request) in cases {
        let status = expect_err(
            app.continuity(TILBURG_DESK).update_condition(request).await,
            field,
        );
        assert_invalid(&status, field, field);
    }
    // a moved date with its reason is kept and shown
    let moved = app
        .continuity(TILBURG_DESK)
        .update_condition(update(|r| {
            r.due_on = "2026-06-19".into();
            r.reason_code = pb::DueDateReason::AwaitingDocument as i32;
        }))
        .await
        .expect("moved")
        .into_inner()
        .condition
        .expect("condition");
    assert_eq!(moved.actions[0].due_on, "2026-06-19");
    assert_eq!(
        moved.actions[0].override_reason,
        pb::DueDateReason::AwaitingDocument as i32
    );

    let assign = |organisation: &str, organisation_type: &str, contact: Option<pb::Contact>| {
        pb::AssignTaskRequest {
            request_id: request_id(),
            condition_id: income.clone(),
            organisation: organisation.into(),
            organisation_type: organisation_type.into(),
            contact,
        }
    };
    let cases = vec![
        (
            "organisation_type",
            assign("school-1", "SCHOOL", Some(contact())),
        ),
        ("organisation_type", assign("x", "", Some(contact()))),
        ("organisation", assign("", "PROBATION", Some(contact()))),
        (
            "organisation",
            assign("123456782", "PROBATION", Some(contact())),
        ),
        ("contact", assign("reclassering", "PROBATION", None)),
        (
            "contact.email",
            assign(
                "reclassering",
                "PROBATION",
                Some(pb::Contact {
                    email: "nope".into(),
                    ..contact()
                }),
            ),
        ),
    ];
    for (field, request) in cases {
        let status = expect_err(
            app.continuity(TILBURG_DESK).assign_task(request).await,
            field,
        );
        assert_invalid(&status, field, field);
    }
    let status = expect_err(
        app.continuity(TILBURG_DESK)
            .list_tasks(pb::ListTasksRequest {
                due_within_days: 400,
                ..Default::default()
            })
            .await,
        "too far ahead",
    );
    assert_invalid(&status, "due_within_days", "400 days");
    let status = expect_err(
        app.continuity(TILBURG_DESK)
            .list_tasks(pb::ListTasksRequest {
                page_token: "garbage".into(),
                ..Default::default()
            })
            .await,
        "bad page token",
    );
    assert_invalid(&status, "page_token", "garbage");
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.tasks").await,
        0
    );
}
