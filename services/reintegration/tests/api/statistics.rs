//! Release statistics for analysts: per whole month of release, numbers resting on fewer
//! people than the threshold suppressed; only for a municipality in the analyst's jurisdiction.

use tonic::Code;
use zvv_proto::reintegration::v1 as pb;

use crate::helpers::{
    ANALYST, BREDA_DESK, Options, TILBURG, TILBURG_DESK, TestApp, Who, begin, end, expect_err,
    request_id, valid_bsn,
};

async fn stats(
    app: &TestApp,
    who: Who,
    from: &str,
    to: &str,
) -> Result<tonic::Response<pb::GetReintegrationStatisticsResponse>, tonic::Status> {
    app.continuity(who)
        .get_reintegration_statistics(pb::GetReintegrationStatisticsRequest {
            municipality_code: TILBURG.into(),
            from_month: from.into(),
            to_month: to.into(),
        })
        .await
}

#[tokio::test]
async fn small_numbers_are_suppressed() {
    let app = TestApp::spawn_with(Options {
        statistics_threshold: 3,
        ..Options::default()
    })
    .await;
    // seven releases in May, three of them with every condition settled before release
    for n in 0..7 {
        let bsn = valid_bsn(60 + n);
        let r = format!("DJI-S{n}");
        let d = app
            .record(begin(&r, &bsn, "2026-04-01", "2026-05-15"))
            .await
            .detention
            .expect("detention");
        if n < 3 {
            let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
            for c in plan.conditions {
                app.continuity(TILBURG_DESK)
                    .update_condition(pb::UpdateConditionRequest {
                        request_id: request_id(),
                        condition_id: c.condition_id,
                        status: pb::ConditionStatus::NotApplicable as i32,
                        ..Default::default()
                    })
                    .await
                    .expect("settled");
            }
        }
        app.record(end(&r, &bsn, "2026-05-15")).await;
    }
    // one release in April
    app.record(begin("DJI-S9", &valid_bsn(69), "2026-03-02", "2026-04-10"))
        .await;
    app.record(end("DJI-S9", &valid_bsn(69), "2026-04-10"))
        .await;
    // every open date has passed by now: the income of the four others lapses
    app.monitor().await;
    // one of them is detained again in June
    app.record(begin(
        "DJI-S6-AGAIN",
        &valid_bsn(66),
        "2026-06-01",
        "2026-07-01",
    ))
    .await;

    let r = stats(&app, ANALYST, "2026-04", "2026-06")
        .await
        .expect("statistics")
        .into_inner();
    assert_eq!(r.threshold, 3);
    let months: Vec<&str> = r.months.iter().map(|m| m.month.as_str()).collect();
    assert_eq!(months, ["2026-04", "2026-05", "2026-06"]);
    let april = &r.months[0];
    assert!(april.suppressed && april.releases == 0 && april.lapses.is_empty());
    assert!(april.all_arranged.is_none());
    assert!(r.months[2].suppressed, "no releases looks like few");
    let may = &r.months[1];
    assert!(!may.suppressed);
    assert_eq!(may.releases, 7);
    let arranged = may.all_arranged.as_ref().expect("share");
    assert_eq!(
        (arranged.suppressed, arranged.count),
        (false, 3),
        "{arranged:?}"
    );
    assert!((arranged.rate - 3.0 / 7.0).abs() < 1e-9);
    let income = may
        .lapses
        .iter()
        .find(|l| l.kind == pb::ConditionKind::Income as i32)
        .and_then(|l| l.lapsed.as_ref())
        .expect("income");
    assert_eq!((income.suppressed, income.count), (false, 4), "{income:?}");
    assert!((income.rate - 4.0 / 7.0).abs() < 1e-9);
    let education = may
        .lapses
        .iter()
        .find(|l| l.kind == pb::ConditionKind::Education as i32)
        .and_then(|l| l.lapsed.as_ref())
        .expect("education");
    assert_eq!((education.suppressed, education.count), (false, 0));
    // one person detained again: suppressed, nothing shown
    let redetained = may.redetained_within_12_months.as_ref().expect("share");
    assert!(redetained.suppressed, "{redetained:?}");
    assert_eq!((redetained.count, redetained.rate), (0, 0.0));

    // only analysts, only in their jurisdiction, only months that have begun
    let status = expect_err(stats(&app, BREDA_DESK, "2026-04", "2026-05").await, "desk");
    assert_eq!(status.code(), Code::PermissionDenied);
    let breda_analyst = Who {
        municipalities: &["GM0758"],
        ..ANALYST
    };
    let status = expect_err(
        stats(&app, breda_analyst, "2026-04", "2026-05").await,
        "another municipality",
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = expect_err(stats(&app, ANALYST, "2026-04", "2026-07").await, "future");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("to_month"), "{status:?}");
}
