//! The gRPC adapter of DetentionService.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use zvv_platform::{
    adapter::call_context,
    error::ApiError,
    intake::{Intake, SubjectInput},
    paging::next_token,
};
use zvv_proto::reintegration::v1::{self as pb, detention_service_server::DetentionService};

use super::{detention_pb, detention_status_filter, event_kind, institution_type};
use crate::{
    service::{DetentionLogic, RecordInput},
    store::DetentionStore,
};

pub struct DetentionApi<S, I> {
    logic: Arc<DetentionLogic<S, I>>,
}

impl<S, I> DetentionApi<S, I> {
    pub fn new(logic: Arc<DetentionLogic<S, I>>) -> Self {
        Self { logic }
    }
}

#[tonic::async_trait]
impl<S: DetentionStore, I: Intake> DetentionService for DetentionApi<S, I> {
    async fn record_detention_event(
        &self,
        request: Request<pb::RecordDetentionEventRequest>,
    ) -> Result<Response<pb::RecordDetentionEventResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let input = RecordInput {
            request_id: r.request_id,
            external_ref: r.external_ref,
            subject: match r.subject {
                Some(pb::record_detention_event_request::Subject::Bsn(b)) => SubjectInput::Bsn(b),
                Some(pb::record_detention_event_request::Subject::SubjectId(id)) => {
                    SubjectInput::SubjectId(id)
                }
                None => SubjectInput::Missing,
            },
            birth_date: r.birth_date,
            kind: event_kind(r.kind),
            institution_code: r.institution_code,
            institution_type: institution_type(r.institution_type),
            occurred_on: r.occurred_on,
            expected_release_on: r.expected_release_on,
            municipality_code: r.municipality_code,
        };
        let recorded = self
            .logic
            .record(&ctx, input)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::RecordDetentionEventResponse {
            detention: Some(detention_pb(recorded.detention, true)),
            duplicate: recorded.duplicate,
        }))
    }

    async fn get_detention(
        &self,
        request: Request<pb::GetDetentionRequest>,
    ) -> Result<Response<pb::GetDetentionResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let found = self
            .logic
            .get(&ctx, &r.detention_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetDetentionResponse {
            detention: Some(detention_pb(found.item, found.whole)),
        }))
    }

    async fn list_detentions(
        &self,
        request: Request<pb::ListDetentionsRequest>,
    ) -> Result<Response<pb::ListDetentionsResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let status = detention_status_filter(r.status)
            .map_err(|()| ctx.fail(ApiError::invalid("status", "is not a detention status")))?;
        let page = self
            .logic
            .list(&ctx, status, r.page_size, &r.page_token)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListDetentionsResponse {
            next_page_token: next_token(page.next),
            detentions: page
                .items
                .into_iter()
                .map(|d| detention_pb(d.item, d.whole))
                .collect(),
        }))
    }
}
