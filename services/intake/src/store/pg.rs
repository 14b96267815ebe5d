use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;
use zvv_platform::{
    audit::{self, CallContext},
    auth::Jurisdiction,
    bsn::{BsnVault, SealForm, SealedBsn},
    db::Schema,
    error::ApiError,
    idempotency::{self, Key},
    outbox::{self, Event},
};

use super::{
    Apply, ContextKey, LinkOutcome, ParentFamily, RegisterOutcome, ResolveOutcome, SubjectContext,
    SubjectRow, SubjectStore, UnlinkOutcome, Unseen, Visible,
};
use crate::domain::{Family, Relation, RelationKind, RelationSource, Unlink, relation_id};

pub const SCHEMA: Schema = Schema::new("intake");

const SUBJECT_COLUMNS: &str = "subject_id, bsn_lookup, bsn_ciphertext, bsn_key_id, bsn_aad, given_name, \
    family_name, birth_date, municipality_code, neighbourhood_code, date_of_death, created_at, \
    updated_at";

/// The PostgreSQL store of the registry (schema `intake`).
///
/// Every subject it hands out has been checked to open on its own row before the transaction
/// that reads it commits: a BSN ciphertext that cannot be opened there (moved from another row,
/// sealed with a key the vault lacks, or still in the legacy form) fails the call, which is then
/// rolled back and audited as failed by the call layer, not recorded as a read.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    vault: Arc<BsnVault>,
}

impl PgStore {
    pub fn new(pool: PgPool, vault: Arc<BsnVault>) -> Self {
        Self { pool, vault }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Fails when the subject's sealed BSN does not open on its row, or opens to a BSN whose
    /// lookup value is not the row's (a lookup value moved between rows); logged, never shown.
    fn intact(&self, row: &SubjectRow) -> Result<(), ApiError> {
        let bsn = self.vault.open(&row.bsn, row.id).map_err(|e| {
            ApiError::internal(format!(
                "the sealed BSN of subject {} (key {:?}) cannot be opened on its row: {e}",
                row.id, row.bsn.key_id
            ))
        })?;
        // snapshots of first responses from before the lookup value was kept hold none
        if !row.lookup.is_empty() && self.vault.lookup_key(&bsn) != row.lookup {
            return Err(ApiError::internal(format!(
                "the sealed BSN of subject {} does not match the row's lookup value",
                row.id
            )));
        }
        Ok(())
    }
}

/// The seal form stored in `bsn_aad`.
pub(crate) fn seal_form(code: i16) -> Result<SealForm, sqlx::Error> {
    SealForm::from_code(code).ok_or_else(|| {
        sqlx::Error::Decode(format!("unknown bsn_aad {code} in intake.subjects").into())
    })
}

fn subject_from_row(row: &PgRow) -> Result<SubjectRow, sqlx::Error> {
    Ok(SubjectRow {
        id: row.try_get("subject_id")?,
        bsn: SealedBsn {
            ciphertext: row.try_get("bsn_ciphertext")?,
            key_id: row.try_get("bsn_key_id")?,
            form: seal_form(row.try_get("bsn_aad")?)?,
        },
        lookup: row.try_get("bsn_lookup")?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        birth_date: row.try_get("birth_date")?,
        municipality_code: row.try_get("municipality_code")?,
        neighbourhood_code: row.try_get("neighbourhood_code")?,
        date_of_death: row.try_get("date_of_death")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const RELATION_COLUMNS: &str = "parent_subject_id, child_subject_id, kind, source, created_at";

fn relation_from_row(row: &PgRow) -> Result<Relation, ApiError> {
    let kind: String = row.try_get("kind")?;
    let source: Option<String> = row.try_get("source")?;
    Ok(Relation {
        parent: row.try_get("parent_subject_id")?,
        child: row.try_get("child_subject_id")?,
        kind: RelationKind::parse(&kind)
            .ok_or_else(|| ApiError::internal(format!("stored relation kind {kind:?}")))?,
        source: source.as_deref().and_then(RelationSource::parse),
        created_at: row.try_get("created_at")?,
    })
}

/// The subject `id` as seen by a caller with `scope` (locked for update when `lock`).
async fn seen(
    conn: &mut PgConnection,
    scope: &Jurisdiction,
    id: Uuid,
    lock: bool,
) -> Result<Visible<SubjectRow>, sqlx::Error> {
    Ok(match fetch_subject(conn, id, lock).await? {
        None => Visible::Missing,
        Some(row) if scope.covers_opt(row.municipality_code.as_deref()) => Visible::Yes(row),
        Some(_) => Visible::Outside,
    })
}

async fn fetch_subject(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<SubjectRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {SUBJECT_COLUMNS} FROM intake.subjects WHERE subject_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| subject_from_row(&r))
        .transpose()
}

async fn insert_subject(
    conn: &mut PgConnection,
    row: &SubjectRow,
    lookup: &[u8],
) -> Result<Option<SubjectRow>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO intake.subjects (subject_id, bsn_lookup, bsn_ciphertext, bsn_key_id, bsn_aad, \
         given_name, family_name, birth_date, municipality_code, neighbourhood_code, date_of_death, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $12, $5, $6, $7, $8, $9, $10, $11, $11) \
         ON CONFLICT (bsn_lookup) DO NOTHING RETURNING {SUBJECT_COLUMNS}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(row.id)
        .bind(lookup)
        .bind(&row.bsn.ciphertext)
        .bind(&row.bsn.key_id)
        .bind(&row.given_name)
        .bind(&row.family_name)
        .bind(row.birth_date)
        .bind(&row.municipality_code)
        .bind(&row.neighbourhood_code)
        .bind(row.date_of_death)
        .bind(row.created_at)
        .bind(row.bsn.form.code())
        .fetch_optional(conn)
        .await?
        .map(|r| subject_from_row(&r))
        .transpose()
}

/// The subject with this BSN lookup value, in one query.
async fn fetch_by_lookup(
    conn: &mut PgConnection,
    lookup: &[u8],
) -> Result<Option<SubjectRow>, sqlx::Error> {
    let sql = format!("SELECT {SUBJECT_COLUMNS} FROM intake.subjects WHERE bsn_lookup = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(lookup)
        .fetch_optional(conn)
        .await?
        .map(|r| subject_from_row(&r))
        .transpose()
}

/// Finds the subject with this lookup value, or inserts `create` (when given); a subject
/// registered concurrently by another call is found.
async fn find_or_create(
    conn: &mut PgConnection,
    lookup: &[u8],
    create: Option<SubjectRow>,
    now: DateTime<Utc>,
) -> Result<ResolveOutcome, ApiError> {
    if let Some(row) = fetch_by_lookup(conn, lookup).await? {
        return Ok(ResolveOutcome::Found(row));
    }
    let Some(new) = create else {
        return Ok(ResolveOutcome::NotFound);
    };
    match insert_subject(conn, &new, lookup).await? {
        Some(created) => {
            let mut event = Event::new("intake.subject.registered")
                .id("subject_id", created.id)
                .code("origin", "RESOLVE");
            if let Some(code) = &created.municipality_code {
                event = event.code("municipality_code", code.clone());
            }
            emit(conn, event, now).await?;
            Ok(ResolveOutcome::Created(created))
        }
        None => fetch_by_lookup(conn, lookup)
            .await?
            .map(ResolveOutcome::Found)
            .ok_or_else(|| ApiError::internal("bsn conflict without a row")),
    }
}

async fn emit(tx: &mut PgConnection, event: Event, at: DateTime<Utc>) -> Result<(), ApiError> {
    outbox::append(tx, SCHEMA, &event, at).await?;
    Ok(())
}

/// Serialises changes to relations (the cycle check must see every committed link).
async fn lock_relations(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('zvv.intake.relations'))")
        .execute(conn)
        .await?;
    Ok(())
}

async fn relation_exists(
    conn: &mut PgConnection,
    parent: Uuid,
    child: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM intake.relations WHERE parent_subject_id = $1 AND child_subject_id = $2)",
    )
    .bind(parent)
    .bind(child)
    .fetch_one(conn)
    .await
}

/// The first of the two subjects of a relation that the caller cannot see; `None` when both
/// are visible.
async fn unseen_pair(
    conn: &mut PgConnection,
    scope: &Jurisdiction,
    parent: Uuid,
    child: Uuid,
) -> Result<Option<Unseen>, sqlx::Error> {
    for (field, id) in [("parent_subject_id", parent), ("child_subject_id", child)] {
        match seen(conn, scope, id, false).await? {
            Visible::Yes(_) => {}
            Visible::Outside => {
                return Ok(Some(Unseen {
                    field,
                    outside: true,
                }));
            }
            Visible::Missing => {
                return Ok(Some(Unseen {
                    field,
                    outside: false,
                }));
            }
        }
    }
    Ok(None)
}

/// Appends the audit record and commits.
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

/// The first response of an idempotent call, as kept with its key until the key is purged.
#[derive(serde::Serialize, serde::Deserialize)]
struct SubjectSnapshot {
    id: Uuid,
    bsn_ciphertext: Vec<u8>,
    bsn_key_id: String,
    /// The seal form's code; snapshots from before it was kept hold legacy ciphertexts.
    #[serde(default = "legacy_form")]
    bsn_aad: i16,
    /// Empty in snapshots from before it was kept.
    #[serde(default)]
    bsn_lookup: Vec<u8>,
    given_name: Option<String>,
    family_name: Option<String>,
    birth_date: Option<chrono::NaiveDate>,
    municipality_code: Option<String>,
    neighbourhood_code: Option<String>,
    date_of_death: Option<chrono::NaiveDate>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn legacy_form() -> i16 {
    SealForm::Legacy.code()
}

fn snapshot(row: &SubjectRow) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(&SubjectSnapshot {
        id: row.id,
        bsn_ciphertext: row.bsn.ciphertext.clone(),
        bsn_key_id: row.bsn.key_id.clone(),
        bsn_aad: row.bsn.form.code(),
        bsn_lookup: row.lookup.clone(),
        given_name: row.given_name.clone(),
        family_name: row.family_name.clone(),
        birth_date: row.birth_date,
        municipality_code: row.municipality_code.clone(),
        neighbourhood_code: row.neighbourhood_code.clone(),
        date_of_death: row.date_of_death,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
    .map_err(ApiError::internal)
}

fn from_snapshot(bytes: &[u8]) -> Result<SubjectRow, ApiError> {
    let s: SubjectSnapshot = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::internal("stored idempotent response cannot be read"))?;
    Ok(SubjectRow {
        id: s.id,
        bsn: SealedBsn {
            ciphertext: s.bsn_ciphertext,
            key_id: s.bsn_key_id,
            form: SealForm::from_code(s.bsn_aad)
                .ok_or_else(|| ApiError::internal("stored idempotent response: unknown bsn_aad"))?,
        },
        lookup: s.bsn_lookup,
        given_name: s.given_name,
        family_name: s.family_name,
        birth_date: s.birth_date,
        municipality_code: s.municipality_code,
        neighbourhood_code: s.neighbourhood_code,
        date_of_death: s.date_of_death,
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RelationSnapshot {
    parent: Uuid,
    child: Uuid,
    kind: String,
    #[serde(default)]
    source: Option<String>,
    created_at: DateTime<Utc>,
}

fn relation_snapshot(r: &Relation) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(&RelationSnapshot {
        parent: r.parent,
        child: r.child,
        kind: r.kind.as_str().to_owned(),
        source: r.source.map(|s| s.as_str().to_owned()),
        created_at: r.created_at,
    })
    .map_err(ApiError::internal)
}

fn relation_from_snapshot(bytes: &[u8]) -> Result<Relation, ApiError> {
    let s: RelationSnapshot = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::internal("stored idempotent response cannot be read"))?;
    Ok(Relation {
        parent: s.parent,
        child: s.child,
        kind: RelationKind::parse(&s.kind)
            .ok_or_else(|| ApiError::internal("stored relation kind"))?,
        source: s.source.as_deref().and_then(RelationSource::parse),
        created_at: s.created_at,
    })
}

impl SubjectStore for PgStore {
    async fn register(
        &self,
        ctx: &CallContext,
        row: SubjectRow,
        lookup: Vec<u8>,
        idem: Key,
    ) -> Result<RegisterOutcome, ApiError> {
        let now = row.created_at;
        let mut tx = self.pool.begin().await?;
        if let Some(stored) = idempotency::lookup(&mut tx, SCHEMA, &idem).await? {
            let first = from_snapshot(&stored)?;
            self.intact(&first)?;
            finish(tx, ctx, vec![first.id], "OK", now).await?;
            return Ok(RegisterOutcome::Replayed(first));
        }
        match insert_subject(&mut tx, &row, &lookup).await? {
            Some(created) => {
                self.intact(&created)?;
                idempotency::store(&mut tx, SCHEMA, &idem, &snapshot(&created)?, now).await?;
                let mut event =
                    Event::new("intake.subject.registered").id("subject_id", created.id);
                if let Some(code) = &created.municipality_code {
                    event = event.code("municipality_code", code.clone());
                }
                emit(&mut tx, event, now).await?;
                finish(tx, ctx, vec![created.id], "OK", now).await?;
                Ok(RegisterOutcome::Created(created))
            }
            None => {
                let existing = fetch_by_lookup(&mut tx, &lookup)
                    .await?
                    .ok_or_else(|| ApiError::internal("bsn conflict without a row"))?;
                // the row holding this lookup value must really be this BSN's
                self.intact(&existing)?;
                tx.rollback().await?;
                Ok(RegisterOutcome::BsnTaken(
                    existing.id,
                    existing.municipality_code,
                ))
            }
        }
    }

    async fn resolve(
        &self,
        ctx: &CallContext,
        lookup: Vec<u8>,
        lookup_ref: Uuid,
        create: Option<SubjectRow>,
        now: DateTime<Utc>,
    ) -> Result<ResolveOutcome, ApiError> {
        let mut tx = self.pool.begin().await?;
        let outcome = find_or_create(&mut tx, &lookup, create, now).await?;
        match &outcome {
            // the lookup reference names the BSN in the record: probing is traceable
            ResolveOutcome::Found(r) | ResolveOutcome::Created(r) => {
                self.intact(r)?;
                finish(tx, ctx, vec![r.id, lookup_ref], "OK", now).await?;
            }
            ResolveOutcome::NotFound => tx.rollback().await?,
        }
        Ok(outcome)
    }

    async fn get(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Visible<SubjectRow>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let found = seen(&mut tx, scope, id, false).await?;
        if let Visible::Yes(row) = &found {
            self.intact(row)?;
            finish(tx, ctx, vec![id], "OK", now).await?;
        }
        Ok(found)
    }

    async fn update(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        idem: Option<Key>,
        fields: Vec<&'static str>,
        apply: Apply,
        now: DateTime<Utc>,
    ) -> Result<Visible<SubjectRow>, ApiError> {
        let mut tx = self.pool.begin().await?;
        if let Some(key) = &idem
            && let Some(stored) = idempotency::lookup(&mut tx, SCHEMA, key).await?
        {
            let first = from_snapshot(&stored)?;
            self.intact(&first)?;
            finish(tx, ctx, vec![id], "OK", now).await?;
            return Ok(Visible::Yes(first));
        }
        let mut row = match seen(&mut tx, scope, id, true).await? {
            Visible::Yes(row) => row,
            Visible::Outside => return Ok(Visible::Outside),
            Visible::Missing => return Ok(Visible::Missing),
        };
        self.intact(&row)?;
        let before_death = row.date_of_death;
        let before_municipality = row.municipality_code.clone();
        if let Err(e) = apply(&mut row) {
            tx.rollback().await?;
            return Err(e);
        }
        row.updated_at = now;
        sqlx::query(
            "UPDATE intake.subjects SET given_name = $2, family_name = $3, birth_date = $4, \
             municipality_code = $5, neighbourhood_code = $6, date_of_death = $7, updated_at = $8 \
             WHERE subject_id = $1",
        )
        .bind(id)
        .bind(&row.given_name)
        .bind(&row.family_name)
        .bind(row.birth_date)
        .bind(&row.municipality_code)
        .bind(&row.neighbourhood_code)
        .bind(row.date_of_death)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(key) = &idem {
            idempotency::store(&mut tx, SCHEMA, key, &snapshot(&row)?, now).await?;
        }
        let mut event = Event::new("intake.subject.updated").id("subject_id", id);
        for field in &fields {
            event = event.code(field, "CHANGED");
        }
        emit(&mut tx, event, now).await?;
        if before_municipality != row.municipality_code {
            // a move: from now on only the new municipality sees the subject
            let mut moved = Event::new("intake.subject.moved").id("subject_id", id);
            if let Some(from) = &before_municipality {
                moved = moved.code("from_municipality_code", from.clone());
            }
            if let Some(to) = &row.municipality_code {
                moved = moved.code("to_municipality_code", to.clone());
            }
            emit(&mut tx, moved, now).await?;
        }
        if before_death.is_none() && row.date_of_death.is_some() {
            emit(
                &mut tx,
                Event::new("intake.subject.deceased").id("subject_id", id),
                now,
            )
            .await?;
        }
        finish(tx, ctx, vec![id], "OK", now).await?;
        Ok(Visible::Yes(row))
    }

    async fn link(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        relation: Relation,
        idem: Key,
    ) -> Result<LinkOutcome, ApiError> {
        let now = relation.created_at;
        let ids = vec![relation.parent, relation.child];
        let mut tx = self.pool.begin().await?;
        // relations are few and linked rarely: one lock makes the cycle check race-free
        lock_relations(&mut tx).await?;
        if let Some(stored) = idempotency::lookup(&mut tx, SCHEMA, &idem).await? {
            let first = relation_from_snapshot(&stored)?;
            finish(tx, ctx, ids, "OK", now).await?;
            return Ok(LinkOutcome::Replayed(first));
        }
        if let Some(unseen) = unseen_pair(&mut tx, scope, relation.parent, relation.child).await? {
            return Ok(LinkOutcome::Missing(unseen));
        }
        let outcome = if relation_exists(&mut tx, relation.parent, relation.child).await? {
            LinkOutcome::Exists
        } else if sqlx::query_scalar::<_, bool>(
            // is the child already an ancestor of the parent?
            "WITH RECURSIVE ancestors(id) AS ( \
                 SELECT parent_subject_id FROM intake.relations WHERE child_subject_id = $1 \
                 UNION \
                 SELECT r.parent_subject_id FROM intake.relations r JOIN ancestors a ON r.child_subject_id = a.id \
             ) SELECT EXISTS (SELECT 1 FROM ancestors WHERE id = $2)",
        )
        .bind(relation.parent)
        .bind(relation.child)
        .fetch_one(&mut *tx)
        .await?
        {
            LinkOutcome::Cycle
        } else {
            sqlx::query(
                "INSERT INTO intake.relations (parent_subject_id, child_subject_id, kind, source, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(relation.parent)
            .bind(relation.child)
            .bind(relation.kind.as_str())
            .bind(relation.source.map(RelationSource::as_str))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            idempotency::store(&mut tx, SCHEMA, &idem, &relation_snapshot(&relation)?, now).await?;
            let mut event = Event::new("intake.relation.linked")
                .id("relation_id", relation_id(relation.parent, relation.child))
                .id("parent_subject_id", relation.parent)
                .id("child_subject_id", relation.child)
                .code("kind", relation.kind.as_str());
            if let Some(source) = relation.source {
                event = event.code("source", source.as_str());
            }
            emit(&mut tx, event, now).await?;
            LinkOutcome::Linked(relation)
        };
        if matches!(outcome, LinkOutcome::Linked(_)) {
            finish(tx, ctx, ids, "OK", now).await?;
        }
        Ok(outcome)
    }

    async fn unlink(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        unlink: Unlink,
        idem: Key,
        now: DateTime<Utc>,
    ) -> Result<UnlinkOutcome, ApiError> {
        let Unlink {
            parent,
            child,
            reason,
        } = unlink;
        let ids = vec![parent, child];
        let mut tx = self.pool.begin().await?;
        lock_relations(&mut tx).await?;
        if let Some(stored) = idempotency::lookup(&mut tx, SCHEMA, &idem).await? {
            let first = relation_from_snapshot(&stored)?;
            finish(tx, ctx, ids, "OK", now).await?;
            return Ok(UnlinkOutcome::Replayed(first));
        }
        if let Some(unseen) = unseen_pair(&mut tx, scope, parent, child).await? {
            return Ok(UnlinkOutcome::Missing(unseen));
        }
        let sql = format!(
            "DELETE FROM intake.relations WHERE parent_subject_id = $1 AND child_subject_id = $2 \
             RETURNING {RELATION_COLUMNS}"
        );
        let removed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(parent)
            .bind(child)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = removed else {
            return Ok(UnlinkOutcome::NoRelation);
        };
        let relation = relation_from_row(&row)?;
        idempotency::store(&mut tx, SCHEMA, &idem, &relation_snapshot(&relation)?, now).await?;
        let event = Event::new("intake.relation.unlinked")
            .id("relation_id", relation_id(parent, child))
            .id("parent_subject_id", parent)
            .id("child_subject_id", child)
            .code("kind", relation.kind.as_str())
            .code("reason", reason.as_str());
        emit(&mut tx, event, now).await?;
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(UnlinkOutcome::Unlinked(relation))
    }

    async fn list_relations(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        after: Option<(Uuid, Uuid)>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Visible<Vec<Relation>>, ApiError> {
        let mut tx = self.pool.begin().await?;
        match seen(&mut tx, scope, id, false).await? {
            Visible::Yes(_) => {}
            Visible::Outside => return Ok(Visible::Outside),
            Visible::Missing => return Ok(Visible::Missing),
        }
        let (after_parent, after_child) = after.unwrap_or((Uuid::nil(), Uuid::nil()));
        let sql = format!(
            "SELECT {RELATION_COLUMNS} FROM intake.relations \
             WHERE (parent_subject_id = $1 OR child_subject_id = $1) \
               AND (parent_subject_id, child_subject_id) > ($2, $3) \
             ORDER BY parent_subject_id, child_subject_id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(after_parent)
            .bind(after_child)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let relations = rows
            .iter()
            .map(relation_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut ids = vec![id];
        for r in &relations {
            ids.push(if r.parent == id { r.child } else { r.parent });
        }
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(Visible::Yes(relations))
    }

    async fn family(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Visible<Family>, ApiError> {
        let mut tx = self.pool.begin().await?;
        match seen(&mut tx, scope, id, false).await? {
            Visible::Yes(_) => {}
            Visible::Outside => return Ok(Visible::Outside),
            Visible::Missing => return Ok(Visible::Missing),
        }
        let parents: Vec<Uuid> = sqlx::query_scalar(
            "SELECT parent_subject_id FROM intake.relations WHERE child_subject_id = $1 ORDER BY 1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let siblings: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT child_subject_id FROM intake.relations \
             WHERE parent_subject_id = ANY($1) AND child_subject_id <> $2 ORDER BY 1",
        )
        .bind(&parents)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = vec![id];
        ids.extend(&parents);
        ids.extend(&siblings);
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(Visible::Yes(Family { siblings, parents }))
    }

    async fn context(
        &self,
        ctx: &CallContext,
        key: ContextKey,
        create: Option<SubjectRow>,
        now: DateTime<Utc>,
    ) -> Result<Option<SubjectContext>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let (subject, created, mut ids) = match &key {
            ContextKey::Id(id) => match fetch_subject(&mut tx, *id, false).await? {
                Some(row) => (row, false, vec![*id]),
                None => return Ok(None),
            },
            ContextKey::Bsn { lookup, lookup_ref } => {
                match find_or_create(&mut tx, lookup, create, now).await? {
                    ResolveOutcome::Found(row) => {
                        let id = row.id;
                        (row, false, vec![id, *lookup_ref])
                    }
                    ResolveOutcome::Created(row) => {
                        let id = row.id;
                        (row, true, vec![id, *lookup_ref])
                    }
                    ResolveOutcome::NotFound => return Ok(None),
                }
            }
        };
        self.intact(&subject)?;
        // every parent or guardian of the subject with all of their children, in one query
        let rows: Vec<(Uuid, String, Vec<Uuid>)> = sqlx::query_as(
            "SELECT r.parent_subject_id, min(p.kind), array_agg(r.child_subject_id ORDER BY r.child_subject_id) \
             FROM intake.relations p \
             JOIN intake.relations r ON r.parent_subject_id = p.parent_subject_id \
             WHERE p.child_subject_id = $1 \
             GROUP BY r.parent_subject_id ORDER BY r.parent_subject_id",
        )
        .bind(subject.id)
        .fetch_all(&mut *tx)
        .await?;
        let mut families = Vec::with_capacity(rows.len());
        for (parent, kind, children) in rows {
            for id in std::iter::once(parent).chain(children.iter().copied()) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            families.push(ParentFamily {
                parent,
                kind: RelationKind::parse(&kind)
                    .ok_or_else(|| ApiError::internal(format!("stored relation kind {kind:?}")))?,
                children,
            });
        }
        finish(tx, ctx, ids, "OK", now).await?;
        Ok(Some(SubjectContext {
            subject,
            created,
            families,
        }))
    }
}
