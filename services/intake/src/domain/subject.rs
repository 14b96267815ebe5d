use chrono::{DateTime, Datelike, NaiveDate, Utc};
use uuid::Uuid;
use zvv_platform::bsn::Bsn;
pub use zvv_platform::error::Violations;

use super::{MunicipalityCode, NeighbourhoodCode};

/// A registered person as the registry shows them: the BSN only masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id: Uuid,
    pub bsn_masked: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub municipality_code: Option<String>,
    pub neighbourhood_code: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A person to register, every field checked.
#[derive(Debug, Clone)]
pub struct NewSubject {
    pub bsn: Bsn,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
    pub municipality: MunicipalityCode,
    pub neighbourhood: NeighbourhoodCode,
}

/// One change of an UpdateSubject call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectChange {
    GivenName(String),
    FamilyName(String),
    Municipality(MunicipalityCode),
    Neighbourhood(NeighbourhoodCode),
    /// `None` clears a date recorded by mistake.
    DateOfDeath(Option<NaiveDate>),
    /// Only while the birth date is unknown.
    BirthDate(NaiveDate),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    Parent,
    Guardian,
}

impl RelationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parent => "PARENT",
            Self::Guardian => "GUARDIAN",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PARENT" => Some(Self::Parent),
            "GUARDIAN" => Some(Self::Guardian),
            _ => None,
        }
    }
}

/// Where a relation comes from (its provenance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationSource {
    /// The municipal personal records database (Basisregistratie Personen).
    Brp,
    CourtOrder,
    Declaration,
}

impl RelationSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Brp => "BRP",
            Self::CourtOrder => "COURT_ORDER",
            Self::Declaration => "DECLARATION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "BRP" => Some(Self::Brp),
            "COURT_ORDER" => Some(Self::CourtOrder),
            "DECLARATION" => Some(Self::Declaration),
            _ => None,
        }
    }
}

/// Why a relation is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkReason {
    RecordedInError,
    WrongPerson,
    SourceCorrected,
    CustodyEnded,
}

impl UnlinkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordedInError => "RECORDED_IN_ERROR",
            Self::WrongPerson => "WRONG_PERSON",
            Self::SourceCorrected => "SOURCE_CORRECTED",
            Self::CustodyEnded => "CUSTODY_ENDED",
        }
    }
}

/// A checked UnlinkRelation request: which relation goes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlink {
    pub parent: Uuid,
    pub child: Uuid,
    pub reason: UnlinkReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub parent: Uuid,
    pub child: Uuid,
    pub kind: RelationKind,
    /// `None` for relations recorded before the source was kept.
    pub source: Option<RelationSource>,
    pub created_at: DateTime<Utc>,
}

/// The id of the relation between `parent` and `child` in events: derived from the two, so the
/// events of linking and unlinking one pair name the same relation (relations have no id of
/// their own).
pub fn relation_id(parent: Uuid, child: Uuid) -> Uuid {
    zvv_platform::ids::derived_id("zvv.intake.relation", &[parent, child])
}

/// The children who share a parent with a subject, and the subject's parents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Family {
    pub siblings: Vec<Uuid>,
    pub parents: Vec<Uuid>,
}

/// A name: 1-200 characters, not blank, no control characters.
pub fn parse_name(value: &str) -> Result<String, String> {
    let chars = value.chars().count();
    if chars == 0 || value.trim().is_empty() {
        return Err("is required".into());
    }
    if chars > 200 {
        return Err("must be at most 200 characters".into());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(value.to_owned())
}

fn parse_date(value: &str) -> Result<NaiveDate, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    if value.len() != 10 {
        return Err("must be a date as YYYY-MM-DD".into());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| "must be a real date as YYYY-MM-DD".into())
}

/// A birth date: a real date, not in the future, not more than 120 years ago.
pub fn parse_birth_date(value: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    let date = parse_date(value)?;
    if date > today {
        return Err("must not be in the future".into());
    }
    let oldest = today
        .with_year(today.year() - 120)
        .or_else(|| (today - chrono::Duration::days(1)).with_year(today.year() - 120))
        .unwrap_or(NaiveDate::MIN);
    if date < oldest {
        return Err("must not be more than 120 years ago".into());
    }
    Ok(date)
}

/// A date of death: a real date, not in the future. Empty clears it.
pub fn parse_date_of_death(value: &str, today: NaiveDate) -> Result<Option<NaiveDate>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let date = parse_date(value)?;
    if date > today {
        return Err("must not be in the future".into());
    }
    Ok(Some(date))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn names() {
        assert!(parse_name("Jan").is_ok());
        assert!(parse_name("Zoë d'Ancona-van der Berg").is_ok());
        assert!(parse_name("").is_err());
        assert!(parse_name("   ").is_err());
        assert!(parse_name("a\u{0}b").is_err());
        assert!(parse_name("a\nb").is_err());
        assert!(parse_name(&"é".repeat(200)).is_ok());
        assert!(parse_name(&"é".repeat(201)).is_err());
    }

    #[test]
    fn birth_dates() {
        let today = d("2026-11-23");
        assert_eq!(
            parse_birth_date("2015-02-28", today).unwrap(),
            d("2015-02-28")
        );
        assert!(parse_birth_date("2026-11-23", today).is_ok());
        assert!(parse_birth_date("2026-11-24", today).is_err());
        assert!(parse_birth_date("1906-11-23", today).is_ok());
        assert!(parse_birth_date("1906-11-22", today).is_err());
        assert!(parse_birth_date("2015-02-30", today).is_err());
        assert!(parse_birth_date("15-02-2015", today).is_err());
        assert!(parse_birth_date("2015-2-3", today).is_err());
        assert!(parse_birth_date("", today).is_err());
        // 120 years before a 29 February that exists then, and one that does not
        assert!(parse_birth_date("1904-02-29", d("2024-02-29")).is_ok());
        assert!(parse_birth_date("1904-02-28", d("2024-02-29")).is_err());
        assert!(parse_birth_date("1900-02-28", d("2020-02-29")).is_ok());
        assert!(parse_birth_date("1900-02-27", d("2020-02-29")).is_err());
    }

    #[test]
    fn dates_of_death() {
        let today = d("2026-11-23");
        assert_eq!(parse_date_of_death("", today).unwrap(), None);
        assert!(parse_date_of_death("2026-12-01", today).is_err());
        assert_eq!(
            parse_date_of_death("2026-11-01", today).unwrap(),
            Some(d("2026-11-01"))
        );
    }
}
