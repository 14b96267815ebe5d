//! The sealer: chains audit entries behind the writers.
//!
//! Order and completeness come from transaction ids and the snapshot horizon, not from the insert
//! order: an entry is sealed only when its transaction id lies below the horizon
//! (`pg_snapshot_xmin` of the current snapshot), that is when every transaction that could still
//! commit with a smaller id has ended. Entries are sealed in (transaction id, entry id) order after
//! the last sealed position, so an entry whose transaction commits late waits until it has
//! committed and is then sealed exactly once; nothing behind it is sealed before it. One sealer at
//! a time per schema holds a transaction-scoped advisory lock; the others skip their turn. A seal
//! is a row of its own (INSERT only), so the runtime role needs no UPDATE on the audit tables.

use std::time::Duration;

use sqlx::{PgPool, Row};

use super::{ENTRY_COLUMNS, GENESIS, checkpoint::CheckpointWriter, entry_from_row};
use crate::db::Schema;

/// Entries sealed per transaction.
const BATCH: i64 = 500;

/// What one round of sealing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealReport {
    pub sealed: u64,
    /// False when another replica held the schema's sealing lock.
    pub had_the_lock: bool,
}

/// The position after which the next entry is sealed.
struct Head {
    seq: i64,
    hash: Vec<u8>,
    txid: String,
    entry_id: i64,
}

async fn head(conn: &mut sqlx::PgConnection, schema: Schema) -> Result<Head, sqlx::Error> {
    let row = sqlx::query(schema.sql(
        "SELECT seq, hash, txid::text AS txid, entry_id FROM {schema}.audit_seals \
         ORDER BY seq DESC LIMIT 1",
    ))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(r) => Head {
            seq: r.try_get("seq")?,
            hash: r.try_get("hash")?,
            txid: r.try_get("txid")?,
            entry_id: r.try_get("entry_id")?,
        },
        None => Head {
            seq: 0,
            hash: GENESIS.to_vec(),
            txid: "0".to_owned(),
            entry_id: 0,
        },
    })
}

/// Seals one batch of the entries that are final; safe to run on every replica at once.
pub async fn seal_batch(pool: &PgPool, schema: Schema) -> Result<SealReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
        .bind(format!("zvv.audit.seal.{}", schema.name()))
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        tx.rollback().await?;
        return Ok(SealReport::default());
    }
    let mut head = head(&mut tx, schema).await?;
    // one statement, one snapshot: every transaction below its horizon has ended, and the
    // entries of those that committed are visible to it
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM {{schema}}.audit_entries \
         WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) \
           AND (txid, entry_id) > ($1::text::xid8, $2) \
         ORDER BY txid, entry_id LIMIT $3"
    );
    let rows = sqlx::query(schema.sql(&sql))
        .bind(&head.txid)
        .bind(head.entry_id)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(SealReport {
            sealed: 0,
            had_the_lock: true,
        });
    }
    let mut seqs = Vec::with_capacity(rows.len());
    let mut entry_ids = Vec::with_capacity(rows.len());
    let mut txids = Vec::with_capacity(rows.len());
    let mut prevs = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    for row in &rows {
        let entry = entry_from_row(row)?;
        let seq = head.seq + 1;
        let hash = entry.seal_hash(seq, &head.hash);
        seqs.push(seq);
        entry_ids.push(entry.entry_id);
        txids.push(entry.txid.clone());
        prevs.push(std::mem::replace(&mut head.hash, hash.clone()));
        hashes.push(hash);
        head.seq = seq;
    }
    sqlx::query(schema.sql(
        "INSERT INTO {schema}.audit_seals (seq, entry_id, txid, prev_hash, hash) \
         SELECT s, e, t::xid8, p, h FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[], $5::bytea[]) \
         AS u(s, e, t, p, h)",
    ))
    .bind(&seqs)
    .bind(&entry_ids)
    .bind(&txids)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(SealReport {
        sealed: rows.len() as u64,
        had_the_lock: true,
    })
}

/// Seals until nothing final is left unsealed.
pub async fn seal_all(pool: &PgPool, schema: Schema) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let report = seal_batch(pool, schema).await?;
        total += report.sealed;
        if report.sealed < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// How the sealer of one service runs.
#[derive(Debug, Clone)]
pub struct SealerSettings {
    /// Pause between rounds when there is nothing to seal.
    pub interval: Duration,
    /// How often the chain head is signed (when it moved).
    pub checkpoint_interval: Duration,
}

impl Default for SealerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(200),
            checkpoint_interval: Duration::from_secs(10),
        }
    }
}

/// Starts the sealer of `schema` (and its checkpoints, when `checkpoints` is given) as interval
/// jobs; they run until the returned jobs are dropped.
pub fn start(
    pool: PgPool,
    schema: Schema,
    settings: &SealerSettings,
    checkpoints: Option<CheckpointWriter>,
) -> Vec<crate::jobs::Job> {
    let mut jobs = Vec::new();
    let seal_pool = pool.clone();
    jobs.push(crate::jobs::every("audit-sealer", settings.interval, move || {
        let pool = seal_pool.clone();
        async move {
            // five rounds a second: the counts go to debug, not to an info line each
            seal_all(&pool, schema).await.map(|n| {
                if n > 0 {
                    tracing::debug!(schema = schema.name(), sealed = n, "sealed audit entries");
                }
            })
        }
    }));
    if let Some(writer) = checkpoints {
        jobs.push(crate::jobs::every(
            "audit-checkpoint",
            settings.checkpoint_interval,
            move || {
                let (pool, writer) = (pool.clone(), writer.clone());
                async move { writer.checkpoint(&pool, schema).await.map(|c| c.map(|c| c.seq)) }
            },
        ));
    } else {
        tracing::warn!(
            schema = schema.name(),
            "no audit signing key: the audit chain is sealed but not anchored by signed checkpoints"
        );
    }
    jobs
}
