//! Client matches: created by a second organisation, joined by a third, left by closing, closed
//! when fewer than two organisations remain; never within one organisation; exactly one when
//! two organisations register at the same moment.

use tonic::Code;
use zvv_proto::signalling::v1 as pb;

use crate::helpers::{
    POLICE, SCHOOL, TEAM, TestApp, YOUTH_HEALTH, assert_code, by_subject, organisations,
    signal_ids, sorted, valid_bsn,
};

fn id_of(r: &pb::RegisterSignalResponse) -> String {
    r.signal.as_ref().expect("signal").signal_id.clone()
}

#[tokio::test]
async fn a_second_active_signal_of_one_organisation_is_already_exists_until_closed() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let first = app.signal(SCHOOL, &subject).await;

    // another professional of the same organisation, another request
    let colleague = app.colleague_token(SCHOOL, "school-1-mentor");
    assert_code(
        app.client_with(&colleague)
            .register_signal(by_subject(&subject, SCHOOL))
            .await,
        Code::AlreadyExists,
        "second active signal of the school",
    );
    assert_code(
        app.client(SCHOOL)
            .register_signal(by_subject(&subject, SCHOOL))
            .await,
        Code::AlreadyExists,
        "same professional again",
    );
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        1
    );

    let closed = app.close(SCHOOL, &id_of(&first)).await;
    assert_eq!(closed.status, pb::SignalStatus::Closed as i32);
    assert_eq!(closed.close_reason, pb::CloseReason::RiskGone as i32);
    assert!(closed.close_time.is_some());

    let again = app.signal(SCHOOL, &subject).await;
    assert_ne!(id_of(&again), id_of(&first));
    assert!(
        again.matches.is_empty(),
        "still no match: {:?}",
        again.matches
    );
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals WHERE status = 'ACTIVE'")
            .await,
        1
    );
}

#[tokio::test]
async fn one_organisation_alone_makes_no_match() {
    let app = TestApp::spawn().await;
    let a = app.child(&valid_bsn(1)).await;
    let b = app.child(&valid_bsn(2)).await;
    // one organisation on two children, and a colleague of it on the first (refused)
    let on_a = app.signal(SCHOOL, &a).await;
    let on_b = app.signal(SCHOOL, &b).await;
    assert!(on_a.matches.is_empty(), "{:?}", on_a.matches);
    assert!(on_b.matches.is_empty(), "{:?}", on_b.matches);
    let colleague = app.colleague_token(SCHOOL, "school-1-care-coordinator");
    assert_code(
        app.client_with(&colleague)
            .register_signal(by_subject(&a, SCHOOL))
            .await,
        Code::AlreadyExists,
        "colleague",
    );
    assert!(app.list_matches(SCHOOL).await.is_empty());
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.matches").await,
        0
    );
}

#[tokio::test]
async fn a_third_organisation_joins_and_closing_leaves_until_the_match_closes() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let school = app.signal(SCHOOL, &subject).await;
    let health = app.signal(YOUTH_HEALTH, &subject).await;
    let created = health.matches.first().expect("a match").clone();
    let match_id = created.match_id.clone();

    // the third organisation joins the same match
    let police = app.signal(POLICE, &subject).await;
    assert_eq!(police.matches.len(), 1, "{:?}", police.matches);
    let joined = &police.matches[0];
    assert_eq!(joined.match_id, match_id, "joined, not a new match");
    assert_eq!(joined.participants.len(), 3);
    assert_eq!(
        organisations(joined),
        sorted([SCHOOL.name, YOUTH_HEALTH.name, POLICE.name])
    );
    assert_eq!(
        signal_ids(joined),
        sorted([&id_of(&school), &id_of(&health), &id_of(&police)])
    );
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.matches").await,
        1
    );
    // the first participant sees the joined match too
    let seen = app.get_match(SCHOOL, &match_id).await;
    assert_eq!(seen.participants.len(), 3);

    // the school leaves: two organisations remain, the match stays open without it
    app.close(SCHOOL, &id_of(&school)).await;
    let after = app.get_match(POLICE, &match_id).await;
    assert_eq!(after.status, pb::MatchStatus::Open as i32);
    assert_eq!(
        organisations(&after),
        sorted([YOUTH_HEALTH.name, POLICE.name])
    );
    assert_eq!(
        signal_ids(&after),
        sorted([&id_of(&health), &id_of(&police)])
    );

    // youth health leaves: one organisation left, the match is closed
    app.close(YOUTH_HEALTH, &id_of(&health)).await;
    let closed = app.get_match(POLICE, &match_id).await;
    assert_eq!(closed.status, pb::MatchStatus::Closed as i32, "{closed:?}");
    assert!(
        !organisations(&closed)
            .iter()
            .any(|o| o == SCHOOL.name || o == YOUTH_HEALTH.name),
        "those who left are no participants: {closed:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.matches WHERE status = 'OPEN'")
            .await,
        0
    );

    // the organisation still in it lists it (closed); those who left do not see it as theirs
    let police_matches = app.list_matches(POLICE).await;
    assert_eq!(police_matches.len(), 1, "{police_matches:?}");
    assert_eq!(police_matches[0].match_id, match_id);
    assert_eq!(police_matches[0].status, pb::MatchStatus::Closed as i32);

    // a new organisation signalling later makes a new open match with the police
    let team = app.signal(TEAM, &subject).await;
    assert_eq!(team.matches.len(), 1, "{:?}", team.matches);
    assert_ne!(team.matches[0].match_id, match_id, "a new match");
    assert_eq!(team.matches[0].status, pb::MatchStatus::Open as i32);
    assert_eq!(
        organisations(&team.matches[0]),
        sorted([POLICE.name, TEAM.name])
    );
}

#[tokio::test]
async fn two_organisations_at_the_same_moment_make_exactly_one_match() {
    let app = TestApp::spawn().await;
    let mut subjects = Vec::new();
    for n in 0..10 {
        subjects.push(app.child(&valid_bsn(100 + n)).await);
    }
    for subject in &subjects {
        let (mut school, mut health) = (app.client(SCHOOL), app.client(YOUTH_HEALTH));
        let (a, b) = (
            by_subject(subject, SCHOOL),
            by_subject(subject, YOUTH_HEALTH),
        );
        let first = tokio::spawn(async move { school.register_signal(a).await });
        let second = tokio::spawn(async move { health.register_signal(b).await });
        let a = first.await.expect("task").expect("school registers");
        let b = second.await.expect("task").expect("youth health registers");
        let (a, b) = (a.into_inner(), b.into_inner());

        let open: Vec<(String, i64)> = sqlx::query_as(
            "SELECT m.match_id::text, (SELECT count(*) FROM signalling.match_signals s \
                                        WHERE s.match_id = m.match_id) \
             FROM signalling.matches m \
             WHERE m.anchor_subject_id = $1 AND m.status = 'OPEN'",
        )
        .bind(uuid::Uuid::try_parse(subject).expect("uuid"))
        .fetch_all(&app.pool)
        .await
        .expect("open matches");
        assert_eq!(
            open.len(),
            1,
            "exactly one open match on {subject}: {open:?}"
        );
        assert_eq!(open[0].1, 2, "with both signals");

        // at least one of the two responses reports it, and none reports another
        let reported: Vec<&pb::Match> = a.matches.iter().chain(b.matches.iter()).collect();
        assert!(
            !reported.is_empty(),
            "the later registration reports the match"
        );
        for m in reported {
            assert_eq!(m.match_id, open[0].0);
        }
        let m = app.get_match(SCHOOL, &open[0].0).await;
        assert_eq!(signal_ids(&m), sorted([&id_of(&a), &id_of(&b)]));
    }
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.matches").await,
        10
    );
}

#[tokio::test]
async fn siblings_signalled_by_two_organisations_make_a_family_match_until_one_leaves() {
    let app = TestApp::spawn().await;
    let (parent, first, second) = app.family(1).await;

    // one organisation on both children: no match
    let school_first = app.signal(SCHOOL, &first).await;
    let school_second = app.signal(SCHOOL, &second).await;
    assert!(
        school_second.matches.is_empty(),
        "{:?}",
        school_second.matches
    );

    // a second organisation on one of them: a family match of all three signals
    let health = app.signal(YOUTH_HEALTH, &second).await;
    let family: Vec<&pb::Match> = health
        .matches
        .iter()
        .filter(|m| m.kind == pb::MatchKind::Family as i32)
        .collect();
    assert_eq!(family.len(), 1, "{:?}", health.matches);
    let family = family[0].clone();
    assert_eq!(family.subject_ids, sorted([&first, &second]));
    assert_eq!(
        signal_ids(&family),
        sorted([
            &id_of(&school_first),
            &id_of(&school_second),
            &id_of(&health)
        ])
    );
    assert_eq!(
        organisations(&family),
        sorted([SCHOOL.name, YOUTH_HEALTH.name])
    );
    // and a client match on the second child
    assert!(
        health
            .matches
            .iter()
            .any(|m| m.kind == pb::MatchKind::Client as i32),
        "{:?}",
        health.matches
    );
    let anchored: String = sqlx::query_scalar(
        "SELECT anchor_subject_id::text FROM signalling.matches WHERE kind = 'FAMILY'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("family match");
    assert_eq!(anchored, parent, "anchored at the parent");

    // the school leaves the first child: two organisations remain, but on one child only
    app.close(SCHOOL, &id_of(&school_first)).await;
    let closed = app.get_match(YOUTH_HEALTH, &family.match_id).await;
    assert_eq!(closed.status, pb::MatchStatus::Closed as i32, "{closed:?}");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM signalling.matches WHERE kind = 'FAMILY' AND status = 'OPEN'"
        )
        .await,
        0
    );
}
