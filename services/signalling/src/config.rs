//! Signalling's configuration: environment first, each variable with a matching flag.

use std::{net::SocketAddr, path::PathBuf};

use zvv_platform::config::{AuditArgs, AuthArgs, ClientArgs, DbArgs, RelayArgs, ServerArgs};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "zvv-signalling",
    about = "The zvv signalling index (SignalService, ReferralService)",
    version
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ZVV_SIGNALLING_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,
    /// Address of the intake service.
    #[arg(
        long,
        env = "ZVV_INTAKE_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub intake_addr: String,
    /// Duration of a signal when the request gives none, in months (1-24).
    #[arg(long, env = "ZVV_SIGNAL_DEFAULT_MONTHS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=24))]
    pub default_duration_months: u32,
    /// Working days within which YELLOW and higher referrals must be decided.
    #[arg(long, env = "ZVV_REFERRAL_DEADLINE_WORKING_DAYS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub referral_deadline_working_days: u32,
    /// Statistics cells with fewer subjects than this are suppressed.
    #[arg(long, env = "ZVV_STATISTICS_THRESHOLD", default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub statistics_threshold: u32,
    /// Hours idempotency keys are kept.
    #[arg(long, env = "ZVV_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub idempotency_retention_hours: u32,
    /// Months a decided referral is kept after its decision before it is destroyed.
    #[arg(long, env = "ZVV_DECIDED_REFERRAL_RETENTION_MONTHS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub decided_referral_retention_months: u32,
    /// File with the secret key (32 bytes, base64) of request fingerprints: requests can carry a
    /// BSN, which must never be hashed without a key.
    #[arg(long, env = "ZVV_FINGERPRINT_KEY_FILE")]
    pub fingerprint_key_file: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
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
