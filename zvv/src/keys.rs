//! `zvv keys`: the keys of a data folder against the database `zvv up` uses.
//!
//! - `show` lists the key ids of the data folder's key files and, from the database, the keys
//!   each service recorded, whether they match, and how many subjects each encryption key seals;
//!   never key material.
//! - `rotate` adds a new BSN encryption key to the key file and makes it active (with `zvv up`
//!   stopped); the older keys stay, so existing subjects remain readable.
//! - `reencrypt` seals every subject's BSN again with the active key, in audited batches (also
//!   while `zvv up` runs), after which older keys are no longer needed.

use std::path::Path;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgPool, postgres::PgConnectOptions};
use zvv_platform::{
    bsn::{BsnVault, ENCRYPTION_PURPOSE, KeyFile},
    db::{PoolSettings, Schema},
    idempotency::FingerprintKey,
    keys::{ConfiguredKey, KeyStatus},
};

use crate::datadir::{DataDir, DataDirArg, PrivateCluster};

/// The `zvv keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List the key ids of the data folder and the keys recorded in the database (no key
    /// material).
    Show(KeysArgs),
    /// Add a new BSN encryption key to the data folder's key file and make it active (stop `zvv
    /// up` first); older keys stay for reading. Then run `zvv keys reencrypt`.
    Rotate {
        #[command(flatten)]
        args: KeysArgs,
        /// Id of the new key; default: the next `dev-<n>`.
        #[arg(long)]
        key_id: Option<String>,
    },
    /// Re-encrypt every subject's BSN with the active key of the data folder's key file, in
    /// audited batches; may run while `zvv up` runs.
    Reencrypt {
        #[command(flatten)]
        args: KeysArgs,
        /// Subjects per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10000))]
        batch_size: u32,
    },
}

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// PostgreSQL URL; without it, the private cluster in the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,
}

/// Runs one subcommand.
pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Show(args) => show(&args).await,
        KeysCommand::Rotate { args, key_id } => rotate(&args, key_id).await,
        KeysCommand::Reencrypt { args, batch_size } => reencrypt(&args, batch_size).await,
    }
}

/// The database of a `zvv keys` command, closed (and a private cluster stopped) by `finish`.
struct Database {
    pool: PgPool,
    private: Option<PrivateCluster>,
    describe: String,
}

impl Database {
    /// The database named by `--database-url`, else the private cluster; `None` when there is
    /// neither.
    async fn open(args: &KeysArgs) -> anyhow::Result<Option<Self>> {
        let url = args
            .database_url
            .as_ref()
            .filter(|url| !url.expose_secret().trim().is_empty());
        let (options, private, describe) = match url {
            Some(url) => {
                let options = url
                    .expose_secret()
                    .parse::<PgConnectOptions>()
                    .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))?;
                (options, None, "the database of DATABASE_URL".to_owned())
            }
            None if PrivateCluster::exists(&args.data.data_dir) => {
                let private = PrivateCluster::open(&args.data.data_dir).await?;
                let options = private.connect_options()?;
                let describe = format!(
                    "the private PostgreSQL cluster in {}",
                    args.data.data_dir.join("pg").display()
                );
                (options, Some(private), describe)
            }
            None => return Ok(None),
        };
        let pool = zvv_platform::db::connect(options, &PoolSettings::default())
            .await
            .with_context(|| format!("connecting to {describe}"))?;
        Ok(Some(Self {
            pool,
            private,
            describe,
        }))
    }

    /// Like [`Database::open`], with a hint when there is no database.
    async fn required(args: &KeysArgs) -> anyhow::Result<Self> {
        Self::open(args).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "no private PostgreSQL cluster in {}: run `zvv up` with the same --data-dir \
                 first, or set DATABASE_URL",
                args.data.data_dir.join("pg").display()
            )
        })
    }

    /// Whether intake's schema exists and is migrated to this version (`zvv up` migrates it).
    async fn intake_ready(&self) -> anyhow::Result<bool> {
        if !self.has_schema(zvv_intake::SCHEMA).await? {
            return Ok(false);
        }
        let migrated: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'intake' \
             AND table_name = 'subjects' AND column_name = 'bsn_aad')",
        )
        .fetch_one(&self.pool)
        .await?;
        if !migrated {
            anyhow::bail!(
                "intake's tables in {} are from an older version: run `zvv up` once to migrate them",
                self.describe
            );
        }
        Ok(true)
    }

    async fn has_schema(&self, schema: Schema) -> anyhow::Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema.name())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn finish(mut self) -> anyhow::Result<()> {
        self.pool.close().await;
        if let Some(private) = self.private.as_mut() {
            private.finish()?;
        }
        Ok(())
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<KeyFile> {
    if !path.exists() {
        anyhow::bail!(
            "no BSN key file at {}: run `zvv up` with the same --data-dir first",
            path.display()
        );
    }
    // the vault's loader gives errors that never quote key material
    BsnVault::load(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|_| anyhow::anyhow!("{} is not valid", path.display()))
}

fn load_vault(data: &DataDir) -> anyhow::Result<BsnVault> {
    let path = data.bsn_keys();
    if !path.exists() {
        anyhow::bail!(
            "no BSN key file at {}: run `zvv up` with the same --data-dir first",
            path.display()
        );
    }
    BsnVault::load(&path).with_context(|| format!("reading {}", path.display()))
}

/// Every service with keys: name, schema and its configured keys (when its key file exists).
fn configured(data: &DataDir) -> anyhow::Result<Vec<(&'static str, Schema, Vec<ConfiguredKey>)>> {
    let mut out = Vec::new();
    if data.bsn_keys().exists() {
        out.push((
            "intake",
            zvv_intake::SCHEMA,
            load_vault(data)?.configured_keys(),
        ));
    }
    let fingerprint = data.fingerprint_key("signalling");
    if fingerprint.exists() {
        let key = FingerprintKey::load(&fingerprint).map_err(anyhow::Error::msg)?;
        out.push((
            "signalling",
            zvv_signalling::SCHEMA,
            vec![zvv_signalling::configured_key(&key)],
        ));
    }
    let fingerprint = data.fingerprint_key("reintegration");
    if fingerprint.exists() {
        let key = FingerprintKey::load(&fingerprint).map_err(anyhow::Error::msg)?;
        out.push((
            "reintegration",
            zvv_reintegration::SCHEMA,
            vec![zvv_reintegration::configured_key(&key)],
        ));
    }
    let secrets = data.notifications_secret_key();
    if secrets.exists() {
        let key = zvv_notifications::Secrets::load(&secrets).map_err(anyhow::Error::msg)?;
        out.push((
            "notifications",
            zvv_notifications::SCHEMA,
            vec![key.configured_key()],
        ));
    }
    Ok(out)
}

async fn show(args: &KeysArgs) -> anyhow::Result<()> {
    let data = DataDir::new(&args.data.data_dir)?;
    let services = configured(&data)?;
    if services.is_empty() {
        anyhow::bail!(
            "no key files in {}: run `zvv up` with the same --data-dir first",
            data.root().join("keys").display()
        );
    }
    let active = data
        .bsn_keys()
        .exists()
        .then(|| load_vault(&data))
        .transpose()?
        .map(|v| v.active_key_id().to_owned());
    println!("key files in {}:", data.root().join("keys").display());
    for (service, _, keys) in &services {
        for key in keys {
            let note = if key.purpose == ENCRYPTION_PURPOSE && Some(&key.key_id) == active.as_ref()
            {
                "active"
            } else {
                ""
            };
            let line = format!(
                "  {service:<13} {:<20} {:<16} {note}",
                key.purpose, key.key_id
            );
            println!("{}", line.trim_end());
        }
    }
    let Some(db) = Database::open(args).await? else {
        println!("no database yet (no private cluster in the data folder, no DATABASE_URL)");
        return Ok(());
    };
    let shown = show_records(&db, &services).await;
    db.finish().await?;
    shown
}

async fn show_records(
    db: &Database,
    services: &[(&'static str, Schema, Vec<ConfiguredKey>)],
) -> anyhow::Result<()> {
    println!("recorded in {}:", db.describe);
    // (the line format is read by `recorded_line` in zvv/tests/keys.rs)
    for (service, schema, keys) in services {
        let Some(recorded) = zvv_platform::keys::recorded(&db.pool, *schema).await? else {
            println!(
                "  {service:<13} no key records yet ({service} has not started on this database)"
            );
            continue;
        };
        let sealed = if *service == "intake" && db.intake_ready().await? {
            subjects_by_key(&db.pool).await?
        } else {
            Vec::new()
        };
        for (purpose, key_id, status) in zvv_platform::keys::compare(&recorded, keys) {
            let status = match status {
                KeyStatus::Matches => "recorded, matches the key file",
                KeyStatus::Differs => "recorded, DIFFERS from the key file",
                KeyStatus::NotRecorded => "in the key file, not recorded yet",
                KeyStatus::NotConfigured => "recorded, not in the key file",
            };
            let count = if purpose == ENCRYPTION_PURPOSE {
                let (bound, legacy) = sealed.iter().filter(|(id, _, _)| *id == key_id).fold(
                    (0, 0),
                    |(b, l), (_, form, n)| {
                        if *form == 2 { (b + n, l) } else { (b, l + n) }
                    },
                );
                if legacy > 0 {
                    format!(
                        "; {} subjects ({legacy} in the legacy form)",
                        bound + legacy
                    )
                } else {
                    format!("; {bound} subjects")
                }
            } else {
                String::new()
            };
            println!("  {service:<13} {purpose:<20} {key_id:<16} {status}{count}");
        }
    }
    Ok(())
}

/// (key id, seal form code, subjects) of intake's subjects.
async fn subjects_by_key(pool: &PgPool) -> anyhow::Result<Vec<(String, i16, i64)>> {
    Ok(sqlx::query_as(
        "SELECT bsn_key_id, bsn_aad, count(*) FROM intake.subjects GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?)
}

/// The next `dev-<n>` not used in `keys`.
fn next_key_id(keys: &KeyFile) -> String {
    let highest = keys
        .encryption_keys
        .keys()
        .filter_map(|id| id.strip_prefix("dev-")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("dev-{}", highest + 1)
}

async fn rotate(args: &KeysArgs, key_id: Option<String>) -> anyhow::Result<()> {
    let data = DataDir::new(&args.data.data_dir)?;
    let _lock = data.lock_against_up("a running intake would not know the new key")?;
    let path = data.bsn_keys();
    let mut keys = read_key_file(&path)?;
    let id = key_id.unwrap_or_else(|| next_key_id(&keys));
    if keys.encryption_keys.contains_key(&id) {
        anyhow::bail!(
            "the key file already has an encryption key {id:?}: key ids are never reused"
        );
    }
    let previous = keys.active_key_id.clone();
    keys.encryption_keys
        .insert(id.clone(), KeyFile::generate_encryption_key());
    keys.active_key_id = id.clone();
    let vault = BsnVault::from_key_file(&keys).context("the new key")?;

    // recorded first: a key file that does not belong to the database is left as it is
    if let Some(db) = Database::open(args).await? {
        let checked = match db.intake_ready().await {
            Ok(true) => zvv_intake::check_keys(&db.pool, &vault)
                .await
                .map(|()| true)
                .context("the data folder's keys do not belong to this database"),
            other => other,
        };
        db.finish().await?;
        if checked? {
            println!("recorded encryption key {id} for intake");
        }
    }
    crate::datadir::write_private(&path, &serde_json::to_string_pretty(&keys)?)?;
    println!(
        "added BSN encryption key {id} to {} and made it active ({previous} and older keys stay \
         for reading); run `zvv keys reencrypt` to seal every subject with it",
        path.display()
    );
    Ok(())
}

async fn reencrypt(args: &KeysArgs, batch_size: u32) -> anyhow::Result<()> {
    let data = DataDir::new(&args.data.data_dir)?;
    let vault = load_vault(&data)?;
    let db = Database::required(args).await?;
    match db.intake_ready().await {
        Ok(true) => {}
        Ok(false) => {
            db.finish().await?;
            anyhow::bail!("intake has no schema in this database yet: run `zvv up` first");
        }
        Err(e) => {
            db.finish().await?;
            return Err(e);
        }
    }
    let options = zvv_intake::ReencryptOptions {
        batch_size,
        origin: zvv_intake::ReencryptOptions::started_by("zvv keys reencrypt"),
    };
    let done = zvv_intake::reencrypt_with(&db.pool, &vault, &options).await;
    db.finish().await?;
    let rewritten = done?;
    println!(
        "re-encrypted {rewritten} subjects with key {}",
        vault.active_key_id()
    );
    Ok(())
}
