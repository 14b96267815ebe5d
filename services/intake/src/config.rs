//! Intake's configuration: environment first, each variable with a matching flag.

use std::{net::SocketAddr, path::PathBuf};

use zvv_platform::config::{AuthArgs, DbArgs, ServerArgs};

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
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}
