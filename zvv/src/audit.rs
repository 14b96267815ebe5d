//! `zvv audit verify`: checks a service's audit log in the database `zvv up` uses: the links,
//! that every entry is sealed exactly once, each entry's content against its seal, and every
//! signed checkpoint (from the database and from the file outside it) against the chain. Reports
//! each problem with its position, and the seal lag.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use zvv_platform::{
    audit::{Anchors, VerifyReport},
    db::{PoolSettings, Schema},
};

use crate::datadir::{DataDirArg, PrivateCluster};

/// Services with an audit log, and their schemas.
const SERVICES: &[(&str, Schema)] = &[
    ("intake", zvv_intake::SCHEMA),
    ("signalling", zvv_signalling::SCHEMA),
    ("reintegration", zvv_reintegration::SCHEMA),
    ("notifications", zvv_notifications::SCHEMA),
];

/// The `zvv audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that a service's audit log is complete and unchanged (exits non-zero when not).
    Verify {
        /// The service whose audit log to check: intake, signalling, reintegration or
        /// notifications.
        #[arg(long)]
        service: String,
        #[command(flatten)]
        data: DataDirArg,
        /// PostgreSQL URL; without it, the private cluster in the data folder.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<SecretString>,
        /// The append-only checkpoint file of the service's schema; default
        /// `<data-dir>/audit/<schema>.checkpoints.jsonl`.
        #[arg(long)]
        checkpoints: Option<std::path::PathBuf>,
        /// Public keys (Ed25519 PEM) that sign checkpoints, comma-separated; default
        /// `<data-dir>/keys/audit-public.pem`.
        #[arg(long, value_delimiter = ',')]
        public_key: Vec<std::path::PathBuf>,
    },
}

/// Runs one subcommand.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            service,
            data,
            database_url,
            checkpoints,
            public_key,
        } => verify(&service, &data, database_url, checkpoints, public_key).await,
    }
}

async fn verify(
    service: &str,
    data: &DataDirArg,
    database_url: Option<SecretString>,
    checkpoints: Option<std::path::PathBuf>,
    public_keys: Vec<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let Some(&(name, schema)) = SERVICES.iter().find(|(name, _)| *name == service.trim()) else {
        let known: Vec<&str> = SERVICES.iter().map(|(name, _)| *name).collect();
        anyhow::bail!(
            "unknown service {service:?}; known services: {}",
            known.join(", ")
        );
    };
    let root = &data.data_dir;
    let checkpoints = checkpoints
        .unwrap_or_else(|| zvv_platform::audit::checkpoint::sink_file(&root.join("audit"), schema));
    let public_keys = if public_keys.is_empty() {
        vec![root.join("keys").join("audit-public.pem")]
    } else {
        public_keys
    };
    let mut keys = Vec::new();
    for path in &public_keys {
        if path.exists() {
            keys.push(
                zvv_platform::audit::checkpoint::load_public_key(path)
                    .map_err(anyhow::Error::from)?,
            );
        } else {
            eprintln!(
                "warning: no audit public key at {}: checkpoints cannot be checked",
                path.display()
            );
        }
    }
    if !checkpoints.exists() {
        eprintln!(
            "warning: no checkpoint file at {}: only the checkpoints in the database are checked",
            checkpoints.display()
        );
    }
    let anchors = Anchors {
        file: checkpoints.exists().then_some(checkpoints.as_path()),
        keys,
    };
    let database_url = database_url.filter(|url| !url.expose_secret().trim().is_empty());
    let report = match database_url {
        Some(url) => {
            let options = url
                .expose_secret()
                .parse::<PgConnectOptions>()
                .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))?;
            verify_in(options, "DATABASE_URL", name, schema, &anchors).await?
        }
        None => {
            let mut private = PrivateCluster::open(&data.data_dir).await?;
            let options = private.connect_options()?;
            let report = verify_in(
                options,
                "the private PostgreSQL cluster",
                name,
                schema,
                &anchors,
            )
            .await;
            private.finish()?;
            report?
        }
    };

    print_report(name, &report);
    if report.is_intact() {
        Ok(())
    } else {
        anyhow::bail!("the {name} audit log failed verification")
    }
}

fn seconds(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.3} s", d.as_secs_f64()))
}

fn print_report(name: &str, report: &VerifyReport) {
    println!(
        "{name}: {} entries, {} sealed, {} pending; {} checkpoints checked",
        report.entries, report.seals, report.pending, report.checkpoints
    );
    println!(
        "seal lag: longest {}, oldest pending {}",
        seconds(report.max_seal_lag),
        seconds(report.oldest_pending)
    );
    if report.is_intact() {
        println!("{name}: chain intact");
        return;
    }
    println!("{name}: chain BROKEN:");
    for p in &report.problems {
        let at = match (p.seq, p.entry_id) {
            (Some(seq), Some(entry)) => format!("seq {seq}, entry {entry}"),
            (Some(seq), None) => format!("seq {seq}"),
            (None, Some(entry)) => format!("entry {entry}"),
            (None, None) => "-".to_owned(),
        };
        println!("  {:?} at {at}: {}", p.kind, p.detail);
    }
    if report.more_problems > 0 {
        println!("  (and {} more)", report.more_problems);
    }
}

/// Connects, walks the audit chain of `schema`, and disconnects.
async fn verify_in(
    options: PgConnectOptions,
    what: &str,
    service: &str,
    schema: Schema,
    anchors: &Anchors<'_>,
) -> anyhow::Result<VerifyReport> {
    let pool = zvv_platform::db::connect(options, &PoolSettings::default())
        .await
        .with_context(|| format!("connecting to {what}"))?;
    let report = zvv_platform::audit::verify(&pool, schema, anchors)
        .await
        .with_context(|| format!("reading the {service} audit log"));
    pool.close().await;
    report
}
