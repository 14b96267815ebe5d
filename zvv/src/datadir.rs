//! The local data folder of `zvv up`: the private PostgreSQL cluster and the development keys.
//!
//! ```text
//! <data-dir>/pg/                    PostgreSQL cluster (when DATABASE_URL is not set)
//! <data-dir>/keys/jwt-signing.pem   Ed25519 private key that signs development tokens
//! <data-dir>/keys/jwt-public.pem    its public key, pinned by the services
//! <data-dir>/keys/bsn-keys.json     BSN encryption and lookup keys
//! <data-dir>/keys/<service>-fingerprint.key  request fingerprint key of a service
//! <data-dir>/keys/audit-signing.pem Ed25519 key that signs audit checkpoints (audit-public.pem)
//! <data-dir>/audit/<schema>.checkpoints.jsonl  signed audit checkpoints, outside the database
//! <data-dir>/tokens/<service>.token SERVICE tokens the services call each other with
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use zvv_platform::{
    auth::{TokenSigner, generate_ed25519_pem},
    bsn::KeyFile,
};

/// Issuer and audience of development tokens.
pub const DEV_ISSUER: &str = "zvv-dev";
pub const DEV_AUDIENCE: &str = "zvv";

#[derive(Debug, Clone, clap::Args)]
pub struct DataDirArg {
    /// Folder for the private PostgreSQL cluster and development keys.
    #[arg(long, env = "ZVV_DATA_DIR", default_value = ".zvv")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

impl DataDir {
    pub fn new(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating data folder {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving data folder {}", root.display()))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pg_dir(&self) -> PathBuf {
        self.root.join("pg")
    }

    pub fn signing_key(&self) -> PathBuf {
        self.root.join("keys").join("jwt-signing.pem")
    }

    pub fn public_key(&self) -> PathBuf {
        self.root.join("keys").join("jwt-public.pem")
    }

    pub fn bsn_keys(&self) -> PathBuf {
        self.root.join("keys").join("bsn-keys.json")
    }

    /// The private key that signs audit checkpoints.
    pub fn audit_signing_key(&self) -> PathBuf {
        self.root.join("keys").join("audit-signing.pem")
    }

    /// Its public key, for `zvv audit verify`.
    pub fn audit_public_key(&self) -> PathBuf {
        self.root.join("keys").join("audit-public.pem")
    }

    /// The append-only files of the signed checkpoints, one per schema.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join("audit")
    }

    /// The request fingerprint key of a service without a BSN vault (base64, 32 bytes).
    pub fn fingerprint_key(&self, service: &str) -> PathBuf {
        self.root
            .join("keys")
            .join(format!("{service}-fingerprint.key"))
    }

    pub fn token_file(&self, service: &str) -> PathBuf {
        self.root.join("tokens").join(format!("{service}.token"))
    }

    /// Creates the development keys on first use; keeps existing ones.
    pub fn ensure_keys(&self) -> anyhow::Result<()> {
        let keys = self.root.join("keys");
        std::fs::create_dir_all(&keys)?;
        restrict(&keys, 0o700)?;
        if !self.signing_key().exists() || !self.public_key().exists() {
            let (private, public) = generate_ed25519_pem()?;
            std::fs::write(self.signing_key(), private)?;
            restrict(&self.signing_key(), 0o600)?;
            std::fs::write(self.public_key(), public)?;
            println!("created development signing key in {}", keys.display());
        }
        if !self.bsn_keys().exists() {
            std::fs::write(
                self.bsn_keys(),
                serde_json::to_string_pretty(&KeyFile::generate())?,
            )?;
            restrict(&self.bsn_keys(), 0o600)?;
            println!("created development BSN keys in {}", keys.display());
        }
        if !self.audit_signing_key().exists() || !self.audit_public_key().exists() {
            let (private, public) = generate_ed25519_pem()?;
            std::fs::write(self.audit_signing_key(), private)?;
            restrict(&self.audit_signing_key(), 0o600)?;
            std::fs::write(self.audit_public_key(), public)?;
            println!("created the audit signing key in {}", keys.display());
        }
        std::fs::create_dir_all(self.checkpoint_dir())?;
        restrict(&self.checkpoint_dir(), 0o700)?;
        let fingerprint = self.fingerprint_key("signalling");
        if !fingerprint.exists() {
            std::fs::write(
                &fingerprint,
                zvv_platform::idempotency::FingerprintKey::generate_base64(),
            )?;
            restrict(&fingerprint, 0o600)?;
            println!(
                "created the signalling fingerprint key in {}",
                keys.display()
            );
        }
        std::fs::create_dir_all(self.root.join("tokens"))?;
        restrict(&self.root.join("tokens"), 0o700)?;
        Ok(())
    }

    /// The signer of development tokens; fails with a hint when `zvv up` never ran here.
    pub fn signer(&self) -> anyhow::Result<TokenSigner> {
        let path = self.signing_key();
        if !path.exists() {
            anyhow::bail!(
                "no development signing key at {}: run `zvv up` with the same --data-dir first",
                path.display()
            );
        }
        Ok(TokenSigner::from_pem_file(&path, DEV_ISSUER, DEV_AUDIENCE)?)
    }
}
