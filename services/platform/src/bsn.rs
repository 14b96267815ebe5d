//! The citizen service number (BSN) and the vault that protects it.
//!
//! A [`Bsn`] is parsed at the boundary (exactly nine digits that pass the elfproef) and can only be
//! shown masked. Intake stores it as AEAD ciphertext (ChaCha20-Poly1305, with the key id for
//! rotation) plus a keyed HMAC-SHA256 for lookup; never in clear and never as an unkeyed hash, which
//! anyone could reverse by hashing all valid BSNs.
//!
//! The ciphertext is bound to its row: the associated data is `zvv.bsn.v2` followed by the
//! subject id ([`SealForm::Bound`]), so a ciphertext copied onto another subject does not open.
//! Rows sealed before that ([`SealForm::Legacy`], associated data `zvv.bsn.v1`, bound to nothing)
//! are refused by [`BsnVault::open`]; only re-encryption ([`BsnVault::open_for_reencryption`])
//! reads them, to seal them again bound.
//!
//! Every key has an id and a check value ([`crate::keys::check_value`]), which the service records
//! in its schema so that it refuses to start with keys other than the ones its data was written
//! with ([`crate::keys`]).

use std::{collections::HashMap, fmt, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::keys::{self, ConfiguredKey};

/// Why a string is not a BSN. The messages never echo the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BsnError {
    #[error("must be exactly 9 digits")]
    Format,
    #[error("fails the elfproef check")]
    Checksum,
}

/// A valid citizen service number. Its `Debug` output is masked; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Bsn([u8; 9]);

impl Bsn {
    /// Parses nine ASCII digits that pass the elfproef: weights 9..2 on the first eight digits and
    /// -1 on the last; the sum must be a multiple of 11 (and not zero).
    pub fn parse(input: &str) -> Result<Self, BsnError> {
        let bytes = input.as_bytes();
        if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(BsnError::Format);
        }
        let mut digits = [0u8; 9];
        for (d, b) in digits.iter_mut().zip(bytes) {
            *d = b - b'0';
        }
        let sum: i32 = digits
            .iter()
            .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
            .map(|(d, w)| i32::from(*d) * w)
            .sum();
        if sum == 0 || sum % 11 != 0 {
            return Err(BsnError::Checksum);
        }
        Ok(Self(digits))
    }

    /// All but the last three digits hidden: `******782`.
    pub fn masked(&self) -> String {
        let tail: String = self.0[6..].iter().map(|d| char::from(b'0' + d)).collect();
        format!("******{tail}")
    }

    /// The nine digits. Only the vault and the outgoing intake call should need this.
    pub fn expose(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bsn({})", self.masked())
    }
}

/// Which associated data a BSN ciphertext was sealed with; stored beside it (intake:
/// `subjects.bsn_aad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealForm {
    /// `zvv.bsn.v1`, bound to nothing: written before ciphertexts were bound to their subject
    /// (development databases only). Not opened for reading; re-encryption seals it again bound.
    Legacy,
    /// `zvv.bsn.v2` followed by the 16 bytes of the subject id: opens only on its own row.
    Bound,
}

impl SealForm {
    /// The stored code: 1 for [`SealForm::Legacy`], 2 for [`SealForm::Bound`].
    pub fn code(self) -> i16 {
        match self {
            Self::Legacy => 1,
            Self::Bound => 2,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            1 => Some(Self::Legacy),
            2 => Some(Self::Bound),
            _ => None,
        }
    }
}

/// A BSN sealed with one of the vault's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBsn {
    pub key_id: String,
    /// 12-byte nonce followed by the ciphertext and tag.
    pub ciphertext: Vec<u8>,
    pub form: SealForm,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read BSN key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("BSN key file is not valid: {0}")]
    Invalid(String),
    #[error("no BSN encryption key with id {0:?}")]
    UnknownKey(String),
    #[error("stored BSN could not be decrypted")]
    Decrypt,
    #[error(
        "stored BSN is sealed in the legacy form, not bound to its subject; re-encrypt the \
         subjects (`zvv-intake reencrypt`) to read it"
    )]
    Unbound,
}

/// The JSON key file: `{"active_key_id": "k1", "encryption_keys": {"k1": "<base64 32 bytes>"},
/// "hmac_key": "<base64 32 bytes>", "hmac_key_id": "lookup-1"}`. Old encryption keys stay in the
/// file after rotation so that rows sealed with them remain readable. `hmac_key_id` names the
/// lookup key in the key records; files without it mean [`DEFAULT_HMAC_KEY_ID`].
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub active_key_id: String,
    pub encryption_keys: HashMap<String, String>,
    pub hmac_key: String,
    #[serde(default = "default_hmac_key_id")]
    pub hmac_key_id: String,
}

/// The id of the lookup key when the key file names none.
pub const DEFAULT_HMAC_KEY_ID: &str = "lookup-1";

fn default_hmac_key_id() -> String {
    DEFAULT_HMAC_KEY_ID.to_owned()
}

/// The purpose under which the encryption keys are recorded ([`crate::keys`]).
pub const ENCRYPTION_PURPOSE: &str = "bsn-encryption";
/// The purpose under which the lookup (HMAC) key is recorded.
pub const LOOKUP_PURPOSE: &str = "bsn-lookup";

impl KeyFile {
    /// Fresh random keys (for development clusters made by `zvv up`).
    pub fn generate() -> Self {
        let mut enc = [0u8; 32];
        let mut mac = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut enc);
        rand::rngs::OsRng.fill_bytes(&mut mac);
        Self {
            active_key_id: "dev-1".to_owned(),
            encryption_keys: HashMap::from([("dev-1".to_owned(), STANDARD.encode(enc))]),
            hmac_key: STANDARD.encode(mac),
            hmac_key_id: DEFAULT_HMAC_KEY_ID.to_owned(),
        }
    }

    /// A fresh random encryption key (base64), to add under a new id when rotating.
    pub fn generate_encryption_key() -> String {
        let mut enc = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut enc);
        STANDARD.encode(enc)
    }
}

/// Encrypts, decrypts and computes lookup keys for BSNs.
pub struct BsnVault {
    active_key_id: String,
    ciphers: HashMap<String, ChaCha20Poly1305>,
    hmac_key: SecretBox<[u8; 32]>,
    hmac_key_id: String,
    /// Check values of the encryption keys (by id) and of the lookup key.
    encryption_checks: HashMap<String, Vec<u8>>,
    lookup_check: Vec<u8>,
}

impl fmt::Debug for BsnVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BsnVault")
            .field("active_key_id", &self.active_key_id)
            .field("keys", &self.ciphers.len())
            .field("hmac_key_id", &self.hmac_key_id)
            .finish_non_exhaustive()
    }
}

/// Associated data of [`SealForm::Legacy`] ciphertexts.
const LEGACY_AAD: &[u8] = b"zvv.bsn.v1";
/// Prefix of the associated data of [`SealForm::Bound`] ciphertexts (the subject id follows).
const BOUND_AAD: &[u8] = b"zvv.bsn.v2";

fn bound_aad(subject_id: uuid::Uuid) -> Vec<u8> {
    let mut aad = BOUND_AAD.to_vec();
    aad.extend_from_slice(subject_id.as_bytes());
    aad
}

/// Whether `id` may name a key: 1-64 ASCII letters, digits, `.`, `_` or `-` (it appears in the
/// database, in logs and in error messages).
fn plain_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// HMAC-SHA256 under `key` of `context`, a zero byte and `bytes`.
pub(crate) fn keyed_hmac(key: &[u8], context: &str, bytes: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(context.as_bytes());
    mac.update(&[0]);
    mac.update(bytes);
    mac.finalize().into_bytes().to_vec()
}

fn decode_key(name: &str, b64: &str) -> Result<[u8; 32], VaultError> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|_| VaultError::Invalid(format!("{name} is not base64")))?;
    bytes
        .try_into()
        .map_err(|_| VaultError::Invalid(format!("{name} must be 32 bytes")))
}

impl BsnVault {
    pub fn from_key_file(keys: &KeyFile) -> Result<Self, VaultError> {
        let mut ciphers = HashMap::new();
        let mut encryption_checks = HashMap::new();
        for (id, b64) in &keys.encryption_keys {
            if !plain_key_id(id) {
                return Err(VaultError::Invalid(format!(
                    "encryption key id {id:?} must be 1-64 letters, digits, '.', '_' or '-'"
                )));
            }
            let key = decode_key(&format!("encryption key {id:?}"), b64)?;
            encryption_checks.insert(id.clone(), keys::check_value(&key));
            ciphers.insert(id.clone(), ChaCha20Poly1305::new(&key.into()));
        }
        if !ciphers.contains_key(&keys.active_key_id) {
            return Err(VaultError::UnknownKey(keys.active_key_id.clone()));
        }
        if !plain_key_id(&keys.hmac_key_id) {
            return Err(VaultError::Invalid(format!(
                "hmac_key_id {:?} must be 1-64 letters, digits, '.', '_' or '-'",
                keys.hmac_key_id
            )));
        }
        let hmac_key = decode_key("hmac_key", &keys.hmac_key)?;
        Ok(Self {
            active_key_id: keys.active_key_id.clone(),
            ciphers,
            lookup_check: keys::check_value(&hmac_key),
            hmac_key: SecretBox::new(Box::new(hmac_key)),
            hmac_key_id: keys.hmac_key_id.clone(),
            encryption_checks,
        })
    }

    /// The id of the key new BSNs are sealed with.
    pub fn active_key_id(&self) -> &str {
        &self.active_key_id
    }

    /// The ids of every encryption key, sorted.
    pub fn encryption_key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.ciphers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The id of the lookup (HMAC) key.
    pub fn lookup_key_id(&self) -> &str {
        &self.hmac_key_id
    }

    /// Every key of the vault as the key records name it: purpose, id and check value (never
    /// the key), the encryption keys sorted by id, then the lookup key.
    pub fn configured_keys(&self) -> Vec<ConfiguredKey> {
        let mut out: Vec<ConfiguredKey> = self
            .encryption_key_ids()
            .into_iter()
            .map(|id| ConfiguredKey {
                purpose: ENCRYPTION_PURPOSE,
                check: self.encryption_checks[&id].clone(),
                key_id: id,
            })
            .collect();
        out.push(ConfiguredKey {
            purpose: LOOKUP_PURPOSE,
            key_id: self.hmac_key_id.clone(),
            check: self.lookup_check.clone(),
        });
        out
    }

    pub fn load(path: &Path) -> Result<Self, VaultError> {
        let text = std::fs::read_to_string(path).map_err(|source| VaultError::Read {
            path: path.display().to_string(),
            source,
        })?;
        // serde's message may quote the offending value (key material): give only the place
        let keys: KeyFile = serde_json::from_str(&text).map_err(|e| {
            VaultError::Invalid(format!(
                "not the expected JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        Self::from_key_file(&keys)
    }

    /// Keyed lookup value: equal BSNs give equal values, and without the key nobody can compute it.
    pub fn lookup_key(&self, bsn: &Bsn) -> Vec<u8> {
        self.fingerprint("bsn-lookup", bsn.expose().as_bytes())
    }

    /// The BSN's lookup reference: a UUID (version 8) made from a keyed HMAC of the BSN. Other
    /// services may keep it in audit records (of lookups of unknown BSNs too): equal BSNs give equal
    /// references, and only the holder of the lookup key can compute one.
    pub fn lookup_ref(&self, bsn: &Bsn) -> uuid::Uuid {
        let mac = self.fingerprint("bsn-lookup-ref", bsn.expose().as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&mac[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// A keyed HMAC of `bytes` in the given context; for comparing requests that contain a BSN
    /// (idempotency) without storing an unkeyed hash of them.
    pub fn fingerprint(&self, context: &str, bytes: &[u8]) -> Vec<u8> {
        keyed_hmac(self.hmac_key.expose_secret(), context, bytes)
    }

    /// Seals `bsn` with the active key, bound to the subject it belongs to.
    pub fn seal(&self, bsn: &Bsn, subject_id: uuid::Uuid) -> SealedBsn {
        let cipher = &self.ciphers[&self.active_key_id];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: bsn.expose().as_bytes(),
                    aad: &bound_aad(subject_id),
                },
            )
            .unwrap_or_else(|_| unreachable!("encrypting 9 bytes cannot fail"));
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&ct);
        SealedBsn {
            key_id: self.active_key_id.clone(),
            ciphertext,
            form: SealForm::Bound,
        }
    }

    /// Opens the BSN of subject `subject_id`. A ciphertext sealed for another subject fails, and
    /// so does one in the legacy form ([`VaultError::Unbound`]), which is bound to no subject.
    pub fn open(&self, sealed: &SealedBsn, subject_id: uuid::Uuid) -> Result<Bsn, VaultError> {
        match sealed.form {
            SealForm::Bound => self.decrypt(sealed, &bound_aad(subject_id)),
            SealForm::Legacy => Err(VaultError::Unbound),
        }
    }

    /// Opens a BSN in either form, for re-encryption and for checking that the keys read a
    /// database's existing rows only: a legacy ciphertext may have been moved from another row,
    /// so the caller must compare the BSN's lookup value with the row's before trusting it.
    pub fn open_for_reencryption(
        &self,
        sealed: &SealedBsn,
        subject_id: uuid::Uuid,
    ) -> Result<Bsn, VaultError> {
        match sealed.form {
            SealForm::Bound => self.decrypt(sealed, &bound_aad(subject_id)),
            SealForm::Legacy => self.decrypt(sealed, LEGACY_AAD),
        }
    }

    fn decrypt(&self, sealed: &SealedBsn, aad: &[u8]) -> Result<Bsn, VaultError> {
        let cipher = self
            .ciphers
            .get(&sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.ciphertext.len() < 12 {
            return Err(VaultError::Decrypt);
        }
        let (nonce, ct) = sealed.ciphertext.split_at(12);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| VaultError::Decrypt)?;
        let text = String::from_utf8(plain).map_err(|_| VaultError::Decrypt)?;
        Bsn::parse(&text).map_err(|_| VaultError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elfproef() {
        // 9*1+8*1+7*1+6*2+5*2+4*2+3*3+2*3-1*2 = 9+8+7+12+10+8+9+6-2 = 67 -> invalid
        assert_eq!(Bsn::parse("111222332"), Err(BsnError::Checksum));
        // 111222333: 9+8+7+12+10+8+9+6-3 = 66 = 6*11
        assert!(Bsn::parse("111222333").is_ok());
        assert!(Bsn::parse("123456782").is_ok());
        assert!(Bsn::parse("012345672").is_ok(), "a leading zero is fine");
        assert_eq!(Bsn::parse("000000000"), Err(BsnError::Checksum));
        assert_eq!(Bsn::parse("12345678"), Err(BsnError::Format));
        assert_eq!(Bsn::parse("1234567820"), Err(BsnError::Format));
        assert_eq!(Bsn::parse("12345678a"), Err(BsnError::Format));
        assert_eq!(Bsn::parse("１２３４５６７８２"), Err(BsnError::Format));
    }

    #[test]
    fn masking_shows_only_the_last_three_digits() {
        let bsn = Bsn::parse("123456782").unwrap();
        assert_eq!(bsn.masked(), "******782");
        assert_eq!(format!("{bsn:?}"), "Bsn(******782)");
    }

    #[test]
    fn key_file_errors_do_not_quote_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, r#"{"active_key_id": "k1", "encryption_keys": "c2VjcmV0LWtleS1tYXRlcmlhbA==", "hmac_key": "x"}"#)
            .unwrap();
        let err = BsnVault::load(&path).unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn vault_round_trip_rotation_and_lookup() {
        let keys = KeyFile::generate();
        let vault = BsnVault::from_key_file(&keys).unwrap();
        let bsn = Bsn::parse("123456782").unwrap();
        let id = uuid::Uuid::now_v7();
        let sealed = vault.seal(&bsn, id);
        assert_eq!(sealed.form, SealForm::Bound);
        assert!(!sealed.ciphertext.windows(9).any(|w| w == b"123456782"));
        assert_ne!(
            vault.seal(&bsn, id).ciphertext,
            sealed.ciphertext,
            "fresh nonce each time"
        );
        assert_eq!(vault.open(&sealed, id).unwrap(), bsn);
        assert_eq!(vault.lookup_key(&bsn), vault.lookup_key(&bsn.clone()));
        assert_eq!(vault.lookup_ref(&bsn), vault.lookup_ref(&bsn.clone()));
        assert_ne!(
            vault.lookup_ref(&bsn),
            vault.lookup_ref(&Bsn::parse("111222333").unwrap())
        );
        assert_eq!(vault.lookup_ref(&bsn).get_version_num(), 8);
        assert_ne!(
            vault.lookup_key(&bsn),
            vault.lookup_key(&Bsn::parse("111222333").unwrap())
        );

        // rotate: a new active key, the old one kept for reading
        let mut rotated = KeyFile::generate();
        rotated.hmac_key = keys.hmac_key.clone();
        rotated.active_key_id = "dev-2".into();
        let old = keys.encryption_keys["dev-1"].clone();
        let new = rotated.encryption_keys.remove("dev-1").unwrap();
        rotated.encryption_keys.insert("dev-1".into(), old);
        rotated.encryption_keys.insert("dev-2".into(), new);
        let vault2 = BsnVault::from_key_file(&rotated).unwrap();
        assert_eq!(vault2.open(&sealed, id).unwrap(), bsn);
        assert_eq!(vault2.seal(&bsn, id).key_id, "dev-2");
        assert_eq!(vault2.lookup_key(&bsn), vault.lookup_key(&bsn));
        assert_eq!(vault2.encryption_key_ids(), ["dev-1", "dev-2"]);
        assert_eq!(vault2.active_key_id(), "dev-2");

        // another key cannot read it
        let other = BsnVault::from_key_file(&KeyFile::generate()).unwrap();
        assert!(other.open(&sealed, id).is_err());
    }

    #[test]
    fn a_ciphertext_opens_only_on_its_own_subject() {
        let vault = BsnVault::from_key_file(&KeyFile::generate()).unwrap();
        let bsn = Bsn::parse("123456782").unwrap();
        let (mine, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let sealed = vault.seal(&bsn, mine);
        assert!(matches!(
            vault.open(&sealed, other),
            Err(VaultError::Decrypt)
        ));
        assert!(vault.open_for_reencryption(&sealed, other).is_err());
        assert_eq!(vault.open(&sealed, mine).unwrap(), bsn);
    }

    /// A ciphertext as written before ciphertexts were bound to their subject.
    fn legacy_seal(keys: &KeyFile, bsn: &Bsn) -> SealedBsn {
        let key = decode_key("k", &keys.encryption_keys[&keys.active_key_id]).unwrap();
        let nonce = [7u8; 12];
        let ct = ChaCha20Poly1305::new(&key.into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: bsn.expose().as_bytes(),
                    aad: b"zvv.bsn.v1",
                },
            )
            .unwrap();
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&ct);
        SealedBsn {
            key_id: keys.active_key_id.clone(),
            ciphertext,
            form: SealForm::Legacy,
        }
    }

    #[test]
    fn legacy_ciphertexts_open_only_for_reencryption() {
        let keys = KeyFile::generate();
        let vault = BsnVault::from_key_file(&keys).unwrap();
        let bsn = Bsn::parse("123456782").unwrap();
        let id = uuid::Uuid::now_v7();
        let legacy = legacy_seal(&keys, &bsn);
        assert!(matches!(vault.open(&legacy, id), Err(VaultError::Unbound)));
        assert_eq!(vault.open_for_reencryption(&legacy, id).unwrap(), bsn);
        // marked bound, a legacy ciphertext does not open either
        let relabelled = SealedBsn {
            form: SealForm::Bound,
            ..legacy
        };
        assert!(vault.open(&relabelled, id).is_err());
        assert_eq!(
            SealForm::from_code(SealForm::Legacy.code()),
            Some(SealForm::Legacy)
        );
        assert_eq!(
            SealForm::from_code(SealForm::Bound.code()),
            Some(SealForm::Bound)
        );
        assert_eq!(SealForm::from_code(0), None);
    }

    #[test]
    fn key_files_without_a_lookup_key_id_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let keys = KeyFile::generate();
        let json = serde_json::json!({
            "active_key_id": keys.active_key_id,
            "encryption_keys": keys.encryption_keys,
            "hmac_key": keys.hmac_key,
        });
        std::fs::write(&path, json.to_string()).unwrap();
        let vault = BsnVault::load(&path).unwrap();
        assert_eq!(vault.lookup_key_id(), DEFAULT_HMAC_KEY_ID);
        let text = serde_json::to_string(&keys).unwrap();
        assert!(text.contains("\"hmac_key_id\":\"lookup-1\""), "{text}");
    }

    #[test]
    fn key_ids_must_be_plain() {
        let mut keys = KeyFile::generate();
        keys.hmac_key_id = "lookup 1; drop".into();
        assert!(matches!(
            BsnVault::from_key_file(&keys),
            Err(VaultError::Invalid(_))
        ));
        let mut keys = KeyFile::generate();
        let key = keys.encryption_keys.remove("dev-1").unwrap();
        keys.encryption_keys.insert(String::new(), key);
        keys.active_key_id = String::new();
        assert!(matches!(
            BsnVault::from_key_file(&keys),
            Err(VaultError::Invalid(_))
        ));
    }

    #[test]
    fn configured_keys_carry_check_values_not_keys() {
        let keys = KeyFile::generate();
        let vault = BsnVault::from_key_file(&keys).unwrap();
        let configured = vault.configured_keys();
        let names: Vec<(&str, &str)> = configured
            .iter()
            .map(|k| (k.purpose, k.key_id.as_str()))
            .collect();
        assert_eq!(
            names,
            [(ENCRYPTION_PURPOSE, "dev-1"), (LOOKUP_PURPOSE, "lookup-1")]
        );
        let enc = STANDARD.decode(&keys.encryption_keys["dev-1"]).unwrap();
        let mac = STANDARD.decode(&keys.hmac_key).unwrap();
        assert_eq!(configured[0].check, keys::check_value(&enc));
        assert_eq!(configured[1].check, keys::check_value(&mac));
        for k in &configured {
            assert_eq!(k.check.len(), 32);
            assert_ne!(k.check, enc);
            assert_ne!(k.check, mac);
        }
        // the same keys give the same check values; others do not
        let again = BsnVault::from_key_file(&keys).unwrap().configured_keys();
        assert_eq!(again, configured);
        let other = BsnVault::from_key_file(&KeyFile::generate())
            .unwrap()
            .configured_keys();
        assert_ne!(other[0].check, configured[0].check);
        assert_ne!(other[1].check, configured[1].check);
    }
}
