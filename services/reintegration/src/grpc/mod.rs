//! The thin gRPC adapters of DetentionService ([`detentions`]) and ContinuityService
//! ([`continuity`]), and the conversions between their messages and the domain. Each RPC takes
//! the call context, turns the request into domain input, calls the logic and maps the result;
//! a failure goes through [`zvv_platform::audit::CallContext::fail`], so that the call layer
//! audits it with the error's result.

mod continuity;
mod detentions;

use zvv_platform::adapter::{date_text, timestamp};
use zvv_proto::reintegration::v1 as pb;

use crate::domain::{
    Condition, ConditionStatus, Detention, DueDateReason, EpisodeStatus, EventKind,
    InstitutionType, Plan, PlanAction, PlanCondition, Share, Task, TaskStatus,
};

pub use continuity::ContinuityApi;
pub use detentions::DetentionApi;

fn event_kind(value: i32) -> Option<EventKind> {
    match pb::DetentionEventKind::try_from(value) {
        Ok(pb::DetentionEventKind::Begin) => Some(EventKind::Begin),
        Ok(pb::DetentionEventKind::LeaveStart) => Some(EventKind::LeaveStart),
        Ok(pb::DetentionEventKind::LeaveEnd) => Some(EventKind::LeaveEnd),
        Ok(pb::DetentionEventKind::Transfer) => Some(EventKind::Transfer),
        Ok(pb::DetentionEventKind::End) => Some(EventKind::End),
        _ => None,
    }
}

fn institution_type(value: i32) -> Option<InstitutionType> {
    match pb::InstitutionType::try_from(value) {
        Ok(pb::InstitutionType::Pi) => Some(InstitutionType::Pi),
        Ok(pb::InstitutionType::Jji) => Some(InstitutionType::Jji),
        _ => None,
    }
}

fn institution_type_pb(text: &str) -> pb::InstitutionType {
    match InstitutionType::parse(text) {
        Some(InstitutionType::Pi) => pb::InstitutionType::Pi,
        Some(InstitutionType::Jji) => pb::InstitutionType::Jji,
        None => pb::InstitutionType::Unspecified,
    }
}

/// A status filter: `Ok(None)` for UNSPECIFIED, `Err(())` for a value that is none.
fn detention_status_filter(value: i32) -> Result<Option<EpisodeStatus>, ()> {
    match pb::DetentionStatus::try_from(value) {
        Ok(pb::DetentionStatus::Detained) => Ok(Some(EpisodeStatus::Detained)),
        Ok(pb::DetentionStatus::OnLeave) => Ok(Some(EpisodeStatus::OnLeave)),
        Ok(pb::DetentionStatus::Released) => Ok(Some(EpisodeStatus::Released)),
        Ok(pb::DetentionStatus::Unspecified) => Ok(None),
        Err(_) => Err(()),
    }
}

fn detention_status_pb(text: &str) -> pb::DetentionStatus {
    match EpisodeStatus::parse(text) {
        Some(EpisodeStatus::Detained) => pb::DetentionStatus::Detained,
        Some(EpisodeStatus::OnLeave) => pb::DetentionStatus::OnLeave,
        Some(EpisodeStatus::Released) => pb::DetentionStatus::Released,
        None => pb::DetentionStatus::Unspecified,
    }
}

fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// An episode as `whole` (the responsible municipality) or a partner sees it.
fn detention_pb(d: Detention, whole: bool) -> pb::Detention {
    pb::Detention {
        detention_id: d.id.to_string(),
        subject_id: d.subject_id.to_string(),
        external_ref: d.external_ref,
        municipality_code: d.municipality_code,
        status: detention_status_pb(&d.status) as i32,
        began_on: date_text(Some(d.began_on)),
        begin_received: d.begin_received,
        expected_release_on: date_text(d.expected_release_on),
        released_on: date_text(d.released_on),
        institution_code: d.institution_code,
        institution_type: institution_type_pb(&d.institution_type) as i32,
        leaves: int(d.leaves),
        policy_version: int(d.policy_version),
        short_stay: d.short_stay,
        follow_up_until: date_text(d.follow_up_until),
        // absent for a partner; for the municipality 0 when not re-detained within 24 months
        redetained_within_months: if whole {
            Some(int(d.redetained_within_months.unwrap_or(0)))
        } else {
            None
        },
        ready_at_release: d.ready_at_release,
        create_time: Some(timestamp(d.created_at)),
        update_time: Some(timestamp(d.updated_at)),
    }
}

fn condition_kind_pb(c: Condition) -> pb::ConditionKind {
    match c {
        Condition::IdentityDocument => pb::ConditionKind::IdentityDocument,
        Condition::Housing => pb::ConditionKind::Housing,
        Condition::Income => pb::ConditionKind::Income,
        Condition::Allowances => pb::ConditionKind::Allowances,
        Condition::HealthInsurance => pb::ConditionKind::HealthInsurance,
        Condition::CarePlan => pb::ConditionKind::CarePlan,
        Condition::Debts => pb::ConditionKind::Debts,
        Condition::CareForDependants => pb::ConditionKind::CareForDependants,
        Condition::Education => pb::ConditionKind::Education,
    }
}

fn condition_status_pb(s: ConditionStatus) -> pb::ConditionStatus {
    match s {
        ConditionStatus::Unknown => pb::ConditionStatus::Unknown,
        ConditionStatus::InPlace => pb::ConditionStatus::InPlace,
        ConditionStatus::AtRisk => pb::ConditionStatus::AtRisk,
        ConditionStatus::Suspended => pb::ConditionStatus::Suspended,
        ConditionStatus::Arranged => pb::ConditionStatus::Arranged,
        ConditionStatus::Lapsed => pb::ConditionStatus::Lapsed,
        ConditionStatus::NotApplicable => pb::ConditionStatus::NotApplicable,
    }
}

/// A condition status: `Ok(None)` for UNSPECIFIED, `Err(())` for a value that is none.
fn condition_status(value: i32) -> Result<Option<ConditionStatus>, ()> {
    Ok(Some(match pb::ConditionStatus::try_from(value) {
        Ok(pb::ConditionStatus::Unspecified) => return Ok(None),
        Ok(pb::ConditionStatus::Unknown) => ConditionStatus::Unknown,
        Ok(pb::ConditionStatus::InPlace) => ConditionStatus::InPlace,
        Ok(pb::ConditionStatus::AtRisk) => ConditionStatus::AtRisk,
        Ok(pb::ConditionStatus::Suspended) => ConditionStatus::Suspended,
        Ok(pb::ConditionStatus::Arranged) => ConditionStatus::Arranged,
        Ok(pb::ConditionStatus::Lapsed) => ConditionStatus::Lapsed,
        Ok(pb::ConditionStatus::NotApplicable) => ConditionStatus::NotApplicable,
        Err(_) => return Err(()),
    }))
}

fn reason_pb(r: DueDateReason) -> pb::DueDateReason {
    match r {
        DueDateReason::AuthorityTerm => pb::DueDateReason::AuthorityTerm,
        DueDateReason::ReleaseDateChanged => pb::DueDateReason::ReleaseDateChanged,
        DueDateReason::PartnerAgreement => pb::DueDateReason::PartnerAgreement,
        DueDateReason::PersonUnavailable => pb::DueDateReason::PersonUnavailable,
        DueDateReason::AwaitingDocument => pb::DueDateReason::AwaitingDocument,
    }
}

/// A due date reason: `Ok(None)` for UNSPECIFIED, `Err(())` for a value that is none.
fn reason(value: i32) -> Result<Option<DueDateReason>, ()> {
    Ok(Some(match pb::DueDateReason::try_from(value) {
        Ok(pb::DueDateReason::Unspecified) => return Ok(None),
        Ok(pb::DueDateReason::AuthorityTerm) => DueDateReason::AuthorityTerm,
        Ok(pb::DueDateReason::ReleaseDateChanged) => DueDateReason::ReleaseDateChanged,
        Ok(pb::DueDateReason::PartnerAgreement) => DueDateReason::PartnerAgreement,
        Ok(pb::DueDateReason::PersonUnavailable) => DueDateReason::PersonUnavailable,
        Ok(pb::DueDateReason::AwaitingDocument) => DueDateReason::AwaitingDocument,
        Err(_) => return Err(()),
    }))
}

fn action_pb(a: PlanAction) -> pb::Action {
    pb::Action {
        action: a.action,
        due_on: date_text(a.due_on),
        rule: a.rule,
        policy_version: int(a.policy_version),
        override_reason: a
            .override_reason
            .map_or(pb::DueDateReason::Unspecified, reason_pb) as i32,
        done_on: date_text(a.done_on),
        warned: a.warned,
        missed: a.missed,
    }
}

fn task_pb(t: Task) -> pb::Task {
    pb::Task {
        task_id: t.id.to_string(),
        condition_id: t.condition_id.to_string(),
        detention_id: t.detention_id.to_string(),
        condition: condition_kind_pb(t.condition) as i32,
        organisation: t.organisation,
        organisation_type: t.organisation_type,
        contact: Some(pb::Contact {
            name: t.contact.name,
            phone: t.contact.phone,
            email: t.contact.email,
        }),
        status: match t.status {
            TaskStatus::Assigned => pb::TaskStatus::Assigned,
            TaskStatus::Done => pb::TaskStatus::Done,
            TaskStatus::Withdrawn => pb::TaskStatus::Withdrawn,
        } as i32,
        action: t.action.unwrap_or_default(),
        due_on: date_text(t.due_on),
        condition_status: condition_status_pb(t.condition_status) as i32,
        create_time: Some(timestamp(t.created_at)),
        complete_time: t.completed_at.map(timestamp),
    }
}

fn condition_pb(c: PlanCondition) -> pb::Condition {
    pb::Condition {
        condition_id: c.id.to_string(),
        detention_id: c.detention_id.to_string(),
        kind: condition_kind_pb(c.kind) as i32,
        status: condition_status_pb(c.status) as i32,
        actions: c.actions.into_iter().map(action_pb).collect(),
        task: c.task.map(task_pb),
        update_time: Some(timestamp(c.updated_at)),
    }
}

fn plan_pb(p: Plan) -> pb::Plan {
    pb::Plan {
        detention_id: p.detention_id.to_string(),
        policy_version: int(p.policy_version),
        conditions: p.conditions.into_iter().map(condition_pb).collect(),
    }
}

fn share_pb(s: Share) -> pb::Share {
    pb::Share {
        suppressed: s.suppressed,
        count: int(s.count),
        rate: s.rate,
    }
}
