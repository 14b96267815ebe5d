//! The citizen service number (BSN) and the vault that protects it.
//!
//! A [`Bsn`] is parsed at the boundary (exactly nine digits that pass the elfproef) and can only be
//! shown masked. Intake stores it as AEAD ciphertext (ChaCha20-Poly1305, with the key id for
//! rotation) plus a keyed HMAC-SHA256 for lookup; never in clear and never as an unkeyed hash, which
//! anyone could reverse by hashing all valid BSNs.

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

/// A BSN sealed with one of the vault's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBsn {
    pub key_id: String,
    /// 12-byte nonce followed by the ciphertext and tag.
    pub ciphertext: Vec<u8>,
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
}

/// The JSON key file: `{"active_key_id": "k1", "encryption_keys": {"k1": "<base64 32 bytes>"},
/// "hmac_key": "<base64 32 bytes>"}`. Old encryption keys stay in the file after rotation so that
/// rows sealed with them remain readable.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    pub active_key_id: String,
    pub encryption_keys: HashMap<String, String>,
    pub hmac_key: String,
}

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
        }
    }
}

/// Encrypts, decrypts and computes lookup keys for BSNs.
pub struct BsnVault {
    active_key_id: String,
    ciphers: HashMap<String, ChaCha20Poly1305>,
    hmac_key: SecretBox<[u8; 32]>,
}

impl fmt::Debug for BsnVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BsnVault")
            .field("active_key_id", &self.active_key_id)
            .field("keys", &self.ciphers.len())
            .finish_non_exhaustive()
    }
}

const AAD: &[u8] = b"zvv.bsn.v1";

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
        for (id, b64) in &keys.encryption_keys {
            let key = decode_key(&format!("encryption key {id:?}"), b64)?;
            ciphers.insert(id.clone(), ChaCha20Poly1305::new(&key.into()));
        }
        if !ciphers.contains_key(&keys.active_key_id) {
            return Err(VaultError::UnknownKey(keys.active_key_id.clone()));
        }
        let hmac_key = decode_key("hmac_key", &keys.hmac_key)?;
        Ok(Self {
            active_key_id: keys.active_key_id.clone(),
            ciphers,
            hmac_key: SecretBox::new(Box::new(hmac_key)),
        })
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

    pub fn seal(&self, bsn: &Bsn) -> SealedBsn {
        let cipher = &self.ciphers[&self.active_key_id];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: bsn.expose().as_bytes(),
                    aad: AAD,
                },
            )
            .unwrap_or_else(|_| unreachable!("encrypting 9 bytes cannot fail"));
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&ct);
        SealedBsn {
            key_id: self.active_key_id.clone(),
            ciphertext,
        }
    }

    pub fn open(&self, sealed: &SealedBsn) -> Result<Bsn, VaultError> {
        let cipher = self
            .ciphers
            .get(&sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.ciphertext.len() < 12 {
            return Err(VaultError::Decrypt);
        }
        let (nonce, ct) = sealed.ciphertext.split_at(12);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
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
        let sealed = vault.seal(&bsn);
        assert!(!sealed.ciphertext.windows(9).any(|w| w == b"123456782"));
        assert_ne!(
            vault.seal(&bsn).ciphertext,
            sealed.ciphertext,
            "fresh nonce each time"
        );
        assert_eq!(vault.open(&sealed).unwrap(), bsn);
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
        assert_eq!(vault2.open(&sealed).unwrap(), bsn);
        assert_eq!(vault2.seal(&bsn).key_id, "dev-2");
        assert_eq!(vault2.lookup_key(&bsn), vault.lookup_key(&bsn));

        // another key cannot read it
        let other = BsnVault::from_key_file(&KeyFile::generate()).unwrap();
        assert!(other.open(&sealed).is_err());
    }
}
