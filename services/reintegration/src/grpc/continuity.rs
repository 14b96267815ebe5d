//! The gRPC adapter of ContinuityService.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use zvv_platform::{
    adapter::{call_context, date_text},
    contact::Contact,
    paging::next_token,
};
use zvv_proto::reintegration::v1::{self as pb, continuity_service_server::ContinuityService};

use super::{
    condition_kind_pb, condition_pb, condition_status, condition_status_pb, int, plan_pb, reason,
    share_pb, task_pb,
};
use crate::{
    service::{ContinuityLogic, UpdateInput},
    store::{PlanStore, StatisticsStore},
};

pub struct ContinuityApi<S> {
    logic: Arc<ContinuityLogic<S>>,
}

impl<S> ContinuityApi<S> {
    pub fn new(logic: Arc<ContinuityLogic<S>>) -> Self {
        Self { logic }
    }
}

#[tonic::async_trait]
impl<S: PlanStore + StatisticsStore> ContinuityService for ContinuityApi<S> {
    async fn get_plan(
        &self,
        request: Request<pb::GetPlanRequest>,
    ) -> Result<Response<pb::GetPlanResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let found = self
            .logic
            .plan(&ctx, &r.detention_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetPlanResponse {
            plan: Some(plan_pb(found.item.1)),
        }))
    }

    async fn update_condition(
        &self,
        request: Request<pb::UpdateConditionRequest>,
    ) -> Result<Response<pb::UpdateConditionResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let status = condition_status(r.status);
        let reason_code = reason(r.reason_code);
        let input = UpdateInput {
            request_id: r.request_id,
            condition_id: r.condition_id,
            status: status.ok().flatten(),
            status_invalid: status.is_err(),
            due_on: r.due_on,
            reason: reason_code.ok().flatten(),
            reason_invalid: reason_code.is_err(),
            action: r.action,
        };
        let condition = self
            .logic
            .update_condition(&ctx, input)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::UpdateConditionResponse {
            condition: Some(condition_pb(condition)),
        }))
    }

    async fn assign_task(
        &self,
        request: Request<pb::AssignTaskRequest>,
    ) -> Result<Response<pb::AssignTaskResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let contact = r.contact.map(|c| Contact {
            name: c.name,
            phone: c.phone,
            email: c.email,
        });
        let task = self
            .logic
            .assign_task(
                &ctx,
                &r.request_id,
                &r.condition_id,
                &r.organisation,
                &r.organisation_type,
                contact.as_ref(),
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::AssignTaskResponse {
            task: Some(task_pb(task)),
        }))
    }

    async fn complete_task(
        &self,
        request: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let task = self
            .logic
            .complete_task(&ctx, &r.request_id, &r.task_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::CompleteTaskResponse {
            task: Some(task_pb(task)),
        }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let page = self
            .logic
            .list_tasks(
                &ctx,
                r.due_within_days,
                r.include_closed,
                r.page_size,
                &r.page_token,
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListTasksResponse {
            next_page_token: next_token(page.next),
            tasks: page.items.into_iter().map(task_pb).collect(),
        }))
    }

    async fn get_release_readiness(
        &self,
        request: Request<pb::GetReleaseReadinessRequest>,
    ) -> Result<Response<pb::GetReleaseReadinessResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let readiness = self
            .logic
            .readiness(&ctx, &r.detention_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetReleaseReadinessResponse {
            detention_id: readiness.detention.id.to_string(),
            ready: readiness.ready,
            release_on: date_text(readiness.detention.release_on()),
            conditions: readiness
                .conditions
                .into_iter()
                .map(|c| {
                    let next = c.next_open().cloned();
                    pb::ConditionReadiness {
                        condition_id: c.id.to_string(),
                        kind: condition_kind_pb(c.kind) as i32,
                        status: condition_status_pb(c.status) as i32,
                        ready: c.is_ready(),
                        next_action: next.as_ref().map(|a| a.action.clone()).unwrap_or_default(),
                        next_due_on: date_text(next.and_then(|a| a.due_on)),
                    }
                })
                .collect(),
        }))
    }

    async fn replan_detention(
        &self,
        request: Request<pb::ReplanDetentionRequest>,
    ) -> Result<Response<pb::ReplanDetentionResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let plan = self
            .logic
            .replan(&ctx, &r.request_id, &r.detention_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ReplanDetentionResponse {
            plan: Some(plan_pb(plan)),
        }))
    }

    async fn get_reintegration_statistics(
        &self,
        request: Request<pb::GetReintegrationStatisticsRequest>,
    ) -> Result<Response<pb::GetReintegrationStatisticsResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let months = self
            .logic
            .statistics(&ctx, &r.municipality_code, &r.from_month, &r.to_month)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetReintegrationStatisticsResponse {
            threshold: int(self.logic.threshold()),
            months: months
                .into_iter()
                .map(|m| pb::MonthStatistics {
                    month: m.month.format("%Y-%m").to_string(),
                    suppressed: m.suppressed,
                    releases: int(m.releases),
                    all_arranged: (!m.suppressed).then(|| share_pb(m.all_arranged)),
                    lapses: m
                        .lapses
                        .into_iter()
                        .map(|(kind, share)| pb::ConditionLapses {
                            kind: condition_kind_pb(kind) as i32,
                            lapsed: Some(share_pb(share)),
                        })
                        .collect(),
                    redetained_within_12_months: (!m.suppressed).then(|| share_pb(m.redetained_12)),
                    redetained_within_24_months: (!m.suppressed).then(|| share_pb(m.redetained_24)),
                })
                .collect(),
        }))
    }
}
