//! The gRPC adapter of SignalService.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use zvv_platform::{adapter::call_context, error::ApiError, paging::next_token};
use zvv_proto::signalling::v1::{
    self as pb, register_signal_request, signal_service_server::SignalService,
};

use super::{cell_pb, close_reason, contact_from_pb, match_pb, signal_pb, status_filter};
use crate::{
    clients::Intake,
    service::{RegisterInput, SignalLogic, SubjectInput},
    store::{MatchStore, SignalStore, StatisticsStore},
};

pub struct SignalApi<S, I> {
    logic: Arc<SignalLogic<S, I>>,
}

impl<S, I> SignalApi<S, I> {
    pub fn new(logic: Arc<SignalLogic<S, I>>) -> Self {
        Self { logic }
    }
}

#[tonic::async_trait]
impl<S, I> SignalService for SignalApi<S, I>
where
    S: SignalStore + MatchStore + StatisticsStore,
    I: Intake,
{
    async fn register_signal(
        &self,
        request: Request<pb::RegisterSignalRequest>,
    ) -> Result<Response<pb::RegisterSignalResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let input = RegisterInput {
            request_id: r.request_id,
            subject: match r.subject {
                Some(register_signal_request::Subject::Bsn(b)) => SubjectInput::Bsn(b),
                Some(register_signal_request::Subject::SubjectId(id)) => {
                    SubjectInput::SubjectId(id)
                }
                None => SubjectInput::Missing,
            },
            contact: r.contact.map(contact_from_pb),
            duration_months: r.duration_months,
        };
        let registered = self
            .logic
            .register(&ctx, input)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::RegisterSignalResponse {
            signal: Some(signal_pb(registered.signal)),
            matches: registered.matches.into_iter().map(match_pb).collect(),
        }))
    }

    async fn close_signal(
        &self,
        request: Request<pb::CloseSignalRequest>,
    ) -> Result<Response<pb::CloseSignalResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let signal = self
            .logic
            .close(&ctx, &r.request_id, &r.signal_id, close_reason(r.reason))
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::CloseSignalResponse {
            signal: Some(signal_pb(signal)),
        }))
    }

    async fn get_signal(
        &self,
        request: Request<pb::GetSignalRequest>,
    ) -> Result<Response<pb::GetSignalResponse>, Status> {
        let ctx = call_context(&request)?;
        let signal = self
            .logic
            .get(&ctx, &request.into_inner().signal_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetSignalResponse {
            signal: Some(signal_pb(signal)),
        }))
    }

    async fn list_signals(
        &self,
        request: Request<pb::ListSignalsRequest>,
    ) -> Result<Response<pb::ListSignalsResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let status = status_filter(r.status)
            .map_err(|()| ctx.fail(ApiError::invalid("status", "is not a signal status")))?;
        let page = self
            .logic
            .list(&ctx, status, r.page_size, &r.page_token)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListSignalsResponse {
            next_page_token: next_token(page.next),
            signals: page.items.into_iter().map(signal_pb).collect(),
        }))
    }

    async fn record_information_duty(
        &self,
        request: Request<pb::RecordInformationDutyRequest>,
    ) -> Result<Response<pb::RecordInformationDutyResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let signal = self
            .logic
            .record_information_duty(
                &ctx,
                &r.request_id,
                &r.signal_id,
                &r.parents_informed_on,
                &r.child_informed_on,
                &r.postponement_reason,
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::RecordInformationDutyResponse {
            signal: Some(signal_pb(signal)),
        }))
    }

    async fn list_matches(
        &self,
        request: Request<pb::ListMatchesRequest>,
    ) -> Result<Response<pb::ListMatchesResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let page = self
            .logic
            .list_matches(&ctx, r.page_size, &r.page_token)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListMatchesResponse {
            next_page_token: next_token(page.next),
            matches: page.items.into_iter().map(match_pb).collect(),
        }))
    }

    async fn get_match(
        &self,
        request: Request<pb::GetMatchRequest>,
    ) -> Result<Response<pb::GetMatchResponse>, Status> {
        let ctx = call_context(&request)?;
        let m = self
            .logic
            .get_match(&ctx, &request.into_inner().match_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetMatchResponse {
            r#match: Some(match_pb(m)),
        }))
    }

    async fn assign_coordinator(
        &self,
        request: Request<pb::AssignCoordinatorRequest>,
    ) -> Result<Response<pb::AssignCoordinatorResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let contact = r.contact.map(contact_from_pb);
        let m = self
            .logic
            .assign_coordinator(
                &ctx,
                &r.request_id,
                &r.match_id,
                &r.organisation,
                contact.as_ref(),
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::AssignCoordinatorResponse {
            r#match: Some(match_pb(m)),
        }))
    }

    async fn mark_coordinated(
        &self,
        request: Request<pb::MarkCoordinatedRequest>,
    ) -> Result<Response<pb::MarkCoordinatedResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let m = self
            .logic
            .mark_coordinated(&ctx, &r.request_id, &r.match_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::MarkCoordinatedResponse {
            r#match: Some(match_pb(m)),
        }))
    }

    async fn get_signal_statistics(
        &self,
        request: Request<pb::GetSignalStatisticsRequest>,
    ) -> Result<Response<pb::GetSignalStatisticsResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let cells = self
            .logic
            .statistics(&ctx, &r.municipality_code, &r.from_month, &r.to_month)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetSignalStatisticsResponse {
            cells: cells.into_iter().map(cell_pb).collect(),
            threshold: i32::try_from(self.logic.statistics_threshold()).unwrap_or(i32::MAX),
        }))
    }
}
