//! The thin gRPC adapters of SignalService ([`signals`]), ReferralService ([`referrals`]) and
//! the EventSink ([`events`]), and the conversions between their messages and the domain they
//! share. Each RPC takes the call context, turns the request into domain input, calls the logic
//! and maps the result; a failure goes through [`zvv_platform::audit::CallContext::fail`], so
//! that the call layer audits it with the error's result.

mod events;
mod referrals;
mod signals;

use chrono::NaiveDate;
use zvv_platform::adapter::{date_text, timestamp};
use zvv_proto::signalling::v1 as pb;

use crate::domain::{
    AgeBand, CloseReason, Contact, Decision, Level, Match, MatchKind, Referral, Signal,
    SignalStatus, StatisticsCell,
};

pub use events::EventApi;
pub use referrals::ReferralApi;
pub use signals::SignalApi;

fn contact_pb(c: Contact) -> pb::Contact {
    pb::Contact {
        name: c.name,
        phone: c.phone,
        email: c.email,
    }
}

fn contact_from_pb(c: pb::Contact) -> Contact {
    Contact {
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

/// A signal status filter: `Ok(None)` for UNSPECIFIED, `Err(())` for a value that is none.
fn status_filter(value: i32) -> Result<Option<SignalStatus>, ()> {
    match pb::SignalStatus::try_from(value) {
        Ok(pb::SignalStatus::Active) => Ok(Some(SignalStatus::Active)),
        Ok(pb::SignalStatus::Closed) => Ok(Some(SignalStatus::Closed)),
        Ok(pb::SignalStatus::Expired) => Ok(Some(SignalStatus::Expired)),
        Ok(pb::SignalStatus::Unspecified) => Ok(None),
        Err(_) => Err(()),
    }
}

fn close_reason(value: i32) -> Option<CloseReason> {
    match pb::CloseReason::try_from(value) {
        Ok(pb::CloseReason::Unjustified) => Some(CloseReason::Unjustified),
        Ok(pb::CloseReason::RiskGone) => Some(CloseReason::RiskGone),
        _ => None,
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
        duration_months: i32::try_from(s.duration_months).unwrap_or(i32::MAX),
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

fn cell_pb(c: StatisticsCell) -> pb::StatisticsCell {
    pb::StatisticsCell {
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
    }
}

fn level(value: i32) -> Option<Level> {
    match pb::ReferralLevel::try_from(value) {
        Ok(pb::ReferralLevel::White) => Some(Level::White),
        Ok(pb::ReferralLevel::Yellow) => Some(Level::Yellow),
        Ok(pb::ReferralLevel::Orange) => Some(Level::Orange),
        Ok(pb::ReferralLevel::Red) => Some(Level::Red),
        _ => None,
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

fn decision(value: i32) -> Option<Decision> {
    match pb::ReferralDecision::try_from(value) {
        Ok(pb::ReferralDecision::OpenFamilyApproach) => Some(Decision::OpenFamilyApproach),
        Ok(pb::ReferralDecision::ForwardToVeiligThuis) => Some(Decision::ForwardToVeiligThuis),
        Ok(pb::ReferralDecision::NoAction) => Some(Decision::NoAction),
        _ => None,
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
