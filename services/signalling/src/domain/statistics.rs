//! Target-group statistics: distinct subjects per neighbourhood × age band × organisation type,
//! over whole calendar months, with small cells left out exactly as empty cells are.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Months, NaiveDate};
use uuid::Uuid;

use super::age_on;

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

/// A subject with a signal active in the period, as the store finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsRow {
    /// `UNKNOWN` when intake knew none.
    pub neighbourhood_code: String,
    pub subject_id: Uuid,
    pub birth_date: NaiveDate,
    pub organisation_type: String,
}

/// The cells of `rows`, ages taken on `on` (the last day of the period): each the number of
/// distinct subjects, cells below `threshold` left out.
pub fn cells(rows: Vec<StatisticsRow>, on: NaiveDate, threshold: u32) -> Vec<StatisticsCell> {
    let mut counts: BTreeMap<(String, AgeBand, String), BTreeSet<Uuid>> = BTreeMap::new();
    for row in rows {
        if let Some(band) = AgeBand::of(age_on(row.birth_date, on)) {
            counts
                .entry((row.neighbourhood_code, band, row.organisation_type))
                .or_default()
                .insert(row.subject_id);
        }
    }
    counts
        .into_iter()
        .filter_map(
            |((neighbourhood_code, age_band, organisation_type), subjects)| {
                let n = u32::try_from(subjects.len()).unwrap_or(u32::MAX);
                (n >= threshold).then_some(StatisticsCell {
                    neighbourhood_code,
                    age_band,
                    organisation_type,
                    subjects: n,
                })
            },
        )
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
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
    fn cells_count_distinct_subjects_and_leave_small_ones_out() {
        let row = |n: u128, wk: &str, born: &str, org_type: &str| StatisticsRow {
            neighbourhood_code: wk.into(),
            subject_id: Uuid::from_u128(n),
            birth_date: d(born),
            organisation_type: org_type.into(),
        };
        let mut rows: Vec<StatisticsRow> = (0..3)
            .map(|n| row(n, "WK036305", "2016-01-01", "SCHOOL"))
            .collect();
        // the same child twice (two signals of one organisation type) counts once
        rows.push(row(0, "WK036305", "2016-01-01", "SCHOOL"));
        // two children elsewhere: below the threshold
        rows.push(row(10, "WK036301", "2016-01-01", "SCHOOL"));
        rows.push(row(11, "WK036301", "2016-01-01", "SCHOOL"));
        // 23 on the last day of the period: no band
        rows.push(row(12, "WK036305", "2003-06-30", "SCHOOL"));
        let cells = cells(rows, d("2026-06-30"), 3);
        assert_eq!(
            cells,
            [StatisticsCell {
                neighbourhood_code: "WK036305".into(),
                age_band: AgeBand::Age4To11,
                organisation_type: "SCHOOL".into(),
                subjects: 3,
            }]
        );
    }
}
