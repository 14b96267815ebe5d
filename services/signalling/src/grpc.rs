//! The thin gRPC adapters of SignalService and ReferralService.

use std::sync::Arc;

use chrono::NaiveDate;
use tonic::{Request, Response, Status};
use zvv_platform::{
    adapter::{call_context, date_text, timestamp},
    error::ApiError,
    paging,
};
use zvv_proto::signalling::v1::{
    self as pb, referral_service_server::ReferralService, register_signal_request,
    signal_service_server::SignalService,
};

use crate::{
    domain::{CloseReason, Contact, Match, MatchKind, Signal, SignalStatus},
    identity::Identity,
    referral_service::{ReferralLogic, SubmitInput},
    referrals::{Decision, Level, Referral},
    service::{Page, RegisterInput, SignalLogic, SubjectInput},
    store::ReferralStore,
    store::SignalStore,
};

pub struct SignalApi<S, I> {
    logic: Arc<SignalLogic<S, I>>,
    statistics_threshold: u32,
}

impl<S, I> SignalApi<S, I> {
    pub fn new(logic: Arc<SignalLogic<S, I>>, statistics_threshold: u32) -> Self {
        Self {
            logic,
            statistics_threshold,
        }
    }
}

pub struct ReferralApi<S, I> {
    logic: Arc<ReferralLogic<S, I>>,
}

impl<S, I> ReferralApi<S, I> {
    pub fn new(logic: Arc<ReferralLogic<S, I>>) -> Self {
        Self { logic }
    }
}

fn contact_pb(c: Contact) -> pb::Contact {
    pb::Contact {
        name: c.name,
        phone: c.phone,
        email: c.email,
    }
}

fn status_pb(s: SignalStatus) -> pb::SignalStatus {
    match s {
        SignalStatus::Active => pb::SignalStatus::Active,
        SignalStatus::Closed => pb::SignalStatus::Closed,
        SignalStatus::Expired => pb::SignalStatus::Expired,
    }
}

fn signal_pb(s: Signal) -> pb::Signal {
    let met = s.information_duty_met();
    pb::Signal {
        signal_id: s.id.to_string(),
        subject_id: s.subject_id.to_string(),
        organisation: s.organisation,
        organisation_type: s.organisation_type,
        contact: Some(contact_pb(s.contact)),
        registered_on: date_text(Some(s.registered_on)),
        duration_months: s.duration_months as i32,
        expires_on: date_text(Some(s.expires_on)),
        status: status_pb(s.status) as i32,
        close_reason: match s.close_reason {
            Some(CloseReason::Unjustified) => pb::CloseReason::Unjustified,
            Some(CloseReason::RiskGone) => pb::CloseReason::RiskGone,
            None => pb::CloseReason::Unspecified,
        } as i32,
        close_time: s.closed_at.map(timestamp),
        information_duty: Some(pb::InformationDuty {
            parents_informed_on: date_text(s.parents_informed_on),
            child_informed_on: date_text(s.child_informed_on),
            postponement_reason: s.postponement_reason.unwrap_or_default(),
            met,
        }),
        create_time: Some(timestamp(s.created_at)),
    }
}

fn match_pb(m: Match) -> pb::Match {
    let mut subject_ids: Vec<String> = m.signals.iter().map(|s| s.subject_id.to_string()).collect();
    subject_ids.sort();
    subject_ids.dedup();
    let mut participants: Vec<pb::Participant> = Vec::new();
    for s in m.signals {
        match participants
            .iter_mut()
            .find(|p| p.organisation == s.organisation)
        {
            Some(p) => p.signal_ids.push(s.id.to_string()),
            None => participants.push(pb::Participant {
                organisation: s.organisation,
                organisation_type: s.organisation_type,
                contact: Some(contact_pb(s.contact)),
                signal_ids: vec![s.id.to_string()],
            }),
        }
    }
    pb::Match {
        match_id: m.id.to_string(),
        kind: match m.kind {
            MatchKind::Client => pb::MatchKind::Client,
            MatchKind::Family => pb::MatchKind::Family,
        } as i32,
        subject_ids,
        participants,
        coordinator: m.coordinator.map(|c| pb::Coordinator {
            organisation: c.organisation,
            contact: Some(contact_pb(c.contact)),
            assign_time: Some(timestamp(c.assigned_at)),
        }),
        coordinated: m.coordinated,
        status: if m.open {
            pb::MatchStatus::Open
        } else {
            pb::MatchStatus::Closed
        } as i32,
        create_time: Some(timestamp(m.created_at)),
        update_time: Some(timestamp(m.updated_at)),
    }
}

fn next_token<T>(page: &Page<T>) -> String {
    page.next
        .map(|id| paging::encode_token(&id.to_string()))
        .unwrap_or_default()
}

#[tonic::async_trait]
impl<S: SignalStore, I: Identity> SignalService for SignalApi<S, I> {
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
            contact: r.contact.map(|c| Contact {
                name: c.name,
                phone: c.phone,
                email: c.email,
            }),
            duration_months: r.duration_months,
        };
        let (signal, matches) = self.logic.register(&ctx, input).await?;
        Ok(Response::new(pb::RegisterSignalResponse {
            signal: Some(signal_pb(signal)),
            matches: matches.into_iter().map(match_pb).collect(),
        }))
    }

    async fn close_signal(
        &self,
        request: Request<pb::CloseSignalRequest>,
    ) -> Result<Response<pb::CloseSignalResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let reason = match pb::CloseReason::try_from(r.reason) {
            Ok(pb::CloseReason::Unjustified) => Some(CloseReason::Unjustified),
            Ok(pb::CloseReason::RiskGone) => Some(CloseReason::RiskGone),
            _ => None,
        };
        let signal = self.logic.close(&ctx, &r.signal_id, reason).await?;
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
            .await?;
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
        let status = match pb::SignalStatus::try_from(r.status) {
            Ok(pb::SignalStatus::Active) => Some(SignalStatus::Active),
            Ok(pb::SignalStatus::Closed) => Some(SignalStatus::Closed),
            Ok(pb::SignalStatus::Expired) => Some(SignalStatus::Expired),
            Ok(pb::SignalStatus::Unspecified) => None,
            Err(_) => {
                return Err(ApiError::invalid("status", "is not a signal status").into_status());
            }
        };
        let page = self
            .logic
            .list(&ctx, status, r.page_size, &r.page_token)
            .await?;
        let next_page_token = next_token(&page);
        Ok(Response::new(pb::ListSignalsResponse {
            signals: page.items.into_iter().map(signal_pb).collect(),
            next_page_token,
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
                &r.signal_id,
                &r.parents_informed_on,
                &r.child_informed_on,
                &r.postponement_reason,
            )
            .await?;
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
            .await?;
        let next_page_token = next_token(&page);
        Ok(Response::new(pb::ListMatchesResponse {
            matches: page.items.into_iter().map(match_pb).collect(),
            next_page_token,
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
            .await?;
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
        let contact = r.contact.map(|c| Contact {
            name: c.name,
            phone: c.phone,
            email: c.email,
        });
        let m = self
            .logic
            .assign_coordinator(&ctx, &r.match_id, &r.organisation, contact.as_ref())
            .await?;
        Ok(Response::new(pb::AssignCoordinatorResponse {
            r#match: Some(match_pb(m)),
        }))
    }

    async fn mark_coordinated(
        &self,
        request: Request<pb::MarkCoordinatedRequest>,
    ) -> Result<Response<pb::MarkCoordinatedResponse>, Status> {
        let ctx = call_context(&request)?;
        let m = self
            .logic
            .mark_coordinated(&ctx, &request.into_inner().match_id)
            .await?;
        Ok(Response::new(pb::MarkCoordinatedResponse {
            r#match: Some(match_pb(m)),
        }))
    }

    async fn get_signal_statistics(
        &self,
        request: Request<pb::GetSignalStatisticsRequest>,
    ) -> Result<Response<pb::GetSignalStatisticsResponse>, Status> {
        use crate::domain::AgeBand;
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let cells = self
            .logic
            .statistics(
                &ctx,
                &r.municipality_code,
                &r.from_month,
                &r.to_month,
                self.statistics_threshold,
            )
            .await?;
        Ok(Response::new(pb::GetSignalStatisticsResponse {
            cells: cells
                .into_iter()
                .map(|c| pb::StatisticsCell {
                    neighbourhood_code: c.neighbourhood_code,
                    age_band: match c.age_band {
                        AgeBand::Age0To3 => pb::AgeBand::AgeBand03,
                        AgeBand::Age4To11 => pb::AgeBand::AgeBand411,
                        AgeBand::Age12To15 => pb::AgeBand::AgeBand1215,
                        AgeBand::Age16To17 => pb::AgeBand::AgeBand1617,
                        AgeBand::Age18To22 => pb::AgeBand::AgeBand1822,
                    } as i32,
                    organisation_type: c.organisation_type,
                    subjects: i32::try_from(c.subjects).unwrap_or(i32::MAX),
                })
                .collect(),
            threshold: self.statistics_threshold as i32,
        }))
    }
}

fn level_pb(l: Level) -> pb::ReferralLevel {
    match l {
        Level::White => pb::ReferralLevel::White,
        Level::Yellow => pb::ReferralLevel::Yellow,
        Level::Orange => pb::ReferralLevel::Orange,
        Level::Red => pb::ReferralLevel::Red,
    }
}

fn referral_pb(r: Referral, today: NaiveDate) -> pb::Referral {
    let overdue = r.overdue(today);
    pb::Referral {
        referral_id: r.id.to_string(),
        subject_id: r.subject_id.to_string(),
        organisation: r.organisation,
        source_instrument: r.source_instrument,
        instrument_version: r.instrument_version,
        level: level_pb(r.level) as i32,
        observed_on: date_text(Some(r.observed_on)),
        status: if r.decision.is_some() {
            pb::ReferralStatus::Decided
        } else {
            pb::ReferralStatus::AwaitingTriage
        } as i32,
        decide_by: date_text(r.decide_by),
        overdue,
        decision: match r.decision {
            Some(Decision::OpenFamilyApproach) => pb::ReferralDecision::OpenFamilyApproach,
            Some(Decision::ForwardToVeiligThuis) => pb::ReferralDecision::ForwardToVeiligThuis,
            Some(Decision::NoAction) => pb::ReferralDecision::NoAction,
            None => pb::ReferralDecision::Unspecified,
        } as i32,
        rationale: r.rationale.unwrap_or_default(),
        decided_by: r.decided_by.unwrap_or_default(),
        decide_time: r.decided_at.map(timestamp),
        create_time: Some(timestamp(r.created_at)),
        municipality_code: r.municipality_code,
    }
}

#[tonic::async_trait]
impl<S: SignalStore + ReferralStore, I: Identity> ReferralService for ReferralApi<S, I> {
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
            level: match pb::ReferralLevel::try_from(r.level) {
                Ok(pb::ReferralLevel::White) => Some(Level::White),
                Ok(pb::ReferralLevel::Yellow) => Some(Level::Yellow),
                Ok(pb::ReferralLevel::Orange) => Some(Level::Orange),
                Ok(pb::ReferralLevel::Red) => Some(Level::Red),
                _ => None,
            },
            observed_on: r.observed_on,
            municipality_code: r.municipality_code,
            birth_date: r.birth_date,
        };
        let referral = self.logic.submit(&ctx, input).await?;
        let today = self.logic.today();
        // the routing is not echoed: it would tell the submitter where intake has the child
        let mut referral = referral_pb(referral, today);
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
                return Err(ApiError::invalid("status", "is not a referral status").into_status());
            }
        };
        let page = self
            .logic
            .list(&ctx, decided, r.overdue_only, r.page_size, &r.page_token)
            .await?;
        let today = self.logic.today();
        let next_page_token = next_token(&page);
        Ok(Response::new(pb::ListReferralsResponse {
            referrals: page
                .items
                .into_iter()
                .map(|x| referral_pb(x, today))
                .collect(),
            next_page_token,
        }))
    }

    async fn decide_referral(
        &self,
        request: Request<pb::DecideReferralRequest>,
    ) -> Result<Response<pb::DecideReferralResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let decision = match pb::ReferralDecision::try_from(r.decision) {
            Ok(pb::ReferralDecision::OpenFamilyApproach) => Some(Decision::OpenFamilyApproach),
            Ok(pb::ReferralDecision::ForwardToVeiligThuis) => Some(Decision::ForwardToVeiligThuis),
            Ok(pb::ReferralDecision::NoAction) => Some(Decision::NoAction),
            _ => None,
        };
        let referral = self
            .logic
            .decide(&ctx, &r.referral_id, decision, &r.rationale)
            .await?;
        let today = self.logic.today();
        Ok(Response::new(pb::DecideReferralResponse {
            referral: Some(referral_pb(referral, today)),
        }))
    }
}
