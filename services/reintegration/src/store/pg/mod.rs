//! The PostgreSQL store (schema `reintegration`): a file per aggregate, the helpers they share
//! here.

mod detentions;
mod jobs;
mod plans;
mod statistics;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;
use zvv_platform::{
    audit::{self, CallContext},
    contact::Contact,
    db::Schema,
    error::ApiError,
    idempotency::{self, Key},
    outbox::{self, Event},
};

use super::Viewer;
use crate::domain::{
    Condition, ConditionStatus, Detention, DueDateReason, PlanAction, PlanCondition, Task,
    TaskStatus,
};

pub const SCHEMA: Schema = Schema::new("reintegration");

/// The PostgreSQL store of episodes, plans and tasks.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

type Tx = Transaction<'static, Postgres>;

const DETENTION_COLUMNS: &str = "d.detention_id, d.external_ref, d.subject_id, \
    d.municipality_code, d.status, d.began_on, d.begin_received, d.expected_release_on, \
    d.released_on, d.institution_code, d.institution_type, d.leaves, d.policy_version, \
    d.short_stay, d.follow_up_until, d.redetained_within_months, d.ready_at_release, \
    d.created_at, d.updated_at";

/// The SQL condition under which the viewer (`$m` its municipalities, `$o` its organisation)
/// sees episode `d`.
fn visible_to(m: u8, o: u8) -> String {
    format!(
        "(d.municipality_code = ANY(${m}) OR EXISTS (SELECT 1 FROM reintegration.tasks vt \
         WHERE vt.detention_id = d.detention_id AND vt.organisation = ${o} \
         AND vt.status <> 'WITHDRAWN'))"
    )
}

fn stored<T>(what: &str, value: Option<T>, text: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::internal(format!("stored {what} {text:?}")))
}

fn count(value: i32, what: &str) -> Result<u32, ApiError> {
    u32::try_from(value).map_err(|_| ApiError::internal(format!("stored {what} {value}")))
}

fn detention_from_row(row: &PgRow) -> Result<Detention, ApiError> {
    let leaves: i32 = row.try_get("leaves")?;
    let version: i32 = row.try_get("policy_version")?;
    let redetained: Option<i32> = row.try_get("redetained_within_months")?;
    Ok(Detention {
        id: row.try_get("detention_id")?,
        external_ref: row.try_get("external_ref")?,
        subject_id: row.try_get("subject_id")?,
        municipality_code: row.try_get("municipality_code")?,
        status: row.try_get("status")?,
        began_on: row.try_get("began_on")?,
        begin_received: row.try_get("begin_received")?,
        expected_release_on: row.try_get("expected_release_on")?,
        released_on: row.try_get("released_on")?,
        institution_code: row.try_get("institution_code")?,
        institution_type: row.try_get("institution_type")?,
        leaves: count(leaves, "leaves")?,
        policy_version: count(version, "policy version")?,
        short_stay: row.try_get("short_stay")?,
        follow_up_until: row.try_get("follow_up_until")?,
        redetained_within_months: redetained.map(|m| count(m, "months")).transpose()?,
        ready_at_release: row.try_get("ready_at_release")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Whether the viewer sees `d` whole (as its responsible municipality).
fn whole(viewer: &Viewer, d: &Detention) -> bool {
    viewer.municipalities.contains(&d.municipality_code)
}

const TASK_COLUMNS: &str = "t.task_id, t.condition_id, t.detention_id, c.kind, t.organisation, \
    t.organisation_type, t.contact_name, t.contact_phone, t.contact_email, t.status, \
    c.status AS condition_status, t.created_at, t.completed_at, \
    (SELECT a.action FROM reintegration.actions a WHERE a.condition_id = c.condition_id \
     AND a.done_on IS NULL ORDER BY a.position LIMIT 1) AS next_action, \
    (SELECT a.due_on FROM reintegration.actions a WHERE a.condition_id = c.condition_id \
     AND a.done_on IS NULL ORDER BY a.position LIMIT 1) AS next_due_on";

const TASK_FROM: &str =
    "reintegration.tasks t JOIN reintegration.conditions c ON c.condition_id = t.condition_id";

fn task_from_row(row: &PgRow) -> Result<Task, ApiError> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let condition_status: String = row.try_get("condition_status")?;
    Ok(Task {
        id: row.try_get("task_id")?,
        condition_id: row.try_get("condition_id")?,
        detention_id: row.try_get("detention_id")?,
        condition: stored("condition", Condition::parse(&kind), &kind)?,
        organisation: row.try_get("organisation")?,
        organisation_type: row.try_get("organisation_type")?,
        contact: Contact {
            name: row.try_get("contact_name")?,
            phone: row.try_get("contact_phone")?,
            email: row.try_get("contact_email")?,
        },
        status: stored("task status", TaskStatus::parse(&status), &status)?,
        action: row.try_get("next_action")?,
        due_on: row.try_get("next_due_on")?,
        condition_status: stored(
            "condition status",
            ConditionStatus::parse(&condition_status),
            &condition_status,
        )?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

/// A task by id, locked for the transaction when `lock`.
async fn fetch_task(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<Task>, ApiError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.task_id = $1{}",
        if lock { " FOR UPDATE OF t" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| task_from_row(&r))
        .transpose()
}

/// An episode by id, locked for the transaction when `lock`.
async fn fetch_detention(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<Detention>, ApiError> {
    let sql = format!(
        "SELECT {DETENTION_COLUMNS} FROM reintegration.detentions d WHERE d.detention_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| detention_from_row(&r))
        .transpose()
}

/// The conditions of an episode with their actions and open tasks, in plan order.
async fn load_conditions(
    conn: &mut PgConnection,
    detention_id: Uuid,
) -> Result<Vec<PlanCondition>, ApiError> {
    let rows = sqlx::query(
        "SELECT condition_id, kind, status, updated_at FROM reintegration.conditions \
         WHERE detention_id = $1",
    )
    .bind(detention_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut conditions = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let status: String = row.try_get("status")?;
        conditions.push(PlanCondition {
            id: row.try_get("condition_id")?,
            detention_id,
            kind: stored("condition", Condition::parse(&kind), &kind)?,
            status: stored("condition status", ConditionStatus::parse(&status), &status)?,
            actions: Vec::new(),
            task: None,
            updated_at: row.try_get("updated_at")?,
        });
    }
    let actions = sqlx::query(
        "SELECT action_id, condition_id, action, due_on, rule, policy_version, override_reason, \
         done_on, warned_at IS NOT NULL AS warned, missed_at IS NOT NULL AS missed \
         FROM reintegration.actions WHERE detention_id = $1 ORDER BY position, action",
    )
    .bind(detention_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &actions {
        let condition: Uuid = row.try_get("condition_id")?;
        let version: i32 = row.try_get("policy_version")?;
        let reason: Option<String> = row.try_get("override_reason")?;
        let action = PlanAction {
            id: row.try_get("action_id")?,
            action: row.try_get("action")?,
            due_on: row.try_get("due_on")?,
            rule: row.try_get("rule")?,
            policy_version: count(version, "policy version")?,
            override_reason: reason.as_deref().and_then(DueDateReason::parse),
            done_on: row.try_get("done_on")?,
            warned: row.try_get("warned")?,
            missed: row.try_get("missed")?,
        };
        if let Some(c) = conditions.iter_mut().find(|c| c.id == condition) {
            c.actions.push(action);
        }
    }
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.detention_id = $1 AND t.status = 'ASSIGNED'"
    );
    let tasks = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(detention_id)
        .fetch_all(&mut *conn)
        .await?;
    for row in &tasks {
        let task = task_from_row(row)?;
        if let Some(c) = conditions.iter_mut().find(|c| c.id == task.condition_id) {
            c.task = Some(task);
        }
    }
    conditions.sort_by_key(|c| Condition::ALL.iter().position(|k| *k == c.kind));
    Ok(conditions)
}

/// The conditions a partner (`org`) may see of a plan: those it holds a task for (assigned or
/// done).
async fn partner_conditions(
    conn: &mut PgConnection,
    detention_id: Uuid,
    org: &str,
) -> Result<Vec<Uuid>, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT condition_id FROM reintegration.tasks WHERE detention_id = $1 \
         AND organisation = $2 AND status <> 'WITHDRAWN'",
    )
    .bind(detention_id)
    .bind(org)
    .fetch_all(conn)
    .await?)
}

/// Serialises the changes of one episode (by its external reference), so that two events of a
/// new episode arriving at once make one episode.
async fn lock_episode(conn: &mut PgConnection, external_ref: &str) -> Result<(), ApiError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('zvv.reintegration.episode.' || $1))")
        .bind(external_ref)
        .execute(conn)
        .await?;
    Ok(())
}

async fn emit(conn: &mut PgConnection, event: Event, at: DateTime<Utc>) -> Result<(), ApiError> {
    outbox::append(conn, SCHEMA, &event, at).await?;
    Ok(())
}

/// Commits a successful call with its audit record.
async fn commit(
    tx: Tx,
    ctx: &CallContext,
    ids: Vec<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    audit::commit(tx, SCHEMA, ctx, ids, "OK", now).await?;
    Ok(())
}

/// Rolls back a call that failed; the call layer audits it.
async fn abandon(tx: Tx) -> Result<(), ApiError> {
    tx.rollback().await?;
    Ok(())
}

/// The first response stored under `key`, if any; locks the key for the transaction.
async fn first_response<T: DeserializeOwned>(
    conn: &mut PgConnection,
    key: &Key,
) -> Result<Option<T>, ApiError> {
    idempotency::first_response(conn, SCHEMA, key).await
}

/// A retry: the first response under `key`, audited with its `ids` as this call's record (the
/// transaction ends), or the transaction back to do the work in.
async fn replay<T: DeserializeOwned>(
    mut tx: Tx,
    ctx: &CallContext,
    key: &Key,
    ids: impl Fn(&T) -> Vec<Uuid>,
    now: DateTime<Utc>,
) -> Result<Result<T, Tx>, ApiError> {
    match first_response::<T>(&mut tx, key).await? {
        Some(first) => {
            commit(tx, ctx, ids(&first), now).await?;
            Ok(Ok(first))
        }
        None => Ok(Err(tx)),
    }
}

/// Stores the response of a successful call under its key, in its transaction.
async fn remember<T: Serialize>(
    conn: &mut PgConnection,
    key: &Key,
    response: &T,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    idempotency::remember(conn, SCHEMA, key, response, now).await
}
