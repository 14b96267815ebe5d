//! Retention: an episode and its plan are destroyed six months after release once the
//! follow-up has ended, unless a task is still open with a date to come; audited with ids
//! only. The anonymous release facts stay for the statistics; the release marks go after 24
//! months.

use zvv_proto::reintegration::v1 as pb;

use crate::helpers::{
    PROBATION, TILBURG_DESK, TestApp, begin, condition, end, request_id, valid_bsn,
};

#[tokio::test]
async fn episodes_are_destroyed_six_months_after_release_unless_the_case_continues() {
    let app = TestApp::spawn().await;
    // released in January
    let gone = app
        .record(begin("DJI-R1", &valid_bsn(50), "2025-11-03", "2026-01-15"))
        .await
        .detention
        .expect("detention");
    app.record(end("DJI-R1", &valid_bsn(50), "2026-01-15"))
        .await;
    // released in January too, with probation's task open with a date in August
    let kept = app
        .record(begin("DJI-R2", &valid_bsn(51), "2025-11-03", "2026-01-15"))
        .await
        .detention
        .expect("detention");
    app.record(end("DJI-R2", &valid_bsn(51), "2026-01-15"))
        .await;
    let plan = app.plan(TILBURG_DESK, &kept.detention_id).await;
    let debts = condition(&plan, pb::ConditionKind::Debts)
        .condition_id
        .clone();
    app.continuity(TILBURG_DESK)
        .update_condition(pb::UpdateConditionRequest {
            request_id: request_id(),
            condition_id: debts,
            due_on: "2026-08-03".into(),
            reason_code: pb::DueDateReason::PartnerAgreement as i32,
            ..Default::default()
        })
        .await
        .expect("the debts date moves to August");
    app.assign(&kept.detention_id, pb::ConditionKind::Debts, PROBATION)
        .await;
    // still detained
    let open = app
        .record(begin("DJI-R3", &valid_bsn(52), "2025-11-03", "2026-09-01"))
        .await
        .detention
        .expect("detention");

    // nothing goes before the six months have passed
    assert_eq!(app.retention().await.detentions_destroyed, 0);
    app.set_day("2026-07-14");
    assert_eq!(app.retention().await.detentions_destroyed, 0);
    app.set_day("2026-07-15");
    let report = app.retention().await;
    assert_eq!(report.detentions_destroyed, 1);
    let left: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT detention_id FROM reintegration.detentions ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .expect("left");
    let mut expected: Vec<uuid::Uuid> = [&kept.detention_id, &open.detention_id]
        .iter()
        .map(|id| id.parse().expect("uuid"))
        .collect();
    expected.sort();
    assert_eq!(left, expected);
    let gone_id: uuid::Uuid = gone.detention_id.parse().expect("uuid");
    for table in ["detention_events", "conditions", "actions", "tasks"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM reintegration.{table} WHERE detention_id = $1"
        )))
        .bind(gone_id)
        .fetch_one(&app.pool)
        .await
        .expect("count");
        assert_eq!(n, 0, "{table} of the destroyed episode");
    }
    // audited with ids only
    let audit = app.audit_rows().await;
    let record = audit
        .iter()
        .find(|r| r.action == "retention")
        .expect("a retention record");
    assert!(record.object_ids.contains(&gone_id));
    assert_eq!(record.result, "OK");
    assert_eq!(
        app.events("reintegration.detention.destroyed").await.len(),
        1
    );
    // the statistics keep both releases
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.release_facts")
            .await,
        2
    );

    // once probation's date has passed, the case no longer holds the episode
    app.set_day("2026-08-04");
    assert_eq!(app.retention().await.detentions_destroyed, 1);

    // the release marks go 24 months after the release
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.release_marks")
            .await,
        2
    );
    app.set_day("2028-01-16");
    let report = app.retention().await;
    assert_eq!(report.release_marks_destroyed, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.release_marks")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.release_facts")
            .await,
        2
    );
    // the open episode is still there
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.detentions")
            .await,
        1
    );
}
