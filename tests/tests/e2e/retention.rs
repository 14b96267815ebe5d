use chrono::{Duration, Months};
use zvv_e2e::Harness;
use zvv_platform::{
    auth::{OrgType, Role},
    clock::Clock,
};
use zvv_proto::{
    intake::v1::RegisterSubjectRequest,
    signalling::v1::{
        Contact, GetMatchRequest, GetSignalRequest, MatchStatus, RegisterSignalRequest,
        SignalStatus, register_signal_request::Subject,
    },
};

fn signal(request_id: &str, bsn: &str, months: i32) -> RegisterSignalRequest {
    RegisterSignalRequest {
        request_id: request_id.into(),
        subject: Some(Subject::Bsn(bsn.into())),
        contact: Some(Contact {
            name: "Contact".into(),
            phone: "+31 20 555 0100".into(),
            email: "c@example.nl".into(),
        }),
        duration_months: months,
    }
}

async fn count(suite: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&suite.pool)
        .await
        .expect("count")
}

/// With the clock moved on: a signal expires into the archive and leaves its match (which
/// closes), the archive is destroyed after five years, and everything about a subject is
/// destroyed from their 23rd birthday; every deletion is audited with ids only.
#[tokio::test]
async fn retention_expires_archives_and_destroys() {
    let suite = Harness::start().await.expect("suite starts");
    let rules = zvv_signalling::retention::RetentionRules::default();
    let today = suite.clock.today();
    let muni = suite.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    let mut intake = suite.intake(&muni).expect("client");
    // a child, and a young adult who turns 23 in one month
    let almost_23 = (today - Months::new(12 * 23 - 1))
        .format("%Y-%m-%d")
        .to_string();
    for (id, bsn, born) in [
        ("c", "123456782", "2016-05-04".to_owned()),
        ("y", "111222333", almost_23),
    ] {
        intake
            .register_subject(RegisterSubjectRequest {
                request_id: id.into(),
                bsn: bsn.into(),
                given_name: "X".into(),
                family_name: "Y".into(),
                birth_date: born,
                municipality_code: "GM0363".into(),
                neighbourhood_code: "WK036305".into(),
            })
            .await
            .expect("registered");
    }
    let school = suite.token("school-3", OrgType::School, &[Role::Professional]);
    let care = suite.token("jeugdzorg-3", OrgType::YouthCare, &[Role::Professional]);
    let short = suite
        .signalling(&school)
        .expect("client")
        .register_signal(signal("a", "123456782", 1))
        .await
        .expect("school signal, one month")
        .into_inner()
        .signal
        .expect("signal");
    let matched = suite
        .signalling(&care)
        .expect("client")
        .register_signal(signal("b", "123456782", 24))
        .await
        .expect("care signal, two years")
        .into_inner()
        .matches
        .remove(0);
    suite
        .signalling(&care)
        .expect("client")
        .register_signal(signal("c", "111222333", 12))
        .await
        .expect("signal on the young adult");

    // two months on: the school's signal expired, the match closed, the young adult is 23
    suite.clock.advance(Duration::days(62));
    let report =
        zvv_signalling::retention::run(&suite.pool, &rules, suite.clock.today(), suite.clock.now())
            .await
            .expect("retention");
    assert_eq!(report.expired, 1);
    assert_eq!(report.signals_destroyed_at_23, 1);
    let archived = suite
        .signalling(&school)
        .expect("client")
        .get_signal(GetSignalRequest {
            signal_id: short.signal_id.clone(),
        })
        .await
        .expect("the archive keeps the expired signal")
        .into_inner()
        .signal
        .expect("signal");
    assert_eq!(archived.status, SignalStatus::Expired as i32);
    let m = suite
        .signalling(&care)
        .expect("client")
        .get_match(GetMatchRequest {
            match_id: matched.match_id.clone(),
        })
        .await
        .expect("match")
        .into_inner()
        .r#match
        .expect("match");
    assert_eq!(m.status, MatchStatus::Closed as i32);
    assert_eq!(
        count(
            &suite,
            "SELECT count(*) FROM signalling.signals WHERE organisation = 'jeugdzorg-3'"
        )
        .await,
        1,
        "the young adult's signal is gone, the child's remains"
    );

    // a second run does nothing more
    let again =
        zvv_signalling::retention::run(&suite.pool, &rules, suite.clock.today(), suite.clock.now())
            .await
            .expect("retention");
    assert_eq!(again, zvv_signalling::retention::RetentionReport::default());

    // five years after it expired, the archived signal is destroyed
    suite.clock.advance(Duration::days(5 * 366));
    let report =
        zvv_signalling::retention::run(&suite.pool, &rules, suite.clock.today(), suite.clock.now())
            .await
            .expect("retention");
    assert!(report.archive_destroyed >= 1, "{report:?}");
    assert_eq!(
        count(
            &suite,
            "SELECT count(*) FROM signalling.signals WHERE organisation = 'school-3'"
        )
        .await,
        0
    );
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM signalling.audit_log WHERE action LIKE 'retention/%' ORDER BY seq",
    )
    .fetch_all(&suite.pool)
    .await
    .expect("audit");
    assert!(
        audited.contains(&"retention/expire-signals".to_owned()),
        "{audited:?}"
    );
    assert!(
        audited.contains(&"retention/destroy-at-23".to_owned()),
        "{audited:?}"
    );
    assert!(
        audited.contains(&"retention/destroy-archived-signals".to_owned()),
        "{audited:?}"
    );
    let report = suite
        .keys
        .verify_audit(&suite.pool, zvv_signalling::SCHEMA)
        .await
        .expect("verify");
    assert!(report.is_intact(), "{report:?}");
    suite.stop().await;
}
