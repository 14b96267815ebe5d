//! Intake's configuration: environment first, each variable with a matching flag.

use std::{net::SocketAddr, path::PathBuf};

use zvv_platform::config::{AuditArgs, AuthArgs, DbArgs, ServerArgs};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "zvv-intake",
    about = "The zvv identity registry (SubjectService)",
    version
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ZVV_INTAKE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// JSON file with the BSN encryption and lookup keys.
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
}
