//! Signalling's domain: signals, contacts, matches, and the rules on them. Knows neither tonic
//! nor sqlx.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use uuid::Uuid;

/// How to reach the professional behind a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Client,
    Family,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "CLIENT",
            Self::Family => "FAMILY",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CLIENT" => Some(Self::Client),
            "FAMILY" => Some(Self::Family),
            _ => None,
        }
    }
}

/// The coordinator (regievoerder) of a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    pub organisation: String,
    pub contact: Contact,
    pub assigned_at: DateTime<Utc>,
}

/// A match with the signals in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub id: Uuid,
    pub kind: MatchKind,
    pub open: bool,
    pub signals: Vec<Signal>,
    pub coordinator: Option<Coordinator>,
    pub coordinated: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The age bands of the target-group statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AgeBand {
    Age0To3,
    Age4To11,
    Age12To15,
    Age16To17,
    Age18To22,
}

impl AgeBand {
    /// The band of an age in years; `None` from 23 on.
    pub fn of(age: i32) -> Option<Self> {
        match age {
            0..=3 => Some(Self::Age0To3),
            4..=11 => Some(Self::Age4To11),
            12..=15 => Some(Self::Age12To15),
            16..=17 => Some(Self::Age16To17),
            18..=22 => Some(Self::Age18To22),
            _ => None,
        }
    }
}

/// One cell of the statistics: subjects per neighbourhood, age band and organisation type. Only
/// cells at or above the threshold exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsCell {
    pub neighbourhood_code: String,
    pub age_band: AgeBand,
    pub organisation_type: String,
    pub subjects: u32,
}

/// The longest statistics period, in months.
pub const MAX_PERIOD_MONTHS: u32 = 120;

/// A month as `YYYY-MM`: its first day.
fn parse_month(value: &str) -> Option<NaiveDate> {
    let (year, month) = value.split_once('-')?;
    if year.len() != 4
        || month.len() != 2
        || !(year.bytes().chain(month.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

/// The statistics period `from_month`..=`to_month` as (first day, last day): whole calendar
/// months, each of which has begun on `today`, at most [`MAX_PERIOD_MONTHS`] long. An error
/// names the field.
pub fn parse_period(
    from_month: &str,
    to_month: &str,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), (&'static str, String)> {
    let month = |field: &'static str, value: &str| {
        if value.is_empty() {
            return Err((field, "is required: a month as YYYY-MM".to_owned()));
        }
        let first = parse_month(value).ok_or((field, "must be a month as YYYY-MM".to_owned()))?;
        if first > today {
            return Err((field, "must be a month that has begun".to_owned()));
        }
        Ok(first)
    };
    let from = month("from_month", from_month)?;
    let to_first = month("to_month", to_month)?;
    if to_first < from {
        return Err(("to_month", "must not be before from_month".to_owned()));
    }
    let span =
        (to_first.year() - from.year()) * 12 + to_first.month() as i32 - from.month() as i32 + 1;
    if span > MAX_PERIOD_MONTHS as i32 {
        return Err((
            "to_month",
            format!("the period must be at most {MAX_PERIOD_MONTHS} months"),
        ));
    }
    let last = to_first
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(NaiveDate::MAX);
    Ok((from, last))
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

/// A contact name: 1-200 characters, no control characters.
pub fn parse_contact_name(value: &str) -> Result<String, &'static str> {
    let n = value.chars().count();
    if n == 0 || value.trim().is_empty() {
        return Err("is required");
    }
    if n > 200 {
        return Err("must be at most 200 characters");
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(value.to_owned())
}

/// A phone number: 6-20 characters of digits, spaces, dashes and a leading +, with at least
/// six digits.
pub fn parse_phone(value: &str) -> Result<String, &'static str> {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let shape = value.len() <= 20
        && value
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (c == '+' && i == 0));
    if value.is_empty() {
        return Err("is required");
    }
    if !shape || digits < 6 {
        return Err("must be a phone number such as +31 20 123 4567");
    }
    Ok(value.to_owned())
}

/// An e-mail address: one @, a non-empty local part, a domain with a dot, no spaces.
pub fn parse_email(value: &str) -> Result<String, &'static str> {
    if value.is_empty() {
        return Err("is required");
    }
    let ok = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(value.to_owned())
    } else {
        Err("must be an e-mail address such as naam@organisatie.nl")
    }
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

    #[test]
    fn periods_are_whole_months_that_have_begun() {
        let today = d("2026-06-15");
        assert_eq!(
            parse_period("2026-01", "2026-06", today),
            Ok((d("2026-01-01"), d("2026-06-30")))
        );
        assert_eq!(
            parse_period("2024-02", "2024-02", today),
            Ok((d("2024-02-01"), d("2024-02-29")))
        );
        assert_eq!(
            parse_period("2026-07", "2026-07", today).unwrap_err().0,
            "from_month",
            "a month that has not begun"
        );
        assert_eq!(
            parse_period("2026-05", "2026-07", today).unwrap_err().0,
            "to_month"
        );
        assert_eq!(
            parse_period("2026-05", "2026-04", today).unwrap_err().0,
            "to_month"
        );
        for bad in [
            "2026-6",
            "2026-13",
            "2026-00",
            "26-06",
            "2026-06-01",
            "",
            "2026/06",
        ] {
            assert_eq!(
                parse_period(bad, "2026-06", today).unwrap_err().0,
                "from_month",
                "{bad}"
            );
        }
        assert!(
            parse_period("2016-07", "2026-06", today).is_ok(),
            "120 months"
        );
        assert_eq!(
            parse_period("2016-06", "2026-06", today).unwrap_err().0,
            "to_month"
        );
    }

    #[test]
    fn age_bands() {
        assert_eq!(AgeBand::of(0), Some(AgeBand::Age0To3));
        assert_eq!(AgeBand::of(3), Some(AgeBand::Age0To3));
        assert_eq!(AgeBand::of(4), Some(AgeBand::Age4To11));
        assert_eq!(AgeBand::of(12), Some(AgeBand::Age12To15));
        assert_eq!(AgeBand::of(17), Some(AgeBand::Age16To17));
        assert_eq!(AgeBand::of(22), Some(AgeBand::Age18To22));
        assert_eq!(AgeBand::of(23), None);
    }

    #[test]
    fn contacts() {
        assert!(parse_phone("+31 20 123 4567").is_ok());
        assert!(parse_phone("020-1234567").is_ok());
        for bad in [
            "",
            "12345",
            "call me",
            "+31+20 1234567",
            "0201234567890123456789",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
        assert!(parse_email("j.jansen@school.nl").is_ok());
        for bad in [
            "",
            "jansen",
            "@school.nl",
            "j@school",
            "j@@school.nl",
            "j an@school.nl",
            "j@.nl",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
        assert!(parse_contact_name("Mw. J. de Boer").is_ok());
        assert!(parse_contact_name("a\tb").is_err());
    }
}
