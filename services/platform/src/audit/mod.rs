//! The audit log: one entry per call that reads or writes personal data, appended in the same
//! transaction as the change (denied and failed calls get one too).
//!
//! Appending is a plain INSERT: no lock, no read of an earlier row, so audited transactions commit
//! at the speed of the database. Behind them a [`seal::Sealer`] (in every replica, one at a time
//! per schema) chains the entries in batches: each seal holds the hash of the seal before and of
//! its entry's content. It seals an entry only once no transaction that could still commit
//! before it is running (the snapshot horizon), so a transaction that commits late is sealed
//! once, never skipped. At an interval the sealer signs the chain head ([`checkpoint`]) and writes
//! the checkpoint to the database and to an append-only file outside it. [`verify`] checks links,
//! content, single sealing and every checkpoint, so an edited, deleted, inserted or cut-off record
//! is found even when the database owner re-hashed the chain.
//!
//! The service's runtime role may only INSERT and SELECT the audit tables (see
//! [`crate::db::grant_runtime`]); the tables refuse UPDATE, DELETE and TRUNCATE by trigger too.

pub mod checkpoint;
pub mod seal;
pub mod verify;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{auth::Principal, db::Schema, error::ApiError};

pub use verify::{Anchors, Problem, ProblemKind, VerifyReport, verify};

/// Who made a call and in what circumstances; built by the server layer for every call.
///
/// Clones share one "audited" flag: the service sets it when it commits the call's record with
/// its change, and the call layer writes the record itself for every call that ends without one
/// (a failure, a request that could not be decoded, a timeout, a cancelled call), so that each
/// call leaves one record. For a failure the logic attaches the ids it concerned
/// ([`CallContext::attach`]) and the adapter turns the error into a status with
/// [`CallContext::fail`], which also keeps the error's audit result.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The RPC, e.g. `zvv.intake.v1.SubjectService/RegisterSubject`.
    pub action: String,
    /// `None` when the caller could not be authenticated.
    pub principal: Option<Principal>,
    pub peer: String,
    pub legal_basis: String,
    pub trace_id: String,
    /// The end user a suite service calls on behalf of (from [`crate::auth::END_USER_METADATA`],
    /// trusted only on a suite SERVICE token).
    pub end_user: Option<Principal>,
    pub audited: Arc<AtomicBool>,
    outcome: Arc<Mutex<Outcome>>,
}

/// What the logic told the call layer about a call it did not audit itself.
#[derive(Debug, Default)]
struct Outcome {
    object_ids: Vec<Uuid>,
    result: Option<&'static str>,
}

impl CallContext {
    /// A context for one call, not yet audited.
    pub fn new(action: String, peer: String, trace_id: String) -> Self {
        Self {
            action,
            principal: None,
            peer,
            legal_basis: String::new(),
            trace_id,
            end_user: None,
            audited: Arc::new(AtomicBool::new(false)),
            outcome: Arc::new(Mutex::new(Outcome::default())),
        }
    }

    /// The context of a background job's work (retention, a monitor, a re-encryption): the
    /// service itself, as the SUITE SERVICE principal `sub` of organisation `org`, acting under
    /// `legal_basis`, audited as `action` from `origin` (empty: the service itself).
    pub fn for_job(
        action: impl Into<String>,
        origin: impl Into<String>,
        sub: impl Into<String>,
        org: impl Into<String>,
        legal_basis: impl Into<String>,
    ) -> Self {
        let mut ctx = Self::new(action.into(), origin.into(), String::new());
        ctx.principal = Some(Principal {
            sub: sub.into(),
            org: org.into(),
            org_type: crate::auth::OrgType::Suite,
            roles: vec![crate::auth::Role::Service],
            municipalities: Vec::new(),
        });
        ctx.legal_basis = legal_basis.into();
        ctx
    }

    /// Names objects this call concerns, for the record the call layer writes when the call
    /// fails (ids only; duplicates are kept out).
    pub fn attach(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            if !outcome.object_ids.contains(&id) {
                outcome.object_ids.push(id);
            }
        }
    }

    /// Turns the logic's error into the caller's status and keeps its audit result (from the
    /// same error table) for the record the call layer writes.
    pub fn fail(&self, err: ApiError) -> tonic::Status {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .result = Some(err.audit_result());
        err.into_status()
    }

    /// The ids attached so far and the failure's audit result, if the logic reported one.
    pub fn outcome(&self) -> (Vec<Uuid>, Option<&'static str>) {
        let outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        (outcome.object_ids.clone(), outcome.result)
    }

    /// Who this call really is for: the end user a suite service named, else the caller. A
    /// service forwards this when it calls another service in turn.
    pub fn end_user_or_caller(&self) -> Principal {
        self.end_user.clone().unwrap_or_else(|| self.principal())
    }

    /// True once this call's audit record is committed.
    pub fn is_audited(&self) -> bool {
        self.audited.load(Ordering::SeqCst)
    }

    fn mark_audited(&self) {
        self.audited.store(true, Ordering::SeqCst);
    }

    /// The authenticated caller. Service code only runs for authenticated calls; the fallback
    /// keeps this total without a panic.
    pub fn principal(&self) -> Principal {
        self.principal.clone().unwrap_or_else(|| Principal {
            sub: String::new(),
            org: String::new(),
            org_type: crate::auth::OrgType::Suite,
            roles: Vec::new(),
            municipalities: Vec::new(),
        })
    }

    /// The record of this call with the given objects and result (`OK` or a gRPC code name).
    pub fn record(&self, object_ids: Vec<Uuid>, result: &str, at: DateTime<Utc>) -> AuditRecord {
        let (sub, org, org_type, roles) = match &self.principal {
            Some(p) => (
                p.sub.clone(),
                p.org.clone(),
                p.org_type.as_str().to_owned(),
                p.roles_text(),
            ),
            None => Default::default(),
        };
        let (end_user_sub, end_user_org, end_user_org_type, end_user_roles) = match &self.end_user {
            Some(u) => (
                u.sub.clone(),
                u.org.clone(),
                u.org_type.as_str().to_owned(),
                u.roles_text(),
            ),
            None => Default::default(),
        };
        AuditRecord {
            occurred_at: at.trunc_subsecs(6),
            action: self.action.clone(),
            object_ids,
            result: result.to_owned(),
            actor_sub: sub,
            actor_org: org,
            actor_org_type: org_type,
            actor_roles: roles,
            peer: self.peer.clone(),
            legal_basis: self.legal_basis.clone(),
            trace_id: self.trace_id.clone(),
            end_user_sub,
            end_user_org,
            end_user_org_type,
            end_user_roles,
        }
    }
}

/// One audit entry as the call writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub object_ids: Vec<Uuid>,
    pub result: String,
    pub actor_sub: String,
    pub actor_org: String,
    pub actor_org_type: String,
    pub actor_roles: String,
    pub peer: String,
    pub legal_basis: String,
    pub trace_id: String,
    /// The end user a suite service called on behalf of; empty when the caller is the end user.
    pub end_user_sub: String,
    pub end_user_org: String,
    pub end_user_org_type: String,
    pub end_user_roles: String,
}

/// A stored entry: the record plus what the database gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub entry_id: i64,
    /// The writing transaction's id (`xid8`, as text).
    pub txid: String,
    pub written_at: DateTime<Utc>,
    pub record: AuditRecord,
}

impl StoredEntry {
    /// sha256(prev_hash ‖ seq ‖ horizon ‖ entry id ‖ txid ‖ written_at ‖ every field of the
    /// record), each part prefixed with its length so that no two different entries encode
    /// alike. `horizon` is the seal's (see [`seal`]).
    pub fn seal_hash(&self, seq: i64, horizon: &str, prev_hash: &[u8]) -> Vec<u8> {
        let r = &self.record;
        let ids = r
            .object_ids
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut h = Sha256::new();
        h.update(prev_hash);
        for part in [
            seq.to_string().as_str(),
            horizon,
            &self.entry_id.to_string(),
            &self.txid,
            &self
                .written_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &r.occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &r.action,
            &ids,
            &r.result,
            &r.actor_sub,
            &r.actor_org,
            &r.actor_org_type,
            &r.actor_roles,
            &r.end_user_sub,
            &r.end_user_org,
            &r.end_user_org_type,
            &r.end_user_roles,
            &r.peer,
            &r.legal_basis,
            &r.trace_id,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().to_vec()
    }
}

/// The audit result of a call about an object outside the caller's jurisdiction. The caller gets
/// the same NOT_FOUND as for an unknown id; the record tells auditors which of the two it was, so
/// that probing across jurisdictions shows up.
pub const NOT_FOUND_OUTSIDE_JURISDICTION: &str = "NOT_FOUND:OUTSIDE_JURISDICTION";

/// The hash before the first seal.
pub const GENESIS: [u8; 32] = [0; 32];

/// The columns of an entry, as [`entry_from_row`] reads them.
pub const ENTRY_COLUMNS: &str = "entry_id, txid::text AS txid, written_at, occurred_at, \
    action, object_ids, result, actor_sub, actor_org, actor_org_type, actor_roles, end_user_sub, \
    end_user_org, end_user_org_type, end_user_roles, peer, legal_basis, trace_id";

/// An entry as read with [`ENTRY_COLUMNS`].
pub fn entry_from_row(row: &sqlx::postgres::PgRow) -> Result<StoredEntry, sqlx::Error> {
    use sqlx::Row;
    Ok(StoredEntry {
        entry_id: row.try_get("entry_id")?,
        txid: row.try_get("txid")?,
        written_at: row.try_get("written_at")?,
        record: AuditRecord {
            occurred_at: row.try_get("occurred_at")?,
            action: row.try_get("action")?,
            object_ids: row.try_get("object_ids")?,
            result: row.try_get("result")?,
            actor_sub: row.try_get("actor_sub")?,
            actor_org: row.try_get("actor_org")?,
            actor_org_type: row.try_get("actor_org_type")?,
            actor_roles: row.try_get("actor_roles")?,
            peer: row.try_get("peer")?,
            legal_basis: row.try_get("legal_basis")?,
            trace_id: row.try_get("trace_id")?,
            end_user_sub: row.try_get("end_user_sub")?,
            end_user_org: row.try_get("end_user_org")?,
            end_user_org_type: row.try_get("end_user_org_type")?,
            end_user_roles: row.try_get("end_user_roles")?,
        },
    })
}

/// Appends an entry inside the caller's transaction: one INSERT, no lock, no read.
pub async fn append(
    conn: &mut PgConnection,
    schema: Schema,
    record: &AuditRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(schema.sql(
        "INSERT INTO {schema}.audit_entries (occurred_at, action, object_ids, result, actor_sub, \
         actor_org, actor_org_type, actor_roles, end_user_sub, end_user_org, end_user_org_type, \
         end_user_roles, peer, legal_basis, trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    ))
    .bind(record.occurred_at)
    .bind(&record.action)
    .bind(&record.object_ids)
    .bind(&record.result)
    .bind(&record.actor_sub)
    .bind(&record.actor_org)
    .bind(&record.actor_org_type)
    .bind(&record.actor_roles)
    .bind(&record.end_user_sub)
    .bind(&record.end_user_org)
    .bind(&record.end_user_org_type)
    .bind(&record.end_user_roles)
    .bind(&record.peer)
    .bind(&record.legal_basis)
    .bind(&record.trace_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Why a call's transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// It failed before the commit: nothing took effect.
    #[error(transparent)]
    Failed(#[from] sqlx::Error),
    /// The connection broke during the commit: the change may or may not have taken effect.
    #[error("the outcome of the commit is unknown: {0}")]
    Unknown(sqlx::Error),
}

impl From<CommitError> for ApiError {
    fn from(err: CommitError) -> Self {
        match err {
            CommitError::Failed(e) => e.into(),
            CommitError::Unknown(e) => {
                tracing::warn!(error = %crate::error::cause_chain(&e), "connection lost while committing");
                ApiError::Unavailable(
                    "the database connection was lost while the change was being committed: it \
                     may or may not have taken effect; retry with the same request_id"
                        .to_owned(),
                )
            }
        }
    }
}

/// Appends the call's record to the caller's transaction, commits it, and marks the call
/// audited. A connection lost during the commit itself is [`CommitError::Unknown`].
pub async fn commit(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    schema: Schema,
    ctx: &CallContext,
    object_ids: Vec<Uuid>,
    result: &str,
    at: DateTime<Utc>,
) -> Result<(), CommitError> {
    append(&mut tx, schema, &ctx.record(object_ids, result, at)).await?;
    match tx.commit().await {
        Ok(()) => {}
        Err(e) if crate::error::database_fault(&e).is_some() => {
            return Err(CommitError::Unknown(e));
        }
        Err(e) => return Err(CommitError::Failed(e)),
    }
    ctx.mark_audited();
    Ok(())
}

/// Records a call that changed nothing (refused, failed) on its own: one INSERT, autocommit.
pub async fn record_alone(
    pool: &PgPool,
    schema: Schema,
    ctx: &CallContext,
    object_ids: Vec<Uuid>,
    result: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    append(&mut conn, schema, &ctx.record(object_ids, result, at)).await?;
    ctx.mark_audited();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor_sub: &str, actor_org: &str) -> StoredEntry {
        StoredEntry {
            entry_id: 7,
            txid: "1234".into(),
            written_at: Utc::now().trunc_subsecs(6),
            record: AuditRecord {
                occurred_at: Utc::now().trunc_subsecs(6),
                action: "a".into(),
                object_ids: vec![],
                result: "OK".into(),
                actor_sub: actor_sub.into(),
                actor_org: actor_org.into(),
                actor_org_type: String::new(),
                actor_roles: String::new(),
                peer: String::new(),
                legal_basis: String::new(),
                trace_id: String::new(),
                end_user_sub: String::new(),
                end_user_org: String::new(),
                end_user_org_type: String::new(),
                end_user_roles: String::new(),
            },
        }
    }

    #[test]
    fn every_part_is_in_the_hash_and_field_boundaries_count() {
        let a = entry("x\u{1f}y", "z");
        let mut b = entry("x", "y\u{1f}z");
        b.written_at = a.written_at;
        b.record.occurred_at = a.record.occurred_at;
        assert_ne!(a.seal_hash(1, "0", &GENESIS), b.seal_hash(1, "0", &GENESIS));
        assert_eq!(
            a.seal_hash(1, "0", &GENESIS),
            a.clone().seal_hash(1, "0", &GENESIS)
        );
        assert_ne!(a.seal_hash(1, "0", &GENESIS), a.seal_hash(2, "0", &GENESIS));
        let mut c = a.clone();
        c.record.end_user_org = "school-1".into();
        assert_ne!(a.seal_hash(1, "0", &GENESIS), c.seal_hash(1, "0", &GENESIS));
        let mut d = a.clone();
        d.txid = "1235".into();
        assert_ne!(a.seal_hash(1, "0", &GENESIS), d.seal_hash(1, "0", &GENESIS));
        assert_ne!(a.seal_hash(1, "0", &GENESIS), a.seal_hash(1, "1", &GENESIS));
        let mut e = a.clone();
        e.entry_id = 8;
        assert_ne!(a.seal_hash(1, "0", &GENESIS), e.seal_hash(1, "0", &GENESIS));
    }

    #[test]
    fn failures_keep_their_audit_result_and_ids() {
        let ctx = CallContext::new("a".into(), String::new(), String::new());
        let id = Uuid::now_v7();
        ctx.attach([id, id]);
        let status = ctx.clone().fail(ApiError::NotFound("x".into()));
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(ctx.outcome(), (vec![id], Some("NOT_FOUND")));
    }
}
