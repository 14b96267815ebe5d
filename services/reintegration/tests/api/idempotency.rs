//! Retries of the plan's mutations answer the first response and change nothing again; every
//! call leaves an audit record with the ids it concerns, the jobs' work too.

use zvv_proto::reintegration::v1 as pb;

use crate::helpers::{
    HOUSING, PROBATION, TILBURG_DESK, TestApp, begin, condition, contact, end, request_id,
    valid_bsn,
};

#[tokio::test]
async fn retries_of_assign_complete_and_update_change_nothing_again() {
    let app = TestApp::spawn().await;
    let d = app
        .record(begin("DJI-I1", &valid_bsn(80), "2026-06-15", "2026-08-14"))
        .await
        .detention
        .expect("detention");
    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    let insurance = condition(&plan, pb::ConditionKind::HealthInsurance)
        .condition_id
        .clone();
    let assign = pb::AssignTaskRequest {
        request_id: request_id(),
        condition_id: insurance.clone(),
        organisation: HOUSING.org.into(),
        organisation_type: "HOUSING".into(),
        contact: Some(contact()),
    };
    let first = app
        .continuity(TILBURG_DESK)
        .assign_task(assign.clone())
        .await
        .expect("assign")
        .into_inner();
    let again = app
        .continuity(TILBURG_DESK)
        .assign_task(assign)
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.tasks").await,
        1
    );
    // two actions: completing once does the first; the retry does not do the second
    let task = first.task.expect("task").task_id;
    let complete = pb::CompleteTaskRequest {
        request_id: request_id(),
        task_id: task.clone(),
    };
    let done = app
        .continuity(HOUSING)
        .complete_task(complete.clone())
        .await
        .expect("complete")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(
        done.status,
        pb::TaskStatus::Assigned as i32,
        "one action left"
    );
    assert_eq!(done.action, "RESTART_INSURANCE");
    let retried = app
        .continuity(HOUSING)
        .complete_task(complete)
        .await
        .expect("retry")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(retried, done);
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.actions WHERE done_on IS NOT NULL")
            .await,
        1
    );
    let finished = app
        .continuity(HOUSING)
        .complete_task(pb::CompleteTaskRequest {
            request_id: request_id(),
            task_id: task.clone(),
        })
        .await
        .expect("the last action")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(finished.status, pb::TaskStatus::Done as i32);
    assert_eq!(
        finished.condition_status,
        pb::ConditionStatus::Arranged as i32
    );
    assert_eq!(app.events("reintegration.task.completed").await.len(), 1);
    assert_eq!(app.events("reintegration.task.progressed").await.len(), 1);

    // a settled condition withdraws its open task
    let debts = app
        .assign(&d.detention_id, pb::ConditionKind::Debts, PROBATION)
        .await;
    let update = pb::UpdateConditionRequest {
        request_id: request_id(),
        condition_id: debts.condition_id.clone(),
        status: pb::ConditionStatus::NotApplicable as i32,
        ..Default::default()
    };
    for _ in 0..2 {
        let c = app
            .continuity(TILBURG_DESK)
            .update_condition(update.clone())
            .await
            .expect("update")
            .into_inner()
            .condition
            .expect("condition");
        assert_eq!(c.status, pb::ConditionStatus::NotApplicable as i32);
        assert!(c.task.is_none(), "the task is withdrawn");
    }
    assert_eq!(app.events("reintegration.task.withdrawn").await.len(), 1);
    assert_eq!(app.events("reintegration.condition.updated").await.len(), 1);
}

#[tokio::test]
async fn calls_and_jobs_are_audited_with_their_ids() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(81);
    let d = app
        .record(begin("DJI-I2", &bsn, "2026-06-15", "2026-08-14"))
        .await
        .detention
        .expect("detention");
    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    app.set_day("2026-06-17");
    let warned = app.monitor().await;
    assert!(warned.missed > 0 && warned.upcoming > 0, "{warned:?}");
    app.record(end("DJI-I2", &bsn, "2026-06-17")).await;
    let audit = app.audit_rows().await;
    let detention: uuid::Uuid = d.detention_id.parse().expect("uuid");
    let subject: uuid::Uuid = d.subject_id.parse().expect("uuid");
    let record = |action: &str| {
        audit
            .iter()
            .filter(|r| r.action.ends_with(action))
            .collect::<Vec<_>>()
    };
    let recorded = record("/RecordDetentionEvent");
    assert_eq!(recorded.len(), 2);
    assert!(
        recorded
            .iter()
            .all(|r| r.object_ids.contains(&detention) && r.object_ids.contains(&subject))
    );
    let read = record("/GetPlan");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].actor_org, TILBURG_DESK.org);
    let condition_ids: Vec<uuid::Uuid> = plan
        .conditions
        .iter()
        .map(|c| c.condition_id.parse().expect("uuid"))
        .collect();
    assert!(condition_ids.iter().all(|c| read[0].object_ids.contains(c)));
    let monitor = record("deadline-monitor");
    assert_eq!(monitor.len(), 1, "one batch");
    assert_eq!(monitor[0].actor_org, "zvv-reintegration");
    assert!(monitor[0].object_ids.contains(&detention));
}
