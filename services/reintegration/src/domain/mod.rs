//! Pure rules of reintegration (no tonic, no sqlx): the episode its events make, the versioned
//! continuity policy, the stored plan and its recomputation, the deadline rule, the statistics,
//! and the shapes of the values requests carry.

pub mod deadlines;
pub mod episode;
pub mod plan;
pub mod policy;
pub mod statistics;

use zvv_platform::auth::OrgType;

pub use deadlines::{OpenAction, Recipient, Warning, recipient, warning_due};
pub use episode::{
    Detention, DetentionEvent, Episode, EpisodeStatus, EventKind, InstitutionType, fold,
    redetained_within,
};
pub use plan::{
    DueDateReason, Plan, PlanAction, PlanChange, PlanCondition, Task, TaskStatus, reconcile,
};
pub use policy::{Condition, ConditionStatus, ContinuityPolicy, Due, PlanFacts, PlannedCondition};
pub use statistics::{MonthStatistics, ReleaseFact, Share, months};

/// The organisation types a task may be assigned to: the municipality's own desks (income),
/// the prison's case manager, probation, the neighbourhood team, housing and care providers.
pub const PARTNER_ORG_TYPES: &[OrgType] = &[
    OrgType::Municipality,
    OrgType::Prison,
    OrgType::Probation,
    OrgType::NeighbourhoodTeam,
    OrgType::Housing,
    OrgType::CareProvider,
];

/// The prison system's id of an episode: 1-64 ASCII letters, digits, `-`, `_`, `.`, `:`.
pub fn parse_external_ref(value: &str) -> Result<String, &'static str> {
    if value.is_empty() {
        return Err("is required: the prison system's id of the detention episode");
    }
    let shape = value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !shape || zvv_platform::bsn::Bsn::parse(value).is_ok() {
        return Err("must be 1-64 letters, digits, '-', '_', '.' or ':' (and not a BSN)");
    }
    Ok(value.to_owned())
}

/// An institution's code: 1-32 ASCII letters, digits, `-`, `_`.
pub fn parse_institution_code(value: &str) -> Result<String, &'static str> {
    if value.is_empty() {
        return Err("is required, e.g. PI-VUGHT");
    }
    let shape = value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !shape || zvv_platform::bsn::Bsn::parse(value).is_ok() {
        return Err("must be 1-32 letters, digits, '-' or '_'");
    }
    Ok(value.to_owned())
}

/// The type of a task's organisation: one of [`PARTNER_ORG_TYPES`].
pub fn parse_partner_type(value: &str) -> Result<OrgType, String> {
    let names = || {
        PARTNER_ORG_TYPES
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if value.is_empty() {
        return Err(format!("is required: one of {}", names()));
    }
    match value.parse::<OrgType>() {
        Ok(t) if PARTNER_ORG_TYPES.contains(&t) => Ok(t),
        _ => Err(format!("must be one of {}", names())),
    }
}

/// An organisation id as in the `org` claim of its professionals' tokens.
pub fn parse_organisation(value: &str) -> Result<String, &'static str> {
    if value.is_empty() {
        return Err("is required: the partner's organisation id");
    }
    if !zvv_platform::auth::is_organisation_id(value) {
        return Err("must be an organisation id: 1-128 letters, digits, '-', '_', '.' or ':'");
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_request_values() {
        assert!(parse_external_ref("DJI-2026-000123").is_ok());
        assert!(parse_external_ref("").is_err());
        assert!(parse_external_ref("123456782").is_err(), "a BSN");
        assert!(parse_external_ref("a b").is_err());
        assert!(parse_external_ref(&"x".repeat(65)).is_err());
        assert!(parse_institution_code("PI-VUGHT").is_ok());
        assert!(parse_institution_code("PI VUGHT").is_err());
        assert_eq!(parse_partner_type("PROBATION"), Ok(OrgType::Probation));
        assert!(parse_partner_type("SCHOOL").is_err());
        assert!(parse_partner_type("").is_err());
        assert!(parse_organisation("reclassering-tilburg").is_ok());
        assert!(parse_organisation("123456782").is_err());
    }
}
