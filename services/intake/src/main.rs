//! `zvv-intake`: runs the identity registry on its own (one Deployment in Kubernetes).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use zvv_intake::{
    Deps,
    config::{Command, Config},
};
use zvv_platform::{
    bsn::BsnVault, clock::SystemClock, config::Opened, server::shutdown_signal, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let shutdown = shutdown_signal();
    let _telemetry = telemetry::init("zvv-intake", config.server.log_format);
    let vault = Arc::new(BsnVault::load(&config.bsn_keys_file).context("loading BSN keys")?);
    if let Some(Command::Reencrypt { batch_size }) = config.command {
        return reencrypt(&config, &vault, batch_size).await;
    }
    let verifier = config
        .auth
        .verifier(zvv_intake::SCHEMA.name())
        .context("loading token verification keys")?;
    let Opened::Serve(pool) = migrated_pool(&config).await? else {
        return Ok(());
    };
    // refuses keys other than the ones the database was written with, before serving
    zvv_intake::check_keys(&pool, &vault).await?;
    let legacy = zvv_intake::legacy_subjects(&pool).await?;
    if legacy > 0 {
        tracing::warn!(
            subjects = legacy,
            "subjects are sealed in the legacy form (not bound to their subject) and answer \
             INTERNAL until `zvv-intake reencrypt` has sealed them again"
        );
    }
    zvv_platform::client::configure_tls(config.server.tls.client().map_err(anyhow::Error::msg)?);
    let relay = config.relay.relay().map_err(anyhow::Error::msg)?;
    let mut settings = config.server.settings();
    settings.audit = config.audit.settings().map_err(anyhow::Error::msg)?;
    settings.tls = config.server.tls.server().map_err(anyhow::Error::msg)?;
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
        relay,
    };
    zvv_intake::serve(deps, listener, shutdown).await?;
    Ok(())
}

/// `zvv-intake reencrypt`: migrates, checks the keys, re-encrypts every subject's BSN with the
/// active key (audited in batches) and exits.
async fn reencrypt(config: &Config, vault: &BsnVault, batch_size: u32) -> anyhow::Result<()> {
    let Opened::Serve(pool) = migrated_pool(config).await? else {
        return Ok(());
    };
    let options = zvv_intake::ReencryptOptions {
        batch_size,
        origin: zvv_intake::ReencryptOptions::started_by("zvv-intake reencrypt"),
    };
    let done = zvv_intake::reencrypt_with(&pool, vault, &options).await;
    pool.close().await;
    let rewritten = done?;
    tracing::info!(
        rewritten,
        key_id = vault.active_key_id(),
        "re-encryption finished"
    );
    println!(
        "re-encrypted {rewritten} subjects with key {}",
        vault.active_key_id()
    );
    Ok(())
}

/// The runtime pool, after the owner (or the runtime role) has run the migrations; none under
/// ZVV_MIGRATE_ONLY.
async fn migrated_pool(config: &Config) -> anyhow::Result<Opened> {
    config
        .db
        .open(zvv_intake::SCHEMA, |owner| async move {
            zvv_intake::migrate(&owner).await
        })
        .await
        .map_err(anyhow::Error::msg)
}
