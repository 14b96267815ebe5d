//! The calendar of every service: working days (Monday to Friday) for deadlines (referral
//! triage in signalling, the continuity deadlines and their warnings in reintegration), dates
//! as requests carry them (`YYYY-MM-DD`, optional, possibly not in the future) and statistics
//! periods of whole calendar months.

use chrono::{Datelike, Months, NaiveDate, Weekday};

use crate::error::Violations;

/// Whether `date` is a working day.
pub fn is_working_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// `days` working days after `from`.
pub fn add_working_days(from: NaiveDate, days: u32) -> NaiveDate {
    let mut date = from;
    let mut left = days;
    while left > 0 {
        date = date.succ_opt().unwrap_or(NaiveDate::MAX);
        if is_working_day(date) {
            left -= 1;
        }
    }
    date
}

/// `days` working days before `from` (e.g. when a warning is due before a deadline).
pub fn subtract_working_days(from: NaiveDate, days: u32) -> NaiveDate {
    let mut date = from;
    let mut left = days;
    while left > 0 {
        date = date.pred_opt().unwrap_or(NaiveDate::MIN);
        if is_working_day(date) {
            left -= 1;
        }
    }
    date
}

/// An optional date: empty is none; otherwise a real date written as `YYYY-MM-DD` (else a
/// violation naming `field`).
pub fn optional_date(field: &str, value: &str, v: &mut Violations) -> Option<NaiveDate> {
    if value.is_empty() {
        return None;
    }
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(d) if value.len() == 10 => Some(d),
        _ => {
            v.add(field, "must be a real date as YYYY-MM-DD");
            None
        }
    }
}

/// An optional date: empty is none; otherwise a real date as `YYYY-MM-DD` not after `today`
/// (else a violation naming `field`).
pub fn optional_past_date(
    field: &str,
    value: &str,
    today: NaiveDate,
    v: &mut Violations,
) -> Option<NaiveDate> {
    let date = optional_date(field, value, v)?;
    if date > today {
        v.add(field, "must not be in the future");
        return None;
    }
    Some(date)
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
/// names the field (`from_month` or `to_month`) and why.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn working_days_skip_weekends_both_ways() {
        // Monday 2026-06-15 + 5 working days = Monday 2026-06-22
        assert_eq!(add_working_days(d("2026-06-15"), 5), d("2026-06-22"));
        // Friday + 1 = Monday; Saturday + 1 = Monday
        assert_eq!(add_working_days(d("2026-06-19"), 1), d("2026-06-22"));
        assert_eq!(add_working_days(d("2026-06-20"), 1), d("2026-06-22"));
        assert_eq!(add_working_days(d("2026-06-20"), 0), d("2026-06-20"));
        // Monday - 1 = Friday; Wednesday - 3 = the Friday before
        assert_eq!(subtract_working_days(d("2026-06-22"), 1), d("2026-06-19"));
        assert_eq!(subtract_working_days(d("2026-06-24"), 3), d("2026-06-19"));
        assert!(!is_working_day(d("2026-06-21")) && is_working_day(d("2026-06-22")));
    }

    /// The violations of `v` as (field, why).
    fn violations(v: Violations) -> Vec<(String, String)> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(crate::error::ApiError::InvalidArgument(list)) => list,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn optional_dates_are_empty_or_real_dates_as_yyyy_mm_dd() {
        let mut v = Violations::default();
        assert_eq!(optional_date("due_on", "", &mut v), None);
        assert_eq!(
            optional_date("due_on", "2026-06-15", &mut v),
            Some(d("2026-06-15"))
        );
        assert_eq!(
            optional_date("due_on", "2024-02-29", &mut v),
            Some(d("2024-02-29"))
        );
        // far in the future is fine: only optional_past_date looks at today
        assert_eq!(
            optional_date("due_on", "2999-12-31", &mut v),
            Some(d("2999-12-31"))
        );
        assert!(v.is_empty());
        for bad in [
            "2026-6-15",
            "2026-06-5",
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "15-06-2026",
            "2026/06/15",
            "2026-06-15 ",
            " 2026-06-15",
            "2026-06-15T00:00",
            "tomorrow",
            " ",
        ] {
            let mut v = Violations::default();
            assert_eq!(optional_date("due_on", bad, &mut v), None, "{bad:?}");
            assert_eq!(
                violations(v),
                [(
                    "due_on".to_owned(),
                    "must be a real date as YYYY-MM-DD".to_owned()
                )],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn optional_past_dates_are_not_after_today() {
        let today = d("2026-06-15");
        let mut v = Violations::default();
        assert_eq!(optional_past_date("birth_date", "", today, &mut v), None);
        assert_eq!(
            optional_past_date("birth_date", "2026-06-15", today, &mut v),
            Some(today)
        );
        assert_eq!(
            optional_past_date("birth_date", "2010-01-31", today, &mut v),
            Some(d("2010-01-31"))
        );
        assert!(v.is_empty());
        let mut v = Violations::default();
        assert_eq!(
            optional_past_date("birth_date", "2026-06-16", today, &mut v),
            None
        );
        assert_eq!(
            optional_past_date("observed_on", "2026-02-30", today, &mut v),
            None
        );
        assert_eq!(
            violations(v),
            [
                (
                    "birth_date".to_owned(),
                    "must not be in the future".to_owned()
                ),
                (
                    "observed_on".to_owned(),
                    "must be a real date as YYYY-MM-DD".to_owned()
                ),
            ]
        );
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
}
