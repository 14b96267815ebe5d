//! The continuity policy is versioned: a new version applies to new plans; an open plan keeps
//! its version (its dates are computed again with its own numbers when the detention dates
//! change) until it is re-planned; a version's numbers cannot change.

use zvv_proto::reintegration::v1 as pb;
use zvv_reintegration::domain::ContinuityPolicy;

use crate::helpers::{
    Options, PRISON, TILBURG_DESK, TestApp, action, begin, condition, event, request_id, valid_bsn,
};

fn version_2() -> ContinuityPolicy {
    ContinuityPolicy {
        version: 2,
        id_before_release_days: 21,
        income_action_working_days: 3,
        ..ContinuityPolicy::default()
    }
}

#[tokio::test]
async fn a_policy_change_mid_detention_applies_to_new_plans_and_to_a_replanned_one() {
    let mut app = TestApp::spawn().await;
    let bsn = valid_bsn(40);
    let old = app
        .record(begin("DJI-P1", &bsn, "2026-06-15", "2026-08-14"))
        .await
        .detention
        .expect("detention");
    // the municipality moves the income date by hand before the new policy comes
    let plan = app.plan(TILBURG_DESK, &old.detention_id).await;
    let income = condition(&plan, pb::ConditionKind::Income)
        .condition_id
        .clone();
    app.continuity(TILBURG_DESK)
        .update_condition(pb::UpdateConditionRequest {
            request_id: request_id(),
            condition_id: income.clone(),
            due_on: "2026-06-26".into(),
            reason_code: pb::DueDateReason::AuthorityTerm as i32,
            ..Default::default()
        })
        .await
        .expect("the date moves with a reason");

    // a new release of the service with policy version 2
    let v2 = app
        .serve(Options {
            policy: version_2(),
            ..Options::default()
        })
        .await;
    let new = app
        .detentions_at(&v2, PRISON)
        .record_detention_event(begin("DJI-P2", &valid_bsn(41), "2026-06-15", "2026-08-14"))
        .await
        .expect("record on version 2")
        .into_inner()
        .detention
        .expect("detention");
    assert_eq!(new.policy_version, 2);
    let plan = app.plan(TILBURG_DESK, &new.detention_id).await;
    let id = action(
        condition(&plan, pb::ConditionKind::IdentityDocument),
        "VALID_ID",
    );
    assert_eq!(
        (id.due_on.as_str(), id.policy_version),
        ("2026-07-24", 2),
        "21 days"
    );

    // the open plan keeps version 1, also when its dates are computed again
    let moved = app
        .detentions_at(&v2, PRISON)
        .record_detention_event(event(
            "DJI-P1",
            &bsn,
            pb::DetentionEventKind::Transfer,
            "2026-06-15",
            "2026-08-28",
        ))
        .await
        .expect("a later release")
        .into_inner()
        .detention
        .expect("detention");
    assert_eq!(moved.policy_version, 1);
    let plan = app.plan(TILBURG_DESK, &old.detention_id).await;
    let id = action(
        condition(&plan, pb::ConditionKind::IdentityDocument),
        "VALID_ID",
    );
    assert_eq!(
        (id.due_on.as_str(), id.policy_version),
        ("2026-08-14", 1),
        "14 days, v1"
    );

    // re-planned explicitly: version 2, the hand-moved date kept
    let replanned = app
        .continuity_at(&v2, TILBURG_DESK)
        .replan_detention(pb::ReplanDetentionRequest {
            request_id: request_id(),
            detention_id: old.detention_id.clone(),
        })
        .await
        .expect("replan")
        .into_inner()
        .plan
        .expect("plan");
    assert_eq!(replanned.policy_version, 2);
    let id = action(
        condition(&replanned, pb::ConditionKind::IdentityDocument),
        "VALID_ID",
    );
    assert_eq!(
        (id.due_on.as_str(), id.policy_version),
        ("2026-08-07", 2),
        "21 days"
    );
    let income = action(
        condition(&replanned, pb::ConditionKind::Income),
        "SUSPEND_BENEFIT",
    );
    assert_eq!(income.due_on, "2026-06-26", "overridden dates stay");
    assert_eq!(
        income.override_reason,
        pb::DueDateReason::AuthorityTerm as i32
    );
    let d = app
        .detentions(TILBURG_DESK)
        .get_detention(pb::GetDetentionRequest {
            detention_id: old.detention_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .detention
        .expect("detention");
    assert_eq!(d.policy_version, 2);
}

#[tokio::test]
async fn other_numbers_under_a_used_version_are_refused() {
    let app = TestApp::spawn().await;
    let changed = ContinuityPolicy {
        id_before_release_days: 30,
        ..ContinuityPolicy::default()
    };
    let refused = zvv_reintegration::record_policy(&app.runtime_pool, &changed, &app.shared_clock)
        .await
        .expect_err("version 1 is recorded with other numbers");
    assert!(refused.to_string().contains("new version"), "{refused}");
    // the same numbers again are fine
    zvv_reintegration::record_policy(
        &app.runtime_pool,
        &ContinuityPolicy::default(),
        &app.shared_clock,
    )
    .await
    .expect("the same policy");
}
