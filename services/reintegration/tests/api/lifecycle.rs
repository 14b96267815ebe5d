//! One detention from BEGIN through leave to END on a moved clock: the plan the policy makes,
//! warnings before and at each due date (each once, with the monitor running on two replicas at
//! the same time), the partner's task, release, readiness and the follow-up period.

use zvv_proto::reintegration::v1 as pb;

use crate::helpers::{
    HOUSING, PROBATION, TILBURG, TILBURG_DESK, TestApp, action, begin, condition, end, event,
    request_id, valid_bsn,
};

#[tokio::test]
async fn a_detention_from_begin_through_warnings_to_release() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(1);
    // Monday 15 June, expected release Friday 14 August: a two-month stay
    let opened = app
        .record(begin("DJI-2026-0001", &bsn, "2026-06-15", "2026-08-14"))
        .await;
    assert!(!opened.duplicate);
    let d = opened.detention.expect("detention");
    assert_eq!(d.status, pb::DetentionStatus::Detained as i32);
    assert_eq!(d.municipality_code, TILBURG);
    assert!(d.begin_received && !d.short_stay);
    assert_eq!(d.policy_version, 1);

    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    assert_eq!(plan.conditions.len(), 8, "no EDUCATION in a prison (PI)");
    let income = condition(&plan, pb::ConditionKind::Income);
    assert_eq!(income.status, pb::ConditionStatus::AtRisk as i32);
    let suspend = action(income, "SUSPEND_BENEFIT");
    assert_eq!(suspend.due_on, "2026-06-22", "5 working days");
    assert_eq!(
        (suspend.rule.as_str(), suspend.policy_version),
        ("income.suspend-up-to-max-months", 1)
    );
    let insurance = condition(&plan, pb::ConditionKind::HealthInsurance);
    assert_eq!(action(insurance, "REPORT_SUSPENSION").due_on, "2026-06-15");
    assert_eq!(action(insurance, "RESTART_INSURANCE").due_on, "2026-08-14");
    let id = condition(&plan, pb::ConditionKind::IdentityDocument);
    assert_eq!(
        action(id, "VALID_ID").due_on,
        "2026-07-31",
        "14 days before"
    );

    // the housing association gets the housing costs, probation the debts
    let housing_task = app
        .assign(&d.detention_id, pb::ConditionKind::Housing, HOUSING)
        .await;
    assert_eq!(housing_task.action, "ARRANGE_FIXED_COSTS");
    assert_eq!(housing_task.due_on, "2026-06-22");
    app.assign(&d.detention_id, pb::ConditionKind::Debts, PROBATION)
        .await;
    assert_eq!(app.events("reintegration.task.assigned").await.len(), 2);

    // day 1: what is due within 3 working days is warned, once, whichever replica takes it
    let (a, b) = app.monitor_on_two_replicas().await;
    assert_eq!(
        a.upcoming + b.upcoming,
        2,
        "{a:?} {b:?}: report suspension, dependants"
    );
    assert_eq!(a.missed + b.missed, 0);
    let (a, b) = app.monitor_on_two_replicas().await;
    assert_eq!((a, b), Default::default(), "each warning once");

    // Wednesday 17 June: income and housing come within 3 working days; two dates passed
    app.set_day("2026-06-17");
    let (a, b) = app.monitor_on_two_replicas().await;
    assert_eq!(a.upcoming + b.upcoming, 2, "{a:?} {b:?}");
    assert_eq!(a.missed + b.missed, 2, "{a:?} {b:?}");
    let approaching = app.events("reintegration.deadline.approaching").await;
    assert_eq!(approaching.len(), 4);
    let housing = approaching
        .iter()
        .find(|e| e.code("due_action") == "ARRANGE_FIXED_COSTS")
        .expect("housing warned");
    assert_eq!(housing.audience_organisations, vec![HOUSING.org.to_owned()]);
    assert!(
        housing.audience_municipalities.is_empty(),
        "the task holder is warned, not the municipality"
    );
    assert_eq!(housing.id("task_id"), housing_task.task_id);
    let income_warning = approaching
        .iter()
        .find(|e| e.code("due_action") == "SUSPEND_BENEFIT")
        .expect("income warned");
    assert_eq!(
        income_warning.audience_municipalities,
        vec![TILBURG.to_owned()]
    );
    assert!(income_warning.audience_organisations.is_empty());
    let missed = app.events("reintegration.deadline.missed").await;
    let mut missed_actions: Vec<&str> = missed.iter().map(|e| e.code("due_action")).collect();
    missed_actions.sort_unstable();
    assert_eq!(missed_actions, ["CHECK_DEPENDANTS", "REPORT_SUSPENSION"]);
    assert!(
        missed
            .iter()
            .all(|e| e.audience_municipalities == [TILBURG])
    );
    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    let insurance = condition(&plan, pb::ConditionKind::HealthInsurance);
    assert_eq!(insurance.status, pb::ConditionStatus::Lapsed as i32);
    let report = action(insurance, "REPORT_SUSPENSION");
    assert!(report.missed && report.warned);
    assert!(!action(insurance, "RESTART_INSURANCE").missed);

    // the housing association arranges the fixed costs: nothing left, the condition is arranged
    let done = app
        .continuity(HOUSING)
        .complete_task(pb::CompleteTaskRequest {
            request_id: request_id(),
            task_id: housing_task.task_id.clone(),
        })
        .await
        .expect("the holder completes its task")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(done.status, pb::TaskStatus::Done as i32);
    assert_eq!(done.condition_status, pb::ConditionStatus::Arranged as i32);

    // a leave in July
    app.set_day("2026-07-03");
    let on_leave = app
        .record(event(
            "DJI-2026-0001",
            &bsn,
            pb::DetentionEventKind::LeaveStart,
            "2026-07-01",
            "",
        ))
        .await
        .detention
        .expect("detention");
    assert_eq!(on_leave.status, pb::DetentionStatus::OnLeave as i32);
    let back = app
        .record(event(
            "DJI-2026-0001",
            &bsn,
            pb::DetentionEventKind::LeaveEnd,
            "2026-07-03",
            "",
        ))
        .await
        .detention
        .expect("detention");
    assert_eq!(back.status, pb::DetentionStatus::Detained as i32);
    assert_eq!(back.leaves, 1);

    // the income desk missed its date on 22 June; housing is done and not warned again
    let (a, b) = app.monitor_on_two_replicas().await;
    let income = app
        .events("reintegration.deadline.missed")
        .await
        .into_iter()
        .filter(|e| e.code("due_action") == "SUSPEND_BENEFIT")
        .count();
    assert_eq!(income, 1, "{a:?} {b:?}");
    assert_eq!(
        app.events("reintegration.deadline.missed")
            .await
            .iter()
            .filter(|e| e.code("due_action") == "ARRANGE_FIXED_COSTS")
            .count(),
        0
    );

    // release on the expected day
    app.set_day("2026-08-14");
    let released = app
        .record(end("DJI-2026-0001", &bsn, "2026-08-14"))
        .await
        .detention
        .expect("detention");
    assert_eq!(released.status, pb::DetentionStatus::Released as i32);
    assert_eq!(released.released_on, "2026-08-14");
    assert_eq!(
        released.follow_up_until, "2027-02-14",
        "6 months of follow-up"
    );
    assert_eq!(released.ready_at_release, Some(false), "conditions lapsed");
    assert_eq!(
        app.events("reintegration.detention.released").await.len(),
        1
    );
    let readiness = app
        .continuity(TILBURG_DESK)
        .get_release_readiness(pb::GetReleaseReadinessRequest {
            detention_id: d.detention_id.clone(),
        })
        .await
        .expect("readiness")
        .into_inner();
    assert!(!readiness.ready);
    assert_eq!(readiness.release_on, "2026-08-14");
    let housing = readiness
        .conditions
        .iter()
        .find(|c| c.kind == pb::ConditionKind::Housing as i32)
        .expect("housing");
    assert!(housing.ready);
    // the plan stays open in the follow-up: the insurance restart is still warned
    assert_eq!(
        app.count("SELECT count(*) FROM reintegration.release_facts")
            .await,
        1
    );
}

#[tokio::test]
async fn a_short_stay_gets_the_short_stay_variant_and_a_long_one_the_long() {
    let app = TestApp::spawn().await;
    let short = app
        .record(begin(
            "DJI-SHORT",
            &valid_bsn(2),
            "2026-06-15",
            "2026-06-22",
        ))
        .await
        .detention
        .expect("detention");
    assert!(short.short_stay, "7 days");
    let plan = app.plan(TILBURG_DESK, &short.detention_id).await;
    let income = condition(&plan, pb::ConditionKind::Income);
    assert_eq!(income.actions[0].action, "REPORT_SHORT_DETENTION");
    assert_eq!(income.actions[0].rule, "income.short-stay");
    let id = condition(&plan, pb::ConditionKind::IdentityDocument);
    assert_eq!(
        (id.actions[0].action.as_str(), id.actions[0].due_on.as_str()),
        ("VALID_ID_ON_RELEASE", "2026-06-22")
    );
    let insurance = condition(&plan, pb::ConditionKind::HealthInsurance);
    assert_eq!(insurance.actions.len(), 1, "no suspension for a few days");

    // eight months: benefit ended, housing at risk beyond the covered months
    let long = app
        .record(begin("DJI-LONG", &valid_bsn(3), "2026-06-15", "2027-02-15"))
        .await
        .detention
        .expect("detention");
    assert!(!long.short_stay);
    let plan = app.plan(TILBURG_DESK, &long.detention_id).await;
    let income = condition(&plan, pb::ConditionKind::Income);
    assert_eq!(
        income.actions[0].action,
        "END_BENEFIT_AND_PREPARE_REAPPLICATION"
    );
    let housing = condition(&plan, pb::ConditionKind::Housing);
    assert_eq!(housing.status, pb::ConditionStatus::AtRisk as i32);
    assert_eq!(housing.actions[0].action, "ARRANGE_HOUSING_AFTER_RELEASE");
    assert_eq!(
        housing.actions[0].due_on, "2027-01-18",
        "28 days before release"
    );

    // a youth institution adds EDUCATION
    let mut youth = begin("DJI-YOUTH", &valid_bsn(4), "2026-06-15", "2026-08-14");
    youth.institution_type = pb::InstitutionType::Jji as i32;
    youth.institution_code = "JJI-DE-HUNNERBERG".into();
    let youth = app.record(youth).await.detention.expect("detention");
    let plan = app.plan(TILBURG_DESK, &youth.detention_id).await;
    assert_eq!(plan.conditions.len(), 9);
    assert_eq!(
        action(
            condition(&plan, pb::ConditionKind::Education),
            "SCHOOL_PLACE"
        )
        .due_on,
        "2026-07-31"
    );
}

#[tokio::test]
async fn a_later_expected_release_moves_the_open_dates_and_warns_again() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(5);
    let d = app
        .record(begin("DJI-MOVE", &bsn, "2026-06-15", "2026-07-03"))
        .await
        .detention
        .expect("detention");
    app.set_day("2026-06-30");
    app.monitor().await;
    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    let restart = action(
        condition(&plan, pb::ConditionKind::HealthInsurance),
        "RESTART_INSURANCE",
    );
    assert!(
        restart.warned,
        "due on 3 July, warned 3 working days before"
    );
    // the court extends the stay: a TRANSFER with the new expected release
    let moved = app
        .record(event(
            "DJI-MOVE",
            &bsn,
            pb::DetentionEventKind::Transfer,
            "2026-06-30",
            "2026-07-31",
        ))
        .await
        .detention
        .expect("detention");
    assert_eq!(moved.expected_release_on, "2026-07-31");
    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    let restart = action(
        condition(&plan, pb::ConditionKind::HealthInsurance),
        "RESTART_INSURANCE",
    );
    assert_eq!(restart.due_on, "2026-07-31");
    assert!(!restart.warned, "a new date gets its own warning");
    assert_eq!(restart.policy_version, 1, "the plan keeps its version");
}

#[tokio::test]
async fn the_follow_up_watches_the_open_conditions_until_it_ends() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(6);
    let d = app
        .record(begin("DJI-FOLLOW", &bsn, "2026-05-04", "2026-06-12"))
        .await
        .detention
        .expect("detention");
    app.record(end("DJI-FOLLOW", &bsn, "2026-06-12")).await;
    // an action moved past the release is still warned in the follow-up
    let plan = app.plan(TILBURG_DESK, &d.detention_id).await;
    let debts = condition(&plan, pb::ConditionKind::Debts)
        .condition_id
        .clone();
    for due_on in ["2026-09-01", "2027-01-04"] {
        let mut update = pb::UpdateConditionRequest {
            request_id: request_id(),
            condition_id: debts.clone(),
            due_on: due_on.into(),
            reason_code: pb::DueDateReason::PartnerAgreement as i32,
            ..Default::default()
        };
        if due_on == "2027-01-04" {
            // the second date is for the housing condition: the follow-up ends on 12 December
            update.condition_id = condition(&plan, pb::ConditionKind::Housing)
                .condition_id
                .clone();
        }
        app.continuity(TILBURG_DESK)
            .update_condition(update)
            .await
            .expect("moved");
    }
    app.monitor().await;
    app.set_day("2026-09-02");
    let report = app.monitor().await;
    assert_eq!(report.missed, 1, "{report:?}: debts, in the follow-up");
    app.set_day("2027-01-05");
    let report = app.monitor().await;
    assert_eq!(
        (report.upcoming, report.missed),
        (0, 0),
        "the follow-up ended on 2026-12-12"
    );
}
