//! The service's secret key: it seals what a subscription must keep but the database must not
//! show (a webhook's Authorization value, its signing secret), each bound to its subscription,
//! and keys the fingerprints of idempotent requests (which may carry such a value). The key
//! lives in a file outside the database (a Kubernetes Secret), never in a table.

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use uuid::Uuid;
use zvv_platform::{idempotency::FingerprintKey, keys::ConfiguredKey};

/// The purpose under which the key is recorded in `notifications.service_keys`.
pub const PURPOSE: &str = "subscription-secrets";
/// Its id (the key file holds no id: a different key under this id is refused at start).
pub const KEY_ID: &str = "secrets-1";

/// What a sealed value is for; part of what the seal is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    Authorization,
    SigningSecret,
}

impl Sealed {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Authorization => b"authorization",
            Self::SigningSecret => b"signing-secret",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret key file {path}: {cause}")]
    Read { path: String, cause: String },
    #[error("the secret key must be 32 bytes in base64")]
    Malformed,
    #[error("a sealed value does not open with this key for this subscription")]
    Open,
}

pub struct Secrets {
    key: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// A new key in its file form (base64 of 32 random bytes).
    pub fn generate_base64() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::Malformed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::Malformed)?;
        Ok(Self {
            key: SecretBox::new(Box::new(key)),
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::Read {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        Self::from_base64(&text)
    }

    fn derive(&self, context: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(b"zvv.notifications.");
        mac.update(context.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The key of request fingerprints, derived from this key.
    pub fn fingerprint_key(&self) -> FingerprintKey {
        FingerprintKey::from_base64(&STANDARD.encode(self.derive("fingerprint")))
            .expect("a derived key is 32 bytes")
    }

    /// The key as the key records name it: purpose, id and check value (never the key).
    pub fn configured_key(&self) -> ConfiguredKey {
        ConfiguredKey {
            purpose: PURPOSE,
            key_id: KEY_ID.to_owned(),
            check: zvv_platform::keys::check_value(self.key.expose_secret()),
        }
    }

    fn aad(what: Sealed, subscription: Uuid) -> Vec<u8> {
        let mut aad = what.label().to_vec();
        aad.push(0);
        aad.extend_from_slice(subscription.as_bytes());
        aad
    }

    /// Nonce (12 bytes) and ciphertext, bound to `what` and `subscription`.
    pub fn seal(&self, what: Sealed, subscription: Uuid, plain: &[u8]) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(self.key.expose_secret().into());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(what, subscription);
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: plain,
                        aad: &aad,
                    },
                )
                .expect("sealing in memory does not fail"),
        );
        out
    }

    pub fn open(
        &self,
        what: Sealed,
        subscription: Uuid,
        sealed: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::Open);
        }
        let (nonce, ct) = sealed.split_at(12);
        let cipher = ChaCha20Poly1305::new(self.key.expose_secret().into());
        let aad = Self::aad(what, subscription);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| SecretError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_subscription_and_purpose() {
        let secrets = Secrets::from_base64(&Secrets::generate_base64()).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = secrets.seal(Sealed::Authorization, a, b"Bearer xyz");
        assert_eq!(
            secrets.open(Sealed::Authorization, a, &sealed).unwrap(),
            b"Bearer xyz"
        );
        assert!(secrets.open(Sealed::Authorization, b, &sealed).is_err());
        assert!(secrets.open(Sealed::SigningSecret, a, &sealed).is_err());
        let other = Secrets::from_base64(&Secrets::generate_base64()).unwrap();
        assert!(other.open(Sealed::Authorization, a, &sealed).is_err());
        assert!(!format!("{secrets:?}").contains(&STANDARD.encode(secrets.key.expose_secret())));
        assert!(Secrets::from_base64("c2hvcnQ=").is_err());
    }
}
