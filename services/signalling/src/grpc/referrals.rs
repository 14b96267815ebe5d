//! The gRPC adapter of ReferralService.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use zvv_platform::{adapter::call_context, error::ApiError, paging::next_token};
use zvv_proto::signalling::v1::{self as pb, referral_service_server::ReferralService};

use super::{decision, level, referral_pb};
use crate::{
    clients::Intake,
    service::{ReferralLogic, SubjectInput, SubmitInput},
    store::ReferralStore,
};

pub struct ReferralApi<S, I> {
    logic: Arc<ReferralLogic<S, I>>,
}

impl<S, I> ReferralApi<S, I> {
    pub fn new(logic: Arc<ReferralLogic<S, I>>) -> Self {
        Self { logic }
    }
}

#[tonic::async_trait]
impl<S: ReferralStore, I: Intake> ReferralService for ReferralApi<S, I> {
    async fn submit_referral(
        &self,
        request: Request<pb::SubmitReferralRequest>,
    ) -> Result<Response<pb::SubmitReferralResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let input = SubmitInput {
            request_id: r.request_id,
            subject: match r.subject {
                Some(pb::submit_referral_request::Subject::Bsn(b)) => SubjectInput::Bsn(b),
                Some(pb::submit_referral_request::Subject::SubjectId(id)) => {
                    SubjectInput::SubjectId(id)
                }
                None => SubjectInput::Missing,
            },
            source_instrument: r.source_instrument,
            instrument_version: r.instrument_version,
            level: level(r.level),
            observed_on: r.observed_on,
            municipality_code: r.municipality_code,
            birth_date: r.birth_date,
        };
        let referral = self
            .logic
            .submit(&ctx, input)
            .await
            .map_err(|e| ctx.fail(e))?;
        // the routing is not echoed: it would tell the submitter where intake has the child
        let mut referral = referral_pb(referral, self.logic.today());
        referral.municipality_code.clear();
        Ok(Response::new(pb::SubmitReferralResponse {
            referral: Some(referral),
        }))
    }

    async fn list_referrals(
        &self,
        request: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let decided = match pb::ReferralStatus::try_from(r.status) {
            Ok(pb::ReferralStatus::AwaitingTriage) => Some(false),
            Ok(pb::ReferralStatus::Decided) => Some(true),
            Ok(pb::ReferralStatus::Unspecified) => None,
            Err(_) => {
                return Err(ctx.fail(ApiError::invalid("status", "is not a referral status")));
            }
        };
        let page = self
            .logic
            .list(&ctx, decided, r.overdue_only, r.page_size, &r.page_token)
            .await
            .map_err(|e| ctx.fail(e))?;
        let today = self.logic.today();
        Ok(Response::new(pb::ListReferralsResponse {
            next_page_token: next_token(page.next),
            referrals: page
                .items
                .into_iter()
                .map(|x| referral_pb(x, today))
                .collect(),
        }))
    }

    async fn decide_referral(
        &self,
        request: Request<pb::DecideReferralRequest>,
    ) -> Result<Response<pb::DecideReferralResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let referral = self
            .logic
            .decide(
                &ctx,
                &r.request_id,
                &r.referral_id,
                decision(r.decision),
                &r.rationale,
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::DecideReferralResponse {
            referral: Some(referral_pb(referral, self.logic.today())),
        }))
    }
}
