//! Every mutating RPC takes a request_id: a retry returns the first response and changes
//! nothing (no second event, no second effect), a reused request_id with another request is
//! INVALID_ARGUMENT, and a missing one is INVALID_ARGUMENT naming it.

use tonic::Code;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::signalling::v1 as pb;

use crate::helpers::{
    POLICE, SCHOOL, TODAY, TestApp, YOUTH_HEALTH, assert_invalid, close_request, contact,
    expect_err, referral_on, request_id, valid_bsn,
};

/// A child signalled by the school and by youth health care: (signal of the school, match).
async fn matched(app: &TestApp, n: usize) -> (String, String) {
    let child = app.child(&valid_bsn(n)).await;
    let school = app
        .signal(SCHOOL, &child)
        .await
        .signal
        .expect("signal")
        .signal_id;
    let health = app.signal(YOUTH_HEALTH, &child).await;
    (school, health.matches[0].match_id.clone())
}

fn triage_token(app: &TestApp) -> String {
    app.keys.token_in(
        "zvh-amsterdam",
        OrgType::Municipality,
        &[Role::TriageOfficer],
        &["GM0363"],
    )
}

async fn referral(app: &TestApp, n: usize) -> String {
    let child = app.child(&valid_bsn(n)).await;
    app.referrals_with(&app.token(POLICE))
        .submit_referral(referral_on(&child))
        .await
        .expect("submitted")
        .into_inner()
        .referral
        .expect("referral")
        .referral_id
}

/// The state a retry must leave alone: every event and every row of signalling's tables.
async fn state(app: &TestApp) -> (i64, String) {
    let rows: String = sqlx::query_scalar(
        "SELECT concat_ws(' | ', \
            (SELECT string_agg(s::text, ',' ORDER BY signal_id) FROM signalling.signals s), \
            (SELECT string_agg(m::text, ',' ORDER BY match_id) FROM signalling.matches m), \
            (SELECT string_agg(ms::text, ',' ORDER BY match_id, signal_id) FROM signalling.match_signals ms), \
            (SELECT string_agg(r::text, ',' ORDER BY referral_id) FROM signalling.referrals r))",
    )
    .fetch_one(&app.pool)
    .await
    .expect("state");
    (app.events(None).await, rows)
}

/// Runs `call` twice with the same request and checks that the retry answered the first
/// response and changed nothing.
macro_rules! replayed {
    ($app:expr, $call:expr) => {{
        let first = $call.await.expect("first call").into_inner();
        let before = state(&$app).await;
        let again = $call.await.expect("retry").into_inner();
        assert_eq!(again, first, "the retry returns the first response");
        assert_eq!(state(&$app).await, before, "the retry changes nothing");
        first
    }};
}

#[tokio::test]
async fn a_retried_close_signal_returns_the_first_response_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (signal, _) = matched(&app, 1).await;
    let request = close_request(&signal);
    let closed = replayed!(app, app.client(SCHOOL).close_signal(request.clone()));
    assert_eq!(
        closed.signal.expect("signal").status,
        pb::SignalStatus::Closed as i32
    );
    assert_eq!(app.events(Some("signalling.signal.closed")).await, 1);
    assert_eq!(app.events(Some("signalling.match.closed")).await, 1);
    // a new request closing it again is refused: the signal is closed already
    let status = expect_err(
        app.client(SCHOOL)
            .close_signal(close_request(&signal))
            .await,
        "a new close",
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}

#[tokio::test]
async fn a_retried_record_information_duty_returns_the_first_response_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (signal, _) = matched(&app, 1).await;
    let request = pb::RecordInformationDutyRequest {
        request_id: request_id(),
        signal_id: signal.clone(),
        parents_informed_on: TODAY.into(),
        ..Default::default()
    };
    let recorded = replayed!(
        app,
        app.client(SCHOOL).record_information_duty(request.clone())
    );
    let duty = recorded
        .signal
        .expect("signal")
        .information_duty
        .expect("duty");
    assert!(duty.met, "{duty:?}");
    assert_eq!(
        app.events(Some("signalling.signal.information_duty_recorded"))
            .await,
        1
    );
}

#[tokio::test]
async fn a_retried_assign_coordinator_returns_the_first_response_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, match_id) = matched(&app, 1).await;
    let request = pb::AssignCoordinatorRequest {
        request_id: request_id(),
        match_id,
        organisation: SCHOOL.name.into(),
        contact: Some(contact(SCHOOL)),
    };
    let assigned = replayed!(app, app.client(SCHOOL).assign_coordinator(request.clone()));
    assert_eq!(
        assigned
            .r#match
            .expect("match")
            .coordinator
            .expect("coordinator")
            .organisation,
        SCHOOL.name
    );
    assert_eq!(
        app.events(Some("signalling.match.coordinator_assigned"))
            .await,
        1
    );
}

#[tokio::test]
async fn a_retried_mark_coordinated_returns_the_first_response_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, match_id) = matched(&app, 1).await;
    app.client(SCHOOL)
        .assign_coordinator(pb::AssignCoordinatorRequest {
            request_id: request_id(),
            match_id: match_id.clone(),
            organisation: SCHOOL.name.into(),
            contact: Some(contact(SCHOOL)),
        })
        .await
        .expect("coordinator");
    let request = pb::MarkCoordinatedRequest {
        request_id: request_id(),
        match_id,
    };
    let marked = replayed!(
        app,
        app.client(YOUTH_HEALTH).mark_coordinated(request.clone())
    );
    assert!(marked.r#match.expect("match").coordinated);
    assert_eq!(app.events(Some("signalling.match.coordinated")).await, 1);
}

#[tokio::test]
async fn a_retried_decide_referral_returns_the_first_response_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let referral = referral(&app, 1).await;
    let request = pb::DecideReferralRequest {
        request_id: request_id(),
        referral_id: referral,
        decision: pb::ReferralDecision::NoAction as i32,
        rationale: "al bekend bij het wijkteam".into(),
    };
    let token = triage_token(&app);
    let decided = replayed!(
        app,
        app.referrals_with(&token).decide_referral(request.clone())
    );
    assert_eq!(
        decided.referral.expect("referral").status,
        pb::ReferralStatus::Decided as i32
    );
    assert_eq!(app.events(Some("signalling.referral.decided")).await, 1);
}

#[tokio::test]
async fn retried_registrations_and_submissions_return_the_first_response_and_change_nothing() {
    let app = TestApp::spawn().await;
    let child = app.child(&valid_bsn(1)).await;
    let request = crate::helpers::by_subject(&child, SCHOOL);
    let first = replayed!(app, app.client(SCHOOL).register_signal(request.clone()));
    assert!(first.matches.is_empty());
    // the retry still answers the first response once a match exists
    app.signal(YOUTH_HEALTH, &child).await;
    let again = app
        .client(SCHOOL)
        .register_signal(request)
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(again, first);
    assert_eq!(app.events(Some("signalling.signal.registered")).await, 2);

    let police = app.token(POLICE);
    let submission = referral_on(&child);
    replayed!(
        app,
        app.referrals_with(&police)
            .submit_referral(submission.clone())
    );
    assert_eq!(app.events(Some("signalling.referral.submitted")).await, 1);
}

#[tokio::test]
async fn a_reused_request_id_with_another_request_is_invalid_argument() {
    let app = TestApp::spawn().await;
    let (signal, match_id) = matched(&app, 1).await;
    let (other_signal, other_match) = matched(&app, 2).await;
    let mut school = app.client(SCHOOL);

    // RecordInformationDuty: other dates, another signal
    let duty = pb::RecordInformationDutyRequest {
        request_id: request_id(),
        signal_id: signal.clone(),
        parents_informed_on: TODAY.into(),
        ..Default::default()
    };
    school
        .record_information_duty(duty.clone())
        .await
        .expect("first");
    let settled = state(&app).await;
    for other in [
        pb::RecordInformationDutyRequest {
            parents_informed_on: String::new(),
            postponement_reason: "nog niet".into(),
            ..duty.clone()
        },
        pb::RecordInformationDutyRequest {
            signal_id: other_signal.clone(),
            ..duty.clone()
        },
    ] {
        let status = expect_err(school.record_information_duty(other).await, "reused");
        assert_invalid(&status, "request_id", "RecordInformationDuty");
    }
    assert_eq!(
        state(&app).await,
        settled,
        "RecordInformationDuty changed nothing"
    );

    // AssignCoordinator: another coordinator, another match
    let assign = pb::AssignCoordinatorRequest {
        request_id: request_id(),
        match_id: match_id.clone(),
        organisation: SCHOOL.name.into(),
        contact: Some(contact(SCHOOL)),
    };
    school
        .assign_coordinator(assign.clone())
        .await
        .expect("first");
    let settled = state(&app).await;
    for other in [
        pb::AssignCoordinatorRequest {
            organisation: YOUTH_HEALTH.name.into(),
            contact: Some(contact(YOUTH_HEALTH)),
            ..assign.clone()
        },
        pb::AssignCoordinatorRequest {
            match_id: other_match.clone(),
            ..assign.clone()
        },
    ] {
        let status = expect_err(school.assign_coordinator(other).await, "reused");
        assert_invalid(&status, "request_id", "AssignCoordinator");
    }
    assert_eq!(
        state(&app).await,
        settled,
        "AssignCoordinator changed nothing"
    );

    // MarkCoordinated: another match
    let mark = pb::MarkCoordinatedRequest {
        request_id: request_id(),
        match_id: match_id.clone(),
    };
    school.mark_coordinated(mark.clone()).await.expect("first");
    let settled = state(&app).await;
    let status = expect_err(
        school
            .mark_coordinated(pb::MarkCoordinatedRequest {
                match_id: other_match.clone(),
                ..mark
            })
            .await,
        "reused",
    );
    assert_invalid(&status, "request_id", "MarkCoordinated");
    assert_eq!(
        state(&app).await,
        settled,
        "MarkCoordinated changed nothing"
    );

    // CloseSignal: another reason, another signal
    let close = close_request(&signal);
    school.close_signal(close.clone()).await.expect("first");
    let settled = state(&app).await;
    for other in [
        pb::CloseSignalRequest {
            reason: pb::CloseReason::Unjustified as i32,
            ..close.clone()
        },
        pb::CloseSignalRequest {
            signal_id: other_signal.clone(),
            ..close.clone()
        },
    ] {
        let status = expect_err(school.close_signal(other).await, "reused");
        assert_invalid(&status, "request_id", "CloseSignal");
    }
    assert_eq!(state(&app).await, settled, "CloseSignal changed nothing");

    // DecideReferral: another decision, another referral
    let first_referral = referral(&app, 3).await;
    let second_referral = referral(&app, 4).await;
    let mut desk = app.referrals_with(&triage_token(&app));
    let decide = pb::DecideReferralRequest {
        request_id: request_id(),
        referral_id: first_referral,
        decision: pb::ReferralDecision::NoAction as i32,
        rationale: "al bekend".into(),
    };
    desk.decide_referral(decide.clone()).await.expect("first");
    let settled = state(&app).await;
    for other in [
        pb::DecideReferralRequest {
            decision: pb::ReferralDecision::OpenFamilyApproach as i32,
            ..decide.clone()
        },
        pb::DecideReferralRequest {
            referral_id: second_referral,
            ..decide.clone()
        },
    ] {
        let status = expect_err(desk.decide_referral(other).await, "reused");
        assert_invalid(&status, "request_id", "DecideReferral");
    }
    assert_eq!(state(&app).await, settled, "DecideReferral changed nothing");

    // each refusal is audited as INVALID_ARGUMENT
    let refused = app
        .count("SELECT count(*) FROM signalling.audit_log WHERE result = 'INVALID_ARGUMENT'")
        .await;
    assert_eq!(refused, 9);
}

#[tokio::test]
async fn every_mutation_requires_a_request_id() {
    let app = TestApp::spawn().await;
    let (signal, match_id) = matched(&app, 1).await;
    let referral = referral(&app, 2).await;
    let mut school = app.client(SCHOOL);
    let before = state(&app).await;
    let status = expect_err(
        school
            .close_signal(pb::CloseSignalRequest {
                request_id: String::new(),
                ..close_request(&signal)
            })
            .await,
        "CloseSignal",
    );
    assert_invalid(&status, "request_id", "CloseSignal");
    let status = expect_err(
        school
            .record_information_duty(pb::RecordInformationDutyRequest {
                signal_id: signal.clone(),
                parents_informed_on: TODAY.into(),
                ..Default::default()
            })
            .await,
        "RecordInformationDuty",
    );
    assert_invalid(&status, "request_id", "RecordInformationDuty");
    let status = expect_err(
        school
            .assign_coordinator(pb::AssignCoordinatorRequest {
                request_id: String::new(),
                match_id: match_id.clone(),
                organisation: SCHOOL.name.into(),
                contact: Some(contact(SCHOOL)),
            })
            .await,
        "AssignCoordinator",
    );
    assert_invalid(&status, "request_id", "AssignCoordinator");
    let status = expect_err(
        school
            .mark_coordinated(pb::MarkCoordinatedRequest {
                request_id: "with space".into(),
                match_id,
            })
            .await,
        "MarkCoordinated",
    );
    assert_invalid(&status, "request_id", "MarkCoordinated");
    let status = expect_err(
        app.referrals_with(&triage_token(&app))
            .decide_referral(pb::DecideReferralRequest {
                request_id: String::new(),
                referral_id: referral,
                decision: pb::ReferralDecision::NoAction as i32,
                rationale: "al bekend".into(),
            })
            .await,
        "DecideReferral",
    );
    assert_invalid(&status, "request_id", "DecideReferral");
    assert_eq!(state(&app).await, before, "nothing changed");
}
