//! Success paths of RegisterSubject, GetSubject, ResolveSubject and UpdateSubject.

use chrono::Duration;
use prost_types::FieldMask;
use tonic::Code;
use zvv_proto::intake::v1 as pb;

use crate::helpers::{
    BSN, TestApp, assert_invalid, expect_err, now, register_request, request_id, valid_bsn,
};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn register_returns_the_new_subject() {
    let app = TestApp::spawn().await;
    let mut client = app.client(&app.muni_professional());

    let subject = client
        .register_subject(register_request(BSN, "Sanne"))
        .await
        .expect("register")
        .into_inner()
        .subject
        .expect("subject");

    let id = uuid::Uuid::try_parse(&subject.subject_id).expect("subject_id is a UUID");
    assert_eq!(
        subject.subject_id,
        id.hyphenated().to_string(),
        "canonical form"
    );
    assert_eq!(id.get_version_num(), 7, "time-ordered v7 id");
    assert_eq!(subject.bsn_masked, "******782");
    assert_eq!(subject.given_name, "Sanne");
    assert_eq!(subject.family_name, "de Vries");
    assert_eq!(subject.birth_date, "2015-03-14");
    assert_eq!(subject.municipality_code, "GM0363");
    assert_eq!(subject.neighbourhood_code, "WK036305");
    assert_eq!(subject.date_of_death, "");
    let created = subject.create_time.expect("create_time");
    assert_eq!(
        created.seconds,
        now().timestamp(),
        "create_time comes from the service clock"
    );
    assert_eq!(
        subject.update_time.expect("update_time").seconds,
        now().timestamp()
    );
    assert_eq!(app.count_subjects().await, 1);

    // a neighbourhood-team coordinator may register too
    let other = app
        .client(&app.team_coordinator())
        .register_subject(register_request(&valid_bsn(1), "Daan"))
        .await
        .expect("coordinator registers")
        .into_inner()
        .subject
        .expect("subject");
    assert_ne!(other.subject_id, subject.subject_id);
    assert_eq!(app.count_subjects().await, 2);
}

#[tokio::test]
async fn get_returns_the_registered_subject_without_the_bsn() {
    let app = TestApp::spawn().await;
    let registered = app.register(BSN, "Sanne").await;

    for token in [
        app.muni_professional(),
        app.team_coordinator(),
        app.service(),
    ] {
        let got = app
            .client(&token)
            .get_subject(pb::GetSubjectRequest {
                subject_id: registered.subject_id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .subject
            .expect("subject");
        assert_eq!(got, registered);
        assert_eq!(got.bsn_masked, "******782");
        assert!(
            !format!("{got:?}").contains(BSN),
            "the full BSN is never returned"
        );
    }
}

#[tokio::test]
async fn resolve_finds_registers_and_refuses_unknown_bsns() {
    let app = TestApp::spawn().await;
    let registered = app.register(BSN, "Sanne").await;
    let mut service = app.client(&app.service());

    let found = service
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: BSN.into(),
            create_if_missing: false,
            ..Default::default()
        })
        .await
        .expect("resolve known")
        .into_inner();
    assert_eq!(found.subject_id, registered.subject_id);
    assert!(!found.created);
    assert_eq!(found.birth_date, "2015-03-14");
    assert_eq!(found.date_of_death, "");

    // create_if_missing on a known BSN does not create a second subject
    let again = service
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: BSN.into(),
            create_if_missing: true,
            ..Default::default()
        })
        .await
        .expect("resolve known with create")
        .into_inner();
    assert_eq!(again.subject_id, registered.subject_id);
    assert!(!again.created);
    assert_eq!(app.count_subjects().await, 1);

    let unknown = valid_bsn(7);
    let status = expect_err(
        service
            .resolve_subject(pb::ResolveSubjectRequest {
                bsn: unknown.clone(),
                create_if_missing: false,
                ..Default::default()
            })
            .await,
        "unknown BSN",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        !status.message().contains(&unknown),
        "the BSN is not echoed"
    );
    assert_eq!(app.count_subjects().await, 1);

    let created = service
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: unknown.clone(),
            create_if_missing: true,
            ..Default::default()
        })
        .await
        .expect("resolve with create")
        .into_inner();
    assert!(created.created);
    assert_eq!(created.birth_date, "", "a bare subject has no birth date");
    assert_ne!(created.subject_id, registered.subject_id);
    uuid::Uuid::try_parse(&created.subject_id).expect("uuid");
    assert_eq!(app.count_subjects().await, 2);

    let later = service
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: unknown.clone(),
            create_if_missing: false,
            ..Default::default()
        })
        .await
        .expect("resolve created")
        .into_inner();
    assert_eq!(later.subject_id, created.subject_id);
    assert!(!later.created);

    // the bare subject: masked BSN, nothing else (suite services may read it too)
    let bare = service
        .get_subject(pb::GetSubjectRequest {
            subject_id: created.subject_id.clone(),
        })
        .await
        .expect("get bare")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(bare.bsn_masked, format!("******{}", &unknown[6..]));
    assert_eq!(bare.given_name, "");
    assert_eq!(bare.birth_date, "");
    assert_eq!(bare.municipality_code, "");
}

#[tokio::test]
async fn update_changes_only_the_fields_in_the_mask() {
    let app = TestApp::spawn().await;
    let registered = app.register(BSN, "Sanne").await;
    // a date of death needs a coordinator of the subject's municipality
    let mut client = app.client(&app.muni_coordinator());
    app.clock.advance(Duration::hours(2));

    let updated = client
        .update_subject(pb::UpdateSubjectRequest {
            subject_id: registered.subject_id.clone(),
            subject: Some(pb::Subject {
                given_name: "Sanne Maria".into(),
                family_name: "NOT IN THE MASK".into(),
                neighbourhood_code: "WK036312".into(),
                date_of_death: "2026-06-01".into(),
                ..Default::default()
            }),
            update_mask: mask(&["given_name", "neighbourhood_code", "date_of_death"]),
            request_id: request_id(),
        })
        .await
        .expect("update")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(updated.given_name, "Sanne Maria");
    assert_eq!(
        updated.family_name, "de Vries",
        "fields outside the mask stay"
    );
    assert_eq!(updated.neighbourhood_code, "WK036312");
    assert_eq!(updated.date_of_death, "2026-06-01");
    assert_eq!(updated.birth_date, "2015-03-14");
    assert_eq!(updated.municipality_code, "GM0363");
    assert_eq!(updated.create_time, registered.create_time);
    assert_eq!(
        updated.update_time.expect("update_time").seconds,
        (now() + Duration::hours(2)).timestamp()
    );

    let stored = app.get(&registered.subject_id).await;
    assert_eq!(stored, updated);

    // the date of death is visible to resolving services
    let resolved = app
        .client(&app.service())
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: BSN.into(),
            create_if_missing: false,
            ..Default::default()
        })
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(resolved.date_of_death, "2026-06-01");
}

#[tokio::test]
async fn birth_date_can_be_set_only_while_unknown() {
    let app = TestApp::spawn().await;
    let mut client = app.client(&app.muni_professional());
    let bare_bsn = valid_bsn(3);
    let bare = app
        .client(&app.service())
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: bare_bsn,
            create_if_missing: true,
            municipality_code: "GM0363".into(),
            ..Default::default()
        })
        .await
        .expect("create bare")
        .into_inner();
    assert!(bare.created);

    let set = client
        .update_subject(pb::UpdateSubjectRequest {
            subject_id: bare.subject_id.clone(),
            subject: Some(pb::Subject {
                birth_date: "2018-09-01".into(),
                ..Default::default()
            }),
            update_mask: mask(&["birth_date"]),
            request_id: String::new(),
        })
        .await
        .expect("birth date of a bare subject")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(set.birth_date, "2018-09-01");

    // now it is known: another date is refused, and nothing changes
    let known = app.register(BSN, "Sanne").await;
    for (id, date) in [
        (&bare.subject_id, "2018-09-02"),
        (&known.subject_id, "2015-03-15"),
    ] {
        let status = expect_err(
            client
                .update_subject(pb::UpdateSubjectRequest {
                    subject_id: id.clone(),
                    subject: Some(pb::Subject {
                        birth_date: date.into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["birth_date"]),
                    request_id: String::new(),
                })
                .await,
            "change a known birth date",
        );
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    }
    let stored = app.get(&known.subject_id).await;
    assert_eq!(stored.birth_date, "2015-03-14");
}

#[tokio::test]
async fn update_refuses_bad_masks_and_values() {
    let app = TestApp::spawn().await;
    let registered = app.register(BSN, "Sanne").await;
    let mut client = app.client(&app.muni_professional());
    let update = |paths: Option<FieldMask>, subject: pb::Subject| pb::UpdateSubjectRequest {
        subject_id: registered.subject_id.clone(),
        subject: Some(subject),
        update_mask: paths,
        request_id: String::new(),
    };

    let status = expect_err(
        client
            .update_subject(update(mask(&["bsn"]), pb::Subject::default()))
            .await,
        "unknown path",
    );
    assert_invalid(&status, "update_mask", "unknown path");

    let status = expect_err(
        client
            .update_subject(update(mask(&["subject_id"]), pb::Subject::default()))
            .await,
        "id path",
    );
    assert_invalid(&status, "update_mask", "id path");

    for (paths, case) in [(mask(&[]), "empty mask"), (None, "no mask")] {
        let status = expect_err(
            client
                .update_subject(update(
                    paths,
                    pb::Subject {
                        given_name: "X".into(),
                        ..Default::default()
                    },
                ))
                .await,
            case,
        );
        assert_invalid(&status, "update_mask", case);
    }

    let status = expect_err(
        client
            .update_subject(update(
                mask(&["given_name"]),
                pb::Subject {
                    given_name: String::new(),
                    ..Default::default()
                },
            ))
            .await,
        "empty name",
    );
    assert_invalid(&status, "subject.given_name", "empty name");

    let status = expect_err(
        client
            .update_subject(update(
                mask(&["neighbourhood_code"]),
                pb::Subject {
                    neighbourhood_code: "WK034401".into(),
                    ..Default::default()
                },
            ))
            .await,
        "neighbourhood outside the municipality",
    );
    assert_invalid(
        &status,
        "subject.neighbourhood_code",
        "neighbourhood outside the municipality",
    );

    let status = expect_err(
        client
            .update_subject(update(
                mask(&["date_of_death"]),
                pb::Subject {
                    date_of_death: "2026-06-16".into(),
                    ..Default::default()
                },
            ))
            .await,
        "death in the future",
    );
    assert_invalid(&status, "subject.date_of_death", "death in the future");

    let status = expect_err(
        client
            .update_subject(pb::UpdateSubjectRequest {
                subject_id: "not-a-uuid".into(),
                subject: None,
                update_mask: mask(&["given_name"]),
                request_id: String::new(),
            })
            .await,
        "malformed id",
    );
    assert_invalid(&status, "subject_id", "malformed id");

    let status = expect_err(
        client
            .update_subject(pb::UpdateSubjectRequest {
                subject_id: uuid::Uuid::now_v7().to_string(),
                subject: Some(pb::Subject {
                    given_name: "Y".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["given_name"]),
                request_id: String::new(),
            })
            .await,
        "unknown id",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // nothing was changed by any of these
    let stored = app.get(&registered.subject_id).await;
    assert_eq!(stored, registered);
}

#[tokio::test]
async fn replaying_an_update_does_not_apply_it_twice() {
    let app = TestApp::spawn().await;
    let registered = app.register(BSN, "Sanne").await;
    let mut client = app.client(&app.muni_professional());
    let request = pb::UpdateSubjectRequest {
        subject_id: registered.subject_id.clone(),
        subject: Some(pb::Subject {
            given_name: "Sanne Maria".into(),
            ..Default::default()
        }),
        update_mask: mask(&["given_name"]),
        request_id: request_id(),
    };
    app.clock.advance(Duration::hours(1));
    let first = client
        .update_subject(request.clone())
        .await
        .expect("update")
        .into_inner();
    app.clock.advance(Duration::hours(1));
    let again = client
        .update_subject(request.clone())
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(
        again, first,
        "the replay changes nothing, not even update_time"
    );

    let status = expect_err(
        client
            .update_subject(pb::UpdateSubjectRequest {
                subject: Some(pb::Subject {
                    given_name: "Someone Else".into(),
                    ..Default::default()
                }),
                ..request
            })
            .await,
        "reused request_id",
    );
    assert_invalid(&status, "request_id", "reused request_id");
    let updates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM intake.outbox WHERE event_type = 'intake.subject.updated'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("outbox");
    assert_eq!(updates, 1, "one update, one event");
}
