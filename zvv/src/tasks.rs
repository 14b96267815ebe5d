//! `zvv tasks …`: the continuity tasks of the caller's organisation (reintegration's
//! ContinuityService): listed by due date, and completed one action at a time.

use zvv_proto::reintegration::v1::{CompleteTaskRequest, ListTasksRequest, Task};

use crate::client::{ReintegrationConn, check};
use crate::output::{RequestIdArg, or_dash, table_text};
use crate::plan::{condition_kind, condition_status, task_status, task_text};
use crate::signal::organisation;

/// The `zvv tasks` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TasksCommand {
    /// List your organisation's open tasks (every page), overdue ones included; the responsible
    /// municipality sees every task in its jurisdiction.
    List(ListArgs),
    /// Mark the task's current action done; when no action of its condition is left, the task
    /// is done and the condition arranged.
    Complete(CompleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    /// Only tasks whose current action is due within this many days from today (overdue ones
    /// included); default every open task.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(i32).range(1..=366))]
    due_within: Option<i32>,
    /// Also tasks that are done or withdrawn.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, clap::Args)]
pub struct CompleteArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    task_id: String,
    #[command(flatten)]
    request: RequestIdArg,
}

/// Tasks per page when listing every page.
const PAGE_SIZE: i32 = 100;

/// Runs one subcommand and prints its result.
pub async fn run(cmd: TasksCommand) -> anyhow::Result<()> {
    match cmd {
        TasksCommand::List(a) => {
            let mut client = a.conn.continuity()?;
            let mut tasks = Vec::new();
            let mut page_token = String::new();
            loop {
                let r = check(
                    client
                        .list_tasks(ListTasksRequest {
                            due_within_days: a.due_within.unwrap_or(0),
                            include_closed: a.all,
                            page_size: PAGE_SIZE,
                            page_token,
                        })
                        .await,
                )?;
                tasks.extend(r.tasks);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            print!("{}", tasks_text(&tasks, a.all));
        }
        TasksCommand::Complete(a) => {
            let r = check(
                a.conn
                    .continuity()?
                    .complete_task(CompleteTaskRequest {
                        request_id: a.request.value(),
                        task_id: a.task_id,
                    })
                    .await,
            )?;
            print!("{}", task_text(r.task.as_ref()));
        }
    }
    Ok(())
}

/// Tasks as a table, or a line saying there are none.
fn tasks_text(tasks: &[Task], all: bool) -> String {
    if tasks.is_empty() {
        return if all { "no tasks\n" } else { "no open tasks\n" }.to_owned();
    }
    table_text(
        &[
            "TASK_ID",
            "STATUS",
            "CONDITION",
            "CONDITION_STATUS",
            "ACTION",
            "DUE_ON",
            "ORGANISATION",
            "DETENTION_ID",
        ],
        &tasks
            .iter()
            .map(|t| {
                vec![
                    t.task_id.clone(),
                    task_status(t.status()).to_owned(),
                    condition_kind(t.condition()).to_owned(),
                    condition_status(t.condition_status()).to_owned(),
                    or_dash(t.action.clone()),
                    or_dash(t.due_on.clone()),
                    organisation(&t.organisation, &t.organisation_type),
                    t.detention_id.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use zvv_proto::reintegration::v1::{ConditionKind, ConditionStatus, TaskStatus};

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: TasksCommand,
    }

    fn parse(args: &[&str]) -> Result<TasksCommand, clap::Error> {
        Cli::try_parse_from(["tasks"].iter().chain(args)).map(|c| c.command)
    }

    #[test]
    fn list_looks_ahead_at_most_a_year() {
        let Ok(TasksCommand::List(a)) = parse(&["list", "--due-within", "14", "--all"]) else {
            panic!("list")
        };
        assert_eq!((a.due_within, a.all), (Some(14), true));
        let Ok(TasksCommand::List(a)) = parse(&["list"]) else {
            panic!("list")
        };
        assert_eq!((a.due_within, a.all), (None, false));
        for bad in ["0", "367", "-1", "soon"] {
            assert!(parse(&["list", "--due-within", bad]).is_err(), "{bad}");
        }
        assert!(parse(&["complete"]).is_err(), "a task id is required");
    }

    #[test]
    fn tasks_are_listed_with_their_action_and_holder() {
        assert_eq!(tasks_text(&[], false), "no open tasks\n");
        let task = Task {
            task_id: "t-1".into(),
            detention_id: "d-1".into(),
            condition: ConditionKind::IdentityDocument.into(),
            condition_status: ConditionStatus::Unknown.into(),
            status: TaskStatus::Assigned.into(),
            organisation: "reclassering-brabant".into(),
            organisation_type: "PROBATION".into(),
            action: "VALID_ID_ON_RELEASE".into(),
            due_on: "2026-01-15".into(),
            ..Default::default()
        };
        let text = tasks_text(&[task], false);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "TASK_ID  STATUS    CONDITION          CONDITION_STATUS  ACTION               \
                 DUE_ON      ORGANISATION                      DETENTION_ID"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "t-1      assigned  identity-document  unknown           VALID_ID_ON_RELEASE  \
                 2026-01-15  reclassering-brabant (PROBATION)  d-1"
            )
        );
    }
}
