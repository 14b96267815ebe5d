//! Recording detention events: idempotent by request id and by (external reference, kind,
//! day), one consistent episode whatever the arrival order, one episode for two events that
//! arrive at once, re-detention, and no BSN anywhere in the schema.

use tonic::Code;
use zvv_proto::reintegration::v1::{self as pb, record_detention_event_request::Subject};

use crate::helpers::{
    HOUSING, PRISON, TILBURG_DESK, TestApp, begin, end, event, expect_err, request_id, valid_bsn,
};

/// What an episode is, without its ids and times.
fn shape(d: &pb::Detention) -> (i32, String, bool, String, String, i32, bool) {
    (
        d.status,
        d.began_on.clone(),
        d.begin_received,
        d.expected_release_on.clone(),
        d.released_on.clone(),
        d.leaves,
        d.short_stay,
    )
}

fn leave(external_ref: &str, bsn: &str, start: bool, on: &str) -> pb::RecordDetentionEventRequest {
    let kind = if start {
        pb::DetentionEventKind::LeaveStart
    } else {
        pb::DetentionEventKind::LeaveEnd
    };
    event(external_ref, bsn, kind, on, "")
}

#[tokio::test]
async fn a_retry_and_a_repeated_message_answer_the_episode_as_it_is() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(10);
    let first = begin("DJI-1", &bsn, "2026-06-01", "2026-07-31");
    let a = app.record(first.clone()).await;
    // the same request again (a retry): the first response
    let b = app.record(first.clone()).await;
    assert_eq!(a, b);
    // the feed sends the same BEGIN again under a new request id: a duplicate
    let again = app
        .record(pb::RecordDetentionEventRequest {
            request_id: request_id(),
            ..first.clone()
        })
        .await;
    assert!(again.duplicate);
    assert_eq!(again.detention, a.detention);
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.detention_events")
            .await,
        1
    );
    assert_eq!(app.events("reintegration.detention.opened").await.len(), 1);
    // two leaves on different days are two events
    app.record(leave("DJI-1", &bsn, true, "2026-06-10")).await;
    app.record(leave("DJI-1", &bsn, false, "2026-06-11")).await;
    let d = app
        .record(leave("DJI-1", &bsn, true, "2026-06-12"))
        .await
        .detention
        .expect("detention");
    assert_eq!(d.leaves, 2);
    // a request id reused for another event is refused, naming the field
    let status = expect_err(
        app.detentions(PRISON)
            .record_detention_event(pb::RecordDetentionEventRequest {
                occurred_on: "2026-06-02".into(),
                ..first
            })
            .await,
        "a reused request id",
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("request_id"), "{status:?}");
}

#[tokio::test]
async fn any_arrival_order_gives_the_same_episode_and_loses_no_event() {
    let app = TestApp::spawn().await;
    let in_order = [
        begin("DJI-A", &valid_bsn(11), "2026-05-04", "2026-06-30"),
        leave("DJI-A", &valid_bsn(11), true, "2026-05-20"),
        leave("DJI-A", &valid_bsn(11), false, "2026-05-22"),
        end("DJI-A", &valid_bsn(11), "2026-06-12"),
    ];
    let mut expected = None;
    for e in in_order {
        expected = app.record(e).await.detention;
    }
    let expected = expected.expect("episode");
    // END first, then the LEAVE_END, the LEAVE_START and the BEGIN last
    let bsn = valid_bsn(12);
    let reversed = [
        end("DJI-B", &bsn, "2026-06-12"),
        leave("DJI-B", &bsn, false, "2026-05-22"),
        leave("DJI-B", &bsn, true, "2026-05-20"),
        begin("DJI-B", &bsn, "2026-05-04", "2026-06-30"),
    ];
    let mut seen = Vec::new();
    for e in reversed {
        seen.push(app.record(e).await.detention.expect("episode"));
    }
    assert!(
        !seen[0].begin_received && seen[0].status == pb::DetentionStatus::Released as i32,
        "an END without a BEGIN: released, the start provisional: {:?}",
        seen[0]
    );
    let last = seen.last().expect("episode");
    assert_eq!(shape(last), shape(&expected));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM reintegration.detention_events e \
             JOIN reintegration.detentions d USING (detention_id) WHERE d.external_ref = 'DJI-B'"
        )
        .await,
        4
    );
    // the plan is that of the real dates, whatever came first
    let a = app.plan(TILBURG_DESK, &expected.detention_id).await;
    let b = app.plan(TILBURG_DESK, &last.detention_id).await;
    let dates = |p: &pb::Plan| {
        p.conditions
            .iter()
            .map(|c| {
                (
                    c.kind,
                    c.actions
                        .iter()
                        .map(|a| (a.action.clone(), a.due_on.clone()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(dates(&a), dates(&b));
    // one release fact each, for the release of 12 June
    assert_eq!(
        app.count(
            "SELECT count(*) FROM reintegration.release_facts WHERE release_month = '2026-06-01'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn two_events_of_a_new_episode_at_once_make_one_episode() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(13);
    let (mut one, mut two) = (app.detentions(PRISON), app.detentions(PRISON));
    let (a, b) = tokio::join!(
        one.record_detention_event(begin("DJI-RACE", &bsn, "2026-06-01", "2026-06-30")),
        two.record_detention_event(leave("DJI-RACE", &bsn, true, "2026-06-05")),
    );
    let (a, b) = (
        a.expect("begin").into_inner(),
        b.expect("leave").into_inner(),
    );
    assert_eq!(
        a.detention.expect("a").detention_id,
        b.detention.expect("b").detention_id
    );
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.detentions")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.conditions")
            .await,
        8,
        "one plan"
    );
}

#[tokio::test]
async fn an_external_ref_of_another_person_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.record(begin("DJI-X", &valid_bsn(14), "2026-06-01", "2026-06-30"))
        .await;
    let status = expect_err(
        app.detentions(PRISON)
            .record_detention_event(end("DJI-X", &valid_bsn(15), "2026-06-10"))
            .await,
        "another person's episode",
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.detention_events")
            .await,
        1
    );
    // a first event without a municipality names the field
    let mut no_municipality = begin("DJI-Y", &valid_bsn(16), "2026-06-01", "");
    no_municipality.municipality_code.clear();
    let status = expect_err(
        app.detentions(PRISON)
            .record_detention_event(no_municipality)
            .await,
        "no municipality",
    );
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("municipality_code"), "{status:?}");
}

#[tokio::test]
async fn a_new_detention_within_12_or_24_months_of_a_release_is_flagged() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(17);
    app.record(begin("DJI-OLD", &bsn, "2025-01-06", "2025-02-28"))
        .await;
    app.record(end("DJI-OLD", &bsn, "2025-02-28")).await;
    let again = app
        .record(begin("DJI-NEW", &bsn, "2026-02-02", "2026-03-31"))
        .await
        .detention
        .expect("detention");
    assert_eq!(again.redetained_within_months, Some(12));
    // a fact for the municipality's evaluation, not for the partners
    app.assign(&again.detention_id, pb::ConditionKind::Housing, HOUSING)
        .await;
    let get = |who| {
        let app = &app;
        let id = again.detention_id.clone();
        async move {
            app.detentions(who)
                .get_detention(pb::GetDetentionRequest { detention_id: id })
                .await
                .expect("visible")
                .into_inner()
                .detention
                .expect("detention")
        }
    };
    assert_eq!(get(TILBURG_DESK).await.redetained_within_months, Some(12));
    assert_eq!(get(HOUSING).await.redetained_within_months, None);
    let listed = app
        .detentions(HOUSING)
        .list_detentions(pb::ListDetentionsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .detentions;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].redetained_within_months, None);
    let other = app
        .record(begin(
            "DJI-OTHER",
            &valid_bsn(18),
            "2026-02-02",
            "2026-03-31",
        ))
        .await
        .detention
        .expect("detention");
    assert_eq!(other.redetained_within_months, Some(0), "another person");
    let flagged: Option<i32> = sqlx::query_scalar(
        "SELECT redetained_within_months FROM reintegration.release_facts \
         WHERE release_month = '2025-02-01'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the release fact");
    assert_eq!(
        flagged,
        Some(12),
        "the earlier release counts as re-detained"
    );
}

#[tokio::test]
async fn no_bsn_is_stored_and_a_subject_id_works_as_well() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(19);
    let d = app
        .record(begin("DJI-BSN", &bsn, "2026-06-01", "2026-06-30"))
        .await
        .detention
        .expect("detention");
    // every column of every table of the schema, as text, holds no BSN
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text \
         FROM information_schema.columns WHERE table_schema = 'reintegration'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("columns");
    assert!(columns.len() > 40, "{} columns", columns.len());
    for (table, column, data_type) in columns {
        // bytea as its bytes (stored responses are JSON), everything else as its text
        let value = if data_type == "bytea" {
            column.clone()
        } else {
            format!("convert_to({column}::text, 'UTF8')")
        };
        let sql = format!(
            "SELECT count(*) FROM reintegration.{table} \
             WHERE position(convert_to($1, 'UTF8') in {value}) > 0"
        );
        let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(&bsn)
            .fetch_one(&app.pool)
            .await
            .unwrap_or_else(|e| panic!("{table}.{column}: {e}"));
        assert_eq!(hits, 0, "the BSN is in {table}.{column}");
    }
    // the next event by subject id reaches the same episode
    let mut by_id = end("DJI-BSN", &bsn, "2026-06-12");
    by_id.subject = Some(Subject::SubjectId(d.subject_id.clone()));
    let released = app.record(by_id).await.detention.expect("detention");
    assert_eq!(released.detention_id, d.detention_id);
}
