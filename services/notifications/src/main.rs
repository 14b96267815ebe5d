//! `zvv-notifications`: runs the notification service on its own (one Deployment in Kubernetes).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use zvv_notifications::{
    DeliverySettings, Deps, Retention, Secrets, StreamSettings,
    config::Config,
    domain::{
        deliveries::Backoff,
        target::{Network, TargetPolicy},
    },
};
use zvv_platform::{
    client::{self, TokenSource},
    clock::SystemClock,
    config::Opened,
    server::shutdown_signal,
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let shutdown = shutdown_signal();
    let _telemetry = telemetry::init("zvv-notifications", config.server.log_format);
    let verifier = config
        .auth
        .verifier(zvv_notifications::SCHEMA.name())
        .context("loading token verification keys")?;
    let secrets = Secrets::load(&config.secret_key_file).map_err(anyhow::Error::msg)?;
    let targets = TargetPolicy {
        development: config.development,
        allowed: config
            .webhook_allow_networks
            .iter()
            .map(|n| Network::parse(n))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?,
    };
    client::configure_tls(config.server.tls.client().map_err(anyhow::Error::msg)?);
    let mut sinks = zvv_notifications::SinkEndpoints::new();
    for (name, url) in &config.event_sinks {
        let Some((_, token)) = config.event_sink_tokens.iter().find(|(n, _)| n == name) else {
            anyhow::bail!(
                "event sink {name} has no token file (ZVV_EVENT_SINK_TOKENS {name}=FILE)"
            );
        };
        let channel = client::channel(url, TokenSource::file(token))
            .with_context(|| format!("invalid address {url} of event sink {name}"))?;
        sinks.insert(name.clone(), channel);
    }
    let Opened::Serve(pool) = config
        .db
        .open(zvv_notifications::SCHEMA, |owner| async move {
            zvv_notifications::migrate(&owner).await
        })
        .await
        .map_err(anyhow::Error::msg)?
    else {
        return Ok(());
    };
    // refuses a secrets key other than the one the database was written with
    zvv_notifications::check_keys(&pool, &secrets).await?;
    let mut settings = config.server.settings();
    settings.audit = config.audit.settings().map_err(anyhow::Error::msg)?;
    settings.tls = config.server.tls.server().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let deps = Deps {
        pool,
        verifier,
        clock: Arc::new(SystemClock),
        settings,
        secrets: Arc::new(secrets),
        delivery: DeliverySettings {
            backoff: Backoff {
                window: chrono::Duration::hours(i64::from(config.delivery_retention_hours)),
                cap: chrono::Duration::seconds(i64::from(config.delivery_backoff_cap_secs)),
                ..Backoff::default()
            },
            attempt_timeout: std::time::Duration::from_secs(u64::from(
                config.delivery_timeout_secs,
            )),
            public_base_url: config.public_base_url.clone(),
            ..DeliverySettings::default()
        },
        targets,
        sinks,
        stream: StreamSettings::default(),
        retention: Retention {
            events: chrono::Duration::days(i64::from(config.event_retention_days)),
            ..Retention::default()
        },
        run_workers: true,
    };
    zvv_notifications::serve(deps, listener, shutdown).await?;
    Ok(())
}
