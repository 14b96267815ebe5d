//! Signals: who may be signalled, for how long, and the information duty.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Contact;

/// Age from which nothing about a subject may be kept: no signal is registered from it on, and
/// everything about the subject is destroyed at it.
pub const AGE_LIMIT: u32 = 23;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalStatus {
    Active,
    Closed,
    Expired,
}

impl SignalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Closed => "CLOSED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(Self::Active),
            "CLOSED" => Some(Self::Closed),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    Unjustified,
    RiskGone,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unjustified => "UNJUSTIFIED",
            Self::RiskGone => "RISK_GONE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "UNJUSTIFIED" => Some(Self::Unjustified),
            "RISK_GONE" => Some(Self::RiskGone),
            _ => None,
        }
    }
}

/// What was recorded about informing parents and child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InformationDuty {
    pub parents_informed_on: Option<NaiveDate>,
    pub child_informed_on: Option<NaiveDate>,
    pub postponement_reason: Option<String>,
}

/// A postponement reason: up to 500 characters, no control characters other than line breaks.
pub fn parse_postponement_reason(value: &str) -> Result<Option<String>, &'static str> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    if value.chars().count() > 500 {
        return Err("must be at most 500 characters");
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err("must not contain control characters");
    }
    Ok(Some(value.to_owned()))
}

/// A stored signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub organisation: String,
    pub organisation_type: String,
    pub contact: Contact,
    pub registered_on: NaiveDate,
    pub duration_months: u32,
    pub expires_on: NaiveDate,
    pub status: SignalStatus,
    pub close_reason: Option<CloseReason>,
    pub closed_at: Option<DateTime<Utc>>,
    pub parents_informed_on: Option<NaiveDate>,
    pub child_informed_on: Option<NaiveDate>,
    pub postponement_reason: Option<String>,
    pub birth_date: NaiveDate,
    pub municipality_code: Option<String>,
    pub neighbourhood_code: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Signal {
    /// Parents must be informed while the child is under 16, the child from 12; a postponement
    /// reason stands in for whoever was not. Ages are taken on the registration date.
    pub fn information_duty_met(&self) -> bool {
        if self
            .postponement_reason
            .as_deref()
            .is_some_and(|r| !r.trim().is_empty())
        {
            return true;
        }
        let age = age_on(self.birth_date, self.registered_on);
        let parents_ok = age >= 16 || self.parents_informed_on.is_some();
        let child_ok = age < 12 || self.child_informed_on.is_some();
        parents_ok && child_ok
    }

    /// Records the information duty on the signal.
    pub fn record(&mut self, duty: InformationDuty) {
        self.parents_informed_on = duty.parents_informed_on;
        self.child_informed_on = duty.child_informed_on;
        self.postponement_reason = duty.postponement_reason;
    }
}

/// Why no signal can be registered on a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unregistrable {
    /// Intake knows no birth date, so the age rule cannot be applied.
    NoBirthDate,
    Died,
    /// 23 or older on the registration date.
    TooOld,
}

impl Unregistrable {
    pub fn message(self) -> &'static str {
        match self {
            Self::NoBirthDate => {
                "intake does not know this subject's birth date: complete the registration with \
                 intake first"
            }
            Self::Died => "the subject has died: no signal can be registered",
            Self::TooOld => {
                "the subject is 23 or older: the signalling index is for people under 23"
            }
        }
    }
}

/// The birth date of a subject that may be signalled on `today`: known, alive, under 23.
pub fn registrable(
    birth_date: Option<NaiveDate>,
    date_of_death: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<NaiveDate, Unregistrable> {
    let birth_date = birth_date.ok_or(Unregistrable::NoBirthDate)?;
    if date_of_death.is_some() {
        return Err(Unregistrable::Died);
    }
    if age_on(birth_date, today) >= AGE_LIMIT as i32 {
        return Err(Unregistrable::TooOld);
    }
    Ok(birth_date)
}

/// Whole years between `birth` and `on`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// The last day a signal of `months` registered on `on` is active.
pub fn expiry(on: NaiveDate, months: u32) -> NaiveDate {
    on.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

/// The latest birth date of subjects who are 23 or older on `today`.
pub fn latest_birth_date_at_age_limit(today: NaiveDate) -> NaiveDate {
    today
        .checked_sub_months(Months::new(12 * AGE_LIMIT))
        .unwrap_or(NaiveDate::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ages_and_expiry() {
        assert_eq!(age_on(d("2010-06-15"), d("2026-06-14")), 15);
        assert_eq!(age_on(d("2010-06-15"), d("2026-06-15")), 16);
        assert_eq!(age_on(d("2008-02-29"), d("2026-02-28")), 17);
        assert_eq!(expiry(d("2026-01-31"), 1), d("2026-02-28"));
        assert_eq!(expiry(d("2026-03-01"), 12), d("2027-03-01"));
    }

    #[test]
    fn only_living_subjects_under_23_with_a_birth_date_are_registrable() {
        let today = d("2026-06-15");
        assert_eq!(
            registrable(Some(d("2003-06-16")), None, today),
            Ok(d("2003-06-16"))
        );
        assert_eq!(
            registrable(Some(d("2003-06-15")), None, today),
            Err(Unregistrable::TooOld)
        );
        assert_eq!(
            registrable(None, None, today),
            Err(Unregistrable::NoBirthDate)
        );
        assert_eq!(
            registrable(Some(d("2015-01-01")), Some(d("2026-01-01")), today),
            Err(Unregistrable::Died)
        );
        assert!(Unregistrable::NoBirthDate.message().contains("intake"));
        // the age limit of retention is the same birthday
        assert_eq!(latest_birth_date_at_age_limit(today), d("2003-06-15"));
    }

    #[test]
    fn information_duty_by_age() {
        let mut s = Signal {
            id: Uuid::nil(),
            subject_id: Uuid::nil(),
            organisation: "o".into(),
            organisation_type: "SCHOOL".into(),
            contact: Contact {
                name: "n".into(),
                phone: "p".into(),
                email: "e".into(),
            },
            registered_on: d("2026-06-15"),
            duration_months: 12,
            expires_on: d("2027-06-15"),
            status: SignalStatus::Active,
            close_reason: None,
            closed_at: None,
            parents_informed_on: None,
            child_informed_on: None,
            postponement_reason: None,
            birth_date: d("2016-06-15"), // 10: parents only
            municipality_code: None,
            neighbourhood_code: None,
            created_at: Utc::now(),
        };
        assert!(!s.information_duty_met());
        s.parents_informed_on = Some(d("2026-06-16"));
        assert!(s.information_duty_met());
        s.birth_date = d("2012-06-15"); // 14: parents and child
        assert!(!s.information_duty_met());
        s.child_informed_on = Some(d("2026-06-16"));
        assert!(s.information_duty_met());
        s.birth_date = d("2008-06-15"); // 18: the child only
        s.parents_informed_on = None;
        assert!(s.information_duty_met());
        s.child_informed_on = None;
        assert!(!s.information_duty_met());
        s.postponement_reason = Some("informing now would endanger the child".into());
        assert!(s.information_duty_met());
    }
}
