//! `zvv-reintegration`: runs the reintegration service on its own (one Deployment in
//! Kubernetes).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use zvv_platform::{
    clock::SharedClock, clock::SystemClock, config::Opened, server::shutdown_signal, telemetry,
};
use zvv_proto::intake::v1::subject_service_client::SubjectServiceClient;
use zvv_reintegration::{Deps, config::Config, jobs::JobSettings, service::Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let shutdown = shutdown_signal();
    let _telemetry = telemetry::init("zvv-reintegration", config.server.log_format);
    let verifier = config
        .auth
        .verifier(zvv_reintegration::SCHEMA.name())
        .context("loading token verification keys")?;
    let Opened::Serve(pool) = config
        .db
        .open(zvv_reintegration::SCHEMA, |owner| async move {
            zvv_reintegration::migrate(&owner).await
        })
        .await
        .map_err(anyhow::Error::msg)?
    else {
        return Ok(());
    };
    let mut settings = config.server.settings();
    settings.audit = config.audit.settings().map_err(anyhow::Error::msg)?;
    settings.tls = config.server.tls.server().map_err(anyhow::Error::msg)?;
    zvv_platform::client::configure_tls(config.server.tls.client().map_err(anyhow::Error::msg)?);
    let channel = zvv_platform::client::channel(&config.intake_addr, config.client.token_source())
        .with_context(|| format!("invalid intake address {}", config.intake_addr))?;
    let fingerprints =
        zvv_platform::idempotency::FingerprintKey::load(&config.fingerprint_key_file)
            .map_err(anyhow::Error::msg)?;
    // refuses a fingerprint key other than the one the database was written with
    zvv_reintegration::check_keys(&pool, &fingerprints).await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let policy = config.policy.policy();
    // refuses other numbers under a policy version already used
    zvv_reintegration::record_policy(&pool, &policy, &clock).await?;
    let relay = config.relay.relay().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let deps = Deps {
        pool,
        verifier,
        clock,
        settings,
        intake: SubjectServiceClient::new(channel),
        logic: Settings {
            policy,
            follow_up_months: config.follow_up_months,
            statistics_threshold: config.statistics_threshold,
        },
        jobs: JobSettings {
            monitor_interval: std::time::Duration::from_secs(config.monitor_seconds),
            warn_working_days: config.warn_working_days,
            retention_months: config.retention_months,
            idempotency_retention: chrono::Duration::hours(i64::from(
                config.idempotency_retention_hours,
            )),
        },
        fingerprints: Arc::new(fingerprints),
        relay,
    };
    zvv_reintegration::serve(deps, listener, shutdown).await?;
    Ok(())
}
