//! The local data folder of `zvv up`: the private PostgreSQL cluster and the development keys.
//!
//! ```text
//! <data-dir>/pg/                    PostgreSQL cluster (when DATABASE_URL is not set)
//! <data-dir>/keys/jwt-signing.pem   Ed25519 private key that signs development tokens
//! <data-dir>/keys/jwt-public.pem    its public key, pinned by the services
//! <data-dir>/keys/bsn-keys.json     BSN encryption and lookup keys
//! <data-dir>/keys/<service>-fingerprint.key  request fingerprint key of a service (signalling,
//!                                   reintegration)
//! <data-dir>/keys/audit-signing.pem Ed25519 key that signs audit checkpoints (audit-public.pem)
//! <data-dir>/audit/<schema>.checkpoints.jsonl  signed audit checkpoints, outside the database
//! <data-dir>/keys/notifications-secrets.key  the key that seals webhook secrets (notifications)
//! <data-dir>/tokens/<caller>-for-<callee>.token  SERVICE tokens the services call each other with
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use zvv_devkit::devdb::{ClusterOptions, DevDbError, LocalCluster};
use zvv_platform::{
    auth::{TokenSigner, generate_ed25519_pem},
    bsn::KeyFile,
};

/// The services with a request fingerprint key of their own (`keys/<service>-fingerprint.key`):
/// those without a BSN vault whose requests may carry a BSN. Reintegration's also keys the
/// release marks that link a release to a later detention.
pub const FINGERPRINT_SERVICES: &[&str] = &["signalling", "reintegration"];

/// The database `zvv up` creates in the private cluster.
pub const DATABASE: &str = "zvv";

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

    /// The SERVICE token `caller` calls `callee` with.
    pub fn token_file(&self, caller: &str, callee: &str) -> PathBuf {
        self.root
            .join("tokens")
            .join(format!("{caller}-for-{callee}.token"))
    }

    /// The key that seals webhook Authorization values and signing secrets (base64, 32 bytes).
    pub fn notifications_secret_key(&self) -> PathBuf {
        self.root.join("keys").join("notifications-secrets.key")
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
        for service in FINGERPRINT_SERVICES {
            let fingerprint = self.fingerprint_key(service);
            if !fingerprint.exists() {
                std::fs::write(
                    &fingerprint,
                    zvv_platform::idempotency::FingerprintKey::generate_base64(),
                )?;
                restrict(&fingerprint, 0o600)?;
                println!(
                    "created the {service} fingerprint key in {}",
                    keys.display()
                );
            }
        }
        let secrets = self.notifications_secret_key();
        if !secrets.exists() {
            std::fs::write(&secrets, zvv_notifications::Secrets::generate_base64())?;
            restrict(&secrets, 0o600)?;
            println!("created the notifications secret key in {}", keys.display());
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

impl DataDir {
    /// Takes the lock `zvv up` holds on the data folder for as long as it runs, or fails when a
    /// `zvv up` runs with it (the lock ends with the returned file).
    pub fn lock_against_up(&self, why: &str) -> anyhow::Result<std::fs::File> {
        let path = self.root.join("zvv-up.lock");
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "`zvv up` is running with the data folder {}: stop it first ({why})",
                self.root.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// The private cluster of `zvv up` in a data folder, started for one command if it was not
/// running and stopped again afterwards (a running `zvv up` keeps its cluster).
pub struct PrivateCluster {
    cluster: Option<LocalCluster>,
    was_running: bool,
}

impl PrivateCluster {
    /// Whether `zvv up` ever made a cluster in this data folder.
    pub fn exists(data: &Path) -> bool {
        data.join("pg").join("PG_VERSION").exists()
    }

    pub async fn open(data: &Path) -> anyhow::Result<Self> {
        let hint = "run `zvv up` with the same --data-dir first, or set DATABASE_URL";
        if !data.is_dir() {
            anyhow::bail!("no data folder at {}: {hint}", data.display());
        }
        let data = DataDir::new(data)?;
        let pg_dir = data.pg_dir();
        if !pg_dir.join("PG_VERSION").exists() {
            anyhow::bail!(
                "no private PostgreSQL cluster in {}: {hint}",
                pg_dir.display()
            );
        }
        let was_running = pg_dir.join("postmaster.pid").exists();
        let options = ClusterOptions {
            port: None,
            durable: true,
        };
        let cluster = match LocalCluster::start(&pg_dir, options).await {
            Ok(cluster) => cluster,
            Err(e @ DevDbError::NotInstalled) => anyhow::bail!("{e}"),
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!(
                    "starting the private PostgreSQL cluster in {}",
                    pg_dir.display()
                )));
            }
        };
        Ok(Self {
            cluster: Some(cluster),
            was_running,
        })
    }

    /// The superuser's connection to `zvv up`'s database.
    pub fn connect_options(&self) -> anyhow::Result<PgConnectOptions> {
        match &self.cluster {
            Some(cluster) => Ok(cluster.connect_options(DATABASE)),
            None => anyhow::bail!("the private PostgreSQL cluster was already stopped"),
        }
    }

    /// Stops the cluster unless it was running before (then `zvv up` owns it).
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(mut cluster) = self.cluster.take() {
            if self.was_running {
                // Dropping a LocalCluster stops it; the running `zvv up` still needs it.
                std::mem::forget(cluster);
            } else {
                cluster
                    .stop()
                    .context("stopping the private PostgreSQL cluster")?;
            }
        }
        Ok(())
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Writes `text` to `path` through a temporary file readable by the owner only.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // A leftover file keeps its old mode on open; make sure it is private.
        if tmp.exists() {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", tmp.display()))?;
        }
    }
    use std::io::Write;
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
