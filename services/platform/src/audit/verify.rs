//! Verification of an audit log: every seal links to the one before and matches its entry's
//! content, every entry is sealed exactly once and in seal order, and every signed checkpoint
//! (from the database and from the file outside it) matches the chain at its sequence. Each
//! problem is reported with its position; the seal lag is reported too.

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    time::Duration,
};

use ed25519_dalek::VerifyingKey;
use sqlx::{PgPool, Row};

use super::{
    ENTRY_COLUMNS, GENESIS,
    checkpoint::{Checkpoint, read_file},
    entry_from_row,
};
use crate::db::Schema;

/// At most this many problems are listed (the rest are counted).
const MAX_PROBLEMS: usize = 100;

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The chain position (seal sequence) it concerns, when it has one.
    pub seq: Option<i64>,
    /// The entry it concerns, when it has one.
    pub entry_id: Option<i64>,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A seal is missing from the chain.
    MissingSeal,
    /// A seal's entry is gone.
    DeletedEntry,
    /// An entry's content no longer matches its seal.
    EditedEntry,
    /// A seal does not link to the one before.
    BrokenLink,
    /// One entry carries two seals.
    SealedTwice,
    /// A seal's horizon lies below the one before it.
    OutOfOrder,
    /// An unsealed entry lies below the horizon of the last seal: it was added afterwards.
    InsertedEntry,
    /// A checkpoint names a position past the end of the chain: records were cut off.
    CutOff,
    /// A checkpoint's head hash does not match the chain: the chain was rewritten up to there.
    Rewritten,
    /// A checkpoint's signature is not valid for any known key.
    BadSignature,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyReport {
    pub entries: u64,
    pub seals: u64,
    /// Entries not sealed yet (written recently, or behind a long transaction).
    pub pending: u64,
    /// How long the oldest pending entry has waited.
    pub oldest_pending: Option<Duration>,
    /// The longest time between writing an entry and sealing it.
    pub max_seal_lag: Option<Duration>,
    /// Checkpoints whose signature and head were checked.
    pub checkpoints: u64,
    pub problems: Vec<Problem>,
    /// Problems beyond the listed ones.
    pub more_problems: u64,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty() && self.more_problems == 0
    }

    fn problem(
        &mut self,
        seq: Option<i64>,
        entry_id: Option<i64>,
        kind: ProblemKind,
        detail: String,
    ) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                seq,
                entry_id,
                kind,
                detail,
            });
        } else {
            self.more_problems += 1;
        }
    }
}

/// Where checkpoints come from besides the database, and which keys may sign them.
#[derive(Debug, Clone, Default)]
pub struct Anchors<'a> {
    /// The append-only checkpoint file of this schema (outside the database).
    pub file: Option<&'a Path>,
    pub keys: Vec<VerifyingKey>,
}

fn txid_number(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

fn seconds(value: Option<f64>) -> Option<Duration> {
    value
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

async fn database_checkpoints(
    pool: &PgPool,
    schema: Schema,
) -> Result<Vec<Checkpoint>, sqlx::Error> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let rows = sqlx::query(schema.sql(
        "SELECT seq, head_hash, signed_at, key_id, signature FROM {schema}.audit_checkpoints ORDER BY seq",
    ))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                schema: schema.name().to_owned(),
                seq: r.try_get("seq")?,
                head_hash: hex::encode(r.try_get::<Vec<u8>, _>("head_hash")?),
                signed_at: r.try_get("signed_at")?,
                key_id: r.try_get("key_id")?,
                signature: STANDARD.encode(r.try_get::<Vec<u8>, _>("signature")?),
            })
        })
        .collect()
}

/// Checks the whole audit log of `schema`.
pub async fn verify(
    pool: &PgPool,
    schema: Schema,
    anchors: &Anchors<'_>,
) -> Result<VerifyReport, sqlx::Error> {
    let mut report = VerifyReport::default();

    // the checkpoints first: the walk keeps the chain hash at each of their positions
    let mut checkpoints: Vec<(&'static str, Checkpoint)> = database_checkpoints(pool, schema)
        .await?
        .into_iter()
        .map(|c| ("database", c))
        .collect();
    if let Some(path) = anchors.file {
        match read_file(path) {
            Ok(list) => checkpoints.extend(list.into_iter().map(|c| ("file", c))),
            Err(e) => report.problem(None, None, ProblemKind::BadSignature, e),
        }
    }
    let mut trusted = Vec::new();
    for (source, c) in checkpoints {
        let valid = c.schema == schema.name() && anchors.keys.iter().any(|k| c.signed_by(k));
        if valid {
            trusted.push((source, c));
        } else {
            report.problem(
                Some(c.seq),
                None,
                ProblemKind::BadSignature,
                format!(
                    "the {source} checkpoint at seq {} (signed {}, key {}) is not signed by a known key",
                    c.seq, c.signed_at, c.key_id
                ),
            );
        }
    }
    let wanted: HashSet<i64> = trusted.iter().map(|(_, c)| c.seq).collect();
    let mut hash_at: BTreeMap<i64, Vec<u8>> = BTreeMap::new();

    // the walk
    let sql = format!(
        "SELECT s.seq, s.entry_id AS sealed_entry_id, s.horizon::text AS horizon, s.prev_hash, \
         s.hash, e.* FROM {{schema}}.audit_seals s \
         LEFT JOIN LATERAL (SELECT {ENTRY_COLUMNS} FROM {{schema}}.audit_entries x \
                            WHERE x.entry_id = s.entry_id) e ON true \
         WHERE s.seq > $1 ORDER BY s.seq LIMIT 1000"
    );
    let mut expected = 1i64;
    let mut last_seq = 0i64;
    let mut running = GENESIS.to_vec();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut horizon_seen: u64 = 0;
    loop {
        let rows = sqlx::query(schema.sql(&sql))
            .bind(last_seq)
            .fetch_all(pool)
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            report.seals += 1;
            let seq: i64 = row.try_get("seq")?;
            let sealed_entry: i64 = row.try_get("sealed_entry_id")?;
            let horizon: String = row.try_get("horizon")?;
            let prev: Vec<u8> = row.try_get("prev_hash")?;
            let stored: Vec<u8> = row.try_get("hash")?;
            last_seq = seq;
            if seq != expected {
                report.problem(
                    Some(expected),
                    None,
                    ProblemKind::MissingSeal,
                    format!(
                        "seals {expected} to {} are missing: records were deleted",
                        seq - 1
                    ),
                );
            }
            expected = seq + 1;
            if prev != running {
                report.problem(
                    Some(seq),
                    Some(sealed_entry),
                    ProblemKind::BrokenLink,
                    format!("seal {seq} does not link to the seal before it"),
                );
            }
            if !seen.insert(sealed_entry) {
                report.problem(
                    Some(seq),
                    Some(sealed_entry),
                    ProblemKind::SealedTwice,
                    format!("entry {sealed_entry} is sealed a second time at seq {seq}"),
                );
            }
            let here = txid_number(&horizon);
            if here < horizon_seen {
                report.problem(
                    Some(seq),
                    Some(sealed_entry),
                    ProblemKind::OutOfOrder,
                    format!("seal {seq} has a horizon below the seal before it"),
                );
            }
            horizon_seen = horizon_seen.max(here);
            match row.try_get::<Option<i64>, _>("entry_id")? {
                None => report.problem(
                    Some(seq),
                    Some(sealed_entry),
                    ProblemKind::DeletedEntry,
                    format!("the entry of seal {seq} (entry {sealed_entry}) was deleted"),
                ),
                Some(_) => {
                    let entry = entry_from_row(row)?;
                    if entry.seal_hash(seq, &horizon, &prev) != stored {
                        report.problem(
                            Some(seq),
                            Some(sealed_entry),
                            ProblemKind::EditedEntry,
                            format!("entry {sealed_entry} (seal {seq}) no longer matches its seal: it was edited"),
                        );
                    }
                }
            }
            if wanted.contains(&seq) {
                hash_at.insert(seq, stored.clone());
            }
            running = stored;
        }
    }

    // entries without a seal: pending, or slipped in among sealed ones
    let rows = sqlx::query(schema.sql(
        "SELECT e.entry_id, e.txid::text AS txid, \
                extract(epoch FROM clock_timestamp() - e.written_at)::float8 AS age \
         FROM {schema}.audit_entries e \
         WHERE NOT EXISTS (SELECT 1 FROM {schema}.audit_seals s WHERE s.entry_id = e.entry_id) \
         ORDER BY e.txid, e.entry_id",
    ))
    .fetch_all(pool)
    .await?;
    for row in &rows {
        let entry_id: i64 = row.try_get("entry_id")?;
        let txid: String = row.try_get("txid")?;
        if txid_number(&txid) < horizon_seen {
            report.problem(
                None,
                Some(entry_id),
                ProblemKind::InsertedEntry,
                format!(
                    "entry {entry_id} is not sealed although its transaction ended before the \
                     last seal was made: it was inserted afterwards"
                ),
            );
        } else {
            report.pending += 1;
            let age = seconds(row.try_get("age")?);
            report.oldest_pending = report.oldest_pending.max(age);
        }
    }
    report.entries =
        sqlx::query_scalar::<_, i64>(schema.sql("SELECT count(*) FROM {schema}.audit_entries"))
            .fetch_one(pool)
            .await?
            .try_into()
            .unwrap_or(0);
    report.max_seal_lag = seconds(
        sqlx::query_scalar(schema.sql(
            "SELECT extract(epoch FROM max(s.sealed_at - e.written_at))::float8 \
             FROM {schema}.audit_seals s JOIN {schema}.audit_entries e USING (entry_id)",
        ))
        .fetch_one(pool)
        .await?,
    );

    // every trusted checkpoint against the chain
    trusted.sort_by_key(|(_, c)| c.seq);
    let mut last_good = 0i64;
    for (source, c) in &trusted {
        report.checkpoints += 1;
        match hash_at.get(&c.seq) {
            None => report.problem(
                Some(c.seq),
                None,
                ProblemKind::CutOff,
                format!(
                    "the {source} checkpoint signed {} names seq {} but the chain ends at {last_seq}: \
                     records after {last_seq} were cut off",
                    c.signed_at, c.seq
                ),
            ),
            Some(h) if hex::encode(h) != c.head_hash => report.problem(
                Some(c.seq),
                None,
                ProblemKind::Rewritten,
                format!(
                    "the chain does not match the {source} checkpoint signed {} at seq {}: records \
                     after seq {last_good} and up to {} were changed and re-hashed",
                    c.signed_at, c.seq, c.seq
                ),
            ),
            Some(_) => last_good = last_good.max(c.seq),
        }
    }
    Ok(report)
}
