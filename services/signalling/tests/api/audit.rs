//! Every call leaves one audit record in signalling; the calls signalling makes to intake are
//! audited there under signalling's own identity, in the same trace.

use sqlx::Connection;
use tonic::{Code, Request};
use zvv_platform::audit::{Anchors, seal, verify};
use zvv_proto::signalling::v1 as pb;

use crate::helpers::{
    PRISON, SCHOOL, SIGNALLING_ORG, TestApp, YOUTH_HEALTH, action, assert_code, by_bsn, by_subject,
    request_id, valid_bsn,
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
            request_id: request_id(),
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

    seal::seal_all(&app.pool, zvv_signalling::SCHEMA)
        .await
        .expect("seal");
    let report = verify(
        &app.pool,
        zvv_signalling::SCHEMA,
        &Anchors {
            file: None,
            keys: vec![],
        },
    )
    .await
    .expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries, 13);
}

#[tokio::test]
async fn intake_audits_signallings_lookups_in_the_callers_trace() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(1);
    let subject = app.child(&bsn).await;
    let before = app.intake_audit_rows().await.len();

    // by BSN, in the caller's trace
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
    // one GetSubjectContext per registration, nothing else
    assert_eq!(in_trace(trace_id), ["GetSubjectContext"], "{lookups:?}");
    assert_eq!(in_trace(other_trace), ["GetSubjectContext"], "{lookups:?}");
    assert_eq!(lookups.len(), 2, "{lookups:?}");
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

#[tokio::test]
async fn each_registration_and_submission_asks_intake_exactly_once() {
    let app = TestApp::spawn().await;
    // a family, so that intake has parents and siblings to tell
    let (_, first, second) = app.family(1).await;
    let bsn = valid_bsn(4);
    app.child(&bsn).await;
    let before = app.intake_audit_rows().await.len();

    let mut signals = Vec::new();
    for (org, request) in [
        (SCHOOL, by_subject(&first, SCHOOL)),
        (YOUTH_HEALTH, by_subject(&second, YOUTH_HEALTH)),
        (SCHOOL, by_bsn(&bsn, SCHOOL)),
        (YOUTH_HEALTH, by_bsn(&bsn, YOUTH_HEALTH)),
    ] {
        let response = app
            .client(org)
            .register_signal(request.clone())
            .await
            .expect("registered")
            .into_inner();
        // a retry is answered without asking intake
        app.client(org)
            .register_signal(request)
            .await
            .expect("retry");
        signals.push(response.signal.expect("signal").signal_id);
    }
    app.referrals_with(&app.token(crate::helpers::POLICE))
        .submit_referral(crate::helpers::referral_on(&first))
        .await
        .expect("submitted");

    let asked: Vec<(String, String)> = app.intake_audit_rows().await[before..]
        .iter()
        .map(|r| {
            (
                r.action
                    .trim_start_matches("zvv.intake.v1.SubjectService/")
                    .to_owned(),
                r.actor_org.clone(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        vec![("GetSubjectContext".to_owned(), SIGNALLING_ORG.to_owned()); signals.len() + 1],
        "one GetSubjectContext per signal and per referral, and no other intake call"
    );
    // the family was in that one answer: the siblings are in a family match
    let family_matches = app
        .count("SELECT count(*) FROM signalling.matches WHERE kind = 'FAMILY'")
        .await;
    assert_eq!(family_matches, 1);
}

#[tokio::test]
async fn the_runtime_role_cannot_change_or_remove_audit_entries() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    app.signal(SCHOOL, &subject).await;
    let entries = app.audit_rows().await;
    assert!(!entries.is_empty());

    let mut conn = sqlx::PgConnection::connect_with(&app.roles.runtime)
        .await
        .expect("connect as the runtime role");
    // it reads and appends (the service does both)
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM signalling.audit_entries")
        .fetch_one(&mut conn)
        .await
        .expect("select");
    assert_eq!(seen, entries.len() as i64);
    for sql in [
        "UPDATE signalling.audit_entries SET result = 'OK'",
        "DELETE FROM signalling.audit_entries",
        "TRUNCATE signalling.audit_entries",
        "ALTER TABLE signalling.audit_entries DISABLE TRIGGER ALL",
        "UPDATE signalling.audit_seals SET hash = ''::bytea",
        "DELETE FROM signalling.audit_seals",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.expect_err(sql);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
    }
    conn.close().await.expect("close");
    let after = app.audit_rows().await;
    assert_eq!(
        after
            .iter()
            .map(|r| (r.seq, r.result.clone()))
            .collect::<Vec<_>>(),
        entries
            .iter()
            .map(|r| (r.seq, r.result.clone()))
            .collect::<Vec<_>>(),
        "every entry as it was"
    );
}
