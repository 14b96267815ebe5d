//! Every call leaves one audit record in signalling; the calls signalling makes to intake are
//! audited there under signalling's own identity, in the same trace.

use tonic::{Code, Request};
use zvv_platform::audit::verify;
use zvv_proto::signalling::v1 as pb;

use crate::helpers::{
    PRISON, SCHOOL, SIGNALLING_ORG, TestApp, YOUTH_HEALTH, action, assert_code, by_bsn, by_subject,
    valid_bsn,
};

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::try_parse(s).expect("uuid")
}

#[tokio::test]
async fn every_call_leaves_one_audit_record() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(1);
    let subject = app.child(&bsn).await;

    let school = app
        .client(SCHOOL)
        .register_signal(by_bsn(&bsn, SCHOOL))
        .await
        .expect("register by BSN")
        .into_inner();
    let school_id = school.signal.expect("signal").signal_id;
    let health = app.signal(YOUTH_HEALTH, &subject).await;
    let match_id = health.matches.first().expect("match").match_id.clone();
    let mut client = app.client(SCHOOL);
    client
        .get_signal(pb::GetSignalRequest {
            signal_id: school_id.clone(),
        })
        .await
        .expect("get");
    client
        .list_signals(pb::ListSignalsRequest::default())
        .await
        .expect("list");
    client
        .get_match(pb::GetMatchRequest {
            match_id: match_id.clone(),
        })
        .await
        .expect("get match");
    client
        .list_matches(pb::ListMatchesRequest::default())
        .await
        .expect("list matches");
    assert_code(
        app.client(PRISON)
            .register_signal(by_subject(&subject, PRISON))
            .await,
        Code::PermissionDenied,
        "prison",
    );
    assert_code(
        app.bare_client()
            .get_signal(pb::GetSignalRequest {
                signal_id: school_id.clone(),
            })
            .await,
        Code::Unauthenticated,
        "no token",
    );
    assert_code(
        client
            .register_signal(pb::RegisterSignalRequest {
                duration_months: 25,
                ..by_subject(&subject, SCHOOL)
            })
            .await,
        Code::InvalidArgument,
        "invalid",
    );
    assert_code(
        client.register_signal(by_bsn(&valid_bsn(2), SCHOOL)).await,
        Code::FailedPrecondition,
        "unknown BSN",
    );
    assert_code(
        client.register_signal(by_subject(&subject, SCHOOL)).await,
        Code::AlreadyExists,
        "second active signal",
    );
    assert_code(
        app.client(YOUTH_HEALTH)
            .get_signal(pb::GetSignalRequest {
                signal_id: school_id.clone(),
            })
            .await,
        Code::NotFound,
        "another organisation's signal",
    );
    client
        .close_signal(pb::CloseSignalRequest {
            signal_id: school_id.clone(),
            reason: pb::CloseReason::RiskGone as i32,
        })
        .await
        .expect("close");

    let rows = app.audit_rows().await;
    let summary: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.action.clone(), r.result.clone(), r.actor_org.clone()))
        .collect();
    let row =
        |method: &str, result: &str, org: &str| (action(method), result.to_owned(), org.to_owned());
    assert_eq!(
        summary,
        [
            row("RegisterSignal", "OK", SCHOOL.name),
            row("RegisterSignal", "OK", YOUTH_HEALTH.name),
            row("GetSignal", "OK", SCHOOL.name),
            row("ListSignals", "OK", SCHOOL.name),
            row("GetMatch", "OK", SCHOOL.name),
            row("ListMatches", "OK", SCHOOL.name),
            row("RegisterSignal", "PERMISSION_DENIED", PRISON.name),
            row("GetSignal", "UNAUTHENTICATED", ""),
            row("RegisterSignal", "INVALID_ARGUMENT", SCHOOL.name),
            row("RegisterSignal", "FAILED_PRECONDITION", SCHOOL.name),
            row("RegisterSignal", "ALREADY_EXISTS", SCHOOL.name),
            row("GetSignal", "NOT_FOUND", YOUTH_HEALTH.name),
            row("CloseSignal", "OK", SCHOOL.name),
        ]
    );
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=13).collect::<Vec<i64>>(),
        "gapless sequence"
    );
    assert!(
        rows[0].object_ids.contains(&uuid(&school_id)),
        "registration names the new signal: {:?}",
        rows[0].object_ids
    );
    assert!(
        rows[2].object_ids.contains(&uuid(&school_id)),
        "get names the signal"
    );
    assert!(
        rows[4].object_ids.contains(&uuid(&match_id)),
        "get match names the match"
    );
    assert!(
        rows[12].object_ids.contains(&uuid(&school_id)),
        "close names the signal"
    );

    let report = verify(&app.pool, zvv_signalling::SCHEMA)
        .await
        .expect("verify");
    assert_eq!(report.first_broken, None, "{report:?}");
    assert_eq!(report.records, 13);
}

#[tokio::test]
async fn intake_audits_signallings_lookups_in_the_callers_trace() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(1);
    let subject = app.child(&bsn).await;
    let before = app.intake_audit_rows().await.len();

    // by BSN: ResolveSubject and GetSubject, in the caller's trace
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = Request::new(by_bsn(&bsn, SCHOOL));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .expect("header"),
    );
    app.client(SCHOOL)
        .register_signal(request)
        .await
        .expect("register by BSN");

    // by subject_id, in another trace
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let mut request = Request::new(by_subject(&subject, YOUTH_HEALTH));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{other_trace}-b7ad6b7169203331-01")
            .parse()
            .expect("header"),
    );
    app.client(YOUTH_HEALTH)
        .register_signal(request)
        .await
        .expect("register by subject_id");

    let ours = app.audit_rows().await;
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(ours[0].trace_id, trace_id);
    assert_eq!(ours[1].trace_id, other_trace);

    let intake = app.intake_audit_rows().await;
    let lookups: Vec<_> = intake[before..].iter().collect();
    assert!(!lookups.is_empty(), "signalling asked intake");
    for r in &lookups {
        assert_eq!(r.actor_org, SIGNALLING_ORG, "{r:?}");
        assert_eq!(r.result, "OK", "{r:?}");
    }
    let in_trace = |t: &str| -> Vec<String> {
        lookups
            .iter()
            .filter(|r| r.trace_id == t)
            .map(|r| {
                r.action
                    .trim_start_matches("zvv.intake.v1.SubjectService/")
                    .to_owned()
            })
            .collect()
    };
    let first = in_trace(trace_id);
    assert!(
        first.iter().any(|a| a == "ResolveSubject"),
        "the BSN was resolved in the caller's trace: {lookups:?}"
    );
    assert!(
        first
            .iter()
            .all(|a| ["ResolveSubject", "GetSubject", "ListFamily"].contains(&a.as_str())),
        "{first:?}"
    );
    let second = in_trace(other_trace);
    assert!(
        second.iter().any(|a| a == "GetSubject"),
        "the subject was read in the caller's trace: {lookups:?}"
    );
    assert!(
        !second.iter().any(|a| a == "ResolveSubject"),
        "no BSN to resolve"
    );
    assert_eq!(
        first.len() + second.len(),
        lookups.len(),
        "every lookup belongs to one of the two traces: {lookups:?}"
    );
    for r in &lookups {
        // a resolved BSN is also named by its lookup reference
        assert_eq!(r.object_ids[0], uuid(&subject), "{r:?}");
        assert!(r.object_ids.len() <= 2, "{r:?}");
        // intake's record names the person who really looked, next to signalling
        let expected = if r.trace_id == trace_id {
            SCHOOL.name
        } else {
            YOUTH_HEALTH.name
        };
        assert_eq!(r.end_user_org, expected, "{r:?}");
    }
    for r in &ours {
        assert_eq!(
            r.end_user_org, "",
            "the callers of signalling are the end users"
        );
    }
}
