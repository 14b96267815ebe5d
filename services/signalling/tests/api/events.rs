//! Signalling's EventSink: intake's events, delivered by notifications (a suite SERVICE token
//! for signalling), destroy what signalling holds about a deceased subject and bring family
//! matches up to date when a relation changes; each event is taken once.

use tonic::Code;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::{events::v1 as epb, signalling::v1 as pb};

use crate::helpers::{
    NOTIFICATIONS_ORG, POLICE, SCHOOL, TEAM, TestApp, YOUTH_HEALTH, assert_code, referral_on,
    valid_bsn, violation_fields,
};

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::try_parse(s).expect("uuid")
}

fn deliver(event: &epb::Event) -> epb::DeliverRequest {
    epb::DeliverRequest {
        event: Some(event.clone()),
        subscription_id: uuid::Uuid::now_v7().to_string(),
    }
}

/// (event type, match id, audience organisations) of signalling's match events, in order.
async fn match_events(app: &TestApp) -> Vec<(String, String, Vec<String>)> {
    sqlx::query_as(
        "SELECT event_type, ids->>'match_id', audience_organisations FROM signalling.outbox \
         WHERE event_type LIKE 'signalling.match.%' ORDER BY occurred_at, event_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("match events")
}

async fn signals_of(app: &TestApp, subject: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM signalling.signals WHERE subject_id = $1")
        .bind(uuid(subject))
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

/// The audit records of deliveries: (result, actor org, object ids).
async fn deliveries(app: &TestApp) -> Vec<(String, String, Vec<uuid::Uuid>)> {
    app.audit_rows()
        .await
        .into_iter()
        .filter(|r| r.action == "zvv.events.v1.EventSink/Deliver")
        .map(|r| (r.result, r.actor_org, r.object_ids))
        .collect()
}

#[tokio::test]
async fn a_death_destroys_the_subjects_signals_and_closes_its_matches_once() {
    let app = TestApp::spawn().await;
    let child = app.child(&valid_bsn(1)).await;
    let other = app.child(&valid_bsn(2)).await;
    let school = app.signal(SCHOOL, &child).await.signal.expect("signal");
    let health = app.signal(YOUTH_HEALTH, &child).await;
    let client_match = health
        .matches
        .first()
        .expect("a client match")
        .match_id
        .clone();
    // an archived signal and a referral about the child, and a child who lives on
    let archived = app.signal(POLICE, &child).await.signal.expect("signal");
    app.close(POLICE, &archived.signal_id).await;
    app.referrals_with(&app.token(POLICE))
        .submit_referral(referral_on(&child))
        .await
        .expect("referral");
    app.signal(SCHOOL, &other).await;
    app.signal(YOUTH_HEALTH, &other).await;
    assert_eq!(signals_of(&app, &child).await, 3);

    app.record_death(&child).await;
    let death = app.intake_event("intake.subject.deceased").await;
    assert_eq!(death.resource_id, child);
    let answer = app
        .sink()
        .deliver(deliver(&death))
        .await
        .expect("delivered")
        .into_inner();
    assert!(!answer.duplicate);

    assert_eq!(
        signals_of(&app, &child).await,
        0,
        "active and archived signals"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.referrals").await,
        0,
        "the referral"
    );
    assert_eq!(signals_of(&app, &other).await, 2, "nobody else's");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM signalling.matches WHERE match_id = $1")
            .bind(uuid(&client_match))
            .fetch_one(&app.pool)
            .await
            .expect("match");
    assert_eq!(
        left, 0,
        "the match closed and, without signals, was removed"
    );
    let closed: Vec<_> = match_events(&app)
        .await
        .into_iter()
        .filter(|(t, id, _)| t == "signalling.match.closed" && *id == client_match)
        .collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(
        closed[0].2,
        [YOUTH_HEALTH.name, SCHOOL.name],
        "told to the organisations that were in it"
    );

    // audited with ids only, as the delivery of notifications
    let audited = deliveries(&app).await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let (result, actor, ids) = &audited[0];
    assert_eq!((result.as_str(), actor.as_str()), ("OK", NOTIFICATIONS_ORG));
    for id in [
        &child,
        &school.signal_id,
        &archived.signal_id,
        &client_match,
    ] {
        assert!(ids.contains(&uuid(id)), "{id} in {ids:?}");
    }

    // a redelivery is a duplicate and changes nothing
    let events_before = app.events(None).await;
    let again = app
        .sink()
        .deliver(deliver(&death))
        .await
        .expect("redelivered")
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(app.events(None).await, events_before, "no event twice");
    assert_eq!(signals_of(&app, &other).await, 2);
    let audited = deliveries(&app).await;
    assert_eq!(audited.len(), 2, "the duplicate is audited too");
    assert_eq!(audited[1].0, "OK");
    assert_eq!(audited[1].2, [uuid(&child)]);
}

#[tokio::test]
async fn a_death_intake_does_not_record_destroys_nothing_and_is_retried() {
    let app = TestApp::spawn().await;
    let child = app.child(&valid_bsn(1)).await;
    app.signal(SCHOOL, &child).await;
    let forged = epb::Event {
        event_id: uuid::Uuid::now_v7().to_string(),
        source: "intake".into(),
        channel: "intake.subjects".into(),
        resource: "subject".into(),
        resource_id: child.clone(),
        action: "deceased".into(),
        attributes: [("subject_id".to_owned(), child.clone())].into(),
        ..Default::default()
    };
    assert_code(
        app.sink().deliver(deliver(&forged)).await,
        Code::FailedPrecondition,
        "intake knows the child alive",
    );
    assert_eq!(signals_of(&app, &child).await, 1, "nothing destroyed");
    let audited = deliveries(&app).await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0, "FAILED_PRECONDITION");
    assert_eq!(audited[0].2, [uuid(&child)]);

    // once intake records the death, the same event is taken: it was not marked taken before
    app.record_death(&child).await;
    let answer = app
        .sink()
        .deliver(deliver(&forged))
        .await
        .expect("delivered")
        .into_inner();
    assert!(!answer.duplicate);
    assert_eq!(signals_of(&app, &child).await, 0);
}

#[tokio::test]
async fn only_suite_services_may_deliver_and_bad_events_name_their_field() {
    let app = TestApp::spawn().await;
    let child = app.child(&valid_bsn(1)).await;
    app.signal(SCHOOL, &child).await;
    app.record_death(&child).await;
    let death = app.intake_event("intake.subject.deceased").await;

    for (who, token) in [
        ("a professional", app.token(SCHOOL)),
        ("a coordinator", app.token(TEAM)),
        (
            "a municipality",
            app.keys
                .token("gm0363", OrgType::Municipality, &[Role::Coordinator]),
        ),
        (
            "SERVICE of an organisation",
            app.keys
                .token("school-1", OrgType::School, &[Role::Service]),
        ),
    ] {
        assert_code(
            app.sink_with(&token).deliver(deliver(&death)).await,
            Code::PermissionDenied,
            who,
        );
    }
    // a SERVICE token for another service is not accepted here
    let for_intake = app
        .keys
        .service_token(NOTIFICATIONS_ORG, zvv_intake::SCHEMA.name());
    assert_code(
        app.sink_with(&for_intake).deliver(deliver(&death)).await,
        Code::Unauthenticated,
        "a token for intake",
    );
    assert_eq!(signals_of(&app, &child).await, 1, "nothing destroyed");
    let refused = deliveries(&app).await;
    assert_eq!(refused.len(), 5, "every refusal is audited: {refused:?}");
    assert!(
        refused[..4].iter().all(|r| r.0 == "PERMISSION_DENIED"),
        "{refused:?}"
    );

    let mut bad = death.clone();
    bad.event_id = "not-an-id".into();
    let status = assert_code(
        app.sink().deliver(deliver(&bad)).await,
        Code::InvalidArgument,
        "bad event id",
    );
    assert_eq!(violation_fields(&status), ["event.event_id"]);
    let mut bad = death.clone();
    bad.attributes.remove("subject_id");
    let status = assert_code(
        app.sink().deliver(deliver(&bad)).await,
        Code::InvalidArgument,
        "no subject",
    );
    assert_eq!(violation_fields(&status), ["event.attributes.subject_id"]);
    let status = assert_code(
        app.sink()
            .deliver(epb::DeliverRequest {
                event: None,
                subscription_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "no event",
    );
    assert_eq!(violation_fields(&status), ["event"]);
    assert_eq!(signals_of(&app, &child).await, 1, "nothing destroyed");

    // an event signalling does nothing with is taken, once
    let registered = app.intake_event("intake.subject.registered").await;
    let first = app
        .sink()
        .deliver(deliver(&registered))
        .await
        .expect("taken");
    assert!(!first.into_inner().duplicate);
    let second = app
        .sink()
        .deliver(deliver(&registered))
        .await
        .expect("taken");
    assert!(second.into_inner().duplicate);
}

#[tokio::test]
async fn unlinking_closes_a_family_match_and_linking_again_forms_it() {
    let app = TestApp::spawn().await;
    let (parent, first, second) = app.family(10).await;
    app.signal(SCHOOL, &first).await;
    let family = app
        .signal(POLICE, &second)
        .await
        .matches
        .iter()
        .find(|m| m.kind == pb::MatchKind::Family as i32)
        .expect("a family match")
        .match_id
        .clone();

    app.unlink(&parent, &first).await;
    let unlinked = app.intake_event("intake.relation.unlinked").await;
    assert_eq!(unlinked.attributes["parent_subject_id"], parent);
    let answer = app
        .sink()
        .deliver(deliver(&unlinked))
        .await
        .expect("delivered")
        .into_inner();
    assert!(!answer.duplicate);
    // the school's signal on the child no longer of the family has left the match, which closed
    let m = app.get_match(POLICE, &family).await;
    assert_eq!(m.status, pb::MatchStatus::Closed as i32, "{m:?}");
    assert_eq!(m.subject_ids, std::slice::from_ref(&second));
    let events = match_events(&app).await;
    let closed: Vec<_> = events
        .iter()
        .filter(|(t, id, _)| t == "signalling.match.closed" && *id == family)
        .collect();
    assert_eq!(closed.len(), 1, "{events:?}");
    assert_eq!(closed[0].2, [POLICE.name, SCHOOL.name]);
    assert!(
        app.list_matches(POLICE)
            .await
            .iter()
            .all(|m| m.status == pb::MatchStatus::Closed as i32),
        "no family match of the two any more"
    );
    // a redelivery changes nothing
    let events_before = app.events(None).await;
    let again = app.sink().deliver(deliver(&unlinked)).await.expect("again");
    assert!(again.into_inner().duplicate);
    assert_eq!(app.events(None).await, events_before);

    // linked again: the family's signals form a new family match
    app.link(&parent, &first).await;
    let linked = app.intake_event("intake.relation.linked").await;
    assert_eq!(linked.resource_id, unlinked.resource_id, "one relation");
    app.sink()
        .deliver(deliver(&linked))
        .await
        .expect("delivered");
    let open: Vec<pb::Match> = app
        .list_matches(SCHOOL)
        .await
        .into_iter()
        .filter(|m| {
            m.kind == pb::MatchKind::Family as i32 && m.status == pb::MatchStatus::Open as i32
        })
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_ne!(open[0].match_id, family);
    let mut subjects = open[0].subject_ids.clone();
    subjects.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(subjects, expected);
    assert!(
        match_events(&app)
            .await
            .iter()
            .any(|(t, id, _)| t == "signalling.match.created" && *id == open[0].match_id),
        "announced"
    );
    // the stale unlink delivered once more (a new delivery of an old event id is a duplicate;
    // an old event under a new id does not undo the link: intake's family decides)
    let mut stale = unlinked.clone();
    stale.event_id = uuid::Uuid::now_v7().to_string();
    app.sink()
        .deliver(deliver(&stale))
        .await
        .expect("delivered");
    let m = app.get_match(SCHOOL, &open[0].match_id).await;
    assert_eq!(
        m.status,
        pb::MatchStatus::Open as i32,
        "the family as intake knows it now"
    );
}
