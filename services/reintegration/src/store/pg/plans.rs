//! Continuity plans: the conditions and actions of an episode, conditions set by the
//! municipality, tasks of partners, re-planning.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext, error::ApiError, idempotency::Key, ids::new_id, outbox::Event,
};

use super::{
    PgStore, TASK_COLUMNS, TASK_FROM, Tx, abandon, commit, detentions, emit, fetch_detention,
    fetch_task, load_conditions, partner_conditions, remember, replay, task_from_row, whole,
};
use crate::{
    domain::{
        ConditionStatus, ContinuityPolicy, Detention, Plan, PlanChange, PlanCondition,
        PlannedCondition, Task, TaskStatus, reconcile,
    },
    store::{ConditionUpdate, NewTask, Outcome, PlanStore, Viewer, Visible},
};

async fn insert_condition(
    conn: &mut PgConnection,
    detention_id: Uuid,
    planned: &PlannedCondition,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let condition_id = new_id();
    sqlx::query(
        "INSERT INTO reintegration.conditions (condition_id, detention_id, kind, status, updated_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(condition_id)
    .bind(detention_id)
    .bind(planned.condition.as_str())
    .bind(planned.status.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for (position, due) in planned.actions.iter().enumerate() {
        insert_action(conn, condition_id, detention_id, position, due).await?;
    }
    Ok(())
}

async fn insert_action(
    conn: &mut PgConnection,
    condition_id: Uuid,
    detention_id: Uuid,
    position: usize,
    due: &crate::domain::Due,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO reintegration.actions (action_id, condition_id, detention_id, position, \
         action, due_on, rule, policy_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (condition_id, action) DO UPDATE SET position = EXCLUDED.position, \
         due_on = EXCLUDED.due_on, rule = EXCLUDED.rule, policy_version = EXCLUDED.policy_version, \
         warned_at = NULL WHERE actions.done_on IS NULL",
    )
    .bind(new_id())
    .bind(condition_id)
    .bind(detention_id)
    .bind(i64::try_from(position).unwrap_or(i64::MAX))
    .bind(due.action)
    .bind(due.due_on)
    .bind(due.rule)
    .bind(i64::from(due.policy_version))
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores the plan of a new episode.
pub(super) async fn insert_plan(
    conn: &mut PgConnection,
    detention_id: Uuid,
    planned: &[PlannedCondition],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    for p in planned {
        insert_condition(conn, detention_id, p, now).await?;
    }
    Ok(())
}

/// Brings the stored plan in line with `planned` (by [`reconcile`]); returns whether anything
/// changed.
pub(super) async fn recompute(
    conn: &mut PgConnection,
    detention_id: Uuid,
    planned: &[PlannedCondition],
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let stored = load_conditions(conn, detention_id).await?;
    let changes = reconcile(&stored, planned);
    for change in &changes {
        match change {
            PlanChange::AddCondition(p) => insert_condition(conn, detention_id, p, now).await?,
            PlanChange::AddAction {
                condition,
                position,
                due,
            } => {
                if let Some(c) = stored.iter().find(|c| c.kind == *condition) {
                    insert_action(conn, c.id, detention_id, *position, due).await?;
                }
            }
            PlanChange::Redate {
                action_id,
                position,
                due,
            } => {
                sqlx::query(
                    "UPDATE reintegration.actions SET position = $2, rule = $4, policy_version = $5, \
                     warned_at = CASE WHEN due_on IS DISTINCT FROM $3 THEN NULL ELSE warned_at END, \
                     due_on = $3 WHERE action_id = $1",
                )
                .bind(action_id)
                .bind(i64::try_from(*position).unwrap_or(i64::MAX))
                .bind(due.due_on)
                .bind(due.rule)
                .bind(i64::from(due.policy_version))
                .execute(&mut *conn)
                .await?;
            }
            PlanChange::Drop { action_id } => {
                sqlx::query("DELETE FROM reintegration.actions WHERE action_id = $1")
                    .bind(action_id)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(!changes.is_empty())
}

/// The plan of `d` as `viewer` may see it: whole for its municipality, else the conditions of
/// the viewer's tasks.
async fn plan_for(
    conn: &mut PgConnection,
    viewer: &Viewer,
    d: &Detention,
) -> Result<Plan, ApiError> {
    let mut conditions = load_conditions(conn, d.id).await?;
    if !whole(viewer, d) {
        let mine = partner_conditions(conn, d.id, &viewer.org).await?;
        conditions.retain(|c| mine.contains(&c.id));
        // another partner's open task on a condition shows neither its contact nor its holder
        for c in &mut conditions {
            if c.task
                .as_ref()
                .is_some_and(|t| t.organisation != viewer.org)
            {
                c.task = None;
            }
        }
    }
    Ok(Plan {
        detention_id: d.id,
        policy_version: d.policy_version,
        conditions,
    })
}

/// The episode of a condition, locked, when the viewer sees it whole; the outcome otherwise.
async fn municipal_episode_of_condition(
    tx: &mut Tx,
    viewer: &Viewer,
    condition_id: Uuid,
) -> Result<Result<Detention, Outcome<()>>, ApiError> {
    let detention: Option<Uuid> = sqlx::query_scalar(
        "SELECT detention_id FROM reintegration.conditions WHERE condition_id = $1",
    )
    .bind(condition_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(detention) = detention else {
        return Ok(Err(Outcome::NotFound));
    };
    municipal_episode(tx, viewer, detention).await
}

async fn municipal_episode(
    tx: &mut Tx,
    viewer: &Viewer,
    detention_id: Uuid,
) -> Result<Result<Detention, Outcome<()>>, ApiError> {
    match fetch_detention(tx, detention_id, true).await? {
        None => Ok(Err(Outcome::NotFound)),
        Some(d) if whole(viewer, &d) => Ok(Ok(d)),
        Some(_) => Ok(Err(Outcome::OutsideJurisdiction)),
    }
}

fn refused<T>(outcome: Outcome<()>) -> Outcome<T> {
    match outcome {
        Outcome::Done(()) | Outcome::NotFound => Outcome::NotFound,
        Outcome::OutsideJurisdiction => Outcome::OutsideJurisdiction,
        Outcome::Refused(why) => Outcome::Refused(why),
    }
}

/// Withdraws the open task of a condition (another partner gets it, or it is settled).
async fn withdraw_open_task(
    conn: &mut PgConnection,
    condition_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, String)>, ApiError> {
    Ok(sqlx::query_as(
        "UPDATE reintegration.tasks SET status = 'WITHDRAWN', completed_at = $2 \
         WHERE condition_id = $1 AND status = 'ASSIGNED' RETURNING task_id, organisation",
    )
    .bind(condition_id)
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

impl PlanStore for PgStore {
    async fn plan(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        detention_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Outcome<Visible<(Detention, Plan)>>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let d = match fetch_detention(&mut tx, detention_id, false).await? {
            Some(d) if whole(viewer, &d) => d,
            Some(d)
                if !partner_conditions(&mut tx, d.id, &viewer.org)
                    .await?
                    .is_empty() =>
            {
                d
            }
            found => {
                abandon(tx).await?;
                return Ok(if found.is_some() {
                    Outcome::OutsideJurisdiction
                } else {
                    Outcome::NotFound
                });
            }
        };
        let plan = plan_for(&mut tx, viewer, &d).await?;
        let mut ids = vec![d.id, d.subject_id];
        ids.extend(plan.conditions.iter().map(|c| c.id));
        commit(tx, ctx, ids, now).await?;
        Ok(Outcome::Done(Visible {
            whole: whole(viewer, &d),
            item: (d, plan),
        }))
    }

    async fn update_condition(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        update: ConditionUpdate,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Outcome<PlanCondition>, ApiError> {
        let mut tx = match replay(
            self.pool.begin().await?,
            ctx,
            key,
            |f: &PlanCondition| vec![f.id, f.detention_id],
            now,
        )
        .await?
        {
            Ok(first) => return Ok(Outcome::Done(first)),
            Err(tx) => tx,
        };
        let d = match municipal_episode_of_condition(&mut tx, viewer, update.condition_id).await? {
            Ok(d) => d,
            Err(outcome) => {
                abandon(tx).await?;
                return Ok(refused(outcome));
            }
        };
        let conditions = load_conditions(&mut tx, d.id).await?;
        let Some(condition) = conditions.iter().find(|c| c.id == update.condition_id) else {
            abandon(tx).await?;
            return Ok(Outcome::NotFound);
        };
        if let Some((due_on, reason, action)) = &update.due {
            let target = match action {
                Some(code) => condition.actions.iter().find(|a| &a.action == code),
                None => condition.next_open(),
            };
            let Some(target) = target.filter(|a| a.is_open()) else {
                abandon(tx).await?;
                return Ok(Outcome::Refused(match action {
                    Some(_) => "action: the condition has no open action with this code".into(),
                    None => "due_on: the condition has no open action to move".into(),
                }));
            };
            sqlx::query(
                "UPDATE reintegration.actions SET due_on = $2, override_reason = $3, \
                 warned_at = NULL, missed_at = NULL WHERE action_id = $1",
            )
            .bind(target.id)
            .bind(due_on)
            .bind(reason.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(status) = update.status {
            sqlx::query(
                "UPDATE reintegration.conditions SET status = $2, updated_at = $3, \
                 lapsed_at = CASE WHEN $2 = 'LAPSED' THEN COALESCE(lapsed_at, $3) ELSE lapsed_at END \
                 WHERE condition_id = $1",
            )
            .bind(update.condition_id)
            .bind(status.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if status.is_settled() {
                // nothing is left to do for it: its task ends with it
                if let Some((task, org)) =
                    withdraw_open_task(&mut tx, update.condition_id, now).await?
                {
                    emit(
                        &mut tx,
                        Event::new("reintegration.task.withdrawn")
                            .id("task_id", task)
                            .id("detention_id", d.id)
                            .id("condition_id", update.condition_id)
                            .code("condition", condition.kind.as_str())
                            .to_organisation(org),
                        now,
                    )
                    .await?;
                }
            }
        } else {
            sqlx::query(
                "UPDATE reintegration.conditions SET updated_at = $2 WHERE condition_id = $1",
            )
            .bind(update.condition_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let updated = load_conditions(&mut tx, d.id)
            .await?
            .into_iter()
            .find(|c| c.id == update.condition_id)
            .ok_or_else(|| ApiError::internal("the updated condition is gone"))?;
        emit(
            &mut tx,
            Event::new("reintegration.condition.updated")
                .id("condition_id", updated.id)
                .id("detention_id", d.id)
                .code("condition", updated.kind.as_str())
                .code("status", updated.status.as_str())
                .to_municipality(d.municipality_code.clone()),
            now,
        )
        .await?;
        remember(&mut tx, key, &updated, now).await?;
        commit(tx, ctx, vec![updated.id, d.id, d.subject_id], now).await?;
        Ok(Outcome::Done(updated))
    }

    async fn assign_task(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        task: NewTask,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Outcome<Task>, ApiError> {
        let mut tx = match replay(self.pool.begin().await?, ctx, key, Task::audit_ids, now).await? {
            Ok(first) => return Ok(Outcome::Done(first)),
            Err(tx) => tx,
        };
        let d = match municipal_episode_of_condition(&mut tx, viewer, task.condition_id).await? {
            Ok(d) => d,
            Err(outcome) => {
                abandon(tx).await?;
                return Ok(refused(outcome));
            }
        };
        let status: String = sqlx::query_scalar(
            "SELECT status FROM reintegration.conditions WHERE condition_id = $1",
        )
        .bind(task.condition_id)
        .fetch_one(&mut *tx)
        .await?;
        if ConditionStatus::parse(&status).is_some_and(ConditionStatus::is_settled) {
            abandon(tx).await?;
            return Ok(Outcome::Refused(format!(
                "the condition is {status}: set it AT_RISK (UpdateCondition) before assigning it"
            )));
        }
        let withdrawn = withdraw_open_task(&mut tx, task.condition_id, now).await?;
        let id = new_id();
        sqlx::query(
            "INSERT INTO reintegration.tasks (task_id, condition_id, detention_id, organisation, \
             organisation_type, contact_name, contact_phone, contact_email, status, assigned_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ASSIGNED', $9, $10)",
        )
        .bind(id)
        .bind(task.condition_id)
        .bind(d.id)
        .bind(&task.organisation)
        .bind(&task.organisation_type)
        .bind(&task.contact.name)
        .bind(&task.contact.phone)
        .bind(&task.contact.email)
        .bind(&ctx.principal().org)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let stored = fetch_task(&mut tx, id, false)
            .await?
            .ok_or_else(|| ApiError::internal("the new task is gone"))?;
        if let Some((old, org)) = withdrawn {
            emit(
                &mut tx,
                Event::new("reintegration.task.withdrawn")
                    .id("task_id", old)
                    .id("detention_id", d.id)
                    .id("condition_id", task.condition_id)
                    .code("condition", stored.condition.as_str())
                    .to_organisation(org),
                now,
            )
            .await?;
        }
        emit(
            &mut tx,
            Event::new("reintegration.task.assigned")
                .id("task_id", id)
                .id("detention_id", d.id)
                .id("condition_id", task.condition_id)
                .code("condition", stored.condition.as_str())
                .to_organisation(task.organisation.clone()),
            now,
        )
        .await?;
        remember(&mut tx, key, &stored, now).await?;
        commit(
            tx,
            ctx,
            vec![id, task.condition_id, d.id, d.subject_id],
            now,
        )
        .await?;
        Ok(Outcome::Done(stored))
    }

    async fn complete_task(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        task_id: Uuid,
        key: &Key,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Outcome<Task>, ApiError> {
        let mut tx = match replay(self.pool.begin().await?, ctx, key, Task::audit_ids, now).await? {
            Ok(first) => return Ok(Outcome::Done(first)),
            Err(tx) => tx,
        };
        let Some(task) = fetch_task(&mut tx, task_id, true).await? else {
            abandon(tx).await?;
            return Ok(Outcome::NotFound);
        };
        let d = fetch_detention(&mut tx, task.detention_id, true)
            .await?
            .ok_or_else(|| ApiError::internal("a task without its episode"))?;
        if task.organisation != viewer.org && !whole(viewer, &d) {
            abandon(tx).await?;
            return Ok(Outcome::OutsideJurisdiction);
        }
        if task.status != TaskStatus::Assigned {
            abandon(tx).await?;
            return Ok(Outcome::Refused(format!(
                "the task is {}: nothing is left to complete",
                task.status.as_str()
            )));
        }
        let done: Option<Uuid> = sqlx::query_scalar(
            "UPDATE reintegration.actions SET done_on = $2 WHERE action_id = (SELECT action_id \
             FROM reintegration.actions WHERE condition_id = $1 AND done_on IS NULL \
             ORDER BY position LIMIT 1) RETURNING action_id",
        )
        .bind(task.condition_id)
        .bind(today)
        .fetch_optional(&mut *tx)
        .await?;
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM reintegration.actions WHERE condition_id = $1 AND done_on IS NULL",
        )
        .bind(task.condition_id)
        .fetch_one(&mut *tx)
        .await?;
        if left == 0 {
            sqlx::query(
                "UPDATE reintegration.tasks SET status = 'DONE', completed_at = $2 WHERE task_id = $1",
            )
            .bind(task_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE reintegration.conditions SET status = 'ARRANGED', updated_at = $2 \
                 WHERE condition_id = $1",
            )
            .bind(task.condition_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let updated = fetch_task(&mut tx, task_id, false)
            .await?
            .ok_or_else(|| ApiError::internal("the completed task is gone"))?;
        emit(
            &mut tx,
            Event::new(if left == 0 {
                "reintegration.task.completed"
            } else {
                "reintegration.task.progressed"
            })
            .id("task_id", task_id)
            .id("detention_id", d.id)
            .id("condition_id", task.condition_id)
            .code("condition", task.condition.as_str())
            .to_municipality(d.municipality_code.clone()),
            now,
        )
        .await?;
        remember(&mut tx, key, &updated, now).await?;
        let mut ids = vec![task_id, task.condition_id, d.id, d.subject_id];
        ids.extend(done);
        commit(tx, ctx, ids, now).await?;
        Ok(Outcome::Done(updated))
    }

    async fn list_tasks(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        due_by: Option<NaiveDate>,
        include_closed: bool,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Task>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT * FROM (SELECT {TASK_COLUMNS} FROM {TASK_FROM} \
             JOIN reintegration.detentions d ON d.detention_id = t.detention_id \
             WHERE (t.organisation = $1 OR d.municipality_code = ANY($2)) \
               AND ($3 OR t.status = 'ASSIGNED') AND t.task_id > $4) x \
             WHERE ($5::date IS NULL OR x.next_due_on <= $5) ORDER BY x.task_id LIMIT $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&viewer.org)
            .bind(&viewer.municipalities)
            .bind(include_closed)
            .bind(after.unwrap_or_else(Uuid::nil))
            .bind(due_by)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let tasks = rows
            .iter()
            .map(task_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids = tasks.iter().flat_map(Task::audit_ids).collect();
        commit(tx, ctx, ids, now).await?;
        Ok(tasks)
    }

    async fn replan(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        detention_id: Uuid,
        policy: &ContinuityPolicy,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Outcome<Plan>, ApiError> {
        let mut tx = match replay(
            self.pool.begin().await?,
            ctx,
            key,
            |f: &Plan| vec![f.detention_id],
            now,
        )
        .await?
        {
            Ok(first) => return Ok(Outcome::Done(first)),
            Err(tx) => tx,
        };
        let d = match municipal_episode(&mut tx, viewer, detention_id).await? {
            Ok(d) => d,
            Err(outcome) => {
                abandon(tx).await?;
                return Ok(refused(outcome));
            }
        };
        recompute(&mut tx, d.id, &policy.plan(&detentions::facts_of(&d)), now).await?;
        let short = policy.is_short_stay(&detentions::facts_of(&d));
        sqlx::query(
            "UPDATE reintegration.detentions SET policy_version = $2, short_stay = $3, \
             updated_at = $4 WHERE detention_id = $1",
        )
        .bind(d.id)
        .bind(i64::from(policy.version))
        .bind(short)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut d = d;
        d.policy_version = policy.version;
        let plan = plan_for(&mut tx, viewer, &d).await?;
        emit(
            &mut tx,
            Event::new("reintegration.detention.replanned")
                .id("detention_id", d.id)
                .code("policy_version", format!("V{}", policy.version))
                .to_municipality(d.municipality_code.clone()),
            now,
        )
        .await?;
        remember(&mut tx, key, &plan, now).await?;
        commit(tx, ctx, vec![d.id, d.subject_id], now).await?;
        Ok(Outcome::Done(plan))
    }
}
