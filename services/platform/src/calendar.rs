//! Working days (Monday to Friday), for the deadlines of every service: referral triage in
//! signalling, the continuity deadlines and their warnings in reintegration.

use chrono::{Datelike, NaiveDate, Weekday};

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
}
