//! The continuity policy: per basic condition, its first status and the actions due, with
//! dates computed from the detention dates. Every number is a setting; the defaults follow the
//! public facts of short detentions (Participatiewet art. 13: social assistance stops during
//! detention, Tilburg suspends it for stays up to 6 months; health insurance is suspended and
//! must be restarted on release; the health-care allowance stops and is reported within 4
//! weeks; the rent allowance continues under a year; fixed housing costs may be paid up to 6
//! months). A policy has a version: a plan keeps the version it was made with, and every due
//! date names the rule and the version that produced it.

use chrono::{Duration, Months, NaiveDate};
use zvv_platform::calendar::{add_working_days, subtract_working_days};

use super::episode::InstitutionType;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Condition {
    IdentityDocument,
    Housing,
    Income,
    Allowances,
    HealthInsurance,
    CarePlan,
    Debts,
    CareForDependants,
    /// Youth institutions (JJI) only.
    Education,
}

impl Condition {
    pub const ALL: [Condition; 9] = [
        Self::IdentityDocument,
        Self::Housing,
        Self::Income,
        Self::Allowances,
        Self::HealthInsurance,
        Self::CarePlan,
        Self::Debts,
        Self::CareForDependants,
        Self::Education,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdentityDocument => "IDENTITY_DOCUMENT",
            Self::Housing => "HOUSING",
            Self::Income => "INCOME",
            Self::Allowances => "ALLOWANCES",
            Self::HealthInsurance => "HEALTH_INSURANCE",
            Self::CarePlan => "CARE_PLAN",
            Self::Debts => "DEBTS",
            Self::CareForDependants => "CARE_FOR_DEPENDANTS",
            Self::Education => "EDUCATION",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConditionStatus {
    Unknown,
    InPlace,
    AtRisk,
    Suspended,
    Arranged,
    Lapsed,
    NotApplicable,
}

impl ConditionStatus {
    pub const ALL: [ConditionStatus; 7] = [
        Self::Unknown,
        Self::InPlace,
        Self::AtRisk,
        Self::Suspended,
        Self::Arranged,
        Self::Lapsed,
        Self::NotApplicable,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// In place, arranged or not applicable: ready for release, and nothing left to warn about.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::InPlace | Self::Arranged | Self::NotApplicable)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::InPlace => "IN_PLACE",
            Self::AtRisk => "AT_RISK",
            Self::Suspended => "SUSPENDED",
            Self::Arranged => "ARRANGED",
            Self::Lapsed => "LAPSED",
            Self::NotApplicable => "NOT_APPLICABLE",
        }
    }
}

/// The numbers of one version of the policy. Stored with its version when a plan first uses it,
/// so that a plan is computed again (new dates after a changed release) with its own version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinuityPolicy {
    pub version: u32,
    /// A stay of at most this many days gets the short-stay variant.
    pub short_stay_max_days: i64,
    /// Social assistance is suspended (not ended) for an expected stay of at most this long.
    pub income_suspend_max_months: u32,
    /// Working days after the start within which the income desk acts.
    pub income_action_working_days: u32,
    /// Days after the start within which the end of the health-care allowance is reported.
    pub care_allowance_report_days: i64,
    /// From this many days of stay the rent allowance is at risk.
    pub rent_allowance_risk_days: i64,
    /// Fixed housing costs are covered for an expected stay of at most this long.
    pub housing_covered_months: u32,
    /// Working days after the start within which housing costs are arranged.
    pub housing_action_working_days: u32,
    /// Days before the expected release by which housing after a long stay is arranged.
    pub housing_before_release_days: i64,
    /// Days before the expected release by which a valid ID is in place.
    pub id_before_release_days: i64,
    /// Working days before the expected release by which the care plan is handed over to the
    /// neighbourhood team.
    pub care_plan_before_release_working_days: u32,
    /// Days before the expected release by which debts are screened and help is arranged.
    pub debts_before_release_days: i64,
    /// Working days after the start within which care for dependants is checked.
    pub dependants_working_days: u32,
    /// Days before the expected release by which a school place is arranged (JJI).
    pub education_before_release_days: i64,
}

impl Default for ContinuityPolicy {
    fn default() -> Self {
        Self {
            version: 1,
            short_stay_max_days: 10,
            income_suspend_max_months: 6,
            income_action_working_days: 5,
            care_allowance_report_days: 28,
            rent_allowance_risk_days: 365,
            housing_covered_months: 6,
            housing_action_working_days: 5,
            housing_before_release_days: 28,
            id_before_release_days: 14,
            care_plan_before_release_working_days: 5,
            debts_before_release_days: 14,
            dependants_working_days: 1,
            education_before_release_days: 14,
        }
    }
}

/// What the plan is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanFacts {
    pub began_on: NaiveDate,
    pub expected_release_on: Option<NaiveDate>,
    pub institution_type: InstitutionType,
}

/// One action due for a condition: a code, its date (`None` while the expected release, which
/// it depends on, is unknown), the rule that set it and the policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub action: &'static str,
    pub due_on: Option<NaiveDate>,
    pub rule: &'static str,
    pub policy_version: u32,
}

/// One condition of a new plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCondition {
    pub condition: Condition,
    pub status: ConditionStatus,
    /// In the order they fall due.
    pub actions: Vec<Due>,
}

impl PlannedCondition {
    /// The first action due.
    pub fn next_due(&self) -> Option<&Due> {
        self.actions.first()
    }
}

impl ContinuityPolicy {
    /// A stay of at most [`Self::short_stay_max_days`] by its (expected) release gets the
    /// short-stay variant; an unknown release is not short.
    pub fn is_short_stay(&self, facts: &PlanFacts) -> bool {
        facts
            .expected_release_on
            .is_some_and(|r| (r - facts.began_on).num_days() <= self.short_stay_max_days)
    }

    /// The plan of a new episode: one condition each (EDUCATION for a youth institution only).
    pub fn plan(&self, facts: &PlanFacts) -> Vec<PlannedCondition> {
        let begin = facts.began_on;
        let release = facts.expected_release_on;
        let stay_days = release.map(|r| (r - begin).num_days());
        let short = self.is_short_stay(facts);
        let within_months = |months: u32| {
            release.is_none_or(|r| {
                begin
                    .checked_add_months(Months::new(months))
                    .is_none_or(|m| r <= m)
            })
        };
        // an action before release, not before the start
        let before_release = |days: i64| release.map(|r| (r - Duration::days(days)).max(begin));
        let before_release_wd =
            |days: u32| release.map(|r| subtract_working_days(r, days).max(begin));
        let v = self.version;
        let due = |action, due_on, rule| Due {
            action,
            due_on,
            rule,
            policy_version: v,
        };

        // a condition whose one action falls before the release, or on the release day after a
        // short stay
        let before_or_at_release =
            |condition,
             (short_action, short_rule): (&'static str, &'static str),
             (action, due_on, rule): (&'static str, Option<NaiveDate>, &'static str)| {
                PlannedCondition {
                    condition,
                    status: ConditionStatus::Unknown,
                    actions: vec![if short {
                        due(short_action, release, short_rule)
                    } else {
                        due(action, due_on, rule)
                    }],
                }
            };

        let mut plan = Vec::new();
        // INCOME: social assistance stops by law during detention
        plan.push(PlannedCondition {
            condition: Condition::Income,
            status: ConditionStatus::AtRisk,
            actions: vec![if short {
                due(
                    "REPORT_SHORT_DETENTION",
                    Some(add_working_days(begin, self.income_action_working_days)),
                    "income.short-stay",
                )
            } else if within_months(self.income_suspend_max_months) {
                due(
                    "SUSPEND_BENEFIT",
                    Some(add_working_days(begin, self.income_action_working_days)),
                    "income.suspend-up-to-max-months",
                )
            } else {
                due(
                    "END_BENEFIT_AND_PREPARE_REAPPLICATION",
                    Some(add_working_days(begin, self.income_action_working_days)),
                    "income.end-beyond-max-months",
                )
            }],
        });
        // HEALTH_INSURANCE: suspended during detention, restarted on release
        plan.push(PlannedCondition {
            condition: Condition::HealthInsurance,
            status: ConditionStatus::AtRisk,
            actions: if short {
                vec![due(
                    "CHECK_INSURANCE_ON_RELEASE",
                    release,
                    "health-insurance.short-stay",
                )]
            } else {
                vec![
                    due(
                        "REPORT_SUSPENSION",
                        Some(begin),
                        "health-insurance.report-at-start",
                    ),
                    due(
                        "RESTART_INSURANCE",
                        release,
                        "health-insurance.restart-on-release",
                    ),
                ]
            },
        });
        // ALLOWANCES: the health-care allowance stops; the rent allowance goes on under a year
        let rent_at_risk = stay_days.is_some_and(|d| d >= self.rent_allowance_risk_days);
        let mut allowance_actions = vec![due(
            "REPORT_CARE_ALLOWANCE_STOP",
            Some(begin + Duration::days(self.care_allowance_report_days)),
            "allowances.care-allowance-report",
        )];
        if rent_at_risk {
            allowance_actions.push(due(
                "ARRANGE_RENT_ALLOWANCE",
                Some(begin + Duration::days(self.rent_allowance_risk_days)),
                "allowances.rent-allowance-at-risk",
            ));
        }
        plan.push(PlannedCondition {
            condition: Condition::Allowances,
            status: ConditionStatus::AtRisk,
            actions: allowance_actions,
        });
        // HOUSING: fixed costs covered for a while, at risk beyond
        plan.push(if short {
            PlannedCondition {
                condition: Condition::Housing,
                status: ConditionStatus::Unknown,
                actions: vec![due("CHECK_HOUSING", release, "housing.short-stay")],
            }
        } else if within_months(self.housing_covered_months) {
            PlannedCondition {
                condition: Condition::Housing,
                status: ConditionStatus::Unknown,
                actions: vec![due(
                    "ARRANGE_FIXED_COSTS",
                    Some(add_working_days(begin, self.housing_action_working_days)),
                    "housing.fixed-costs-covered",
                )],
            }
        } else {
            PlannedCondition {
                condition: Condition::Housing,
                status: ConditionStatus::AtRisk,
                actions: vec![due(
                    "ARRANGE_HOUSING_AFTER_RELEASE",
                    before_release(self.housing_before_release_days),
                    "housing.beyond-covered-months",
                )],
            }
        });
        // IDENTITY_DOCUMENT: a valid ID before release (about 15 % leave without one)
        plan.push(before_or_at_release(
            Condition::IdentityDocument,
            ("VALID_ID_ON_RELEASE", "identity.short-stay"),
            (
                "VALID_ID",
                before_release(self.id_before_release_days),
                "identity.before-release",
            ),
        ));
        // CARE_PLAN: handed over to the neighbourhood team before release
        plan.push(before_or_at_release(
            Condition::CarePlan,
            ("HAND_OVER_ON_RELEASE", "care-plan.short-stay"),
            (
                "HAND_OVER_TO_NEIGHBOURHOOD_TEAM",
                before_release_wd(self.care_plan_before_release_working_days),
                "care-plan.before-release",
            ),
        ));
        // DEBTS: screened, help arranged before release
        plan.push(before_or_at_release(
            Condition::Debts,
            ("CHECK_DEBTS_ON_RELEASE", "debts.short-stay"),
            (
                "SCREEN_DEBTS",
                before_release(self.debts_before_release_days),
                "debts.before-release",
            ),
        ));
        // CARE_FOR_DEPENDANTS: children or others at home, checked at once
        plan.push(PlannedCondition {
            condition: Condition::CareForDependants,
            status: ConditionStatus::Unknown,
            actions: vec![due(
                "CHECK_DEPENDANTS",
                Some(add_working_days(begin, self.dependants_working_days)),
                "dependants.at-start",
            )],
        });
        // EDUCATION: a school place after a youth stay
        if facts.institution_type == InstitutionType::Jji {
            plan.push(before_or_at_release(
                Condition::Education,
                ("SCHOOL_PLACE_ON_RELEASE", "education.short-stay"),
                (
                    "SCHOOL_PLACE",
                    before_release(self.education_before_release_days),
                    "education.before-release",
                ),
            ));
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn facts(begin: &str, release: Option<&str>, kind: InstitutionType) -> PlanFacts {
        PlanFacts {
            began_on: d(begin),
            expected_release_on: release.map(d),
            institution_type: kind,
        }
    }

    fn of(plan: &[PlannedCondition], c: Condition) -> &PlannedCondition {
        plan.iter().find(|p| p.condition == c).unwrap()
    }

    #[test]
    fn a_two_month_stay_in_a_prison() {
        // Monday 2026-01-05 to Friday 2026-03-06
        let plan = ContinuityPolicy::default().plan(&facts(
            "2026-01-05",
            Some("2026-03-06"),
            InstitutionType::Pi,
        ));
        assert_eq!(plan.len(), 8, "no EDUCATION in a prison");
        let income = of(&plan, Condition::Income);
        assert_eq!(income.status, ConditionStatus::AtRisk);
        let first = income.next_due().unwrap();
        assert_eq!(first.action, "SUSPEND_BENEFIT");
        assert_eq!(first.due_on, Some(d("2026-01-12")), "5 working days");
        assert_eq!(first.rule, "income.suspend-up-to-max-months");
        assert_eq!(first.policy_version, 1);
        let insurance = of(&plan, Condition::HealthInsurance);
        assert_eq!(insurance.actions[0].due_on, Some(d("2026-01-05")));
        assert_eq!(insurance.actions[1].action, "RESTART_INSURANCE");
        assert_eq!(
            insurance.actions[1].due_on,
            Some(d("2026-03-06")),
            "release day"
        );
        let allowances = of(&plan, Condition::Allowances);
        assert_eq!(allowances.actions.len(), 1, "rent allowance not at risk");
        assert_eq!(
            allowances.actions[0].due_on,
            Some(d("2026-02-02")),
            "4 weeks"
        );
        assert_eq!(
            of(&plan, Condition::IdentityDocument).actions[0].due_on,
            Some(d("2026-02-20")),
            "14 days before release"
        );
        assert_eq!(
            of(&plan, Condition::CarePlan).actions[0].due_on,
            Some(d("2026-02-27")),
            "5 working days before release"
        );
        assert_eq!(
            of(&plan, Condition::Housing).actions[0].action,
            "ARRANGE_FIXED_COSTS"
        );
        assert_eq!(
            of(&plan, Condition::CareForDependants).actions[0].due_on,
            Some(d("2026-01-06"))
        );
    }

    #[test]
    fn a_long_stay_ends_the_benefit_and_puts_housing_and_rent_at_risk() {
        let plan = ContinuityPolicy::default().plan(&facts(
            "2026-01-05",
            Some("2027-03-01"),
            InstitutionType::Pi,
        ));
        assert_eq!(
            of(&plan, Condition::Income).actions[0].action,
            "END_BENEFIT_AND_PREPARE_REAPPLICATION"
        );
        let housing = of(&plan, Condition::Housing);
        assert_eq!(housing.status, ConditionStatus::AtRisk);
        assert_eq!(housing.actions[0].due_on, Some(d("2027-02-01")));
        let allowances = of(&plan, Condition::Allowances);
        assert_eq!(allowances.actions[1].action, "ARRANGE_RENT_ALLOWANCE");
        assert_eq!(allowances.actions[1].due_on, Some(d("2027-01-05")));
    }

    #[test]
    fn a_short_stay_gets_the_short_variant_and_youth_get_education() {
        let plan = ContinuityPolicy::default().plan(&facts(
            "2026-01-05",
            Some("2026-01-12"),
            InstitutionType::Jji,
        ));
        assert_eq!(plan.len(), 9, "EDUCATION for a youth institution");
        assert_eq!(
            of(&plan, Condition::Income).actions[0].rule,
            "income.short-stay"
        );
        let insurance = of(&plan, Condition::HealthInsurance);
        assert_eq!(insurance.actions.len(), 1);
        assert_eq!(insurance.actions[0].due_on, Some(d("2026-01-12")));
        assert_eq!(
            of(&plan, Condition::Education).actions[0].due_on,
            Some(d("2026-01-12"))
        );
        // 11 days is no short stay; a date before release that falls before the start is the start
        let plan = ContinuityPolicy::default().plan(&facts(
            "2026-01-05",
            Some("2026-01-16"),
            InstitutionType::Jji,
        ));
        assert_eq!(
            of(&plan, Condition::IdentityDocument).actions[0].due_on,
            Some(d("2026-01-05"))
        );
    }

    #[test]
    fn an_unknown_release_leaves_release_dates_open_and_the_version_is_named() {
        let policy = ContinuityPolicy {
            version: 2,
            income_action_working_days: 3,
            ..ContinuityPolicy::default()
        };
        let plan = policy.plan(&facts("2026-01-05", None, InstitutionType::Pi));
        let income = &of(&plan, Condition::Income).actions[0];
        assert_eq!(income.action, "SUSPEND_BENEFIT", "most stays are short");
        assert_eq!(income.due_on, Some(d("2026-01-08")));
        assert_eq!(income.policy_version, 2);
        assert_eq!(
            of(&plan, Condition::IdentityDocument).actions[0].due_on,
            None
        );
        assert_eq!(
            of(&plan, Condition::HealthInsurance).actions[1].due_on,
            None
        );
        assert!(
            plan.iter()
                .flat_map(|p| &p.actions)
                .all(|a| a.policy_version == 2)
        );
        for c in Condition::ALL {
            assert!(!c.as_str().is_empty());
        }
    }
}
