//! Idempotent mutations: a caller-chosen `request_id` makes a retried call return the first
//! response instead of doing the work twice. Keys are scoped per organisation and RPC, checked
//! and stored inside the transaction of the change, and serialised per key so that two
//! concurrent retries cannot both do the work. A stored response can hold personal data, so keys
//! are kept only for a retention period and then purged by [`purge`].

use sqlx::{PgConnection, PgPool, Row};

use crate::{db::Schema, error::ApiError, keys};

/// Checks the `request_id` of a request among its other fields, naming it.
pub fn check_request_id_in(v: &mut crate::error::Violations, request_id: &str) {
    v.take("request_id", check_request_id("request_id", request_id));
}

/// Checks a `request_id` field: 1-128 visible ASCII characters.
pub fn check_request_id(field: &str, request_id: &str) -> Result<(), ApiError> {
    if request_id.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if request_id.len() > 128 || !request_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            field,
            "must be 1-128 visible ASCII characters",
        ));
    }
    Ok(())
}

/// An idempotency key: scope (organisation and RPC) plus the caller's request id, and a keyed
/// fingerprint of the request to tell a retry from a different request reusing the id.
#[derive(Debug, Clone)]
pub struct Key {
    pub scope: String,
    pub request_id: String,
    pub fingerprint: Vec<u8>,
}

impl Key {
    /// The key of a call to `rpc` by organisation `org`: scoped to the organisation and the RPC,
    /// with a keyed fingerprint of the request's canonical form (`parts` joined by US), so that
    /// the same request id with another request is refused.
    pub fn for_call(
        fingerprints: &FingerprintKey,
        org: &str,
        rpc: &str,
        request_id: &str,
        parts: &[&str],
    ) -> Self {
        Self {
            scope: format!("{org}/{rpc}"),
            request_id: request_id.to_owned(),
            fingerprint: fingerprints.fingerprint(rpc, &parts.join("\u{1f}")),
        }
    }

    /// [`Key::for_call`] for the organisation of the caller of `ctx`.
    pub fn for_caller(
        fingerprints: &FingerprintKey,
        ctx: &crate::audit::CallContext,
        rpc: &str,
        request_id: &str,
        parts: &[&str],
    ) -> Self {
        Self::for_call(fingerprints, &ctx.principal().org, rpc, request_id, parts)
    }
}

/// A fingerprint of a request that carries no BSN (ids, contacts, codes): a plain SHA-256.
/// Requests with a BSN use a keyed fingerprint instead ([`FingerprintKey`], the vault's).
pub fn plain_fingerprint(canonical: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(canonical.as_bytes()).to_vec()
}

/// The secret key of a service's request fingerprints, for services that receive BSNs in their
/// requests but hold no BSN vault: a retry can then be compared with its first request before
/// anything else is asked, without storing an unkeyed (reversible) hash of a BSN.
///
/// The key file holds 32 random bytes in base64; `zvv up` creates one per service.
pub struct FingerprintKey(secrecy::SecretBox<[u8; 32]>);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

impl FingerprintKey {
    /// A new random key, base64 (the key file's content).
    pub fn generate_base64() -> String {
        use base64::{Engine, engine::general_purpose::STANDARD};
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Reads a key from its base64 text. The error never quotes the text.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        use base64::{Engine, engine::general_purpose::STANDARD};
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "the fingerprint key is not base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the fingerprint key must be 32 bytes".to_owned())?;
        Ok(Self(secrecy::SecretBox::new(Box::new(key))))
    }

    /// Reads the key file.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read fingerprint key file {}: {e}", path.display()))?;
        Self::from_base64(&text)
    }

    /// A keyed fingerprint of the canonical form of a request to `rpc`.
    pub fn fingerprint(&self, rpc: &str, canonical: &str) -> Vec<u8> {
        use secrecy::ExposeSecret;
        crate::bsn::keyed_hmac(self.0.expose_secret(), rpc, canonical.as_bytes())
    }
}

/// The purpose under which a request fingerprint key is recorded in the key records.
pub const FINGERPRINT_PURPOSE: &str = "request-fingerprint";
/// The id of the request fingerprint key in the key records (its key file holds no id: the key
/// is not rotated, a different key under this id is refused).
pub const FINGERPRINT_KEY_ID: &str = "fingerprint-1";

/// The fingerprint key as the key records name it: purpose, id and check value (never the key).
pub fn fingerprint_key_record(fingerprints: &FingerprintKey) -> keys::ConfiguredKey {
    keys::ConfiguredKey {
        purpose: FINGERPRINT_PURPOSE,
        key_id: FINGERPRINT_KEY_ID.to_owned(),
        // HMAC under the key of the check text and a zero byte, as for every other key
        check: fingerprints.fingerprint(keys::CHECK_CONTEXT, ""),
    }
}

/// Checks the request fingerprint key of `service` against the one recorded in
/// `{schema}.service_keys` (recording it on first start); refuses another key. Run it before
/// serving (after the migrations).
pub async fn check_fingerprint_key(
    pool: &PgPool,
    schema: Schema,
    service: &str,
    fingerprints: &FingerprintKey,
) -> Result<(), keys::KeyCheckError> {
    keys::check(
        pool,
        schema,
        service,
        &[fingerprint_key_record(fingerprints)],
        &IdempotencyKeys(schema),
        keys::Mode::Record,
    )
    .await
    .map(drop)
}

/// What a schema's data tells the key check of its fingerprint key: the key protects the stored
/// idempotency keys only (purged after the retention period), and their fingerprints cannot be
/// recomputed to check a key against them.
struct IdempotencyKeys(Schema);

impl keys::ServiceData for IdempotencyKeys {
    fn probe<'a>(
        &'a self,
        conn: &'a mut PgConnection,
    ) -> keys::BoxFuture<'a, Result<keys::Existing, sqlx::Error>> {
        Box::pin(async move {
            let stored: i64 =
                sqlx::query_scalar(self.0.sql("SELECT count(*) FROM {schema}.idempotency"))
                    .fetch_one(conn)
                    .await?;
            Ok(if stored == 0 {
                keys::Existing::Empty
            } else {
                // a wrong key makes retries of these requests fail as reused request ids until
                // they are purged; it loses no data and duplicates nothing
                keys::Existing::Unverifiable(format!(
                    "{stored} stored idempotency keys carry fingerprints that cannot be recomputed"
                ))
            })
        })
    }
}

fn reused() -> ApiError {
    ApiError::invalid("request_id", "was already used for a different request")
}

/// Locks the key for the rest of the transaction and returns the stored response of an earlier
/// call with the same key, if any. The same id with a different request is INVALID_ARGUMENT.
pub async fn lookup(
    conn: &mut PgConnection,
    schema: Schema,
    key: &Key,
) -> Result<Option<Vec<u8>>, ApiError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!(
            "zvv.idem.{}.{}.{}",
            schema.name(),
            key.scope,
            key.request_id
        ))
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query(schema.sql(
        "SELECT fingerprint, response FROM {schema}.idempotency WHERE scope = $1 AND request_id = $2",
    ))
    .bind(&key.scope)
    .bind(&key.request_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let fingerprint: Vec<u8> = row.try_get(0)?;
            if fingerprint != key.fingerprint {
                return Err(reused());
            }
            Ok(Some(row.try_get(1)?))
        }
    }
}

/// Stores the response of a successful call under its key, in the same transaction.
pub async fn store(
    conn: &mut PgConnection,
    schema: Schema,
    key: &Key,
    response: &[u8],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(schema.sql(
        "INSERT INTO {schema}.idempotency (scope, request_id, fingerprint, response, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    ))
    .bind(&key.scope)
    .bind(&key.request_id)
    .bind(&key.fingerprint)
    .bind(response)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the keys stored before `cutoff`, in batches that concurrent replicas skip past each
/// other (`FOR UPDATE SKIP LOCKED`). Returns how many were deleted.
/// The first response stored under `key` (JSON), if any; locks the key for the transaction.
/// INVALID_ARGUMENT when the request id was used for another request.
pub async fn first_response<T: serde::de::DeserializeOwned>(
    conn: &mut PgConnection,
    schema: Schema,
    key: &Key,
) -> Result<Option<T>, ApiError> {
    let Some(stored) = lookup(conn, schema, key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&stored)
        .map(Some)
        .map_err(|_| ApiError::internal("a stored first response cannot be read"))
}

/// Stores the response of a successful call (JSON) under its key, in its transaction.
pub async fn remember<T: serde::Serialize>(
    conn: &mut PgConnection,
    schema: Schema,
    key: &Key,
    response: &T,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(response).map_err(ApiError::internal)?;
    store(conn, schema, key, &bytes, at).await?;
    Ok(())
}

pub async fn purge(
    pool: &sqlx::PgPool,
    schema: Schema,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<u64, sqlx::Error> {
    let sql = schema.sql(
        "DELETE FROM {schema}.idempotency WHERE (scope, request_id) IN ( \
             SELECT scope, request_id FROM {schema}.idempotency WHERE created_at < $1 \
             LIMIT 500 FOR UPDATE SKIP LOCKED)",
    );
    let mut total = 0;
    loop {
        let deleted = sqlx::query(sqlx::AssertSqlSafe(sql.0.clone()))
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected();
        total += deleted;
        if deleted == 0 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_keys_are_keyed() {
        let a = FingerprintKey::from_base64(&FingerprintKey::generate_base64()).unwrap();
        let b = FingerprintKey::from_base64(&FingerprintKey::generate_base64()).unwrap();
        assert_eq!(a.fingerprint("R", "x"), a.fingerprint("R", "x"));
        assert_ne!(a.fingerprint("R", "x"), b.fingerprint("R", "x"));
        assert_ne!(a.fingerprint("R", "x"), a.fingerprint("S", "x"));
        assert_ne!(a.fingerprint("R", "x"), plain_fingerprint("x"));
        let err = FingerprintKey::from_base64("c2VjcmV0").unwrap_err();
        assert!(!err.contains("c2VjcmV0"), "{err}");
        assert!(FingerprintKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn the_fingerprint_key_record_carries_a_check_value_not_the_key() {
        let text = FingerprintKey::generate_base64();
        let a = FingerprintKey::from_base64(&text).unwrap();
        let record = fingerprint_key_record(&a);
        assert_eq!(record.purpose, FINGERPRINT_PURPOSE);
        assert_eq!(record.key_id, FINGERPRINT_KEY_ID);
        assert_eq!(
            record,
            fingerprint_key_record(&FingerprintKey::from_base64(&text).unwrap())
        );
        let other = FingerprintKey::from_base64(&FingerprintKey::generate_base64()).unwrap();
        assert_ne!(record.check, fingerprint_key_record(&other).check);
        // the check value of every other key: the HMAC under the key of the check text
        use base64::{Engine, engine::general_purpose::STANDARD};
        let key = STANDARD.decode(text.trim()).unwrap();
        assert_eq!(record.check, keys::check_value(&key));
        assert_ne!(record.check, key);
    }

    #[test]
    fn request_ids() {
        assert!(check_request_id("request_id", "8c1e6d4e-5b7a-4c1a-9f3e-2b1d0c9a8e7f").is_ok());
        assert!(check_request_id("request_id", "").is_err());
        assert!(check_request_id("request_id", "has space").is_err());
        assert!(check_request_id("request_id", &"x".repeat(129)).is_err());
    }
}
