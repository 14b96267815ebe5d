//! Intake's keys against its database: the key check at start ([`check_keys`]) and the
//! re-encryption of every subject's BSN with the active key after a rotation ([`reencrypt`]).
//!
//! Intake records its BSN encryption keys (purpose `bsn-encryption`) and its lookup key
//! (`bsn-lookup`) in `intake.service_keys` ([`zvv_platform::keys`]). A database with subjects but
//! no records (from before they were kept) gets the configured keys recorded only when they open
//! an existing subject's BSN for every key id in use and give that subject's stored lookup value.

use chrono::Utc;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;
use zvv_platform::{
    audit::{self, CallContext},
    bsn::{BsnVault, ENCRYPTION_PURPOSE, LOOKUP_PURPOSE, SealForm, SealedBsn},
    keys::{self, BoxFuture, Existing, KeyCheckError, Mode, RecordedKey, ServiceData},
};

use crate::store::{SCHEMA, seal_form};

/// A subject row's id, lookup value and sealed BSN.
fn sealed_row(row: &sqlx::postgres::PgRow) -> Result<(Uuid, Vec<u8>, SealedBsn), sqlx::Error> {
    Ok((
        row.try_get("subject_id")?,
        row.try_get("bsn_lookup")?,
        SealedBsn {
            key_id: row.try_get("bsn_key_id")?,
            ciphertext: row.try_get("bsn_ciphertext")?,
            form: seal_form(row.try_get("bsn_aad")?)?,
        },
    ))
}

/// The service name in key check messages.
const SERVICE: &str = "intake";

/// What intake's data tells the key check.
struct Subjects<'v> {
    vault: &'v BsnVault,
}

impl ServiceData for Subjects<'_> {
    fn probe<'a>(
        &'a self,
        conn: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<Existing, sqlx::Error>> {
        Box::pin(async move {
            // one subject per key id in use: each key must open it, the lookup key must give
            // its lookup value
            let rows = sqlx::query(
                "SELECT DISTINCT ON (bsn_key_id) subject_id, bsn_lookup, bsn_ciphertext, \
                 bsn_key_id, bsn_aad FROM intake.subjects ORDER BY bsn_key_id, subject_id",
            )
            .fetch_all(conn)
            .await?;
            if rows.is_empty() {
                return Ok(Existing::Empty);
            }
            for row in &rows {
                let (id, lookup, sealed) = sealed_row(row)?;
                if !self.vault.encryption_key_ids().contains(&sealed.key_id) {
                    return Ok(Existing::Unreadable(format!(
                        "subjects are sealed with the encryption key {:?}, which is not configured",
                        sealed.key_id
                    )));
                }
                let Ok(bsn) = self.vault.open_for_reencryption(&sealed, id) else {
                    return Ok(Existing::Unreadable(format!(
                        "the configured encryption key {:?} does not open the BSN of an existing \
                         subject sealed under that id",
                        sealed.key_id
                    )));
                };
                if self.vault.lookup_key(&bsn) != lookup {
                    return Ok(Existing::Unreadable(format!(
                        "the configured lookup key {:?} does not give the stored lookup value of \
                         an existing subject",
                        self.vault.lookup_key_id()
                    )));
                }
            }
            Ok(Existing::Readable)
        })
    }

    fn still_needed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        key: &'a RecordedKey,
    ) -> BoxFuture<'a, Result<Option<String>, sqlx::Error>> {
        Box::pin(async move {
            match key.purpose.as_str() {
                ENCRYPTION_PURPOSE => {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM intake.subjects WHERE bsn_key_id = $1",
                    )
                    .bind(&key.key_id)
                    .fetch_one(conn)
                    .await?;
                    Ok((n > 0).then(|| format!("{n} subjects are still sealed with it")))
                }
                // never dropped, not even before the first subject: replicas with different
                // lookup keys would each register the same BSN as another person
                LOOKUP_PURPOSE => Ok(Some(
                    "the lookup key of the registry cannot be replaced: every BSN would get a \
                     second subject"
                        .to_owned(),
                )),
                _ => Ok(Some("it is recorded for intake".to_owned())),
            }
        })
    }
}

/// Checks the vault's keys against the keys recorded in `intake.service_keys` and records new
/// ones; refuses keys that differ from the recorded ones, recorded keys that are missing while
/// subjects need them, and keys for a database with subjects but no records that cannot read
/// them. Run it before serving (after the migrations).
pub async fn check_keys(pool: &PgPool, vault: &BsnVault) -> Result<(), KeyCheckError> {
    keys::check(
        pool,
        SCHEMA,
        SERVICE,
        &vault.configured_keys(),
        &Subjects { vault },
        Mode::Record,
    )
    .await
    .map(drop)
}

/// How [`reencrypt_with`] runs.
#[derive(Debug, Clone)]
pub struct ReencryptOptions {
    /// Subjects per transaction (and per audit entry).
    pub batch_size: u32,
    /// Where the job was started from, kept as the audit entries' peer (e.g. `zvv-intake
    /// reencrypt`); [`ReencryptOptions::started_by`] adds the OS user who ran it.
    pub origin: String,
}

impl ReencryptOptions {
    /// `command`, and the OS user running it (so that the audit shows who started the job).
    pub fn started_by(command: &str) -> String {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        format!(
            "{command} (OS user {})",
            zvv_platform::error::truncate(&user, 64)
        )
    }
}

impl Default for ReencryptOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            origin: "reencrypt".to_owned(),
        }
    }
}

/// Why re-encryption stopped or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReencryptError {
    #[error(transparent)]
    Keys(#[from] KeyCheckError),
    #[error("re-encrypting: {0}")]
    Database(#[from] sqlx::Error),
    #[error("re-encrypting: writing the audit entry: {0}")]
    Audit(#[from] audit::CommitError),
    /// Every other subject was re-encrypted; these could not be opened (their ids are logged
    /// and audited, their BSNs never).
    #[error(
        "re-encrypted {rewritten} subjects, but {} could not be opened with the configured keys \
         (or their BSN does not match their lookup value) and were left as they are: {}",
        subjects.len(),
        first_ids(subjects)
    )]
    Unreadable { rewritten: u64, subjects: Vec<Uuid> },
}

/// The first 20 ids, and how many more there are.
fn first_ids(ids: &[Uuid]) -> String {
    let mut text = ids
        .iter()
        .take(20)
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > 20 {
        text.push_str(&format!(
            " and {} more (all in the audit log)",
            ids.len() - 20
        ));
    }
    text
}

/// The identity the job's audit entries carry.
fn job(origin: &str) -> CallContext {
    CallContext::for_job(
        "keys/reencrypt-bsn",
        origin,
        "bsn-reencryption-job",
        "zvv-intake",
        "AVG art. 32: security of processing (re-encryption of the BSN with the current key)",
    )
}

/// How many subjects are still sealed in the legacy form (not bound to their subject id): they
/// cannot be read until [`reencrypt`] has sealed them again.
pub async fn legacy_subjects(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM intake.subjects WHERE bsn_aad = $1")
        .bind(SealForm::Legacy.code())
        .fetch_one(pool)
        .await
}

/// Re-encrypts every subject's BSN that is not sealed with the active key in the bound form
/// (older keys, legacy rows), with the default options. Returns how many were rewritten.
pub async fn reencrypt(pool: &PgPool, vault: &BsnVault) -> Result<u64, ReencryptError> {
    reencrypt_with(pool, vault, &ReencryptOptions::default()).await
}

/// Re-encrypts in batches: each batch is one transaction that locks its subjects (`FOR UPDATE
/// SKIP LOCKED`, so calls and other runs go on beside it), opens each BSN (a legacy one too,
/// checked against the subject's lookup value), seals it again with the active key bound to the
/// subject, and commits with one audit entry naming the subjects. A last pass waits for the rows
/// that were locked. Refuses to start unless every configured key is recorded and matches
/// ([`Mode::Verify`]): data is only written under a key the services were started with.
pub async fn reencrypt_with(
    pool: &PgPool,
    vault: &BsnVault,
    options: &ReencryptOptions,
) -> Result<u64, ReencryptError> {
    keys::check(
        pool,
        SCHEMA,
        SERVICE,
        &vault.configured_keys(),
        &Subjects { vault },
        Mode::Verify,
    )
    .await?;
    let ctx = job(&options.origin);
    let batch = i64::from(options.batch_size.max(1));
    let active = vault.active_key_id().to_owned();
    let mut rewritten = 0u64;
    let mut unreadable: Vec<Uuid> = Vec::new();
    // the first pass skips rows locked by calls; the second waits for them
    for wait_for_locked in [false, true] {
        let mut after = Uuid::nil();
        loop {
            let sql = format!(
                "SELECT subject_id, bsn_lookup, bsn_ciphertext, bsn_key_id, bsn_aad \
                 FROM intake.subjects \
                 WHERE subject_id > $1 AND (bsn_key_id <> $2 OR bsn_aad <> $3) \
                   AND subject_id <> ALL($4) \
                 ORDER BY subject_id LIMIT $5 FOR UPDATE{}",
                if wait_for_locked { "" } else { " SKIP LOCKED" }
            );
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(&active)
                .bind(SealForm::Bound.code())
                .bind(&unreadable)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = rows.last() else {
                tx.rollback().await?;
                break;
            };
            after = last.try_get("subject_id")?;
            let mut ids = Vec::with_capacity(rows.len());
            let mut failed = Vec::new();
            for row in &rows {
                let (id, lookup, sealed) = sealed_row(row)?;
                // a legacy ciphertext is bound to nothing: it must belong to this row's lookup
                let bsn = match vault.open_for_reencryption(&sealed, id) {
                    Ok(bsn) if vault.lookup_key(&bsn) == lookup => bsn,
                    Ok(_) => {
                        tracing::error!(subject_id = %id, key_id = %sealed.key_id,
                            "re-encryption: the BSN of this subject does not match its lookup value; left as it is");
                        failed.push(id);
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(subject_id = %id, key_id = %sealed.key_id, error = %e,
                            "re-encryption: the BSN of this subject cannot be opened; left as it is");
                        failed.push(id);
                        continue;
                    }
                };
                let resealed = vault.seal(&bsn, id);
                sqlx::query(
                    "UPDATE intake.subjects SET bsn_ciphertext = $2, bsn_key_id = $3, bsn_aad = $4 \
                     WHERE subject_id = $1",
                )
                .bind(id)
                .bind(&resealed.ciphertext)
                .bind(&resealed.key_id)
                .bind(resealed.form.code())
                .execute(&mut *tx)
                .await?;
                ids.push(id);
            }
            let n = ids.len() as u64;
            if ids.is_empty() {
                tx.rollback().await?;
            } else {
                audit::commit(tx, SCHEMA, &ctx, ids, "OK", Utc::now()).await?;
            }
            if !failed.is_empty() {
                audit::record_alone(pool, SCHEMA, &ctx, failed.clone(), "INTERNAL", Utc::now())
                    .await?;
                unreadable.extend(failed);
            }
            rewritten += n;
            tracing::info!(
                rewritten,
                batch = n,
                key_id = %active,
                "re-encrypted a batch of subjects"
            );
        }
    }
    if unreadable.is_empty() {
        Ok(rewritten)
    } else {
        Err(ReencryptError::Unreadable {
            rewritten,
            subjects: unreadable,
        })
    }
}
