//! A stored continuity plan (conditions, their actions, the partners' tasks) and the rule that
//! computes it again when the dates it rests on change or it is re-planned: done actions,
//! missed ones and dates moved by hand stay as they are; the other open actions take the dates
//! of the new computation; actions the new computation no longer has are dropped while open.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::policy::{Condition, ConditionStatus, Due, PlannedCondition};

/// Why a due date was moved by hand (codes only: no free text about the person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DueDateReason {
    AuthorityTerm,
    ReleaseDateChanged,
    PartnerAgreement,
    PersonUnavailable,
    AwaitingDocument,
}

impl DueDateReason {
    pub const ALL: [DueDateReason; 5] = [
        Self::AuthorityTerm,
        Self::ReleaseDateChanged,
        Self::PartnerAgreement,
        Self::PersonUnavailable,
        Self::AwaitingDocument,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorityTerm => "AUTHORITY_TERM",
            Self::ReleaseDateChanged => "RELEASE_DATE_CHANGED",
            Self::PartnerAgreement => "PARTNER_AGREEMENT",
            Self::PersonUnavailable => "PERSON_UNAVAILABLE",
            Self::AwaitingDocument => "AWAITING_DOCUMENT",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// One action of a stored plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanAction {
    pub id: Uuid,
    pub action: String,
    pub due_on: Option<NaiveDate>,
    pub rule: String,
    pub policy_version: u32,
    pub override_reason: Option<DueDateReason>,
    pub done_on: Option<NaiveDate>,
    pub warned: bool,
    pub missed: bool,
}

impl PlanAction {
    pub fn is_open(&self) -> bool {
        self.done_on.is_none()
    }
}

/// A partner's task for one condition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub id: Uuid,
    pub condition_id: Uuid,
    pub detention_id: Uuid,
    pub condition: Condition,
    pub organisation: String,
    pub organisation_type: String,
    pub contact: zvv_platform::contact::Contact,
    pub status: TaskStatus,
    /// The condition's first open action and its date (none when every action is done).
    pub action: Option<String>,
    pub due_on: Option<NaiveDate>,
    pub condition_status: ConditionStatus,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Task {
    /// The ids an audit record of a call about the task names.
    pub fn audit_ids(&self) -> Vec<Uuid> {
        vec![self.id, self.condition_id, self.detention_id]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskStatus {
    Assigned,
    Done,
    Withdrawn,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "ASSIGNED",
            Self::Done => "DONE",
            Self::Withdrawn => "WITHDRAWN",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ASSIGNED" => Some(Self::Assigned),
            "DONE" => Some(Self::Done),
            "WITHDRAWN" => Some(Self::Withdrawn),
            _ => None,
        }
    }
}

/// One condition of a stored plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanCondition {
    pub id: Uuid,
    pub detention_id: Uuid,
    pub kind: Condition,
    pub status: ConditionStatus,
    /// In the order they fall due.
    pub actions: Vec<PlanAction>,
    /// The open task, if any.
    pub task: Option<Task>,
    pub updated_at: DateTime<Utc>,
}

impl PlanCondition {
    /// The first action not done yet.
    pub fn next_open(&self) -> Option<&PlanAction> {
        self.actions.iter().find(|a| a.is_open())
    }

    /// Ready for release: in place, arranged or not applicable.
    pub fn is_ready(&self) -> bool {
        self.status.is_settled()
    }
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub detention_id: Uuid,
    pub policy_version: u32,
    pub conditions: Vec<PlanCondition>,
}

/// A change the new computation makes to a stored plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanChange {
    /// A condition the plan did not have yet (EDUCATION after a transfer to a JJI), with its
    /// actions.
    AddCondition(PlannedCondition),
    /// A new action of an existing condition.
    AddAction {
        condition: Condition,
        position: usize,
        due: Due,
    },
    /// An open action takes a new date, rule or version (its warnings start again when the
    /// date changes).
    Redate {
        action_id: Uuid,
        position: usize,
        due: Due,
    },
    /// An open action the new computation no longer has.
    Drop { action_id: Uuid },
}

/// What turns `stored` into the plan `planned` computes, by the rule of this module.
pub fn reconcile(stored: &[PlanCondition], planned: &[PlannedCondition]) -> Vec<PlanChange> {
    let mut changes = Vec::new();
    for new in planned {
        let Some(old) = stored.iter().find(|c| c.kind == new.condition) else {
            changes.push(PlanChange::AddCondition(new.clone()));
            continue;
        };
        for (position, due) in new.actions.iter().enumerate() {
            match old.actions.iter().find(|a| a.action == due.action) {
                None => changes.push(PlanChange::AddAction {
                    condition: new.condition,
                    position,
                    due: due.clone(),
                }),
                Some(a) if a.done_on.is_some() || a.missed || a.override_reason.is_some() => {}
                Some(a) => {
                    if a.due_on != due.due_on
                        || a.rule != due.rule
                        || a.policy_version != due.policy_version
                    {
                        changes.push(PlanChange::Redate {
                            action_id: a.id,
                            position,
                            due: due.clone(),
                        });
                    }
                }
            }
        }
        for a in &old.actions {
            let kept = new.actions.iter().any(|d| d.action == a.action);
            if !kept && a.is_open() && !a.missed && a.override_reason.is_none() {
                changes.push(PlanChange::Drop { action_id: a.id });
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        episode::InstitutionType,
        policy::{ContinuityPolicy, PlanFacts},
    };

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn stored_from(planned: &[PlannedCondition]) -> Vec<PlanCondition> {
        planned
            .iter()
            .map(|p| PlanCondition {
                id: Uuid::new_v4(),
                detention_id: Uuid::nil(),
                kind: p.condition,
                status: p.status,
                actions: p
                    .actions
                    .iter()
                    .map(|a| PlanAction {
                        id: Uuid::new_v4(),
                        action: a.action.to_owned(),
                        due_on: a.due_on,
                        rule: a.rule.to_owned(),
                        policy_version: a.policy_version,
                        override_reason: None,
                        done_on: None,
                        warned: false,
                        missed: false,
                    })
                    .collect(),
                task: None,
                updated_at: DateTime::UNIX_EPOCH,
            })
            .collect()
    }

    fn plan(release: &str, kind: InstitutionType) -> Vec<PlannedCondition> {
        ContinuityPolicy::default().plan(&PlanFacts {
            began_on: d("2026-01-05"),
            expected_release_on: Some(d(release)),
            institution_type: kind,
        })
    }

    #[test]
    fn the_same_facts_change_nothing() {
        let planned = plan("2026-03-06", InstitutionType::Pi);
        assert!(reconcile(&stored_from(&planned), &planned).is_empty());
    }

    #[test]
    fn a_later_release_moves_the_open_dates_but_not_done_or_overridden_ones() {
        let mut stored = stored_from(&plan("2026-03-06", InstitutionType::Pi));
        let id_doc = stored
            .iter_mut()
            .find(|c| c.kind == Condition::IdentityDocument)
            .unwrap();
        id_doc.actions[0].override_reason = Some(DueDateReason::AuthorityTerm);
        let care = stored
            .iter_mut()
            .find(|c| c.kind == Condition::CarePlan)
            .unwrap();
        care.actions[0].done_on = Some(d("2026-02-01"));
        let changes = reconcile(&stored, &plan("2026-04-03", InstitutionType::Pi));
        let redated: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                PlanChange::Redate { due, .. } => Some(due.action),
                _ => None,
            })
            .collect();
        assert!(redated.contains(&"RESTART_INSURANCE"), "{redated:?}");
        assert!(redated.contains(&"SCREEN_DEBTS"), "{redated:?}");
        assert!(!redated.contains(&"VALID_ID"), "overridden: {redated:?}");
        assert!(
            !redated.contains(&"HAND_OVER_TO_NEIGHBOURHOOD_TEAM"),
            "done: {redated:?}"
        );
    }

    #[test]
    fn a_stay_that_becomes_short_swaps_the_open_actions() {
        let stored = stored_from(&plan("2026-03-06", InstitutionType::Pi));
        let changes = reconcile(&stored, &plan("2026-01-12", InstitutionType::Pi));
        assert!(changes.iter().any(|c| matches!(c,
            PlanChange::AddAction { due, .. } if due.action == "VALID_ID_ON_RELEASE")));
        assert!(changes.iter().any(|c| matches!(c, PlanChange::Drop { .. })));
    }

    #[test]
    fn a_transfer_to_a_youth_institution_adds_education() {
        let stored = stored_from(&plan("2026-03-06", InstitutionType::Pi));
        let changes = reconcile(&stored, &plan("2026-03-06", InstitutionType::Jji));
        assert!(changes.iter().any(|c| matches!(c,
            PlanChange::AddCondition(p) if p.condition == Condition::Education)));
    }
}
