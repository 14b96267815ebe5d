//! `zvv-intake`: runs the identity registry on its own (one Deployment in Kubernetes).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use zvv_intake::{Deps, config::Config};
use zvv_platform::{bsn::BsnVault, clock::SystemClock, server::shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let shutdown = shutdown_signal();
    let _telemetry = telemetry::init("zvv-intake", config.server.log_format);
    let vault = Arc::new(BsnVault::load(&config.bsn_keys_file).context("loading BSN keys")?);
    let verifier = config
        .auth
        .verifier()
        .context("loading token verification keys")?;
    let pool = config
        .db
        .open(zvv_intake::SCHEMA, |owner| async move {
            zvv_intake::migrate(&owner).await
        })
        .await
        .map_err(anyhow::Error::msg)?;
    let mut settings = config.server.settings();
    settings.audit = config.audit.settings().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let deps = Deps {
        pool,
        vault,
        verifier,
        clock: Arc::new(SystemClock),
        settings,
        idempotency_retention: chrono::Duration::hours(i64::from(
            config.idempotency_retention_hours,
        )),
    };
    zvv_intake::serve(deps, listener, shutdown).await?;
    Ok(())
}
