//! `zvv audit verify`: checks the hash chain of a service's audit log in the database `zvv up`
//! uses.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use zvv_devkit::devdb::{ClusterOptions, DevDbError, LocalCluster};
use zvv_platform::{
    audit::VerifyReport,
    db::{PoolSettings, Schema},
};

use crate::datadir::{DataDir, DataDirArg};

/// Database `zvv up` creates in the private cluster.
const DATABASE: &str = "zvv";

/// Services with an audit log, and their schemas.
const SERVICES: &[(&str, Schema)] = &[
    ("intake", zvv_intake::SCHEMA),
    ("signalling", zvv_signalling::SCHEMA),
];

/// The `zvv audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that a service's audit log is complete and unchanged (exits non-zero when not).
    Verify {
        /// The service whose audit log to check, e.g. intake.
        #[arg(long)]
        service: String,
        #[command(flatten)]
        data: DataDirArg,
        /// PostgreSQL URL; without it, the private cluster in the data folder.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<SecretString>,
    },
}

/// Runs one subcommand.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            service,
            data,
            database_url,
        } => verify(&service, &data, database_url).await,
    }
}

async fn verify(
    service: &str,
    data: &DataDirArg,
    database_url: Option<SecretString>,
) -> anyhow::Result<()> {
    let Some(&(name, schema)) = SERVICES.iter().find(|(name, _)| *name == service.trim()) else {
        let known: Vec<&str> = SERVICES.iter().map(|(name, _)| *name).collect();
        anyhow::bail!(
            "unknown service {service:?}; known services: {}",
            known.join(", ")
        );
    };
    let database_url = database_url.filter(|url| !url.expose_secret().trim().is_empty());
    let report = match database_url {
        Some(url) => {
            let options = url
                .expose_secret()
                .parse::<PgConnectOptions>()
                .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))?;
            verify_in(options, "DATABASE_URL", name, schema).await?
        }
        None => {
            let mut private = PrivateCluster::open(data).await?;
            let options = private.connect_options()?;
            let report = verify_in(options, "the private PostgreSQL cluster", name, schema).await;
            private.finish()?;
            report?
        }
    };

    match report.first_broken {
        None => {
            println!("{name}: {} records, chain intact", report.records);
            Ok(())
        }
        Some(broken) => {
            println!(
                "{name}: chain BROKEN at record {}: {}",
                broken.seq, broken.reason
            );
            anyhow::bail!("the {name} audit log failed verification")
        }
    }
}

/// Connects, walks the audit chain of `schema`, and disconnects.
async fn verify_in(
    options: PgConnectOptions,
    what: &str,
    service: &str,
    schema: Schema,
) -> anyhow::Result<VerifyReport> {
    let pool = zvv_platform::db::connect(options, &PoolSettings::default())
        .await
        .with_context(|| format!("connecting to {what}"))?;
    let report = zvv_platform::audit::verify(&pool, schema)
        .await
        .with_context(|| format!("reading the {service} audit log"));
    pool.close().await;
    report
}

/// The private cluster of `zvv up`, started for this command if it was not running.
struct PrivateCluster {
    cluster: Option<LocalCluster>,
    was_running: bool,
}

impl PrivateCluster {
    async fn open(data: &DataDirArg) -> anyhow::Result<Self> {
        let hint = "run `zvv up` with the same --data-dir first, or set DATABASE_URL";
        if !data.data_dir.is_dir() {
            anyhow::bail!("no data folder at {}: {hint}", data.data_dir.display());
        }
        let data = DataDir::new(&data.data_dir)?;
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

    fn connect_options(&self) -> anyhow::Result<PgConnectOptions> {
        match &self.cluster {
            Some(cluster) => Ok(cluster.connect_options(DATABASE)),
            None => anyhow::bail!("the private PostgreSQL cluster was already stopped"),
        }
    }

    /// Stops the cluster unless it was running before (then `zvv up` owns it).
    fn finish(&mut self) -> anyhow::Result<()> {
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
