//! Referrals into human triage: the source's colour is provenance, a triage officer decides
//! with a rationale, and YELLOW and above that wait past their deadline are reported overdue.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    White,
    Yellow,
    Orange,
    Red,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::White => "WHITE",
            Self::Yellow => "YELLOW",
            Self::Orange => "ORANGE",
            Self::Red => "RED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "WHITE" => Some(Self::White),
            "YELLOW" => Some(Self::Yellow),
            "ORANGE" => Some(Self::Orange),
            "RED" => Some(Self::Red),
            _ => None,
        }
    }

    /// YELLOW and above must be decided within the deadline.
    pub fn needs_decision(self) -> bool {
        self >= Self::Yellow
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    OpenFamilyApproach,
    ForwardToVeiligThuis,
    NoAction,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenFamilyApproach => "OPEN_FAMILY_APPROACH",
            Self::ForwardToVeiligThuis => "FORWARD_TO_VEILIG_THUIS",
            Self::NoAction => "NO_ACTION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "OPEN_FAMILY_APPROACH" => Some(Self::OpenFamilyApproach),
            "FORWARD_TO_VEILIG_THUIS" => Some(Self::ForwardToVeiligThuis),
            "NO_ACTION" => Some(Self::NoAction),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub organisation: String,
    pub source_instrument: String,
    pub instrument_version: String,
    pub level: Level,
    pub observed_on: NaiveDate,
    /// The municipality the referral is routed to: intake's for the child when it knows one,
    /// else the one the source gave.
    pub municipality_code: String,
    /// From intake (or the source) when known; for retention at 23.
    pub birth_date: Option<NaiveDate>,
    pub decide_by: Option<NaiveDate>,
    pub decision: Option<Decision>,
    pub rationale: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Referral {
    /// Awaiting a decision past its deadline on `today`.
    pub fn overdue(&self, today: NaiveDate) -> bool {
        self.decision.is_none() && self.decide_by.is_some_and(|d| d < today)
    }
}

/// `days` working days (Monday to Friday) after `from` (the platform's calendar).
pub use zvv_platform::calendar::add_working_days;

/// A source instrument name: 1-64 characters of letters, digits, space, `-`, `_`, `.`.
pub fn parse_instrument(value: &str) -> Result<String, &'static str> {
    let ok = !value.trim().is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err("must be 1-64 letters, digits, spaces, '-', '_' or '.'")
    }
}

/// A rationale: required, at most 2000 characters, no control characters but line breaks.
pub fn parse_rationale(value: &str) -> Result<String, &'static str> {
    if value.trim().is_empty() {
        return Err("is required: a decision needs its reasons");
    }
    if value.chars().count() > 2000 {
        return Err("must be at most 2000 characters");
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err("must not contain control characters");
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_inputs() {
        assert!(!Level::White.needs_decision());
        assert!(Level::Yellow.needs_decision() && Level::Red.needs_decision());
        assert!(parse_instrument("ProKid 12-").is_ok());
        assert!(parse_instrument("").is_err());
        assert!(parse_instrument("x<script>").is_err());
        assert!(parse_rationale("  ").is_err());
        assert!(parse_rationale("Gezin is al bekend bij het wijkteam.\nGeen actie nodig.").is_ok());
    }
}
