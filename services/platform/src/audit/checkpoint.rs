//! Signed checkpoints of the audit chain: the head (schema, sequence, head hash, time, key id)
//! signed with an Ed25519 key that is not in the database, written to the database and appended
//! to a file outside it (one JSON line per checkpoint, a file per schema). Even the database
//! owner, who can rewrite every row and re-hash every seal, cannot forge a checkpoint nor reach
//! the file; so a rewritten or cut-off chain no longer matches the checkpoints.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::db::Schema;

/// One signed checkpoint, as stored and as written to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub schema: String,
    pub seq: i64,
    /// Hex.
    pub head_hash: String,
    pub signed_at: DateTime<Utc>,
    pub key_id: String,
    /// Base64.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes that are signed.
    fn message(
        schema: &str,
        seq: i64,
        head_hash: &str,
        signed_at: &DateTime<Utc>,
        key_id: &str,
    ) -> Vec<u8> {
        format!(
            "zvv-audit-checkpoint-v1\n{schema}\n{seq}\n{head_hash}\n{}\n{key_id}",
            signed_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
        .into_bytes()
    }

    /// True when `key` made the signature over exactly these fields.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = STANDARD.decode(&self.signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify(
            &Self::message(
                &self.schema,
                self.seq,
                &self.head_hash,
                &self.signed_at,
                &self.key_id,
            ),
            &signature,
        )
        .is_ok()
    }
}

/// The id of a public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read audit signing key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("cannot append to the checkpoint file {path}: {source}")]
    Sink {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Reads an Ed25519 private key (PKCS#8 PEM).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, CheckpointError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let text = std::fs::read_to_string(path).map_err(|e| CheckpointError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|_| CheckpointError::Key {
        path: path.display().to_string(),
        reason: "not an Ed25519 private key in PKCS#8 PEM".to_owned(),
    })
}

/// Reads an Ed25519 public key (SPKI PEM).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, CheckpointError> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let text = std::fs::read_to_string(path).map_err(|e| CheckpointError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    VerifyingKey::from_public_key_pem(&text).map_err(|_| CheckpointError::Key {
        path: path.display().to_string(),
        reason: "not an Ed25519 public key in PEM".to_owned(),
    })
}

/// The file of `schema`'s checkpoints in `dir`.
pub fn sink_file(dir: &Path, schema: Schema) -> PathBuf {
    dir.join(format!("{}.checkpoints.jsonl", schema.name()))
}

/// Reads the checkpoints a file holds; a line that is not a checkpoint is an error naming its
/// number. A missing file holds none.
pub fn read_file(path: &Path) -> Result<Vec<Checkpoint>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .map_err(|_| format!("{} line {} is not a checkpoint", path.display(), n + 1))
        })
        .collect()
}

/// Signs and writes checkpoints.
#[derive(Clone)]
pub struct CheckpointWriter {
    key: Arc<SigningKey>,
    key_id: String,
    /// The folder of the append-only files; `None` keeps checkpoints in the database only.
    sink_dir: Option<PathBuf>,
}

impl std::fmt::Debug for CheckpointWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointWriter")
            .field("key_id", &self.key_id)
            .field("sink_dir", &self.sink_dir)
            .finish_non_exhaustive()
    }
}

impl CheckpointWriter {
    pub fn new(key: SigningKey, sink_dir: Option<PathBuf>) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self {
            key: Arc::new(key),
            key_id,
            sink_dir,
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs the chain head of `schema` if it moved since this key's last checkpoint; returns the
    /// checkpoint written. Holds the schema's sealing lock, so one replica writes at a time.
    pub async fn checkpoint(
        &self,
        pool: &PgPool,
        schema: Schema,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        let mut tx = pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
            .bind(format!("zvv.audit.seal.{}", schema.name()))
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            tx.rollback().await?;
            return Ok(None);
        }
        let head = sqlx::query(
            schema.sql("SELECT seq, hash FROM {schema}.audit_seals ORDER BY seq DESC LIMIT 1"),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(head) = head else {
            tx.rollback().await?;
            return Ok(None);
        };
        let seq: i64 = head.try_get("seq")?;
        let hash: Vec<u8> = head.try_get("hash")?;
        let last: Option<i64> = sqlx::query_scalar(
            schema.sql("SELECT max(seq) FROM {schema}.audit_checkpoints WHERE key_id = $1"),
        )
        .bind(&self.key_id)
        .fetch_one(&mut *tx)
        .await?;
        if last.is_some_and(|l| l >= seq) {
            tx.rollback().await?;
            return Ok(None);
        }
        let signed_at = Utc::now().trunc_subsecs(6);
        let head_hash = hex::encode(&hash);
        let signature = self.key.sign(&Checkpoint::message(
            schema.name(),
            seq,
            &head_hash,
            &signed_at,
            &self.key_id,
        ));
        let checkpoint = Checkpoint {
            schema: schema.name().to_owned(),
            seq,
            head_hash,
            signed_at,
            key_id: self.key_id.clone(),
            signature: STANDARD.encode(signature.to_bytes()),
        };
        // outside the database first: a checkpoint that is only in the file still checks the
        // chain, one that is only in the database would not protect it
        if let Some(dir) = &self.sink_dir {
            append_line(&sink_file(dir, schema), &checkpoint)?;
        }
        sqlx::query(schema.sql(
            "INSERT INTO {schema}.audit_checkpoints (seq, head_hash, signed_at, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5)",
        ))
        .bind(seq)
        .bind(&hash)
        .bind(signed_at)
        .bind(&self.key_id)
        .bind(signature.to_bytes().as_slice())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::debug!(schema = schema.name(), seq, "audit checkpoint signed");
        Ok(Some(checkpoint))
    }
}

/// Appends one JSON line and syncs it to disk.
fn append_line(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let sink = |source| CheckpointError::Sink {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(sink)?;
    }
    let mut line = serde_json::to_string(checkpoint).unwrap_or_default();
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(sink)?;
    file.write_all(line.as_bytes()).map_err(sink)?;
    file.sync_data().map_err(sink)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_bound_to_every_field_and_its_key() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let id = key_id(&key.verifying_key());
        let at = Utc::now().trunc_subsecs(6);
        let hash = hex::encode([7u8; 32]);
        let sig = key.sign(&Checkpoint::message("intake", 42, &hash, &at, &id));
        let good = Checkpoint {
            schema: "intake".into(),
            seq: 42,
            head_hash: hash,
            signed_at: at,
            key_id: id,
            signature: STANDARD.encode(sig.to_bytes()),
        };
        assert!(good.signed_by(&key.verifying_key()));
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        assert!(!good.signed_by(&other.verifying_key()));
        for changed in [
            Checkpoint {
                seq: 41,
                ..good.clone()
            },
            Checkpoint {
                schema: "signalling".into(),
                ..good.clone()
            },
            Checkpoint {
                head_hash: hex::encode([8u8; 32]),
                ..good.clone()
            },
            Checkpoint {
                signature: "garbage".into(),
                ..good.clone()
            },
        ] {
            assert!(!changed.signed_by(&key.verifying_key()), "{changed:?}");
        }
        // round trip through the file form
        let line = serde_json::to_string(&good).unwrap();
        let back: Checkpoint = serde_json::from_str(&line).unwrap();
        assert!(back.signed_by(&key.verifying_key()));
    }
}
