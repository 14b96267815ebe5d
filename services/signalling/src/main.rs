//! `zvv-signalling`: runs the signalling index on its own (one Deployment in Kubernetes).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use zvv_platform::{clock::SystemClock, config::Opened, server::shutdown_signal, telemetry};
use zvv_proto::intake::v1::subject_service_client::SubjectServiceClient;
use zvv_signalling::{Deps, config::Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let shutdown = shutdown_signal();
    let _telemetry = telemetry::init("zvv-signalling", config.server.log_format);
    let verifier = config
        .auth
        .verifier(zvv_signalling::SCHEMA.name())
        .context("loading token verification keys")?;
    let Opened::Serve(pool) = config
        .db
        .open(zvv_signalling::SCHEMA, |owner| async move {
            zvv_signalling::migrate(&owner).await
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
    zvv_signalling::check_keys(&pool, &fingerprints).await?;
    let relay = config.relay.relay().map_err(anyhow::Error::msg)?;
    let notifications = config.relay.notifications().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let deps = Deps {
        pool,
        verifier,
        clock: Arc::new(SystemClock),
        settings,
        intake: SubjectServiceClient::new(channel),
        default_duration_months: config.default_duration_months,
        idempotency_retention: chrono::Duration::hours(i64::from(
            config.idempotency_retention_hours,
        )),
        referral_deadline_working_days: config.referral_deadline_working_days,
        statistics_threshold: config.statistics_threshold,
        fingerprints: Arc::new(fingerprints),
        retention: zvv_signalling::retention::RetentionRules {
            decided_referral_months: config.decided_referral_retention_months,
        },
        relay,
        notifications,
    };
    zvv_signalling::serve(deps, listener, shutdown).await?;
    Ok(())
}
