//! The sealer: chains audit entries behind the writers, in the order their transactions are
//! seen to commit.
//!
//! Completeness comes from transaction ids and the snapshot horizon, not from the insert order.
//! Each round takes one snapshot and seals every committed entry it shows that has no seal yet,
//! looking only at transaction ids from the last seal's horizon on. That horizon is the snapshot
//! xmin of the round that made the seal: every transaction with a smaller id had ended by then, so
//! its entries were visible and were sealed in that round. A transaction that commits late keeps
//! the horizon below its id, so the next rounds still look at it, and it is sealed once when it
//! has committed; entries that committed after it are not held back. One sealer at a time per
//! schema holds a transaction-scoped advisory lock; the others skip their turn. A seal is a row of
//! its own (INSERT only), so the runtime role needs no UPDATE on the audit tables.

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

/// The head of the chain: where the next seal links and from which transaction id to look.
struct Head {
    seq: i64,
    hash: Vec<u8>,
    horizon: String,
}

async fn head(conn: &mut sqlx::PgConnection, schema: Schema) -> Result<Head, sqlx::Error> {
    let row = sqlx::query(schema.sql(
        "SELECT seq, hash, horizon::text AS horizon FROM {schema}.audit_seals \
         ORDER BY seq DESC LIMIT 1",
    ))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(r) => Head {
            seq: r.try_get("seq")?,
            hash: r.try_get("hash")?,
            horizon: r.try_get("horizon")?,
        },
        None => Head {
            seq: 0,
            hash: GENESIS.to_vec(),
            horizon: "0".to_owned(),
        },
    })
}

/// Seals one batch of committed, unsealed entries. `wait` waits for the schema's sealing lock
/// (tools and tests); otherwise a round is skipped while another replica seals.
pub async fn seal_batch(
    pool: &PgPool,
    schema: Schema,
    wait: bool,
) -> Result<SealReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let lock_sql = if wait {
        "SELECT pg_advisory_xact_lock(hashtext($1))::text = ''"
    } else {
        "SELECT pg_try_advisory_xact_lock(hashtext($1))"
    };
    let locked: bool = sqlx::query_scalar(lock_sql)
        .bind(format!("zvv.audit.seal.{}", schema.name()))
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        tx.rollback().await?;
        return Ok(SealReport::default());
    }
    let mut head = head(&mut tx, schema).await?;
    // one statement, one snapshot: the entries it shows, and its horizon
    let sql = format!(
        "SELECT {ENTRY_COLUMNS}, pg_snapshot_xmin(pg_current_snapshot())::text AS horizon_now \
         FROM {{schema}}.audit_entries e \
         WHERE e.txid >= $1::text::xid8 \
           AND NOT EXISTS (SELECT 1 FROM {{schema}}.audit_seals s WHERE s.entry_id = e.entry_id) \
         ORDER BY e.txid, e.entry_id LIMIT $2"
    );
    let rows = sqlx::query(schema.sql(&sql))
        .bind(&head.horizon)
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
    // a full batch may have left entries below the new horizon: keep looking from the old one
    let horizon = if rows.len() < BATCH as usize {
        let now: String = rows[0].try_get("horizon_now")?;
        if now.parse::<u64>().unwrap_or(0) > head.horizon.parse::<u64>().unwrap_or(0) {
            now
        } else {
            head.horizon.clone()
        }
    } else {
        head.horizon.clone()
    };
    let mut seqs = Vec::with_capacity(rows.len());
    let mut entry_ids = Vec::with_capacity(rows.len());
    let mut prevs = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    for row in &rows {
        let entry = entry_from_row(row)?;
        let seq = head.seq + 1;
        let hash = entry.seal_hash(seq, &horizon, &head.hash);
        seqs.push(seq);
        entry_ids.push(entry.entry_id);
        prevs.push(std::mem::replace(&mut head.hash, hash.clone()));
        hashes.push(hash);
        head.seq = seq;
    }
    sqlx::query(schema.sql(
        "INSERT INTO {schema}.audit_seals (seq, entry_id, horizon, prev_hash, hash) \
         SELECT s, e, $3::text::xid8, p, h FROM unnest($1::bigint[], $2::bigint[], $4::bytea[], $5::bytea[]) \
         AS u(s, e, p, h)",
    ))
    .bind(&seqs)
    .bind(&entry_ids)
    .bind(&horizon)
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

/// Seals until nothing committed is left unsealed, waiting for the sealing lock.
pub async fn seal_all(pool: &PgPool, schema: Schema) -> Result<u64, sqlx::Error> {
    seal_rounds(pool, schema, true).await
}

async fn seal_rounds(pool: &PgPool, schema: Schema, wait: bool) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let report = seal_batch(pool, schema, wait).await?;
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
    jobs.push(crate::jobs::every(
        "audit-sealer",
        settings.interval,
        move || {
            let pool = seal_pool.clone();
            async move {
                // five rounds a second: the counts go to debug, not to an info line each
                seal_rounds(&pool, schema, false).await.map(|n| {
                    if n > 0 {
                        tracing::debug!(schema = schema.name(), sealed = n, "sealed audit entries");
                    }
                })
            }
        },
    ));
    if let Some(writer) = checkpoints {
        jobs.push(crate::jobs::every(
            "audit-checkpoint",
            settings.checkpoint_interval,
            move || {
                let (pool, writer) = (pool.clone(), writer.clone());
                async move {
                    writer
                        .checkpoint(&pool, schema)
                        .await
                        .map(|c| c.map(|c| c.seq))
                }
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
