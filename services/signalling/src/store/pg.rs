use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;
use zvv_platform::{
    audit::{self, CallContext},
    db::Schema,
    error::ApiError,
    idempotency::{self, Key},
    outbox::{self, Event},
};

use crate::identity::Family;

use super::{CloseOutcome, MatchChange, MatchOutcome, RegisterOutcome, SignalStore};
use crate::domain::{
    CloseReason, Contact, Coordinator, InformationDuty, Match, MatchKind, Signal, SignalStatus,
};

pub const SCHEMA: Schema = Schema::new("signalling");

const SIGNAL_COLUMNS: &str = "s.signal_id, s.subject_id, s.organisation, s.organisation_type, \
    s.contact_name, s.contact_phone, s.contact_email, s.registered_on, s.duration_months, \
    s.expires_on, s.status, s.close_reason, s.closed_at, s.parents_informed_on, \
    s.child_informed_on, s.postponement_reason, s.birth_date, s.municipality_code, \
    s.neighbourhood_code, s.created_at";

/// The PostgreSQL store of signals and matches (schema `signalling`).
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn signal_from_row(row: &PgRow) -> Result<Signal, ApiError> {
    let status: String = row.try_get("status")?;
    let reason: Option<String> = row.try_get("close_reason")?;
    let months: i32 = row.try_get("duration_months")?;
    Ok(Signal {
        id: row.try_get("signal_id")?,
        subject_id: row.try_get("subject_id")?,
        organisation: row.try_get("organisation")?,
        organisation_type: row.try_get("organisation_type")?,
        contact: Contact {
            name: row.try_get("contact_name")?,
            phone: row.try_get("contact_phone")?,
            email: row.try_get("contact_email")?,
        },
        registered_on: row.try_get("registered_on")?,
        duration_months: u32::try_from(months).map_err(ApiError::internal)?,
        expires_on: row.try_get("expires_on")?,
        status: SignalStatus::parse(&status)
            .ok_or_else(|| ApiError::internal(format!("stored signal status {status:?}")))?,
        close_reason: reason.as_deref().and_then(CloseReason::parse),
        closed_at: row.try_get("closed_at")?,
        parents_informed_on: row.try_get("parents_informed_on")?,
        child_informed_on: row.try_get("child_informed_on")?,
        postponement_reason: row.try_get("postponement_reason")?,
        birth_date: row.try_get("birth_date")?,
        municipality_code: row.try_get("municipality_code")?,
        neighbourhood_code: row.try_get("neighbourhood_code")?,
        created_at: row.try_get("created_at")?,
    })
}

async fn fetch_signal(
    conn: &mut PgConnection,
    organisation: &str,
    id: Uuid,
    lock: bool,
) -> Result<Option<Signal>, ApiError> {
    let sql = format!(
        "SELECT {SIGNAL_COLUMNS} FROM signalling.signals s WHERE s.signal_id = $1 AND s.organisation = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(organisation)
        .fetch_optional(conn)
        .await?
        .map(|r| signal_from_row(&r))
        .transpose()
}

/// The matches with these ids, each with its current signals.
async fn load_matches(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Match>, ApiError> {
    let rows = sqlx::query(
        "SELECT match_id, kind, status, coordinator_org, coordinator_name, coordinator_phone, \
         coordinator_email, coordinator_at, coordinated, created_at, updated_at \
         FROM signalling.matches WHERE match_id = ANY($1) ORDER BY match_id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let sql = format!(
        "SELECT ms.match_id, {SIGNAL_COLUMNS} FROM signalling.match_signals ms \
         JOIN signalling.signals s ON s.signal_id = ms.signal_id \
         WHERE ms.match_id = ANY($1) ORDER BY s.created_at, s.signal_id"
    );
    let signal_rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut matches = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("match_id")?;
        let kind: String = row.try_get("kind")?;
        let status: String = row.try_get("status")?;
        let coordinator = match row.try_get::<Option<String>, _>("coordinator_org")? {
            Some(organisation) => Some(Coordinator {
                organisation,
                contact: Contact {
                    name: row
                        .try_get::<Option<String>, _>("coordinator_name")?
                        .unwrap_or_default(),
                    phone: row
                        .try_get::<Option<String>, _>("coordinator_phone")?
                        .unwrap_or_default(),
                    email: row
                        .try_get::<Option<String>, _>("coordinator_email")?
                        .unwrap_or_default(),
                },
                assigned_at: row
                    .try_get::<Option<DateTime<Utc>>, _>("coordinator_at")?
                    .unwrap_or_default(),
            }),
            None => None,
        };
        let mut signals = Vec::new();
        for s in &signal_rows {
            if s.try_get::<Uuid, _>("match_id")? == id {
                signals.push(signal_from_row(s)?);
            }
        }
        matches.push(Match {
            id,
            kind: MatchKind::parse(&kind)
                .ok_or_else(|| ApiError::internal(format!("stored match kind {kind:?}")))?,
            open: status == "OPEN",
            signals,
            coordinator,
            coordinated: row.try_get("coordinated")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        });
    }
    Ok(matches)
}

async fn matches_of_signal(conn: &mut PgConnection, signal: Uuid) -> Result<Vec<Match>, ApiError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT ms.match_id FROM signalling.match_signals ms \
         JOIN signalling.matches m ON m.match_id = ms.match_id \
         WHERE ms.signal_id = $1 AND m.status = 'OPEN'",
    )
    .bind(signal)
    .fetch_all(&mut *conn)
    .await?;
    load_matches(conn, &ids).await
}

async fn emit(tx: &mut PgConnection, event: Event, at: DateTime<Utc>) -> Result<(), ApiError> {
    outbox::append(tx, SCHEMA, &event, at).await?;
    Ok(())
}

async fn finish(
    tx: Transaction<'_, Postgres>,
    ctx: &CallContext,
    ids: Vec<Uuid>,
    result: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    audit::commit(tx, SCHEMA, ctx, ids, result, now).await?;
    Ok(())
}

/// Serialises all changes that concern one subject, so that two organisations registering at the
/// same moment produce exactly one match.
async fn lock_subject(conn: &mut PgConnection, subject: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('zvv.signalling.subject.' || $1::text))")
        .bind(subject)
        .execute(conn)
        .await?;
    Ok(())
}

/// Brings the subject's CLIENT match in line with its active signals: opened when two or more
/// organisations signal, joined by new signals, closed when fewer than two organisations remain.
async fn reconcile_client_match(
    conn: &mut PgConnection,
    subject: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, ApiError> {
    let active: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT signal_id, organisation FROM signalling.signals \
         WHERE subject_id = $1 AND status = 'ACTIVE' ORDER BY created_at, signal_id",
    )
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    let mut organisations: Vec<&str> = active.iter().map(|(_, o)| o.as_str()).collect();
    organisations.sort_unstable();
    organisations.dedup();
    let open: Option<Uuid> = sqlx::query_scalar(
        "SELECT match_id FROM signalling.matches \
         WHERE kind = 'CLIENT' AND anchor_subject_id = $1 AND status = 'OPEN'",
    )
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;

    if organisations.len() < 2 {
        if let Some(id) = open {
            close_match(conn, id, MatchKind::Client, now).await?;
        }
        return Ok(None);
    }
    let ids: Vec<Uuid> = active.iter().map(|(s, _)| *s).collect();
    let id = upsert_match(conn, open, MatchKind::Client, subject, &ids, now).await?;
    Ok(Some(id))
}

/// Brings the FAMILY match anchored at a parent in line with the active signals on the
/// parent's children: open while two or more children have signals from two or more
/// organisations.
async fn reconcile_family_match(
    conn: &mut PgConnection,
    family: &Family,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let active: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT signal_id, subject_id, organisation FROM signalling.signals \
         WHERE subject_id = ANY($1) AND status = 'ACTIVE' ORDER BY created_at, signal_id",
    )
    .bind(&family.children)
    .fetch_all(&mut *conn)
    .await?;
    let mut children: Vec<Uuid> = active.iter().map(|(_, c, _)| *c).collect();
    children.sort_unstable();
    children.dedup();
    let mut organisations: Vec<&str> = active.iter().map(|(_, _, o)| o.as_str()).collect();
    organisations.sort_unstable();
    organisations.dedup();
    let open: Option<Uuid> = sqlx::query_scalar(
        "SELECT match_id FROM signalling.matches \
         WHERE kind = 'FAMILY' AND anchor_subject_id = $1 AND status = 'OPEN'",
    )
    .bind(family.parent)
    .fetch_optional(&mut *conn)
    .await?;
    if children.len() < 2 || organisations.len() < 2 {
        if let Some(id) = open {
            close_match(conn, id, MatchKind::Family, now).await?;
        }
        return Ok(());
    }
    let signal_ids: Vec<Uuid> = active.iter().map(|(s, _, _)| *s).collect();
    upsert_match(
        conn,
        open,
        MatchKind::Family,
        family.parent,
        &signal_ids,
        now,
    )
    .await?;
    Ok(())
}

async fn close_match(
    conn: &mut PgConnection,
    id: Uuid,
    kind: MatchKind,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE signalling.matches SET status = 'CLOSED', updated_at = $2 WHERE match_id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    emit(
        conn,
        Event::new("signalling.match.closed")
            .id("match_id", id)
            .code("kind", kind.as_str()),
        now,
    )
    .await
}

/// Opens a match (when `open` is none) or adds signals to it, with the matching event.
async fn upsert_match(
    conn: &mut PgConnection,
    open: Option<Uuid>,
    kind: MatchKind,
    anchor: Uuid,
    signal_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Uuid, ApiError> {
    let (id, created) = match open {
        Some(id) => (id, false),
        None => {
            let id = zvv_platform::ids::new_id();
            sqlx::query(
                "INSERT INTO signalling.matches (match_id, kind, status, anchor_subject_id, created_at, updated_at) \
                 VALUES ($1, $2, 'OPEN', $3, $4, $4)",
            )
            .bind(id)
            .bind(kind.as_str())
            .bind(anchor)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            (id, true)
        }
    };
    let added = sqlx::query(
        "INSERT INTO signalling.match_signals (match_id, signal_id) SELECT $1, unnest($2::uuid[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(signal_ids)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if created {
        emit(
            conn,
            Event::new("signalling.match.created")
                .id("match_id", id)
                .code("kind", kind.as_str()),
            now,
        )
        .await?;
    } else if added > 0 {
        sqlx::query("UPDATE signalling.matches SET updated_at = $2 WHERE match_id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        emit(
            conn,
            Event::new("signalling.match.updated")
                .id("match_id", id)
                .code("kind", kind.as_str()),
            now,
        )
        .await?;
    }
    Ok(id)
}

/// Closes the FAMILY matches among `ids` that no longer have two children and two
/// organisations (after a signal left them).
async fn close_shrunk_family_matches(
    conn: &mut PgConnection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let shrunk: Vec<Uuid> = sqlx::query_scalar(
        "SELECT m.match_id FROM signalling.matches m \
         LEFT JOIN signalling.match_signals ms ON ms.match_id = m.match_id \
         LEFT JOIN signalling.signals s ON s.signal_id = ms.signal_id \
         WHERE m.match_id = ANY($1) AND m.kind = 'FAMILY' AND m.status = 'OPEN' \
         GROUP BY m.match_id \
         HAVING count(DISTINCT s.organisation) < 2 OR count(DISTINCT s.subject_id) < 2",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for id in shrunk {
        close_match(conn, id, MatchKind::Family, now).await?;
    }
    Ok(())
}

fn match_ids(matches: &[Match]) -> impl Iterator<Item = Uuid> + '_ {
    matches.iter().map(|m| m.id)
}

impl SignalStore for PgStore {
    async fn record_information_duty(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        duty: InformationDuty,
        now: DateTime<Utc>,
    ) -> Result<Option<Signal>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let Some(mut signal) = fetch_signal(&mut tx, organisation, id, true).await? else {
            finish(tx, ctx, vec![id], "NOT_FOUND", now).await?;
            return Ok(None);
        };
        sqlx::query(
            "UPDATE signalling.signals SET parents_informed_on = $2, child_informed_on = $3, \
             postponement_reason = $4 WHERE signal_id = $1",
        )
        .bind(id)
        .bind(duty.parents_informed_on)
        .bind(duty.child_informed_on)
        .bind(&duty.postponement_reason)
        .execute(&mut *tx)
        .await?;
        signal.parents_informed_on = duty.parents_informed_on;
        signal.child_informed_on = duty.child_informed_on;
        signal.postponement_reason = duty.postponement_reason;
        let met = if signal.information_duty_met() {
            "MET"
        } else {
            "NOT_MET"
        };
        emit(
            &mut tx,
            Event::new("signalling.signal.information_duty_recorded")
                .id("signal_id", id)
                .code("information_duty", met),
            now,
        )
        .await?;
        finish(tx, ctx, vec![id, signal.subject_id], "OK", now).await?;
        Ok(Some(signal))
    }

    async fn change_match(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        change: MatchChange,
        now: DateTime<Utc>,
    ) -> Result<MatchOutcome, ApiError> {
        let mut tx = self.pool.begin().await?;
        let locked: Option<bool> = sqlx::query_scalar(
            "SELECT coordinator_org IS NOT NULL FROM signalling.matches WHERE match_id = $1 AND status = 'OPEN' FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let participants: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT s.organisation FROM signalling.match_signals ms \
             JOIN signalling.signals s ON s.signal_id = ms.signal_id WHERE ms.match_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let Some(has_coordinator) =
            locked.filter(|_| participants.iter().any(|p| p == organisation))
        else {
            finish(tx, ctx, vec![id], "NOT_FOUND", now).await?;
            return Ok(MatchOutcome::NotFound);
        };
        match change {
            MatchChange::AssignCoordinator(c) => {
                if !participants.contains(&c.organisation) {
                    finish(tx, ctx, vec![id], "FAILED_PRECONDITION", now).await?;
                    return Ok(MatchOutcome::CoordinatorNotParticipant);
                }
                sqlx::query(
                    "UPDATE signalling.matches SET coordinator_org = $2, coordinator_name = $3, \
                     coordinator_phone = $4, coordinator_email = $5, coordinator_at = $6, updated_at = $6 \
                     WHERE match_id = $1",
                )
                .bind(id)
                .bind(&c.organisation)
                .bind(&c.contact.name)
                .bind(&c.contact.phone)
                .bind(&c.contact.email)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                emit(
                    &mut tx,
                    Event::new("signalling.match.coordinator_assigned").id("match_id", id),
                    now,
                )
                .await?;
            }
            MatchChange::MarkCoordinated => {
                if !has_coordinator {
                    finish(tx, ctx, vec![id], "FAILED_PRECONDITION", now).await?;
                    return Ok(MatchOutcome::NoCoordinator);
                }
                sqlx::query("UPDATE signalling.matches SET coordinated = true, updated_at = $2 WHERE match_id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                emit(
                    &mut tx,
                    Event::new("signalling.match.coordinated").id("match_id", id),
                    now,
                )
                .await?;
            }
        }
        let changed = load_matches(&mut tx, &[id])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("match vanished"))?;
        finish(tx, ctx, vec![id], "OK", now).await?;
        Ok(MatchOutcome::Changed(Box::new(changed)))
    }

    async fn replay(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Option<(Signal, Vec<Match>)>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let Some(stored) = idempotency::lookup(&mut tx, SCHEMA, key).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id = Uuid::from_slice(&stored)
            .map_err(|_| ApiError::internal("stored response is not an id"))?;
        let organisation = ctx.principal().org;
        let first = fetch_signal(&mut tx, &organisation, id, false)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound("the signal this request registered no longer exists".into())
            })?;
        let matches = matches_of_signal(&mut tx, id).await?;
        let mut ids = vec![first.id, first.subject_id];
        ids.extend(match_ids(&matches));
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(Some((first, matches)))
    }

    async fn register(
        &self,
        ctx: &CallContext,
        signal: Signal,
        mut families: Vec<Family>,
        idem: Key,
    ) -> Result<RegisterOutcome, ApiError> {
        let now = signal.created_at;
        let mut tx = self.pool.begin().await?;
        lock_subject(&mut tx, signal.subject_id).await?;
        // families are locked by parent, always in the same order, so that concurrent
        // registrations on siblings make one family match and never deadlock
        families.sort_by_key(|f| f.parent);
        for family in &families {
            lock_subject(&mut tx, family.parent).await?;
        }
        if let Some(stored) = idempotency::lookup(&mut tx, SCHEMA, &idem).await? {
            let id = Uuid::from_slice(&stored)
                .map_err(|_| ApiError::internal("stored response is not an id"))?;
            let first = fetch_signal(&mut tx, &signal.organisation, id, false)
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound("the signal this request registered no longer exists".into())
                })?;
            let matches = matches_of_signal(&mut tx, id).await?;
            let mut ids = vec![first.id, first.subject_id];
            ids.extend(match_ids(&matches));
            finish(tx, ctx, ids, "OK", now).await?;
            return Ok(RegisterOutcome::Replayed(first, matches));
        }
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT signal_id FROM signalling.signals WHERE subject_id = $1 AND organisation = $2 AND status = 'ACTIVE'",
        )
        .bind(signal.subject_id)
        .bind(&signal.organisation)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing {
            finish(
                tx,
                ctx,
                vec![existing, signal.subject_id],
                "ALREADY_EXISTS",
                now,
            )
            .await?;
            return Ok(RegisterOutcome::Duplicate(existing));
        }
        sqlx::query(
            "INSERT INTO signalling.signals (signal_id, subject_id, organisation, organisation_type, \
             contact_name, contact_phone, contact_email, registered_on, duration_months, expires_on, \
             status, birth_date, municipality_code, neighbourhood_code, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'ACTIVE', $11, $12, $13, $14)",
        )
        .bind(signal.id)
        .bind(signal.subject_id)
        .bind(&signal.organisation)
        .bind(&signal.organisation_type)
        .bind(&signal.contact.name)
        .bind(&signal.contact.phone)
        .bind(&signal.contact.email)
        .bind(signal.registered_on)
        .bind(i32::try_from(signal.duration_months).map_err(ApiError::internal)?)
        .bind(signal.expires_on)
        .bind(signal.birth_date)
        .bind(&signal.municipality_code)
        .bind(&signal.neighbourhood_code)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        idempotency::store(&mut tx, SCHEMA, &idem, signal.id.as_bytes(), now).await?;
        emit(
            &mut tx,
            Event::new("signalling.signal.registered")
                .id("signal_id", signal.id)
                .id("subject_id", signal.subject_id)
                .code("organisation_type", signal.organisation_type.clone()),
            now,
        )
        .await?;
        reconcile_client_match(&mut tx, signal.subject_id, now).await?;
        for family in &families {
            reconcile_family_match(&mut tx, family, now).await?;
        }
        let matches = matches_of_signal(&mut tx, signal.id).await?;
        let mut ids = vec![signal.id, signal.subject_id];
        ids.extend(match_ids(&matches));
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(RegisterOutcome::Created(signal, matches))
    }

    async fn close(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        reason: CloseReason,
        now: DateTime<Utc>,
    ) -> Result<CloseOutcome, ApiError> {
        let mut tx = self.pool.begin().await?;
        let Some(found) = fetch_signal(&mut tx, organisation, id, false).await? else {
            finish(tx, ctx, vec![id], "NOT_FOUND", now).await?;
            return Ok(CloseOutcome::NotFound);
        };
        lock_subject(&mut tx, found.subject_id).await?;
        let Some(mut signal) = fetch_signal(&mut tx, organisation, id, true).await? else {
            finish(tx, ctx, vec![id], "NOT_FOUND", now).await?;
            return Ok(CloseOutcome::NotFound);
        };
        if signal.status != SignalStatus::Active {
            finish(tx, ctx, vec![id], "FAILED_PRECONDITION", now).await?;
            return Ok(CloseOutcome::NotActive(signal.status));
        }
        // the families this signal is matched in, locked as registrations lock them
        let parents: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT m.anchor_subject_id FROM signalling.matches m \
             JOIN signalling.match_signals ms ON ms.match_id = m.match_id \
             WHERE ms.signal_id = $1 AND m.kind = 'FAMILY' AND m.status = 'OPEN' ORDER BY 1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for parent in parents {
            lock_subject(&mut tx, parent).await?;
        }
        sqlx::query(
            "UPDATE signalling.signals SET status = 'CLOSED', close_reason = $2, closed_at = $3 WHERE signal_id = $1",
        )
        .bind(id)
        .bind(reason.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // the organisation leaves every open match it was in through this signal
        let left: Vec<Uuid> = sqlx::query_scalar(
            "DELETE FROM signalling.match_signals ms USING signalling.matches m \
             WHERE ms.match_id = m.match_id AND ms.signal_id = $1 AND m.status = 'OPEN' RETURNING ms.match_id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for m in &left {
            emit(
                &mut tx,
                Event::new("signalling.match.updated").id("match_id", *m),
                now,
            )
            .await?;
        }
        emit(
            &mut tx,
            Event::new("signalling.signal.closed")
                .id("signal_id", id)
                .code("reason", reason.as_str()),
            now,
        )
        .await?;
        reconcile_client_match(&mut tx, signal.subject_id, now).await?;
        close_shrunk_family_matches(&mut tx, &left, now).await?;
        signal.status = SignalStatus::Closed;
        signal.close_reason = Some(reason);
        signal.closed_at = Some(now);
        let mut ids = vec![id, signal.subject_id];
        ids.extend(left);
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(CloseOutcome::Closed(Box::new(signal)))
    }

    async fn get(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Signal>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let signal = fetch_signal(&mut tx, organisation, id, false).await?;
        let (ids, result) = match &signal {
            Some(s) => (vec![id, s.subject_id], "OK"),
            None => (vec![id], "NOT_FOUND"),
        };
        finish(tx, ctx, ids, result, now).await?;
        Ok(signal)
    }

    async fn list(
        &self,
        ctx: &CallContext,
        organisation: &str,
        status: Option<SignalStatus>,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Signal>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {SIGNAL_COLUMNS} FROM signalling.signals s WHERE s.organisation = $1 \
             AND ($2::text IS NULL OR s.status = $2) AND s.signal_id > $3 ORDER BY s.signal_id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organisation)
            .bind(status.map(SignalStatus::as_str))
            .bind(after.unwrap_or_else(Uuid::nil))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let signals = rows
            .iter()
            .map(signal_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids = signals.iter().flat_map(|s| [s.id, s.subject_id]).collect();
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(signals)
    }

    async fn list_matches(
        &self,
        ctx: &CallContext,
        organisation: &str,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Match>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT ms.match_id FROM signalling.match_signals ms \
             JOIN signalling.signals s ON s.signal_id = ms.signal_id \
             WHERE s.organisation = $1 AND ms.match_id > $2 ORDER BY ms.match_id LIMIT $3",
        )
        .bind(organisation)
        .bind(after.unwrap_or_else(Uuid::nil))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let matches = load_matches(&mut tx, &ids).await?;
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(matches)
    }

    async fn get_match(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Match>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let member: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM signalling.match_signals ms \
             JOIN signalling.signals s ON s.signal_id = ms.signal_id \
             WHERE ms.match_id = $1 AND s.organisation = $2)",
        )
        .bind(id)
        .bind(organisation)
        .fetch_one(&mut *tx)
        .await?;
        if !member {
            finish(tx, ctx, vec![id], "NOT_FOUND", now).await?;
            return Ok(None);
        }
        let found = load_matches(&mut tx, &[id]).await?.into_iter().next();
        finish(tx, ctx, vec![id], "OK", now).await?;
        Ok(found)
    }

    async fn statistics(
        &self,
        ctx: &CallContext,
        municipality: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, Uuid, chrono::NaiveDate, String)>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(String, Uuid, chrono::NaiveDate, String)> = sqlx::query_as(
            "SELECT DISTINCT coalesce(neighbourhood_code, 'UNKNOWN'), subject_id, birth_date, organisation_type \
             FROM signalling.signals \
             WHERE municipality_code = $1 AND registered_on <= $3 AND expires_on >= $2 \
               AND (closed_at IS NULL OR closed_at::date >= $2)",
        )
        .bind(municipality)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        // aggregated figures, no person is returned: the record names no subject
        audit::commit(tx, SCHEMA, ctx, vec![], "OK", now).await?;
        Ok(rows)
    }

    async fn audit_failure(
        &self,
        ctx: &CallContext,
        ids: Vec<Uuid>,
        result: &'static str,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        audit::record_alone(&self.pool, SCHEMA, ctx, ids, result, now).await?;
        Ok(())
    }
}
