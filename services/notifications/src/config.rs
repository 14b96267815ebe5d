//! Notifications' configuration: environment first, each variable with a matching flag.

use std::{net::SocketAddr, path::PathBuf};

use zvv_platform::config::{AuditArgs, AuthArgs, DbArgs, ServerArgs};

/// `NAME=VALUE`.
fn pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "zvv-notifications",
    about = "The zvv notification service (NotificationService): channels, subscriptions, inbox, \
             signed webhooks",
    version
)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "ZVV_NOTIFICATIONS_LISTEN",
        default_value = "127.0.0.1:50054"
    )]
    pub listen: SocketAddr,
    /// File with the secret key (32 bytes, base64) that seals webhook Authorization values and
    /// signing secrets and keys request fingerprints. Keep it outside the database.
    #[arg(long, env = "ZVV_NOTIFICATIONS_SECRET_KEY_FILE")]
    pub secret_key_file: PathBuf,
    /// The suite's public base URL: `hoofdObject` and `resourceUrl` of webhook bodies start
    /// with it.
    #[arg(
        long,
        env = "ZVV_PUBLIC_BASE_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub public_base_url: String,
    /// Development mode: webhooks may use http to loopback addresses (as under `zvv up`).
    #[arg(long, env = "ZVV_NOTIFICATIONS_DEVELOPMENT", default_value_t = false)]
    pub development: bool,
    /// Internal networks webhooks may reach all the same (CIDR, comma-separated); private,
    /// link-local and loopback addresses are refused otherwise.
    #[arg(long, env = "ZVV_WEBHOOK_ALLOW_NETWORKS", value_delimiter = ',')]
    pub webhook_allow_networks: Vec<String>,
    /// Hours a delivery is retried before it is dead-lettered.
    #[arg(long, env = "ZVV_DELIVERY_RETENTION_HOURS", default_value_t = 72, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub delivery_retention_hours: u32,
    /// The longest wait between two attempts, in seconds.
    #[arg(long, env = "ZVV_DELIVERY_BACKOFF_CAP_SECS", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub delivery_backoff_cap_secs: u32,
    /// Seconds a receiver has to answer one delivery.
    #[arg(long, env = "ZVV_DELIVERY_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub delivery_timeout_secs: u32,
    /// Days events are kept once everything about them is delivered and read.
    #[arg(long, env = "ZVV_EVENT_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub event_retention_days: u32,
    /// The EventSink of each suite service that subscribes with a service delivery:
    /// `NAME=URL`, e.g. `signalling=http://127.0.0.1:50052` (comma-separated).
    #[arg(long, env = "ZVV_EVENT_SINKS", value_delimiter = ',', value_parser = pair)]
    pub event_sinks: Vec<(String, String)>,
    /// The SERVICE token file for each of them (minted for that service): `NAME=FILE`.
    #[arg(long, env = "ZVV_EVENT_SINK_TOKENS", value_delimiter = ',', value_parser = pair)]
    pub event_sink_tokens: Vec<(String, String)>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
}
