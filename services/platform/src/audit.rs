//! The audit log: one record per call that reads or writes personal data, appended in the same
//! transaction as the change (denied and failed calls get one too). Records are hash-chained:
//! each holds the hash of the one before, so changing or removing a record breaks the chain at
//! that point, and [`verify`] reports the first broken link. The table itself refuses UPDATE,
//! DELETE and TRUNCATE (see the platform migration).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::{auth::Principal, db::Schema};

/// Who made a call and in what circumstances; built by the server layer for every call.
///
/// Clones share one "audited" flag: the service sets it when it commits the call's record, and
/// the call layer writes the record itself for every call that ends without one (a request that
/// could not be decoded, a timeout, a cancelled call), so that each call leaves one record.
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
        }
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

/// One audit record before it is chained.
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

impl AuditRecord {
    /// sha256(prev_hash ‖ seq ‖ every field), each field prefixed with its length. The end-user
    /// fields are hashed only when one is set, so that records written before they existed keep
    /// their hashes; filling them in or blanking them later still changes the hash.
    fn chain_hash(&self, seq: i64, prev_hash: &[u8]) -> Vec<u8> {
        let ids = self
            .object_ids
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut h = Sha256::new();
        h.update(prev_hash);
        for part in [
            seq.to_string().as_str(),
            &self
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &self.action,
            &ids,
            &self.result,
            &self.actor_sub,
            &self.actor_org,
            &self.actor_org_type,
            &self.actor_roles,
            &self.peer,
            &self.legal_basis,
            &self.trace_id,
        ] {
            // length-prefixed, so that no two different records encode alike
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let end_user = [
            &self.end_user_sub,
            &self.end_user_org,
            &self.end_user_org_type,
            &self.end_user_roles,
        ];
        if end_user.iter().any(|p| !p.is_empty()) {
            for part in end_user {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
        }
        h.finalize().to_vec()
    }
}

/// The audit result of a call about an object outside the caller's jurisdiction. The caller gets
/// the same NOT_FOUND as for an unknown id; the record tells auditors which of the two it was, so
/// that probing across jurisdictions shows up.
pub const NOT_FOUND_OUTSIDE_JURISDICTION: &str = "NOT_FOUND:OUTSIDE_JURISDICTION";

/// The hash before the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// Appends a record inside the caller's transaction. Appends are serialised per schema with a
/// transaction-scoped advisory lock, held from here until the transaction ends; call this as
/// the last statement before commit to keep that window short.
pub async fn append(
    conn: &mut PgConnection,
    schema: Schema,
    record: &AuditRecord,
) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("zvv.audit.{}", schema.name()))
        .execute(&mut *conn)
        .await?;
    let last = sqlx::query(
        schema.sql("SELECT seq, hash FROM {schema}.audit_log ORDER BY seq DESC LIMIT 1"),
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (seq, prev_hash) = match last {
        Some(row) => (row.try_get::<i64, _>(0)? + 1, row.try_get::<Vec<u8>, _>(1)?),
        None => (1, GENESIS.to_vec()),
    };
    let hash = record.chain_hash(seq, &prev_hash);
    sqlx::query(schema.sql(
        "INSERT INTO {schema}.audit_log (seq, occurred_at, action, object_ids, result, actor_sub, \
         actor_org, actor_org_type, actor_roles, peer, legal_basis, trace_id, prev_hash, hash, \
         end_user_sub, end_user_org, end_user_org_type, end_user_roles) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    ))
    .bind(seq)
    .bind(record.occurred_at)
    .bind(&record.action)
    .bind(&record.object_ids)
    .bind(&record.result)
    .bind(&record.actor_sub)
    .bind(&record.actor_org)
    .bind(&record.actor_org_type)
    .bind(&record.actor_roles)
    .bind(&record.peer)
    .bind(&record.legal_basis)
    .bind(&record.trace_id)
    .bind(&prev_hash)
    .bind(&hash)
    .bind(&record.end_user_sub)
    .bind(&record.end_user_org)
    .bind(&record.end_user_org_type)
    .bind(&record.end_user_roles)
    .execute(&mut *conn)
    .await?;
    Ok(seq)
}

/// Appends the call's record to the caller's transaction, commits it, and marks the call
/// audited.
pub async fn commit(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    schema: Schema,
    ctx: &CallContext,
    object_ids: Vec<Uuid>,
    result: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    append(&mut tx, schema, &ctx.record(object_ids, result, at)).await?;
    tx.commit().await?;
    ctx.mark_audited();
    Ok(())
}

/// Records a call that changed nothing (refused, failed) in a transaction of its own.
pub async fn record_alone(
    pool: &PgPool,
    schema: Schema,
    ctx: &CallContext,
    object_ids: Vec<Uuid>,
    result: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    commit(pool.begin().await?, schema, ctx, object_ids, result, at).await
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked (up to and including the first broken one).
    pub records: u64,
    pub first_broken: Option<BrokenLink>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// Walks the chain from the first record and reports the first one that does not fit.
pub async fn verify(pool: &PgPool, schema: Schema) -> Result<VerifyReport, sqlx::Error> {
    let sql = schema.sql(
        "SELECT seq, occurred_at, action, object_ids, result, actor_sub, actor_org, actor_org_type, \
         actor_roles, peer, legal_basis, trace_id, prev_hash, hash, end_user_sub, end_user_org, \
         end_user_org_type, end_user_roles FROM {schema}.audit_log \
         WHERE seq > $1 ORDER BY seq LIMIT 1000",
    );
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS.to_vec();
    let mut records = 0u64;
    loop {
        let rows = sqlx::query(AssertSqlSafe(sql.0.clone()))
            .bind(expected_seq - 1)
            .fetch_all(pool)
            .await?;
        if rows.is_empty() {
            return Ok(VerifyReport {
                records,
                first_broken: None,
            });
        }
        for row in rows {
            records += 1;
            let seq: i64 = row.try_get("seq")?;
            let broken = |reason: &str| {
                Ok(VerifyReport {
                    records,
                    first_broken: Some(BrokenLink {
                        seq,
                        reason: reason.to_owned(),
                    }),
                })
            };
            if seq != expected_seq {
                return broken(&format!("record {expected_seq} is missing"));
            }
            let record = AuditRecord {
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
            };
            let stored_prev: Vec<u8> = row.try_get("prev_hash")?;
            let stored_hash: Vec<u8> = row.try_get("hash")?;
            if stored_prev != prev_hash {
                return broken("does not link to the record before it");
            }
            if record.chain_hash(seq, &prev_hash) != stored_hash {
                return broken("content does not match its hash");
            }
            prev_hash = stored_hash;
            expected_seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(actor_sub: &str, actor_org: &str) -> AuditRecord {
        AuditRecord {
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
        }
    }

    #[test]
    fn field_boundaries_are_part_of_the_hash() {
        let a = record("x\u{1f}y", "z");
        let b = record("x", "y\u{1f}z");
        let at = a.occurred_at;
        let b = AuditRecord {
            occurred_at: at,
            ..b
        };
        assert_ne!(a.chain_hash(1, &GENESIS), b.chain_hash(1, &GENESIS));
        assert_eq!(a.chain_hash(1, &GENESIS), a.clone().chain_hash(1, &GENESIS));
        assert_ne!(a.chain_hash(1, &GENESIS), a.chain_hash(2, &GENESIS));
    }

    #[test]
    fn the_end_user_is_part_of_the_hash() {
        let plain = record("svc", "zvv-signalling");
        let mut on_behalf = plain.clone();
        on_behalf.end_user_org = "school-1".into();
        assert_ne!(
            plain.chain_hash(1, &GENESIS),
            on_behalf.chain_hash(1, &GENESIS)
        );
        let mut other = on_behalf.clone();
        other.end_user_org = "school-2".into();
        assert_ne!(
            on_behalf.chain_hash(1, &GENESIS),
            other.chain_hash(1, &GENESIS)
        );
    }
}
