//! Who sees what: the responsible municipality sees its episodes and whole plans; a partner sees
//! an episode only while it holds a task in it, and of the plan only the conditions of its
//! tasks; another municipality and a partner without a task see nothing, answered exactly as
//! for an unknown id and audited as outside the jurisdiction.

use tonic::Code;
use zvv_platform::audit::NOT_FOUND_OUTSIDE_JURISDICTION;
use zvv_proto::reintegration::v1 as pb;

use crate::helpers::{
    BREDA, BREDA_DESK, HOUSING, PROBATION, TILBURG, TILBURG_DESK, TestApp, Who, begin, condition,
    expect_err, request_id, valid_bsn,
};

async fn get(
    app: &TestApp,
    who: Who,
    id: &str,
) -> Result<tonic::Response<pb::GetDetentionResponse>, tonic::Status> {
    app.detentions(who)
        .get_detention(pb::GetDetentionRequest {
            detention_id: id.to_owned(),
        })
        .await
}

async fn list(app: &TestApp, who: Who) -> Vec<pb::Detention> {
    app.detentions(who)
        .list_detentions(pb::ListDetentionsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .detentions
}

async fn tasks(app: &TestApp, who: Who) -> Vec<pb::Task> {
    app.continuity(who)
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .expect("list tasks")
        .into_inner()
        .tasks
}

#[tokio::test]
async fn another_municipality_and_a_partner_without_a_task_see_nothing() {
    let app = TestApp::spawn().await;
    let d = app
        .record(begin("DJI-J1", &valid_bsn(30), "2026-06-01", "2026-07-31"))
        .await
        .detention
        .expect("detention");
    let unknown = uuid::Uuid::new_v4().to_string();
    let not_found = expect_err(get(&app, BREDA_DESK, &unknown).await, "unknown id");
    for who in [BREDA_DESK, PROBATION] {
        let status = expect_err(get(&app, who, &d.detention_id).await, "outside");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.message(),
            not_found.message().replace(&unknown, &d.detention_id),
            "answered as for an unknown id"
        );
        assert!(list(&app, who).await.is_empty(), "{}", who.org);
        let plan = app
            .continuity(who)
            .get_plan(pb::GetPlanRequest {
                detention_id: d.detention_id.clone(),
            })
            .await;
        assert_eq!(expect_err(plan, "plan").code(), Code::NotFound);
        assert!(tasks(&app, who).await.is_empty());
    }
    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    let income = condition(&plan, pb::ConditionKind::Income);
    // Breda may not steer Tilburg's plan
    let status = expect_err(
        app.continuity(BREDA_DESK)
            .assign_task(pb::AssignTaskRequest {
                request_id: request_id(),
                condition_id: income.condition_id.clone(),
                organisation: "reclassering-brabant".into(),
                organisation_type: "PROBATION".into(),
                contact: Some(crate::helpers::contact()),
            })
            .await,
        "assign in another municipality",
    );
    assert_eq!(status.code(), Code::NotFound);
    let status = expect_err(
        app.continuity(BREDA_DESK)
            .update_condition(pb::UpdateConditionRequest {
                request_id: request_id(),
                condition_id: income.condition_id.clone(),
                status: pb::ConditionStatus::Arranged as i32,
                ..Default::default()
            })
            .await,
        "update in another municipality",
    );
    assert_eq!(status.code(), Code::NotFound);
    let audit = app.audit_rows().await;
    let outside = audit
        .iter()
        .filter(|r| r.result == NOT_FOUND_OUTSIDE_JURISDICTION)
        .count();
    assert!(
        outside >= 5,
        "audited as outside the jurisdiction: {audit:?}"
    );
    assert!(
        audit
            .iter()
            .filter(|r| r.result == NOT_FOUND_OUTSIDE_JURISDICTION)
            .all(|r| r.actor_org == BREDA_DESK.org || r.actor_org == PROBATION.org)
    );
    // Tilburg sees it whole
    assert_eq!(list(&app, TILBURG_DESK).await.len(), 1);
    assert_eq!(plan.conditions.len(), 8);
}

#[tokio::test]
async fn a_partner_sees_its_tasks_and_their_conditions_only() {
    let app = TestApp::spawn().await;
    let d = app
        .record(begin("DJI-J2", &valid_bsn(31), "2026-06-01", "2026-07-31"))
        .await
        .detention
        .expect("detention");
    let other = app
        .record(begin("DJI-J3", &valid_bsn(32), "2026-06-01", "2026-07-31"))
        .await
        .detention
        .expect("detention");
    let housing_task = app
        .assign(&d.detention_id, pb::ConditionKind::Housing, HOUSING)
        .await;
    let debts_task = app
        .assign(&d.detention_id, pb::ConditionKind::Debts, PROBATION)
        .await;
    app.assign(&other.detention_id, pb::ConditionKind::Income, PROBATION)
        .await;

    // the housing association sees this episode, not the other one
    assert_eq!(
        get(&app, HOUSING, &d.detention_id)
            .await
            .expect("visible")
            .into_inner()
            .detention
            .expect("detention")
            .detention_id,
        d.detention_id
    );
    assert_eq!(
        expect_err(get(&app, HOUSING, &other.detention_id).await, "other").code(),
        Code::NotFound
    );
    let seen: Vec<String> = list(&app, HOUSING)
        .await
        .into_iter()
        .map(|d| d.detention_id)
        .collect();
    assert_eq!(seen, vec![d.detention_id.clone()]);
    // of the plan only housing, without probation's task
    let plan = app.plan(HOUSING, &d.detention_id).await;
    let kinds: Vec<i32> = plan.conditions.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![pb::ConditionKind::Housing as i32]);
    assert_eq!(
        plan.conditions[0].task.as_ref().expect("its task").task_id,
        housing_task.task_id
    );
    // its own tasks only
    let own: Vec<String> = tasks(&app, HOUSING)
        .await
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(own, vec![housing_task.task_id.clone()]);
    assert_eq!(tasks(&app, PROBATION).await.len(), 2);
    assert_eq!(
        tasks(&app, TILBURG_DESK).await.len(),
        3,
        "the municipality sees all"
    );
    // not another partner's task, nor readiness, nor steering the plan
    let status = expect_err(
        app.continuity(HOUSING)
            .complete_task(pb::CompleteTaskRequest {
                request_id: request_id(),
                task_id: debts_task.task_id.clone(),
            })
            .await,
        "another partner's task",
    );
    assert_eq!(status.code(), Code::NotFound);
    let status = expect_err(
        app.continuity(HOUSING)
            .get_release_readiness(pb::GetReleaseReadinessRequest {
                detention_id: d.detention_id.clone(),
            })
            .await,
        "readiness as a partner",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "not a municipality");

    // the condition goes to another partner: the housing association loses the episode
    let moved = app
        .assign(&d.detention_id, pb::ConditionKind::Housing, PROBATION)
        .await;
    assert_eq!(moved.organisation, PROBATION.org);
    let withdrawn = app.events("reintegration.task.withdrawn").await;
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(
        withdrawn[0].audience_organisations,
        vec![HOUSING.org.to_owned()]
    );
    assert_eq!(
        expect_err(get(&app, HOUSING, &d.detention_id).await, "withdrawn").code(),
        Code::NotFound
    );
    let status = expect_err(
        app.continuity(HOUSING)
            .complete_task(pb::CompleteTaskRequest {
                request_id: request_id(),
                task_id: housing_task.task_id.clone(),
            })
            .await,
        "a withdrawn task",
    );
    // it was the holder's task: it learns that it was withdrawn (as the event told it), no more
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("WITHDRAWN"), "{status:?}");
    // a task is assigned only to a partner type, and announced to that partner only
    let assigned = app.events("reintegration.task.assigned").await;
    assert!(
        assigned
            .iter()
            .all(|e| e.audience_municipalities.is_empty())
    );
}

#[tokio::test]
async fn due_within_days_narrows_the_task_list() {
    let app = TestApp::spawn().await;
    let d = app
        .record(begin("DJI-J4", &valid_bsn(33), "2026-06-15", "2026-08-14"))
        .await
        .detention
        .expect("detention");
    // income due 22 June, identity document 31 July
    app.assign(&d.detention_id, pb::ConditionKind::Income, PROBATION)
        .await;
    app.assign(
        &d.detention_id,
        pb::ConditionKind::IdentityDocument,
        PROBATION,
    )
    .await;
    let within = |days| {
        let app = &app;
        async move {
            app.continuity(PROBATION)
                .list_tasks(pb::ListTasksRequest {
                    due_within_days: days,
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner()
                .tasks
                .into_iter()
                .map(|t| t.action)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(within(7).await, vec!["SUSPEND_BENEFIT".to_owned()]);
    assert_eq!(within(60).await.len(), 2);
    assert_eq!(within(0).await.len(), 2, "0: every open task");
}

#[tokio::test]
async fn a_new_responsible_municipality_takes_the_episode_over() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(34);
    let d = app
        .record(begin("DJI-J5", &bsn, "2026-06-01", "2026-07-31"))
        .await
        .detention
        .expect("detention");
    // the person will settle in Breda: the next event says so
    let mut transfer = crate::helpers::event(
        "DJI-J5",
        &bsn,
        pb::DetentionEventKind::Transfer,
        "2026-06-10",
        "",
    );
    transfer.municipality_code = BREDA.into();
    let moved = app.record(transfer).await.detention.expect("detention");
    assert_eq!(moved.municipality_code, BREDA);
    assert!(get(&app, BREDA_DESK, &d.detention_id).await.is_ok());
    assert_eq!(
        expect_err(get(&app, TILBURG_DESK, &d.detention_id).await, "no longer").code(),
        Code::NotFound
    );
    let told = app.events("reintegration.detention.transferred").await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].audience_municipalities, vec![TILBURG.to_owned()]);
}
