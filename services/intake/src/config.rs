//! Intake's configuration: environment first, each variable with a matching flag.

use std::{net::SocketAddr, path::PathBuf};

use zvv_platform::config::{AuditArgs, AuthArgs, DbArgs, RelayArgs, ServerArgs};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "zvv-intake",
    about = "The zvv identity registry (SubjectService)",
    version
)]
pub struct Config {
    /// Without a command: serve.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "ZVV_INTAKE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// JSON file with the BSN encryption keys (by id; `active_key_id` seals new BSNs), the lookup
    /// key and its id. The service refuses to start when these are not the keys recorded in its
    /// database.
    #[arg(long, env = "ZVV_BSN_KEYS_FILE")]
    pub bsn_keys_file: PathBuf,
    /// Hours idempotency keys, and the first responses kept with them, are kept.
    #[arg(long, env = "ZVV_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub idempotency_retention_hours: u32,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
    #[command(flatten)]
    pub relay: RelayArgs,
}

/// What `zvv-intake` does instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Re-encrypt every subject's BSN with the active key of the key file (after a rotation),
    /// in batches, each audited; then exit. Safe beside running replicas, once every replica
    /// runs with this key file.
    Reencrypt {
        /// Subjects per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10000))]
        batch_size: u32,
    },
}
