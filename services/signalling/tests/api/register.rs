//! RegisterSignal by subject_id and by BSN, client matches in the response, idempotent replays,
//! and no BSN anywhere in signalling's tables.

use zvv_proto::signalling::v1 as pb;

use crate::helpers::{
    SCHOOL, TODAY, TestApp, YOUTH_HEALTH, assert_invalid, by_bsn, by_subject, contact, expect_err,
    organisations, signal_ids, sorted, valid_bsn,
};

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn by_subject_id_then_by_bsn_makes_a_client_match_of_both() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(1);
    let subject = app.child(&bsn).await;

    // the school signals by subject_id: a signal, no match yet
    let first = app.signal(SCHOOL, &subject).await;
    let school_signal = first.signal.expect("signal");
    assert_eq!(school_signal.subject_id, subject);
    assert_eq!(school_signal.organisation, SCHOOL.name);
    assert_eq!(school_signal.organisation_type, "SCHOOL");
    assert_eq!(school_signal.contact, Some(contact(SCHOOL)));
    assert_eq!(school_signal.status, pb::SignalStatus::Active as i32);
    assert_eq!(school_signal.registered_on, TODAY);
    assert_eq!(school_signal.duration_months, 12);
    assert!(uuid::Uuid::try_parse(&school_signal.signal_id).is_ok());
    assert!(first.matches.is_empty(), "{:?}", first.matches);

    // youth health signals the same child by BSN: resolved through intake to the same subject
    let second = app
        .client(YOUTH_HEALTH)
        .register_signal(by_bsn(&bsn, YOUTH_HEALTH))
        .await
        .expect("register by BSN")
        .into_inner();
    let health_signal = second.signal.expect("signal");
    assert_eq!(
        health_signal.subject_id, subject,
        "resolved to the same subject"
    );
    assert_eq!(health_signal.organisation, YOUTH_HEALTH.name);
    assert_eq!(health_signal.organisation_type, "YOUTH_HEALTH");

    assert_eq!(second.matches.len(), 1, "{:?}", second.matches);
    let m = &second.matches[0];
    assert_eq!(m.kind, pb::MatchKind::Client as i32);
    assert_eq!(m.status, pb::MatchStatus::Open as i32);
    assert_eq!(m.subject_ids, std::slice::from_ref(&subject));
    assert_eq!(organisations(m), sorted([SCHOOL.name, YOUTH_HEALTH.name]));
    assert_eq!(
        signal_ids(m),
        sorted([&school_signal.signal_id, &health_signal.signal_id])
    );
    for p in &m.participants {
        let org = if p.organisation == SCHOOL.name {
            SCHOOL
        } else {
            YOUTH_HEALTH
        };
        assert_eq!(p.contact, Some(contact(org)), "each other's contact");
        assert_eq!(p.organisation_type, org.org_type.as_str());
    }
    assert!(!m.coordinated);
    assert!(m.coordinator.is_none());

    // both participants can read the same match
    let seen_by_school = app.get_match(SCHOOL, &m.match_id).await;
    assert_eq!(organisations(&seen_by_school), organisations(m));
    assert_eq!(signal_ids(&seen_by_school), signal_ids(m));
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.matches").await,
        1
    );
}

#[tokio::test]
async fn no_signalling_table_holds_a_bsn() {
    let app = TestApp::spawn().await;
    let bsns = [valid_bsn(11), valid_bsn(12), valid_bsn(13)];
    for bsn in &bsns {
        app.child(bsn).await;
    }
    // registrations by BSN (two orgs, so a match exists too), a failed one with an unknown BSN,
    // and a replay
    for bsn in &bsns[..2] {
        app.client(SCHOOL)
            .register_signal(by_bsn(bsn, SCHOOL))
            .await
            .expect("school by BSN");
        let request = by_bsn(bsn, YOUTH_HEALTH);
        let mut health = app.client(YOUTH_HEALTH);
        health
            .register_signal(request.clone())
            .await
            .expect("youth health by BSN");
        health.register_signal(request).await.expect("replay");
    }
    let unknown = valid_bsn(14);
    let _ = expect_err(
        app.client(SCHOOL)
            .register_signal(by_bsn(&unknown, SCHOOL))
            .await,
        "unknown BSN",
    );

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'signalling' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .expect("tables");
    for expected in ["audit_log", "matches", "outbox", "signals"] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} in {tables:?}"
        );
    }
    let secrets: Vec<String> = bsns.iter().cloned().chain([unknown]).collect();
    let mut rows_seen = 0;
    for table in &tables {
        assert!(
            table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "plain table name {table}"
        );
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM signalling.{table} t"
        )))
        .fetch_all(&app.pool)
        .await
        .unwrap_or_else(|e| panic!("read {table}: {e}"));
        rows_seen += rows.len();
        for row in &rows {
            for bsn in &secrets {
                assert!(!row.contains(bsn.as_str()), "{table} holds a BSN: {row}");
                assert!(
                    !row.contains(&hex(bsn)),
                    "{table} holds a BSN's bytes: {row}"
                );
            }
        }
    }
    assert!(rows_seen > 10, "the scan saw the rows ({rows_seen})");
}

#[tokio::test]
async fn replaying_a_request_id_returns_the_same_signal() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let other = app.child(&valid_bsn(2)).await;
    let mut client = app.client(SCHOOL);
    let request = by_subject(&subject, SCHOOL);

    let first = client
        .register_signal(request.clone())
        .await
        .expect("first")
        .into_inner();
    let again = client
        .register_signal(request.clone())
        .await
        .expect("replay")
        .into_inner();
    let id = first.signal.as_ref().expect("signal").signal_id.clone();
    assert_eq!(again.signal.expect("signal").signal_id, id);
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        1,
        "one row"
    );

    // the same request_id with another body is refused and stores nothing
    let status = expect_err(
        client
            .register_signal(pb::RegisterSignalRequest {
                subject: by_subject(&other, SCHOOL).subject,
                ..request.clone()
            })
            .await,
        "same request_id, other body",
    );
    assert_invalid(&status, "request_id", "reused request_id");
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        1
    );

    // the key is scoped to the organisation: another organisation may use the same request_id
    let theirs = app
        .client(YOUTH_HEALTH)
        .register_signal(pb::RegisterSignalRequest {
            contact: Some(contact(YOUTH_HEALTH)),
            ..request
        })
        .await
        .expect("same request_id, other organisation")
        .into_inner();
    assert_ne!(theirs.signal.expect("signal").signal_id, id);
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        2
    );
}
