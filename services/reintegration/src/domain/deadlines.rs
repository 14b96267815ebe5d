//! The deadline rule of the monitor: a warning a number of working days before an action is
//! due, another when it is missed (the condition then lapses), each once; and who is warned:
//! the organisation the task is assigned to, or the responsible municipality while nobody has
//! the task.

use chrono::NaiveDate;
use zvv_platform::calendar::subtract_working_days;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// The due date is near.
    Upcoming,
    /// The due date has passed: the condition lapses.
    Missed,
}

/// An action not done yet, with the warnings already sent for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenAction {
    pub due_on: NaiveDate,
    pub warned_upcoming: bool,
    pub warned_missed: bool,
}

/// The warning due `today` for `action`, if any: `Upcoming` from `warn_working_days` working
/// days before the due date up to the due date itself, `Missed` after it. Each is given once; a
/// monitor that first looks after the due date gives only `Missed`.
pub fn warning_due(
    action: &OpenAction,
    today: NaiveDate,
    warn_working_days: u32,
) -> Option<Warning> {
    if today > action.due_on {
        return (!action.warned_missed).then_some(Warning::Missed);
    }
    let from = subtract_working_days(action.due_on, warn_working_days);
    (today >= from && !action.warned_upcoming).then_some(Warning::Upcoming)
}

/// Who a warning is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The partner organisation that has the task.
    Organisation(String),
    /// The responsible municipality (CBS code), while no task is assigned.
    Municipality(String),
}

pub fn recipient(task_organisation: Option<&str>, municipality_code: &str) -> Recipient {
    match task_organisation {
        Some(org) => Recipient::Organisation(org.to_owned()),
        None => Recipient::Municipality(municipality_code.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn each_warning_comes_once_at_its_time() {
        // due Wednesday 2026-01-14; 3 working days before is Friday 2026-01-09
        let mut action = OpenAction {
            due_on: d("2026-01-14"),
            warned_upcoming: false,
            warned_missed: false,
        };
        assert_eq!(warning_due(&action, d("2026-01-08"), 3), None);
        assert_eq!(
            warning_due(&action, d("2026-01-09"), 3),
            Some(Warning::Upcoming)
        );
        assert_eq!(
            warning_due(&action, d("2026-01-14"), 3),
            Some(Warning::Upcoming)
        );
        action.warned_upcoming = true;
        assert_eq!(warning_due(&action, d("2026-01-12"), 3), None, "once");
        assert_eq!(
            warning_due(&action, d("2026-01-15"), 3),
            Some(Warning::Missed)
        );
        action.warned_missed = true;
        assert_eq!(warning_due(&action, d("2026-02-01"), 3), None, "once");
        // first seen after the due date: only the missed warning
        let late = OpenAction {
            due_on: d("2026-01-14"),
            warned_upcoming: false,
            warned_missed: false,
        };
        assert_eq!(
            warning_due(&late, d("2026-01-20"), 3),
            Some(Warning::Missed)
        );
    }

    #[test]
    fn the_task_holder_is_warned_else_the_municipality() {
        assert_eq!(
            recipient(Some("reclassering-zuid"), "GM0855"),
            Recipient::Organisation("reclassering-zuid".into())
        );
        assert_eq!(
            recipient(None, "GM0855"),
            Recipient::Municipality("GM0855".into())
        );
    }
}
