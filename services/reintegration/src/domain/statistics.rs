//! Release statistics per whole calendar month: how many were released, the share with every
//! condition in place, the lapse rate per condition and re-detention within 12 and 24 months.
//! They rest on anonymous release facts (no person, no episode), so that they outlive the
//! retention of the episodes. A number resting on fewer people than the threshold is
//! suppressed: a month with fewer releases shows nothing else, and a count (or what the count
//! leaves of the month's releases) of 1 to threshold-1 people shows only that it is suppressed.

use chrono::{Datelike, Months, NaiveDate};

use super::policy::Condition;

/// One release, as the statistics know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFact {
    /// The first day of the month of release.
    pub month: NaiveDate,
    pub all_arranged: bool,
    pub lapsed: Vec<Condition>,
    pub redetained_within_months: Option<u32>,
}

/// A count out of a month's releases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub suppressed: bool,
    pub count: u32,
    pub rate: f64,
}

impl Share {
    const SUPPRESSED: Share = Share {
        suppressed: true,
        count: 0,
        rate: 0.0,
    };

    fn of(count: u32, releases: u32, threshold: u32) -> Self {
        let small = |n: u32| n > 0 && n < threshold;
        if small(count) || small(releases - count) {
            return Self::SUPPRESSED;
        }
        Self {
            suppressed: false,
            count,
            rate: f64::from(count) / f64::from(releases),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MonthStatistics {
    /// Its first day.
    pub month: NaiveDate,
    pub suppressed: bool,
    pub releases: u32,
    pub all_arranged: Share,
    /// Every condition, in [`Condition::ALL`] order.
    pub lapses: Vec<(Condition, Share)>,
    pub redetained_12: Share,
    pub redetained_24: Share,
}

/// The statistics of each month from `from` (a first day) through the month of `to`.
pub fn months(
    facts: &[ReleaseFact],
    from: NaiveDate,
    to: NaiveDate,
    threshold: u32,
) -> Vec<MonthStatistics> {
    let mut out = Vec::new();
    let mut month = from.with_day(1).unwrap_or(from);
    while month <= to {
        let of_month: Vec<&ReleaseFact> = facts.iter().filter(|f| f.month == month).collect();
        let releases = u32::try_from(of_month.len()).unwrap_or(u32::MAX);
        let count = |pred: &dyn Fn(&ReleaseFact) -> bool| {
            u32::try_from(of_month.iter().filter(|f| pred(f)).count()).unwrap_or(u32::MAX)
        };
        out.push(if releases < threshold {
            MonthStatistics {
                month,
                suppressed: true,
                releases: 0,
                all_arranged: Share::SUPPRESSED,
                lapses: Vec::new(),
                redetained_12: Share::SUPPRESSED,
                redetained_24: Share::SUPPRESSED,
            }
        } else {
            let share =
                |pred: &dyn Fn(&ReleaseFact) -> bool| Share::of(count(pred), releases, threshold);
            MonthStatistics {
                month,
                suppressed: false,
                releases,
                all_arranged: share(&|f| f.all_arranged),
                lapses: Condition::ALL
                    .into_iter()
                    .map(|c| (c, share(&|f| f.lapsed.contains(&c))))
                    .collect(),
                redetained_12: share(&|f| f.redetained_within_months == Some(12)),
                redetained_24: share(&|f| f.redetained_within_months.is_some()),
            }
        });
        match month.checked_add_months(Months::new(1)) {
            Some(next) => month = next,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn fact(month: &str, arranged: bool, lapsed: &[Condition], re: Option<u32>) -> ReleaseFact {
        ReleaseFact {
            month: d(month),
            all_arranged: arranged,
            lapsed: lapsed.to_vec(),
            redetained_within_months: re,
        }
    }

    #[test]
    fn small_months_and_small_counts_are_suppressed() {
        let mut facts = Vec::new();
        // March: 6 releases, 5 arranged, 1 not; income lapsed for none, housing for 6
        for i in 0..6 {
            facts.push(fact(
                "2026-03-01",
                i < 5,
                &[Condition::Housing],
                (i < 2).then_some(12),
            ));
        }
        // April: 4 releases (below 5)
        for _ in 0..4 {
            facts.push(fact("2026-04-01", true, &[], None));
        }
        let months = months(&facts, d("2026-03-01"), d("2026-05-31"), 5);
        assert_eq!(months.len(), 3);
        let march = &months[0];
        assert!(!march.suppressed);
        assert_eq!(march.releases, 6);
        assert!(
            march.all_arranged.suppressed,
            "the one not arranged is one person"
        );
        let lapse = |c| march.lapses.iter().find(|(k, _)| *k == c).unwrap().1;
        assert_eq!(lapse(Condition::Housing).count, 6);
        assert!((lapse(Condition::Housing).rate - 1.0).abs() < 1e-9);
        assert!(!lapse(Condition::Income).suppressed, "zero is shown");
        assert_eq!(lapse(Condition::Income).count, 0);
        assert!(march.redetained_12.suppressed, "2 of 6");
        let april = &months[1];
        assert!(april.suppressed && april.releases == 0 && april.lapses.is_empty());
        assert!(
            months[2].suppressed,
            "an empty month looks like a small one"
        );
    }
}
