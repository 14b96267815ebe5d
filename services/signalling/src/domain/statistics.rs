//! Target-group statistics: distinct subjects per neighbourhood × age band × organisation type,
//! over whole calendar months, with small cells left out exactly as empty cells are.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use uuid::Uuid;

use super::age_on;

/// The statistics period: whole calendar months that have begun, the same in every service.
pub use zvv_platform::calendar::{MAX_PERIOD_MONTHS, parse_period};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
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
