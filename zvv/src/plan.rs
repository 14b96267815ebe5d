//! `zvv plan …`: the continuity plan of a detention episode (reintegration's ContinuityService):
//! its conditions, the actions due with the rule and policy version behind each date, and the
//! tasks of the partners; and the printing of plans and tasks that `zvv tasks` shares.

use zvv_platform::auth::OrgType;
use zvv_proto::reintegration::v1::{
    Action, AssignTaskRequest, Condition, ConditionKind, ConditionStatus, Contact, DueDateReason,
    GetPlanRequest, GetReleaseReadinessRequest, GetReleaseReadinessResponse, Plan,
    ReplanDetentionRequest, Task, TaskStatus, UpdateConditionRequest,
};

use crate::client::{ReintegrationConn, check};
use crate::output::{RequestIdArg, date_arg, fields_text, or_dash, table_text, timestamp, yes_no};
use crate::signal::{ContactArgs, organisation};

/// The `zvv plan` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PlanCommand {
    /// Show the plan of an episode: each condition with its status and open task, each action
    /// with its due date, the rule and policy version that set it, and whether it is done,
    /// warned or missed. A partner sees only the conditions of its own tasks.
    Show(ShowArgs),
    /// Set a condition's status and/or move the due date of one of its open actions (which
    /// needs a reason); the responsible municipality only.
    Update(UpdateArgs),
    /// Assign a condition to a partner organisation (the responsible municipality); an open
    /// task of another partner for it is withdrawn.
    Assign(AssignArgs),
    /// Per condition whether it is ready for release, and overall (the responsible
    /// municipality).
    Readiness(DetentionArgs),
    /// Compute the plan again with the service's current continuity policy (done actions and
    /// moved dates are kept; the responsible municipality).
    Replan(ReplanArgs),
}

#[derive(Debug, clap::Args)]
pub struct DetentionArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    detention_id: String,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    detention_id: String,
    /// Only this condition, e.g. `--condition identity-document | grep condition_id`.
    #[arg(long, value_enum)]
    condition: Option<KindArg>,
}

/// A basic condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
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

impl From<KindArg> for ConditionKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::IdentityDocument => Self::IdentityDocument,
            KindArg::Housing => Self::Housing,
            KindArg::Income => Self::Income,
            KindArg::Allowances => Self::Allowances,
            KindArg::HealthInsurance => Self::HealthInsurance,
            KindArg::CarePlan => Self::CarePlan,
            KindArg::Debts => Self::Debts,
            KindArg::CareForDependants => Self::CareForDependants,
            KindArg::Education => Self::Education,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ReplanArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    detention_id: String,
    #[command(flatten)]
    request: RequestIdArg,
}

/// A condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    Unknown,
    InPlace,
    AtRisk,
    Suspended,
    Arranged,
    Lapsed,
    NotApplicable,
}

impl From<StatusArg> for ConditionStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Unknown => Self::Unknown,
            StatusArg::InPlace => Self::InPlace,
            StatusArg::AtRisk => Self::AtRisk,
            StatusArg::Suspended => Self::Suspended,
            StatusArg::Arranged => Self::Arranged,
            StatusArg::Lapsed => Self::Lapsed,
            StatusArg::NotApplicable => Self::NotApplicable,
        }
    }
}

/// Why a due date moves (codes only, no free text about the person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReasonArg {
    /// The competent authority (benefit desk, insurer, tax office) set another term.
    AuthorityTerm,
    /// The release date changed before the prison's feed reported it.
    ReleaseDateChanged,
    /// The partner agreed another date with the municipality.
    PartnerAgreement,
    /// The person could not be reached in time (transfer, hospital).
    PersonUnavailable,
    /// Waiting for a document of another authority.
    AwaitingDocument,
}

impl From<ReasonArg> for DueDateReason {
    fn from(r: ReasonArg) -> Self {
        match r {
            ReasonArg::AuthorityTerm => Self::AuthorityTerm,
            ReasonArg::ReleaseDateChanged => Self::ReleaseDateChanged,
            ReasonArg::PartnerAgreement => Self::PartnerAgreement,
            ReasonArg::PersonUnavailable => Self::PersonUnavailable,
            ReasonArg::AwaitingDocument => Self::AwaitingDocument,
        }
    }
}

/// What to change: a status, a new due date (with its reason), or both.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = true)]
struct ChangeArgs {
    /// The condition's new status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// YYYY-MM-DD: the new due date of an open action (the first open one, or --action);
    /// needs --reason.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = date_arg, requires = "reason")]
    due_on: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    condition_id: String,
    #[command(flatten)]
    change: ChangeArgs,
    /// Why the due date moves.
    #[arg(long, value_enum, requires = "due_on")]
    reason: Option<ReasonArg>,
    /// The code of the open action whose date moves (as `zvv plan show` prints it, e.g.
    /// VALID_ID); default the first open action.
    #[arg(long, value_name = "CODE", requires = "due_on")]
    action: Option<String>,
    #[command(flatten)]
    request: RequestIdArg,
}

#[derive(Debug, clap::Args)]
pub struct AssignArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    condition_id: String,
    /// The partner's organisation id, as in its professionals' tokens (`org`), e.g.
    /// reclassering-brabant.
    #[arg(long)]
    organisation: String,
    /// The partner's kind: MUNICIPALITY, PRISON, PROBATION, NEIGHBOURHOOD_TEAM, HOUSING or
    /// CARE_PROVIDER.
    #[arg(long, value_name = "TYPE", value_parser = parse_partner_type)]
    organisation_type: OrgType,
    #[command(flatten)]
    contact: ContactArgs,
    #[command(flatten)]
    request: RequestIdArg,
}

/// A partner organisation type, in any case and with `-` or `_`: one of those a task may be
/// assigned to.
fn parse_partner_type(input: &str) -> Result<OrgType, String> {
    let partners = zvv_reintegration::domain::PARTNER_ORG_TYPES;
    let valid = || {
        partners
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match input
        .trim()
        .to_ascii_uppercase()
        .replace('-', "_")
        .parse::<OrgType>()
    {
        Ok(t) if partners.contains(&t) => Ok(t),
        _ => Err(format!(
            "not an organisation type a task can go to; one of: {}",
            valid()
        )),
    }
}

/// Runs one subcommand and prints its result.
pub async fn run(cmd: PlanCommand) -> anyhow::Result<()> {
    match cmd {
        PlanCommand::Show(a) => {
            let r = check(
                a.conn
                    .continuity()?
                    .get_plan(GetPlanRequest {
                        detention_id: a.detention_id,
                    })
                    .await,
            )?;
            let mut plan = r.plan;
            if let (Some(kind), Some(plan)) = (a.condition, plan.as_mut()) {
                let kind = ConditionKind::from(kind);
                plan.conditions.retain(|c| c.kind() == kind);
            }
            print!("{}", plan_text(plan.as_ref()));
        }
        PlanCommand::Update(a) => {
            let r = check(
                a.conn
                    .continuity()?
                    .update_condition(UpdateConditionRequest {
                        request_id: a.request.value(),
                        condition_id: a.condition_id,
                        status: a
                            .change
                            .status
                            .map_or(ConditionStatus::Unspecified, ConditionStatus::from)
                            .into(),
                        due_on: a.change.due_on.unwrap_or_default(),
                        reason_code: a
                            .reason
                            .map_or(DueDateReason::Unspecified, DueDateReason::from)
                            .into(),
                        action: a.action.unwrap_or_default(),
                    })
                    .await,
            )?;
            match r.condition.as_ref() {
                Some(c) => print!("{}", condition_text(c)),
                None => println!("(no condition in the response)"),
            }
        }
        PlanCommand::Assign(a) => {
            let c = a.contact;
            let r = check(
                a.conn
                    .continuity()?
                    .assign_task(AssignTaskRequest {
                        request_id: a.request.value(),
                        condition_id: a.condition_id,
                        organisation: a.organisation,
                        organisation_type: a.organisation_type.as_str().to_owned(),
                        contact: Some(Contact {
                            name: c.contact_name,
                            phone: c.contact_phone,
                            email: c.contact_email,
                        }),
                    })
                    .await,
            )?;
            print!("{}", task_text(r.task.as_ref()));
        }
        PlanCommand::Readiness(a) => {
            let r = check(
                a.conn
                    .continuity()?
                    .get_release_readiness(GetReleaseReadinessRequest {
                        detention_id: a.detention_id,
                    })
                    .await,
            )?;
            print!("{}", readiness_text(&r));
        }
        PlanCommand::Replan(a) => {
            let r = check(
                a.conn
                    .continuity()?
                    .replan_detention(ReplanDetentionRequest {
                        request_id: a.request.value(),
                        detention_id: a.detention_id,
                    })
                    .await,
            )?;
            print!("{}", plan_text(r.plan.as_ref()));
        }
    }
    Ok(())
}

pub(crate) fn condition_kind(kind: ConditionKind) -> &'static str {
    match kind {
        ConditionKind::IdentityDocument => "identity-document",
        ConditionKind::Housing => "housing",
        ConditionKind::Income => "income",
        ConditionKind::Allowances => "allowances",
        ConditionKind::HealthInsurance => "health-insurance",
        ConditionKind::CarePlan => "care-plan",
        ConditionKind::Debts => "debts",
        ConditionKind::CareForDependants => "care-for-dependants",
        ConditionKind::Education => "education",
        ConditionKind::Unspecified => "unspecified",
    }
}

pub(crate) fn condition_status(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::Unknown => "unknown",
        ConditionStatus::InPlace => "in-place",
        ConditionStatus::AtRisk => "at-risk",
        ConditionStatus::Suspended => "suspended",
        ConditionStatus::Arranged => "arranged",
        ConditionStatus::Lapsed => "lapsed",
        ConditionStatus::NotApplicable => "not-applicable",
        ConditionStatus::Unspecified => "unspecified",
    }
}

fn reason(reason: DueDateReason) -> &'static str {
    match reason {
        DueDateReason::AuthorityTerm => "authority-term",
        DueDateReason::ReleaseDateChanged => "release-date-changed",
        DueDateReason::PartnerAgreement => "partner-agreement",
        DueDateReason::PersonUnavailable => "person-unavailable",
        DueDateReason::AwaitingDocument => "awaiting-document",
        DueDateReason::Unspecified => "",
    }
}

pub(crate) fn task_status(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Assigned => "assigned",
        TaskStatus::Done => "done",
        TaskStatus::Withdrawn => "withdrawn",
        TaskStatus::Unspecified => "unspecified",
    }
}

/// Where an action stands: done (on a day), missed, warned, or open.
fn action_state(a: &Action) -> String {
    if !a.done_on.is_empty() {
        format!("done {}", a.done_on)
    } else if a.missed {
        "missed".to_owned()
    } else if a.warned {
        "warned".to_owned()
    } else {
        "open".to_owned()
    }
}

/// One line per action: code, due date, rule@version, state, and why its date was moved.
fn action_rows(actions: &[Action]) -> Vec<Vec<String>> {
    actions
        .iter()
        .map(|a| {
            let moved = match reason(a.override_reason()) {
                "" => String::new(),
                why => format!("moved: {why}"),
            };
            vec![
                a.action.clone(),
                if a.due_on.is_empty() {
                    "due (when the release is known)".to_owned()
                } else {
                    format!("due {}", a.due_on)
                },
                format!("{}@v{}", a.rule, a.policy_version),
                action_state(a),
                moved,
            ]
        })
        .collect()
}

/// The holder of an open task on one line: organisation, contact, task id.
fn holder(t: &Task) -> String {
    format!(
        "{}; {} (task {})",
        organisation(&t.organisation, &t.organisation_type),
        contact(t.contact.as_ref()),
        t.task_id
    )
}

fn contact(c: Option<&Contact>) -> String {
    let parts: Vec<&str> = c
        .map(|c| [c.name.as_str(), c.phone.as_str(), c.email.as_str()])
        .unwrap_or_default()
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// A condition: its kind and status, its id and task holder, and its actions lined up.
pub(crate) fn condition_text(c: &Condition) -> String {
    let mut out = format!(
        "{} ({})\n",
        condition_kind(c.kind()),
        condition_status(c.status())
    );
    out.push_str(&format!("  condition_id: {}\n", c.condition_id));
    out.push_str(&format!(
        "  task:         {}\n",
        c.task
            .as_ref()
            .map_or_else(|| "(not assigned)".to_owned(), holder)
    ));
    if c.actions.is_empty() {
        out.push_str("  (no actions)\n");
    }
    let rows = action_rows(&c.actions);
    // the actions as an indented table without a header
    let table = table_text(&["", "", "", "", ""], &rows);
    for line in table.lines().skip(1) {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

/// The plan: its episode and policy version, then every condition.
pub(crate) fn plan_text(plan: Option<&Plan>) -> String {
    let Some(p) = plan else {
        return "(no plan in the response)\n".to_owned();
    };
    let mut out = fields_text(&[
        ("detention_id", p.detention_id.clone()),
        ("policy_version", p.policy_version.to_string()),
        ("conditions", p.conditions.len().to_string()),
    ]);
    for c in &p.conditions {
        out.push('\n');
        out.push_str(&condition_text(c));
    }
    out
}

/// A task as `key: value` lines.
pub(crate) fn task_text(task: Option<&Task>) -> String {
    let Some(t) = task else {
        return "(no task in the response)\n".to_owned();
    };
    fields_text(&[
        ("task_id", t.task_id.clone()),
        ("status", task_status(t.status()).to_owned()),
        ("condition", condition_kind(t.condition()).to_owned()),
        ("condition_id", t.condition_id.clone()),
        (
            "condition_status",
            condition_status(t.condition_status()).to_owned(),
        ),
        ("detention_id", t.detention_id.clone()),
        (
            "organisation",
            organisation(&t.organisation, &t.organisation_type),
        ),
        ("contact", contact(t.contact.as_ref())),
        (
            "current_action",
            match (t.action.is_empty(), t.due_on.is_empty()) {
                (true, _) => "- (nothing left to do)".to_owned(),
                (false, true) => t.action.clone(),
                (false, false) => format!("{} due {}", t.action, t.due_on),
            },
        ),
        ("created", timestamp(t.create_time.as_ref())),
        ("completed", timestamp(t.complete_time.as_ref())),
    ])
}

/// Readiness: overall, then per condition.
pub(crate) fn readiness_text(r: &GetReleaseReadinessResponse) -> String {
    let ready = r.conditions.iter().filter(|c| c.ready).count();
    let mut out = fields_text(&[
        ("detention_id", r.detention_id.clone()),
        ("release_on", or_dash(r.release_on.clone())),
        (
            "ready",
            format!(
                "{} ({ready} of {} conditions in place, arranged or not applicable)",
                yes_no(r.ready),
                r.conditions.len()
            ),
        ),
    ]);
    out.push('\n');
    out.push_str(&table_text(
        &["CONDITION", "STATUS", "READY", "NEXT_ACTION", "DUE_ON"],
        &r.conditions
            .iter()
            .map(|c| {
                vec![
                    condition_kind(c.kind()).to_owned(),
                    condition_status(c.status()).to_owned(),
                    yes_no(c.ready),
                    or_dash(c.next_action.clone()),
                    or_dash(c.next_due_on.clone()),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use zvv_proto::reintegration::v1::ConditionReadiness;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: PlanCommand,
    }

    fn parse(args: &[&str]) -> Result<PlanCommand, clap::Error> {
        Cli::try_parse_from(["plan"].iter().chain(args)).map(|c| c.command)
    }

    #[test]
    fn update_needs_a_status_or_a_due_date_with_its_reason() {
        let Ok(PlanCommand::Update(a)) = parse(&["update", "c-1", "--status", "at-risk"]) else {
            panic!("update")
        };
        assert_eq!(a.change.status, Some(StatusArg::AtRisk));
        let Ok(PlanCommand::Update(a)) = parse(&[
            "update",
            "c-1",
            "--due-on",
            "2026-02-01",
            "--reason",
            "partner-agreement",
            "--action",
            "VALID_ID",
        ]) else {
            panic!("update")
        };
        assert_eq!(a.reason, Some(ReasonArg::PartnerAgreement));
        assert_eq!(a.action.as_deref(), Some("VALID_ID"));
        for bad in [
            &["update", "c-1"][..],
            &["update", "c-1", "--due-on", "2026-02-01"],
            &[
                "update",
                "c-1",
                "--status",
                "at-risk",
                "--reason",
                "authority-term",
            ],
            &[
                "update", "c-1", "--status", "at-risk", "--action", "VALID_ID",
            ],
            &["update", "c-1", "--status", "gone"],
            &[
                "update",
                "c-1",
                "--due-on",
                "tomorrow",
                "--reason",
                "authority-term",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn show_may_pick_one_condition() {
        let Ok(PlanCommand::Show(a)) =
            parse(&["show", "d-1", "--condition", "care-for-dependants"])
        else {
            panic!("show")
        };
        assert_eq!(
            a.condition.map(ConditionKind::from),
            Some(ConditionKind::CareForDependants)
        );
        assert!(parse(&["show", "d-1", "--condition", "school"]).is_err());
        assert!(parse(&["show"]).is_err(), "a detention id is required");
    }

    #[test]
    fn assign_takes_a_partner_type_in_any_case() {
        let contact = [
            "--contact-name",
            "J. de Wit",
            "--contact-phone",
            "+31 73 555 0101",
            "--contact-email",
            "j.dewit@reclassering.nl",
        ];
        let assign = |org_type: &str| {
            parse(
                &[
                    &["assign", "c-1", "--organisation", "reclassering-brabant"][..],
                    &["--organisation-type", org_type],
                    &contact,
                ]
                .concat(),
            )
        };
        let Ok(PlanCommand::Assign(a)) = assign("probation") else {
            panic!("assign")
        };
        assert_eq!(a.organisation_type, OrgType::Probation);
        let Ok(PlanCommand::Assign(a)) = assign("neighbourhood-team") else {
            panic!("assign")
        };
        assert_eq!(a.organisation_type, OrgType::NeighbourhoodTeam);
        let err = assign("SCHOOL").expect_err("not a partner");
        assert!(err.to_string().contains("PROBATION"), "{err}");
        assert!(
            parse(&[
                "assign",
                "c-1",
                "--organisation",
                "x",
                "--organisation-type",
                "PROBATION"
            ])
            .is_err(),
            "the contact is required"
        );
    }

    fn action(code: &str, due: &str) -> Action {
        Action {
            action: code.into(),
            due_on: due.into(),
            rule: "identity.short-stay".into(),
            policy_version: 1,
            ..Default::default()
        }
    }

    fn plan() -> Plan {
        let mut moved = action("VALID_ID_ON_RELEASE", "2026-01-20");
        moved.override_reason = DueDateReason::PartnerAgreement.into();
        moved.warned = true;
        let mut missed = action("CHECK_DEPENDANTS", "2026-01-06");
        missed.rule = "dependants.at-start".into();
        missed.missed = true;
        let mut done = action("REPORT_SHORT_DETENTION", "2026-01-12");
        done.rule = "income.short-stay".into();
        done.done_on = "2026-01-08".into();
        Plan {
            detention_id: "d-1".into(),
            policy_version: 1,
            conditions: vec![
                Condition {
                    condition_id: "c-1".into(),
                    kind: ConditionKind::IdentityDocument.into(),
                    status: ConditionStatus::Unknown.into(),
                    actions: vec![moved],
                    task: Some(Task {
                        task_id: "t-1".into(),
                        organisation: "reclassering-brabant".into(),
                        organisation_type: "PROBATION".into(),
                        contact: Some(Contact {
                            name: "J. de Wit".into(),
                            phone: "+31 73 555 0101".into(),
                            email: String::new(),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Condition {
                    condition_id: "c-2".into(),
                    kind: ConditionKind::CareForDependants.into(),
                    status: ConditionStatus::Lapsed.into(),
                    actions: vec![missed],
                    ..Default::default()
                },
                Condition {
                    condition_id: "c-3".into(),
                    kind: ConditionKind::Income.into(),
                    status: ConditionStatus::Arranged.into(),
                    actions: vec![done, action("X", "")],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn a_plan_shows_each_action_with_its_rule_and_state() {
        let text = plan_text(Some(&plan()));
        for part in [
            "detention_id:   d-1",
            "policy_version: 1",
            "conditions:     3",
            "identity-document (unknown)",
            "  condition_id: c-1",
            "  task:         reclassering-brabant (PROBATION); J. de Wit, +31 73 555 0101 (task t-1)",
            "    VALID_ID_ON_RELEASE  due 2026-01-20  identity.short-stay@v1  warned  moved: partner-agreement",
            "care-for-dependants (lapsed)",
            "  task:         (not assigned)",
            "    CHECK_DEPENDANTS  due 2026-01-06  dependants.at-start@v1  missed",
            "income (arranged)",
            "    REPORT_SHORT_DETENTION  due 2026-01-12                   income.short-stay@v1    done 2026-01-08",
            "    X                       due (when the release is known)  identity.short-stay@v1  open",
        ] {
            assert!(text.contains(part), "{part:?} in\n{text}");
        }
        assert!(!text.contains("  \n"), "no trailing blanks:\n{text}");
    }

    #[test]
    fn a_task_and_readiness_read_well() {
        let task = Task {
            task_id: "t-1".into(),
            condition_id: "c-1".into(),
            detention_id: "d-1".into(),
            condition: ConditionKind::HealthInsurance.into(),
            organisation: "reclassering-brabant".into(),
            organisation_type: "PROBATION".into(),
            status: TaskStatus::Done.into(),
            condition_status: ConditionStatus::Arranged.into(),
            ..Default::default()
        };
        let text = task_text(Some(&task));
        for part in [
            "task_id:          t-1",
            "status:           done",
            "condition:        health-insurance",
            "condition_status: arranged",
            "organisation:     reclassering-brabant (PROBATION)",
            "current_action:   - (nothing left to do)",
            "contact:          -",
        ] {
            assert!(text.contains(part), "{part:?} in\n{text}");
        }
        let r = GetReleaseReadinessResponse {
            detention_id: "d-1".into(),
            ready: false,
            release_on: "2026-01-15".into(),
            conditions: vec![
                ConditionReadiness {
                    condition_id: "c-1".into(),
                    kind: ConditionKind::Housing.into(),
                    status: ConditionStatus::InPlace.into(),
                    ready: true,
                    ..Default::default()
                },
                ConditionReadiness {
                    condition_id: "c-2".into(),
                    kind: ConditionKind::Debts.into(),
                    status: ConditionStatus::Lapsed.into(),
                    ready: false,
                    next_action: "CHECK_DEBTS_ON_RELEASE".into(),
                    next_due_on: "2026-01-15".into(),
                },
            ],
        };
        let text = readiness_text(&r);
        assert!(
            text.contains("ready:        no (1 of 2 conditions"),
            "{text}"
        );
        assert!(text.contains("housing    in-place  yes    -"), "{text}");
        assert!(
            text.contains("debts      lapsed    no     CHECK_DEBTS_ON_RELEASE  2026-01-15"),
            "{text}"
        );
    }
}
