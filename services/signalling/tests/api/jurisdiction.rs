//! Need-to-know in signalling, each attack from outside as a named test: a family match forced
//! onto another municipality's child, triage outside the caller's municipality, referral
//! routing, statistics of another municipality, a reused request_id as a BSN oracle, and
//! probing for unknown children; plus the retention of decided referrals.

use chrono::{Duration, Months};
use tonic::Code;
use zvv_platform::{
    audit::NOT_FOUND_OUTSIDE_JURISDICTION,
    auth::{OrgType, Role},
};
use zvv_proto::{intake::v1 as ipb, signalling::v1 as pb};

use crate::helpers::{
    Org, POLICE, SCHOOL, TODAY, TestApp, assert_code, assert_invalid, by_bsn, by_subject,
    referral_on, request_id, valid_bsn,
};

const ALMERE: &str = "GM0034";
const BREDA: &str = "GM0758";
const AMSTERDAM: &str = "GM0363";

/// Registers a person in `municipality` as a coordinator of it; returns the subject_id.
async fn register_in(app: &TestApp, bsn: &str, municipality: &str, born: &str) -> String {
    let token = app.keys.token_in(
        &format!("gemeente-{municipality}"),
        OrgType::Municipality,
        &[Role::Coordinator],
        &[municipality],
    );
    app.intake_with(&token)
        .register_subject(ipb::RegisterSubjectRequest {
            request_id: request_id(),
            bsn: bsn.to_owned(),
            given_name: "Kind".into(),
            family_name: "Jansen".into(),
            birth_date: born.into(),
            municipality_code: municipality.into(),
            neighbourhood_code: format!("WK{}01", &municipality[2..]),
        })
        .await
        .expect("registered")
        .into_inner()
        .subject
        .expect("subject")
        .subject_id
}

fn link(parent: &str, child: &str) -> ipb::LinkRelationRequest {
    ipb::LinkRelationRequest {
        request_id: request_id(),
        parent_subject_id: parent.to_owned(),
        child_subject_id: child.to_owned(),
        kind: ipb::RelationKind::Parent as i32,
        source: ipb::RelationSource::Declaration as i32,
    }
}

const BREDA_TEAM: Org = Org {
    name: "wijkteam-breda",
    org_type: OrgType::NeighbourhoodTeam,
    role: Role::Coordinator,
};

fn triage(app: &TestApp, org: &str, org_type: OrgType, municipalities: &[&str]) -> String {
    app.keys
        .token_in(org, org_type, &[Role::TriageOfficer], municipalities)
}

#[tokio::test]
async fn a_family_match_cannot_be_forced_onto_another_municipalitys_child() {
    let app = TestApp::spawn().await;
    let almere_child = register_in(&app, &valid_bsn(1), ALMERE, "2016-01-01").await;
    app.signal(SCHOOL, &almere_child).await;

    // a Breda team fabricates a parent and a sibling in Breda and tries to tie them to the child
    let team_token = app.keys.token_in(
        BREDA_TEAM.name,
        BREDA_TEAM.org_type,
        &[BREDA_TEAM.role],
        &[BREDA],
    );
    let parent = register_in(&app, &valid_bsn(2), BREDA, "1990-01-01").await;
    let sibling = register_in(&app, &valid_bsn(3), BREDA, "2017-01-01").await;
    let mut intake = app.intake_with(&team_token);
    let status = intake
        .link_relation(link(&parent, &almere_child))
        .await
        .expect_err("the Almere child is out of reach");
    assert_eq!(status.code(), Code::NotFound);
    intake
        .link_relation(link(&parent, &sibling))
        .await
        .expect("its own fabricated family");

    let response = app
        .client_with(&team_token)
        .register_signal(by_subject(&sibling, BREDA_TEAM))
        .await
        .expect("signal on the fabricated sibling")
        .into_inner();
    assert!(response.matches.is_empty(), "{:?}", response.matches);
    let seen = app.list_matches(BREDA_TEAM).await;
    assert!(seen.is_empty(), "no match shows the school: {seen:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.matches WHERE kind = 'FAMILY'")
            .await,
        0
    );
}

#[tokio::test]
async fn triage_is_for_the_desks_of_the_referrals_municipality_only() {
    let app = TestApp::spawn().await;
    let child = app.child(&valid_bsn(4)).await;
    let referral = app
        .referrals_with(&app.token(POLICE))
        .submit_referral(referral_on(&child))
        .await
        .expect("submitted")
        .into_inner()
        .referral
        .expect("referral");
    assert_eq!(
        referral.municipality_code, "",
        "the routing is not echoed to the submitter"
    );
    let decide = |id: &str| pb::DecideReferralRequest {
        request_id: request_id(),
        referral_id: id.to_owned(),
        decision: pb::ReferralDecision::NoAction as i32,
        rationale: "bekend".into(),
    };

    // a school's "triage officer" (any organisation type could carry the role) is refused
    let school = triage(&app, "school-1", OrgType::School, &[AMSTERDAM]);
    assert_code(
        app.referrals_with(&school)
            .list_referrals(pb::ListReferralsRequest::default())
            .await,
        Code::PermissionDenied,
        "a school lists referrals",
    );
    assert_code(
        app.referrals_with(&school)
            .decide_referral(decide(&referral.referral_id))
            .await,
        Code::PermissionDenied,
        "a school decides",
    );

    // Breda's desk sees none, and Amsterdam's referral is unknown to it
    let breda = triage(&app, "zvh-breda", OrgType::Municipality, &[BREDA]);
    let listed = app
        .referrals_with(&breda)
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.referrals.is_empty(), "{:?}", listed.referrals);
    let outside = assert_code(
        app.referrals_with(&breda)
            .decide_referral(decide(&referral.referral_id))
            .await,
        Code::NotFound,
        "Breda decides Amsterdam's referral",
    );
    let unknown_id = uuid::Uuid::now_v7().to_string();
    let unknown = assert_code(
        app.referrals_with(&breda)
            .decide_referral(decide(&unknown_id))
            .await,
        Code::NotFound,
        "an unknown referral",
    );
    assert_eq!(
        outside.message().replace(&referral.referral_id, "<id>"),
        unknown.message().replace(&unknown_id, "<id>"),
        "the same answer as for an unknown id"
    );

    // the desks that work for Amsterdam see it: the municipality, Veilig Thuis, a team
    for (org, org_type) in [
        ("gm0363", OrgType::Municipality),
        ("veilig-thuis-amsterdam", OrgType::VeiligThuis),
        ("wijkteam-centrum", OrgType::NeighbourhoodTeam),
    ] {
        let token = triage(&app, org, org_type, &[AMSTERDAM]);
        let listed = app
            .referrals_with(&token)
            .list_referrals(pb::ListReferralsRequest::default())
            .await
            .expect("list")
            .into_inner()
            .referrals;
        assert_eq!(listed.len(), 1, "{org}");
        assert_eq!(listed[0].municipality_code, AMSTERDAM);
    }
    let amsterdam = triage(&app, "zvh-amsterdam", OrgType::Municipality, &[AMSTERDAM]);
    app.referrals_with(&amsterdam)
        .decide_referral(decide(&referral.referral_id))
        .await
        .expect("Amsterdam decides");

    let results: Vec<String> = sqlx::query_scalar(
        "SELECT result FROM signalling.audit_log WHERE action LIKE '%DecideReferral' ORDER BY seq",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(
        results,
        [
            "PERMISSION_DENIED",
            NOT_FOUND_OUTSIDE_JURISDICTION,
            "NOT_FOUND",
            "OK"
        ]
    );
}

#[tokio::test]
async fn a_referral_goes_to_the_municipality_intake_knows_or_the_one_given() {
    let app = TestApp::spawn().await;
    let police = app.token(POLICE);
    let mut referrals = app.referrals_with(&police);

    // intake knows the child in Amsterdam: the police's "Breda" is overruled
    let known = app.child(&valid_bsn(5)).await;
    referrals
        .submit_referral(pb::SubmitReferralRequest {
            municipality_code: BREDA.into(),
            ..referral_on(&known)
        })
        .await
        .expect("submitted");

    // an unknown child is registered in the given municipality with the given birth date
    let unknown_bsn = valid_bsn(6);
    referrals
        .submit_referral(pb::SubmitReferralRequest {
            subject: Some(pb::submit_referral_request::Subject::Bsn(
                unknown_bsn.clone(),
            )),
            municipality_code: ALMERE.into(),
            birth_date: "2019-04-05".into(),
            ..referral_on(&known)
        })
        .await
        .expect("submitted for a new child");

    let routed: Vec<(String, Option<chrono::NaiveDate>)> = sqlx::query_as(
        "SELECT municipality_code, birth_date FROM signalling.referrals ORDER BY created_at, referral_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("referrals");
    assert_eq!(routed[0].0, AMSTERDAM);
    assert_eq!(routed[1].0, ALMERE);
    assert_eq!(
        routed[1].1.map(|d| d.to_string()).as_deref(),
        Some("2019-04-05")
    );
    let almere_view = app
        .intake_with(&app.keys.token_in(
            "gemeente-almere",
            OrgType::Municipality,
            &[Role::Professional],
            &[ALMERE],
        ))
        .get_subject(ipb::GetSubjectRequest {
            subject_id: sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT subject_id FROM signalling.referrals WHERE municipality_code = 'GM0034'",
            )
            .fetch_one(&app.pool)
            .await
            .expect("subject")
            .to_string(),
        })
        .await
        .expect("Almere sees the child the referral registered")
        .into_inner()
        .subject
        .expect("subject");
    assert_eq!(almere_view.birth_date, "2019-04-05");
    assert_eq!(almere_view.municipality_code, ALMERE);

    // each desk sees its own
    for (municipality, expected) in [(AMSTERDAM, 1), (ALMERE, 1), (BREDA, 0)] {
        let token = triage(&app, "desk", OrgType::Municipality, &[municipality]);
        let n = app
            .referrals_with(&token)
            .list_referrals(pb::ListReferralsRequest::default())
            .await
            .expect("list")
            .into_inner()
            .referrals
            .len();
        assert_eq!(n, expected, "{municipality}");
    }

    // the municipality is required and checked
    for (value, case) in [("", "missing"), ("Breda", "not a code")] {
        let status = referrals
            .submit_referral(pb::SubmitReferralRequest {
                municipality_code: value.into(),
                ..referral_on(&known)
            })
            .await
            .expect_err(case);
        assert_invalid(&status, "municipality_code", case);
    }
}

#[tokio::test]
async fn statistics_are_for_whole_months_of_the_analysts_municipality() {
    let app = TestApp::spawn().await;
    let month = &TODAY[..7];
    let ask = |token: &str, municipality: &str, from: &str, to: &str| {
        let mut client = app.client_with(token);
        let request = pb::GetSignalStatisticsRequest {
            municipality_code: municipality.to_owned(),
            from_month: from.to_owned(),
            to_month: to.to_owned(),
        };
        async move { client.get_signal_statistics(request).await }
    };
    let amsterdam = app.keys.token_in(
        "gemeente-amsterdam",
        OrgType::Municipality,
        &[Role::Analyst],
        &[AMSTERDAM],
    );
    ask(&amsterdam, AMSTERDAM, "2026-01", month)
        .await
        .expect("Amsterdam's own statistics");
    for (token, case) in [
        (
            app.keys.token_in(
                "gemeente-almere",
                OrgType::Municipality,
                &[Role::Analyst],
                &[ALMERE],
            ),
            "an Almere analyst",
        ),
        (
            app.keys
                .token_in("analist", OrgType::Municipality, &[Role::Analyst], &[]),
            "an analyst without jurisdiction",
        ),
    ] {
        assert_code(
            ask(&token, AMSTERDAM, month, month).await,
            Code::PermissionDenied,
            case,
        );
    }
    // days are not accepted, nor months that have not begun
    for (from, to, field) in [
        ("2026-06-14", "2026-06-15", "from_month"),
        ("2026-06", "2026-07", "to_month"),
        ("2026-07", "2026-07", "from_month"),
        ("", month, "from_month"),
    ] {
        let status = ask(&amsterdam, AMSTERDAM, from, to)
            .await
            .expect_err("bad period");
        assert_invalid(&status, field, &format!("{from}..{to}"));
    }
}

#[tokio::test]
async fn a_reused_request_id_is_refused_before_intake_is_asked() {
    let app = TestApp::spawn().await;
    let known_bsn = valid_bsn(7);
    let other_known = valid_bsn(8);
    app.child(&known_bsn).await;
    app.child(&other_known).await;
    let first = by_bsn(&known_bsn, SCHOOL);
    app.client(SCHOOL)
        .register_signal(first.clone())
        .await
        .expect("first");
    let asked = || {
        app.count(
            "SELECT count(*) FROM intake.audit_log WHERE actor_org = 'zvv-signalling' \
             AND action LIKE '%GetSubjectContext'",
        )
    };
    let before = asked().await;

    // the same id with a known and with an unknown BSN: one and the same answer
    let mut answers = Vec::new();
    for bsn in [other_known.clone(), valid_bsn(9)] {
        let status = app
            .client(SCHOOL)
            .register_signal(pb::RegisterSignalRequest {
                subject: by_bsn(&bsn, SCHOOL).subject,
                ..first.clone()
            })
            .await
            .expect_err("reused request_id");
        assert_invalid(&status, "request_id", "reused request_id");
        answers.push(status.message().to_owned());
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(asked().await, before, "intake was not asked");

    // the retry itself is answered from the first call, without intake either
    let replay = app
        .client(SCHOOL)
        .register_signal(first)
        .await
        .expect("retry")
        .into_inner();
    assert!(replay.signal.is_some());
    assert_eq!(asked().await, before);
}

#[tokio::test]
async fn probing_for_unknown_children_is_audited_with_the_lookup_reference() {
    let app = TestApp::spawn().await;
    let unknown = valid_bsn(10);
    for _ in 0..2 {
        assert_code(
            app.client(SCHOOL)
                .register_signal(by_bsn(&unknown, SCHOOL))
                .await,
            Code::FailedPrecondition,
            "unknown child",
        );
    }
    let ours: Vec<(String, Vec<uuid::Uuid>)> = sqlx::query_as(
        "SELECT result, object_ids FROM signalling.audit_log WHERE action LIKE '%RegisterSignal' ORDER BY seq",
    )
    .fetch_all(&app.pool)
    .await
    .expect("signalling audit");
    let intakes: Vec<Vec<uuid::Uuid>> = sqlx::query_scalar(
        "SELECT object_ids FROM intake.audit_log WHERE action LIKE '%GetSubjectContext' ORDER BY seq",
    )
    .fetch_all(&app.pool)
    .await
    .expect("intake audit");
    assert_eq!(ours.len(), 2);
    for (result, ids) in &ours {
        assert_eq!(result, "FAILED_PRECONDITION");
        assert_eq!(ids.len(), 1, "the BSN's lookup reference: {ids:?}");
        assert_eq!(ids, &intakes[0], "the same reference in both services");
    }
    assert_eq!(ours[0].1, ours[1].1, "repeated probes are linked");
    // no BSN in either record
    let text: String =
        sqlx::query_scalar("SELECT string_agg(a::text, ' ') FROM signalling.audit_log a")
            .fetch_one(&app.pool)
            .await
            .expect("text");
    assert!(!text.contains(&unknown));
}

#[tokio::test]
async fn decided_referrals_are_destroyed_after_the_retention_period() {
    let app = TestApp::spawn().await;
    // a child intake has no birth date for: the age rule cannot apply
    let bare = app.subject_without_birth_date(&valid_bsn(11)).await;
    let police = app.token(POLICE);
    let submit = |subject: String| {
        let mut client = app.referrals_with(&police);
        async move {
            client
                .submit_referral(referral_on(&subject))
                .await
                .expect("submitted")
                .into_inner()
                .referral
                .expect("referral")
                .referral_id
        }
    };
    let decided = submit(bare.clone()).await;
    let waiting = submit(bare).await;
    let desk = triage(&app, "zvh", OrgType::Municipality, &[AMSTERDAM]);
    app.referrals_with(&desk)
        .decide_referral(pb::DecideReferralRequest {
            request_id: request_id(),
            referral_id: decided.clone(),
            decision: pb::ReferralDecision::NoAction as i32,
            rationale: "geen zorgen".into(),
        })
        .await
        .expect("decided");

    let rules = zvv_signalling::retention::RetentionRules {
        decided_referral_months: 60,
    };
    let run = |months: u32| {
        let at = crate::helpers::now() + Months::new(months) + Duration::days(1);
        let pool = app.runtime_pool.clone();
        async move {
            zvv_signalling::retention::run(&pool, &rules, at.date_naive(), at)
                .await
                .expect("retention")
        }
    };
    assert_eq!(run(59).await.decided_referrals_destroyed, 0);
    assert_eq!(run(60).await.decided_referrals_destroyed, 1);
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT referral_id FROM signalling.referrals")
        .fetch_all(&app.pool)
        .await
        .expect("left");
    assert_eq!(left, [uuid::Uuid::try_parse(&waiting).expect("id")]);
    let audited: Vec<Vec<uuid::Uuid>> = sqlx::query_scalar(
        "SELECT object_ids FROM signalling.audit_log WHERE action = 'retention/destroy-decided-referrals'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audited.len(), 1);
    assert!(audited[0].contains(&uuid::Uuid::try_parse(&decided).expect("id")));

    // intake knows no birth date, the police give one: the referral goes at 23, like
    // everything else about the subject
    let young_adult = app.subject_without_birth_date(&valid_bsn(12)).await;
    app.referrals_with(&police)
        .submit_referral(pb::SubmitReferralRequest {
            birth_date: "2003-01-01".into(),
            ..referral_on(&young_adult)
        })
        .await
        .expect("submitted with a birth date");
    let report = run(0).await;
    assert_eq!(report.referrals_destroyed_at_23, 1, "{report:?}");
}
