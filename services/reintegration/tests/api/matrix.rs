//! The jurisdiction matrix of DetentionService and ContinuityService, generated from their
//! policy tables: every RPC called by a caller of the episode's own municipality, of another
//! municipality, with no jurisdiction, of an organisation type and of a role the table does not
//! grant, and by a suite service. Recording is national (the prisons); everything else belongs
//! to the responsible municipality. A new RPC without its row fails.

use std::sync::atomic::{AtomicUsize, Ordering};

use tonic::Status;
use zvv_devkit::testkit::matrix::{self, Caller, DENIED, HIDDEN, NOT_FOUND, OK, Row};
use zvv_platform::policy::Policy;
use zvv_proto::reintegration::v1 as pb;
use zvv_reintegration::policy::{CONTINUITY_SERVICE, DETENTION_SERVICE};

use crate::helpers::{
    BREDA, PROBATION, TILBURG, TILBURG_DESK, TestApp, begin, condition, contact, request_id,
    valid_bsn,
};

const POLICIES: [&Policy; 2] = [&DETENTION_SERVICE, &CONTINUITY_SERVICE];
/// The organisation of the allowed callers.
const ORG: &str = "org-under-test";

/// Columns: own municipality, other municipality, no jurisdiction, wrong org type, wrong role,
/// suite service.
const ROWS: &[Row] = &[
    Row {
        method: "RecordDetentionEvent",
        expect: [OK, OK, OK, DENIED, DENIED, OK],
    },
    Row {
        method: "GetDetention",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "ListDetentions",
        expect: [OK, HIDDEN, HIDDEN, DENIED, DENIED, DENIED],
    },
    Row {
        method: "GetPlan",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "UpdateCondition",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "AssignTask",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "CompleteTask",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "ListTasks",
        expect: [OK, HIDDEN, HIDDEN, DENIED, DENIED, DENIED],
    },
    Row {
        method: "GetReleaseReadiness",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "ReplanDetention",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "GetReintegrationStatistics",
        expect: [OK, DENIED, DENIED, DENIED, DENIED, DENIED],
    },
];

struct Fixture {
    app: TestApp,
    detention: String,
    income: String,
    debts: String,
    task: String,
    next_bsn: AtomicUsize,
}

impl Fixture {
    /// A new episode in Tilburg.
    async fn fresh_detention(&self) -> String {
        let n = self.next_bsn.fetch_add(1, Ordering::SeqCst);
        self.app
            .record(begin(
                &format!("DJI-M{n}"),
                &valid_bsn(n),
                "2026-06-01",
                "2026-07-31",
            ))
            .await
            .detention
            .expect("detention")
            .detention_id
    }

    /// A new open task of probation, in an episode of its own.
    async fn fresh_task(&self) -> String {
        let detention = self.fresh_detention().await;
        self.app
            .assign(&detention, pb::ConditionKind::Housing, PROBATION)
            .await
            .task_id
    }

    async fn call(&self, method: &str, caller: &Caller, token: &str) -> Result<bool, Status> {
        let mut detentions = self.app.detentions_with(token);
        let mut continuity = self.app.continuity_with(token);
        match method {
            "RecordDetentionEvent" => {
                let n = self.next_bsn.fetch_add(1, Ordering::SeqCst);
                let r = begin(
                    &format!("DJI-M{n}"),
                    &valid_bsn(n),
                    "2026-06-01",
                    "2026-07-31",
                );
                Ok(detentions
                    .record_detention_event(r)
                    .await?
                    .into_inner()
                    .detention
                    .is_some())
            }
            "GetDetention" => Ok(detentions
                .get_detention(pb::GetDetentionRequest {
                    detention_id: self.detention.clone(),
                })
                .await?
                .into_inner()
                .detention
                .is_some_and(|d| d.detention_id == self.detention)),
            "ListDetentions" => Ok(detentions
                .list_detentions(pb::ListDetentionsRequest::default())
                .await?
                .into_inner()
                .detentions
                .iter()
                .any(|d| d.detention_id == self.detention)),
            "GetPlan" => Ok(continuity
                .get_plan(pb::GetPlanRequest {
                    detention_id: self.detention.clone(),
                })
                .await?
                .into_inner()
                .plan
                .is_some_and(|p| p.conditions.len() == 8)),
            "UpdateCondition" => Ok(continuity
                .update_condition(pb::UpdateConditionRequest {
                    request_id: request_id(),
                    condition_id: self.income.clone(),
                    status: pb::ConditionStatus::AtRisk as i32,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .condition
                .is_some()),
            "AssignTask" => Ok(continuity
                .assign_task(pb::AssignTaskRequest {
                    request_id: request_id(),
                    condition_id: self.debts.clone(),
                    organisation: PROBATION.org.into(),
                    organisation_type: "PROBATION".into(),
                    contact: Some(contact()),
                })
                .await?
                .into_inner()
                .task
                .is_some()),
            "CompleteTask" => {
                let task = self.fresh_task().await;
                Ok(continuity
                    .complete_task(pb::CompleteTaskRequest {
                        request_id: request_id(),
                        task_id: task,
                    })
                    .await?
                    .into_inner()
                    .task
                    .is_some())
            }
            "ListTasks" => Ok(continuity
                .list_tasks(pb::ListTasksRequest::default())
                .await?
                .into_inner()
                .tasks
                .iter()
                .any(|t| t.task_id == self.task || t.detention_id == self.detention)),
            "GetReleaseReadiness" => Ok(continuity
                .get_release_readiness(pb::GetReleaseReadinessRequest {
                    detention_id: self.detention.clone(),
                })
                .await?
                .into_inner()
                .conditions
                .len()
                == 8),
            "ReplanDetention" => Ok(continuity
                .replan_detention(pb::ReplanDetentionRequest {
                    request_id: request_id(),
                    detention_id: self.detention.clone(),
                })
                .await?
                .into_inner()
                .plan
                .is_some()),
            "GetReintegrationStatistics" => Ok(!continuity
                .get_reintegration_statistics(pb::GetReintegrationStatisticsRequest {
                    municipality_code: TILBURG.into(),
                    from_month: "2026-05".into(),
                    to_month: "2026-06".into(),
                })
                .await?
                .into_inner()
                .months
                .is_empty()),
            other => panic!("no call for {other} ({caller:?})"),
        }
    }
}

#[test]
fn every_rpc_has_rows_in_the_matrix() {
    for policy in POLICIES {
        let rows: Vec<Row> = ROWS
            .iter()
            .filter(|r| policy.rule(r.method).is_some())
            .copied()
            .collect();
        matrix::check_coverage(policy, &rows).expect("matrix covers the policy table");
    }
    let known = |m: &str| POLICIES.iter().any(|p| p.rule(m).is_some());
    assert!(ROWS.iter().all(|r| known(r.method)), "a row names no RPC");
}

#[tokio::test]
async fn jurisdiction_matrix() {
    let app = TestApp::spawn().await;
    let detention = app
        .record(begin(
            "DJI-MATRIX",
            &valid_bsn(99),
            "2026-06-01",
            "2026-07-31",
        ))
        .await
        .detention
        .expect("detention")
        .detention_id;
    let plan = app.plan(TILBURG_DESK, &detention).await;
    let income = condition(&plan, pb::ConditionKind::Income)
        .condition_id
        .clone();
    let debts = condition(&plan, pb::ConditionKind::Debts)
        .condition_id
        .clone();
    let task = app
        .assign(&detention, pb::ConditionKind::CarePlan, PROBATION)
        .await
        .task_id;
    let fixture = Fixture {
        app,
        detention,
        income,
        debts,
        task,
        next_bsn: AtomicUsize::new(200),
    };
    let setup = matrix::Setup {
        keys: &fixture.app.keys,
        service: zvv_reintegration::SCHEMA.name(),
        org: ORG,
        own: TILBURG,
        other: BREDA,
    };
    matrix::run(setup, &POLICIES, ROWS, async |method, caller, token| {
        fixture.call(method, caller, token).await
    })
    .await;
}
