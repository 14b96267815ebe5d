//! Reintegration's configuration: environment first, each variable with a matching flag.

use std::{net::SocketAddr, path::PathBuf};

use zvv_platform::config::{AuditArgs, AuthArgs, ClientArgs, DbArgs, RelayArgs, ServerArgs};

use crate::domain::ContinuityPolicy;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "zvv-reintegration",
    about = "The zvv reintegration service (DetentionService, ContinuityService)",
    version
)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "ZVV_REINTEGRATION_LISTEN",
        default_value = "127.0.0.1:50053"
    )]
    pub listen: SocketAddr,
    /// Address of the intake service.
    #[arg(
        long,
        env = "ZVV_INTAKE_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub intake_addr: String,
    /// Working days before a due date that its warning is given.
    #[arg(long, env = "ZVV_DEADLINE_WARN_WORKING_DAYS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub warn_working_days: u32,
    /// Seconds between two runs of the deadline monitor.
    #[arg(long, env = "ZVV_DEADLINE_MONITOR_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub monitor_seconds: u64,
    /// Months the plan stays open after release for the conditions not in place.
    #[arg(long, env = "ZVV_FOLLOW_UP_MONTHS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=36))]
    pub follow_up_months: u32,
    /// Months after release that an episode and its plan are destroyed (once the follow-up
    /// has ended and no task is open with a date to come).
    #[arg(long, env = "ZVV_DETENTION_RETENTION_MONTHS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub retention_months: u32,
    /// Statistics numbers resting on fewer people than this are suppressed.
    #[arg(long, env = "ZVV_STATISTICS_THRESHOLD", default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub statistics_threshold: u32,
    /// Hours idempotency keys are kept.
    #[arg(long, env = "ZVV_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub idempotency_retention_hours: u32,
    /// File with the secret key (32 bytes, base64) of request fingerprints and release marks:
    /// requests can carry a BSN, which must never be hashed without a key.
    #[arg(long, env = "ZVV_FINGERPRINT_KEY_FILE")]
    pub fingerprint_key_file: PathBuf,
    #[command(flatten)]
    pub policy: PolicyArgs,
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

/// The numbers of the continuity policy of new plans. Changing any of them needs a new
/// version: the service refuses to start with other numbers under a version already used.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// The version these numbers are.
    #[arg(long, env = "ZVV_CONTINUITY_POLICY_VERSION", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub policy_version: u32,
    /// A stay of at most this many days gets the short-stay variant.
    #[arg(long, env = "ZVV_POLICY_SHORT_STAY_MAX_DAYS", default_value_t = 10)]
    pub short_stay_max_days: u32,
    /// Social assistance is suspended (not ended) for an expected stay up to this many months.
    #[arg(
        long,
        env = "ZVV_POLICY_INCOME_SUSPEND_MAX_MONTHS",
        default_value_t = 6
    )]
    pub income_suspend_max_months: u32,
    /// Working days after the start within which the income desk acts.
    #[arg(
        long,
        env = "ZVV_POLICY_INCOME_ACTION_WORKING_DAYS",
        default_value_t = 5
    )]
    pub income_action_working_days: u32,
    /// Days after the start within which the end of the health-care allowance is reported.
    #[arg(
        long,
        env = "ZVV_POLICY_CARE_ALLOWANCE_REPORT_DAYS",
        default_value_t = 28
    )]
    pub care_allowance_report_days: u32,
    /// From this many days of stay the rent allowance is at risk.
    #[arg(
        long,
        env = "ZVV_POLICY_RENT_ALLOWANCE_RISK_DAYS",
        default_value_t = 365
    )]
    pub rent_allowance_risk_days: u32,
    /// Fixed housing costs are covered for an expected stay up to this many months.
    #[arg(long, env = "ZVV_POLICY_HOUSING_COVERED_MONTHS", default_value_t = 6)]
    pub housing_covered_months: u32,
    /// Working days after the start within which housing costs are arranged.
    #[arg(
        long,
        env = "ZVV_POLICY_HOUSING_ACTION_WORKING_DAYS",
        default_value_t = 5
    )]
    pub housing_action_working_days: u32,
    /// Days before the expected release by which housing after a long stay is arranged.
    #[arg(
        long,
        env = "ZVV_POLICY_HOUSING_BEFORE_RELEASE_DAYS",
        default_value_t = 28
    )]
    pub housing_before_release_days: u32,
    /// Days before the expected release by which a valid ID is in place.
    #[arg(long, env = "ZVV_POLICY_ID_BEFORE_RELEASE_DAYS", default_value_t = 14)]
    pub id_before_release_days: u32,
    /// Working days before the release by which the care plan is handed over.
    #[arg(
        long,
        env = "ZVV_POLICY_CARE_PLAN_BEFORE_RELEASE_WORKING_DAYS",
        default_value_t = 5
    )]
    pub care_plan_before_release_working_days: u32,
    /// Days before the release by which debts are screened.
    #[arg(
        long,
        env = "ZVV_POLICY_DEBTS_BEFORE_RELEASE_DAYS",
        default_value_t = 14
    )]
    pub debts_before_release_days: u32,
    /// Working days after the start within which care for dependants is checked.
    #[arg(long, env = "ZVV_POLICY_DEPENDANTS_WORKING_DAYS", default_value_t = 1)]
    pub dependants_working_days: u32,
    /// Days before the release by which a school place is arranged (JJI).
    #[arg(
        long,
        env = "ZVV_POLICY_EDUCATION_BEFORE_RELEASE_DAYS",
        default_value_t = 14
    )]
    pub education_before_release_days: u32,
}

impl PolicyArgs {
    pub fn policy(&self) -> ContinuityPolicy {
        ContinuityPolicy {
            version: self.policy_version,
            short_stay_max_days: i64::from(self.short_stay_max_days),
            income_suspend_max_months: self.income_suspend_max_months,
            income_action_working_days: self.income_action_working_days,
            care_allowance_report_days: i64::from(self.care_allowance_report_days),
            rent_allowance_risk_days: i64::from(self.rent_allowance_risk_days),
            housing_covered_months: self.housing_covered_months,
            housing_action_working_days: self.housing_action_working_days,
            housing_before_release_days: i64::from(self.housing_before_release_days),
            id_before_release_days: i64::from(self.id_before_release_days),
            care_plan_before_release_working_days: self.care_plan_before_release_working_days,
            debts_before_release_days: i64::from(self.debts_before_release_days),
            dependants_working_days: self.dependants_working_days,
            education_before_release_days: i64::from(self.education_before_release_days),
        }
    }
}

#[cfg(test)]
impl Config {
    /// Checks the flags for clashes (clap's debug assertions).
    fn command_for_test() {
        <Self as clap::CommandFactory>::command().debug_assert();
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Policy {
        #[command(flatten)]
        policy: PolicyArgs,
    }

    #[test]
    fn the_default_flags_are_the_default_policy() {
        Config::command_for_test();
        let parsed = Policy::try_parse_from(["policy"]).expect("parses");
        assert_eq!(parsed.policy.policy(), ContinuityPolicy::default());
        let parsed = Policy::try_parse_from([
            "policy",
            "--policy-version",
            "2",
            "--short-stay-max-days",
            "14",
        ])
        .expect("parses");
        let policy = parsed.policy.policy();
        assert_eq!((policy.version, policy.short_stay_max_days), (2, 14));
    }
}
