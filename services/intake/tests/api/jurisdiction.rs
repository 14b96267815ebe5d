//! Need-to-know by jurisdiction: each attack from outside, through the API, as a named test; the
//! move, the date of death, relation sources and unlinking; the end user behind a suite
//! service; and the budget of unauthenticated calls.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;
use zvv_platform::{
    audit::NOT_FOUND_OUTSIDE_JURISDICTION,
    auth::{END_USER_METADATA, OrgType, Principal, Role},
    budget::BudgetSettings,
    codes::MunicipalityCode,
    server::ServerSettings,
};
use zvv_proto::intake::v1 as pb;

use crate::helpers::{
    TestApp, assert_invalid, expect_err, link_request, register_request, request_id, valid_bsn,
};

const ALMERE: &str = "GM0034";
const BREDA: &str = "GM0758";

fn almere(app: &TestApp, role: Role) -> String {
    app.keys
        .token_in("gemeente-almere", OrgType::Municipality, &[role], &[ALMERE])
}

fn breda(app: &TestApp, role: Role) -> String {
    app.keys
        .token_in("gemeente-breda", OrgType::Municipality, &[role], &[BREDA])
}

fn breda_team(app: &TestApp) -> String {
    app.keys.token_in(
        "wijkteam-breda-noord",
        OrgType::NeighbourhoodTeam,
        &[Role::Coordinator],
        &[BREDA],
    )
}

fn in_municipality(bsn: &str, name: &str, municipality: &str) -> pb::RegisterSubjectRequest {
    pb::RegisterSubjectRequest {
        municipality_code: municipality.into(),
        neighbourhood_code: format!("WK{}01", &municipality[2..]),
        ..register_request(bsn, name)
    }
}

/// A child registered in Almere by Almere.
async fn almere_child(app: &TestApp, bsn: &str) -> pb::Subject {
    app.client(&almere(app, Role::Professional))
        .register_subject(in_municipality(bsn, "Noor", ALMERE))
        .await
        .expect("Almere registers its child")
        .into_inner()
        .subject
        .expect("subject")
}

fn get(id: &str) -> pb::GetSubjectRequest {
    pb::GetSubjectRequest {
        subject_id: id.to_owned(),
    }
}

fn update(id: &str, subject: pb::Subject, paths: &[&str]) -> pb::UpdateSubjectRequest {
    pb::UpdateSubjectRequest {
        subject_id: id.to_owned(),
        subject: Some(subject),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        request_id: request_id(),
    }
}

fn death(id: &str) -> pb::UpdateSubjectRequest {
    update(
        id,
        pb::Subject {
            date_of_death: "2026-06-01".into(),
            ..Default::default()
        },
        &["date_of_death"],
    )
}

async fn audit_results(app: &TestApp, method: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT result FROM intake.audit_log WHERE action = $1 ORDER BY seq")
        .bind(crate::helpers::action(method))
        .fetch_all(&app.pool)
        .await
        .expect("audit rows")
}

/// Strips the id from a NOT_FOUND message, so that two answers can be compared whole.
fn without(message: &str, id: &str) -> String {
    message.replace(id, "<id>")
}

#[tokio::test]
async fn another_municipality_can_neither_read_nor_declare_dead_a_child() {
    let app = TestApp::spawn().await;
    let child = almere_child(&app, &valid_bsn(1)).await;
    let unknown = uuid::Uuid::now_v7().to_string();

    // GetSubject: exactly as an unknown id
    let mut professional = app.client(&breda(&app, Role::Professional));
    let outside = expect_err(
        professional.get_subject(get(&child.subject_id)).await,
        "Breda reads Almere's child",
    );
    let missing = expect_err(professional.get_subject(get(&unknown)).await, "unknown id");
    assert_eq!(outside.code(), Code::NotFound);
    assert_eq!(outside.code(), missing.code());
    assert_eq!(
        without(outside.message(), &child.subject_id),
        without(missing.message(), &unknown)
    );
    assert_eq!(outside.details(), missing.details());

    // UpdateSubject with a date of death: a professional may not, a coordinator of Breda does
    // not find the child
    let refused = expect_err(
        professional.update_subject(death(&child.subject_id)).await,
        "a professional records a death",
    );
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let outside = expect_err(
        app.client(&breda(&app, Role::Coordinator))
            .update_subject(death(&child.subject_id))
            .await,
        "a Breda coordinator records the death of Almere's child",
    );
    assert_eq!(outside.code(), Code::NotFound, "{outside:?}");

    // nothing changed, and every refusal is audited, outside-jurisdiction ones marked
    let stored = app
        .client(&almere(&app, Role::Professional))
        .get_subject(get(&child.subject_id))
        .await
        .expect("Almere reads its child")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(
        stored.date_of_death, "",
        "the child is not recorded as dead"
    );
    assert_eq!(
        audit_results(&app, "GetSubject").await,
        [NOT_FOUND_OUTSIDE_JURISDICTION, "NOT_FOUND", "OK"]
    );
    assert_eq!(
        audit_results(&app, "UpdateSubject").await,
        ["PERMISSION_DENIED", NOT_FOUND_OUTSIDE_JURISDICTION]
    );
}

#[tokio::test]
async fn a_bsn_registered_elsewhere_does_not_give_away_its_subject_id() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(2);
    let child = almere_child(&app, &bsn).await;

    let status = expect_err(
        app.client(&breda(&app, Role::Professional))
            .register_subject(in_municipality(&bsn, "Noor", BREDA))
            .await,
        "Breda registers Almere's child again",
    );
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().contains("another municipality"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains(&child.subject_id));
    assert!(!status.message().contains(ALMERE));
    let details = status.get_error_details();
    let info = details.error_info().expect("error info");
    assert!(info.metadata.is_empty(), "{:?}", info.metadata);
    assert!(
        !format!("{:?}", status.metadata()).contains(&child.subject_id),
        "no id anywhere in the answer"
    );

    // the municipality that may read the subject gets the id
    let status = expect_err(
        app.client(&almere(&app, Role::Coordinator))
            .register_subject(in_municipality(&bsn, "Noor", ALMERE))
            .await,
        "Almere registers its child again",
    );
    let details = status.get_error_details();
    assert_eq!(
        details.error_info().expect("info").metadata["subject_id"],
        child.subject_id
    );
    assert_eq!(app.count_subjects().await, 1);
}

#[tokio::test]
async fn registering_in_a_municipality_outside_the_jurisdiction_is_refused() {
    let app = TestApp::spawn().await;
    for (token, case) in [
        (breda(&app, Role::Professional), "Breda registers in Almere"),
        (
            app.keys.token_in(
                "wijkteam-x",
                OrgType::NeighbourhoodTeam,
                &[Role::Professional],
                &[],
            ),
            "a team without jurisdiction",
        ),
    ] {
        let status = expect_err(
            app.client(&token)
                .register_subject(in_municipality(&valid_bsn(3), "Noor", ALMERE))
                .await,
            case,
        );
        assert_eq!(status.code(), Code::PermissionDenied, "{case}: {status:?}");
        assert!(status.message().contains(ALMERE), "{}", status.message());
    }
    assert_eq!(app.count_subjects().await, 0);
}

#[tokio::test]
async fn a_team_of_another_municipality_cannot_link_a_fabricated_parent() {
    let app = TestApp::spawn().await;
    let child = almere_child(&app, &valid_bsn(4)).await;
    let mut team = app.client(&breda_team(&app));
    let fabricated = team
        .register_subject(in_municipality(&valid_bsn(5), "Piet", BREDA))
        .await
        .expect("Breda registers someone in Breda")
        .into_inner()
        .subject
        .expect("subject");

    let status = expect_err(
        team.link_relation(link_request(&fabricated.subject_id, &child.subject_id))
            .await,
        "link a Breda parent to Almere's child",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("child_subject_id"));
    let status = expect_err(
        team.link_relation(link_request(&child.subject_id, &fabricated.subject_id))
            .await,
        "Almere's child as the parent",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("parent_subject_id"));
    for status in [
        expect_err(
            team.list_family(pb::ListFamilyRequest {
                subject_id: child.subject_id.clone(),
            })
            .await,
            "family of Almere's child",
        ),
        expect_err(
            team.list_relations(pb::ListRelationsRequest {
                subject_id: child.subject_id.clone(),
                ..Default::default()
            })
            .await,
            "relations of Almere's child",
        ),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let relations: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.relations")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(relations, 0);
    assert_eq!(
        audit_results(&app, "LinkRelation").await,
        [
            NOT_FOUND_OUTSIDE_JURISDICTION,
            NOT_FOUND_OUTSIDE_JURISDICTION
        ]
    );
}

#[tokio::test]
async fn a_move_hands_the_subject_to_the_new_municipality() {
    let app = TestApp::spawn().await;
    let child = almere_child(&app, &valid_bsn(6)).await;
    let mut almere_client = app.client(&almere(&app, Role::Professional));

    // the neighbourhood must move along
    let status = expect_err(
        almere_client
            .update_subject(update(
                &child.subject_id,
                pb::Subject {
                    municipality_code: BREDA.into(),
                    ..Default::default()
                },
                &["municipality_code"],
            ))
            .await,
        "a move without the neighbourhood",
    );
    assert_invalid(&status, "subject.neighbourhood_code", "move");

    // Breda cannot move it to itself
    let status = expect_err(
        app.client(&breda(&app, Role::Professional))
            .update_subject(update(
                &child.subject_id,
                pb::Subject {
                    municipality_code: BREDA.into(),
                    neighbourhood_code: "WK075801".into(),
                    ..Default::default()
                },
                &["municipality_code", "neighbourhood_code"],
            ))
            .await,
        "Breda takes Almere's child",
    );
    assert_eq!(status.code(), Code::NotFound);

    let moved = almere_client
        .update_subject(update(
            &child.subject_id,
            pb::Subject {
                municipality_code: BREDA.into(),
                neighbourhood_code: "WK075801".into(),
                ..Default::default()
            },
            &["municipality_code", "neighbourhood_code"],
        ))
        .await
        .expect("Almere moves its child to Breda")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(moved.municipality_code, BREDA);

    // from now on only Breda sees the child
    let status = expect_err(
        almere_client.get_subject(get(&child.subject_id)).await,
        "Almere after the move",
    );
    assert_eq!(status.code(), Code::NotFound);
    let seen = app
        .client(&breda(&app, Role::Professional))
        .get_subject(get(&child.subject_id))
        .await
        .expect("Breda after the move")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(seen.neighbourhood_code, "WK075801");

    let (codes,): (serde_json::Value,) =
        sqlx::query_as("SELECT codes FROM intake.outbox WHERE event_type = 'intake.subject.moved'")
            .fetch_one(&app.pool)
            .await
            .expect("moved event");
    assert_eq!(codes["from_municipality_code"], ALMERE);
    assert_eq!(codes["to_municipality_code"], BREDA);
    assert_eq!(
        audit_results(&app, "UpdateSubject").await,
        ["INVALID_ARGUMENT", NOT_FOUND_OUTSIDE_JURISDICTION, "OK"]
    );
}

#[tokio::test]
async fn only_coordinators_and_suite_services_record_a_death() {
    let app = TestApp::spawn().await;
    let first = almere_child(&app, &valid_bsn(7)).await;
    let second = almere_child(&app, &valid_bsn(8)).await;

    let status = expect_err(
        app.client(&almere(&app, Role::Professional))
            .update_subject(death(&first.subject_id))
            .await,
        "a professional of the municipality",
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("COORDINATOR"),
        "{}",
        status.message()
    );

    let dead = app
        .client(&almere(&app, Role::Coordinator))
        .update_subject(death(&first.subject_id))
        .await
        .expect("a coordinator of the municipality")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(dead.date_of_death, "2026-06-01");

    let dead = app
        .client(&app.service())
        .update_subject(death(&second.subject_id))
        .await
        .expect("a suite service")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(dead.date_of_death, "2026-06-01");

    let deceased: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM intake.outbox WHERE event_type = 'intake.subject.deceased'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("events");
    assert_eq!(deceased, 2);
}

#[tokio::test]
async fn relations_keep_their_source_and_wrong_ones_can_be_unlinked() {
    let app = TestApp::spawn().await;
    let child = almere_child(&app, &valid_bsn(9)).await;
    let parent = almere_child(&app, &valid_bsn(10)).await;
    let mut coordinator = app.client(&almere(&app, Role::Coordinator));

    let status = expect_err(
        coordinator
            .link_relation(pb::LinkRelationRequest {
                source: pb::RelationSource::Unspecified as i32,
                ..link_request(&parent.subject_id, &child.subject_id)
            })
            .await,
        "no source",
    );
    assert_invalid(&status, "source", "link without a source");

    coordinator
        .link_relation(pb::LinkRelationRequest {
            source: pb::RelationSource::CourtOrder as i32,
            kind: pb::RelationKind::Guardian as i32,
            ..link_request(&parent.subject_id, &child.subject_id)
        })
        .await
        .expect("link");
    let listed = coordinator
        .list_relations(pb::ListRelationsRequest {
            subject_id: child.subject_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .relations;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].source(), pb::RelationSource::CourtOrder);

    // unlinking needs a reason, and a coordinator
    let unlink = |reason: pb::UnlinkReason| pb::UnlinkRelationRequest {
        request_id: request_id(),
        parent_subject_id: parent.subject_id.clone(),
        child_subject_id: child.subject_id.clone(),
        reason: reason as i32,
    };
    assert_invalid(
        &expect_err(
            coordinator
                .unlink_relation(unlink(pb::UnlinkReason::Unspecified))
                .await,
            "no reason",
        ),
        "reason",
        "unlink without a reason",
    );
    let status = expect_err(
        app.client(&almere(&app, Role::Professional))
            .unlink_relation(unlink(pb::UnlinkReason::WrongPerson))
            .await,
        "a professional unlinks",
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = expect_err(
        app.client(&breda(&app, Role::Coordinator))
            .unlink_relation(unlink(pb::UnlinkReason::WrongPerson))
            .await,
        "another municipality unlinks",
    );
    assert_eq!(status.code(), Code::NotFound);

    let request = unlink(pb::UnlinkReason::WrongPerson);
    let removed = coordinator
        .unlink_relation(request.clone())
        .await
        .expect("unlink")
        .into_inner()
        .relation
        .expect("the removed relation");
    assert_eq!(removed.source(), pb::RelationSource::CourtOrder);
    assert_eq!(removed.kind(), pb::RelationKind::Guardian);
    // a retry gets the same answer; a new request finds nothing to remove
    let again = coordinator
        .unlink_relation(request)
        .await
        .expect("retry")
        .into_inner()
        .relation
        .expect("relation");
    assert_eq!(again, removed);
    let status = expect_err(
        coordinator
            .unlink_relation(unlink(pb::UnlinkReason::WrongPerson))
            .await,
        "nothing left to unlink",
    );
    assert_eq!(status.code(), Code::NotFound);

    let family = coordinator
        .list_family(pb::ListFamilyRequest {
            subject_id: child.subject_id.clone(),
        })
        .await
        .expect("family")
        .into_inner();
    assert!(family.parent_subject_ids.is_empty());
    let events: Vec<(serde_json::Value, serde_json::Value)> = sqlx::query_as(
        "SELECT ids, codes FROM intake.outbox WHERE event_type = 'intake.relation.unlinked'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("events");
    assert_eq!(events.len(), 1, "one event, not one per retry");
    assert_eq!(events[0].0["child_subject_id"], child.subject_id.as_str());
    assert_eq!(events[0].1["reason"], "WRONG_PERSON");
    assert_eq!(
        audit_results(&app, "UnlinkRelation").await,
        [
            "INVALID_ARGUMENT",
            "PERMISSION_DENIED",
            NOT_FOUND_OUTSIDE_JURISDICTION,
            "OK",
            "OK",
            "NOT_FOUND"
        ]
    );
}

#[tokio::test]
async fn an_unknown_bsn_is_answered_with_its_lookup_reference() {
    let app = TestApp::spawn().await;
    let mut service = app.client(&app.service());
    let bsn = valid_bsn(11);
    let resolve = |create: bool| pb::ResolveSubjectRequest {
        bsn: bsn.clone(),
        create_if_missing: create,
        municipality_code: ALMERE.into(),
        birth_date: "2019-02-03".into(),
    };
    let status = expect_err(service.resolve_subject(resolve(false)).await, "unknown");
    assert_eq!(status.code(), Code::NotFound);
    let lookup_ref = status
        .get_error_details()
        .error_info()
        .expect("error info")
        .metadata["lookup_ref"]
        .clone();
    let again = expect_err(service.resolve_subject(resolve(false)).await, "again");
    assert_eq!(
        again
            .get_error_details()
            .error_info()
            .expect("info")
            .metadata["lookup_ref"],
        lookup_ref,
        "the same BSN, the same reference"
    );
    let created = service
        .resolve_subject(resolve(true))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.lookup_ref, lookup_ref);
    assert_eq!(created.birth_date, "2019-02-03", "recorded on creation");
    let subject = app
        .client(&almere(&app, Role::Professional))
        .get_subject(get(&created.subject_id))
        .await
        .expect("Almere sees the subject created for it")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(subject.municipality_code, ALMERE);

    let other = expect_err(
        service
            .resolve_subject(pb::ResolveSubjectRequest {
                bsn: valid_bsn(12),
                ..Default::default()
            })
            .await,
        "another BSN",
    );
    assert_ne!(
        other
            .get_error_details()
            .error_info()
            .expect("info")
            .metadata["lookup_ref"],
        lookup_ref
    );
    assert!(!lookup_ref.contains(&bsn[..6]));

    // the attempts are traceable in the audit by the reference
    let reference = uuid::Uuid::try_parse(&lookup_ref).expect("a uuid");
    let records: Vec<(String, Vec<uuid::Uuid>)> = sqlx::query_as(
        "SELECT result, object_ids FROM intake.audit_log WHERE action LIKE '%ResolveSubject' ORDER BY seq",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(records[0], ("NOT_FOUND".into(), vec![reference]));
    assert_eq!(records[1], ("NOT_FOUND".into(), vec![reference]));
    assert!(records[2].1.contains(&reference));

    // the creation facts are checked
    let status = expect_err(
        service
            .resolve_subject(pb::ResolveSubjectRequest {
                bsn: valid_bsn(13),
                create_if_missing: true,
                municipality_code: "Almere".into(),
                birth_date: "2019-02-30".into(),
            })
            .await,
        "bad facts",
    );
    let mut fields = crate::helpers::violation_fields(&status);
    fields.sort();
    assert_eq!(fields, ["birth_date", "municipality_code"]);
}

#[tokio::test]
async fn a_malformed_municipalities_claim_is_unauthenticated() {
    let app = TestApp::spawn().await;
    for claim in [
        serde_json::json!(["Breda"]),
        serde_json::json!(["gm0758"]),
        serde_json::json!("GM0758"),
        serde_json::json!([758]),
    ] {
        let mut body = serde_json::to_value(app.claims()).expect("claims");
        body["municipalities"] = claim.clone();
        let token = app.keys.signer().mint_json(&body).expect("sign");
        let status = expect_err(
            app.client(&token)
                .get_subject(get(&uuid::Uuid::now_v7().to_string()))
                .await,
            "malformed claim",
        );
        assert_eq!(status.code(), Code::Unauthenticated, "{claim}: {status:?}");
        assert!(
            status.message().contains("municipalities"),
            "{}",
            status.message()
        );
    }
}

fn with_end_user<T>(message: T, user: &Principal) -> tonic::Request<T> {
    zvv_platform::client::on_behalf_of(message, user)
}

fn school_user() -> Principal {
    Principal {
        sub: "docent-17".into(),
        org: "school-1".into(),
        org_type: OrgType::School,
        roles: vec![Role::Professional],
        municipalities: vec![MunicipalityCode::parse(BREDA).expect("code")],
    }
}

#[tokio::test]
async fn a_suite_service_names_its_end_user_and_nobody_else_may() {
    let app = TestApp::spawn().await;
    let child = almere_child(&app, &valid_bsn(14)).await;

    // a suite service is not limited by jurisdiction; the audit names it and the end user
    app.client(&app.service())
        .get_subject(with_end_user(get(&child.subject_id), &school_user()))
        .await
        .expect("a service on behalf of a school");
    let (actor, end_user, end_user_type, end_user_sub): (String, String, String, String) =
        sqlx::query_as(
            "SELECT actor_org, end_user_org, end_user_org_type, end_user_sub FROM intake.audit_log \
             WHERE action LIKE '%GetSubject' ORDER BY seq DESC LIMIT 1",
        )
        .fetch_one(&app.pool)
        .await
        .expect("audit");
    assert_eq!(actor, "signalling");
    assert_eq!(
        (
            end_user.as_str(),
            end_user_type.as_str(),
            end_user_sub.as_str()
        ),
        ("school-1", "SCHOOL", "docent-17")
    );

    // the end user's jurisdiction does not limit the service, nor lift a professional's
    let status = expect_err(
        app.client(&breda(&app, Role::Professional))
            .get_subject(with_end_user(
                get(&child.subject_id),
                &Principal {
                    org_type: OrgType::Suite,
                    roles: vec![Role::Service],
                    ..school_user()
                },
            ))
            .await,
        "a professional claims an end user",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // malformed end-user metadata from a service
    let mut request = tonic::Request::new(get(&child.subject_id));
    request
        .metadata_mut()
        .insert(END_USER_METADATA, "bm90IGpzb24".parse().expect("value"));
    let status = expect_err(
        app.client(&app.service()).get_subject(request).await,
        "malformed end user",
    );
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        audit_results(&app, "GetSubject").await,
        ["OK", "PERMISSION_DENIED", "UNAUTHENTICATED"]
    );
}

#[tokio::test]
async fn unauthenticated_calls_past_the_budget_cost_no_audit_write() {
    let app = TestApp::spawn_with(ServerSettings {
        auth_failure_budget: BudgetSettings {
            burst: 3,
            per_minute: 0,
        },
        ..ServerSettings::default()
    })
    .await;
    let shed_before = zvv_platform::budget::shed_total();
    let mut garbage = app.client("not-a-token");
    let mut codes = Vec::new();
    let mut last = None;
    for _ in 0..6 {
        let status = expect_err(
            garbage
                .get_subject(get(&uuid::Uuid::now_v7().to_string()))
                .await,
            "garbage token",
        );
        codes.push(status.code());
        last = Some(status);
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ]
    );
    let last = last.expect("a status");
    assert!(
        last.get_error_details().retry_info().is_some(),
        "a retry hint"
    );
    assert!(zvv_platform::budget::shed_total() >= shed_before + 3);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM intake.audit_log WHERE result = 'UNAUTHENTICATED'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(audited, 3, "only the calls within the budget are written");

    // an authenticated caller from the same address is served and audited as always
    let status = expect_err(
        app.client(&app.muni_professional())
            .get_subject(get(&uuid::Uuid::now_v7().to_string()))
            .await,
        "a valid token",
    );
    assert_eq!(status.code(), Code::NotFound);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(audit_results(&app, "GetSubject").await.len(), 4);
}
