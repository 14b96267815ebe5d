//! `zvv up`: runs every service of this build on 127.0.0.1 against a private PostgreSQL cluster
//! in the data folder (or the database named by `DATABASE_URL`), until Ctrl-C or SIGTERM.

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgPool, postgres::PgConnectOptions};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use zvv_devkit::devdb::{ClusterOptions, DevDbError, LocalCluster};
use zvv_intake::Deps;
use zvv_platform::{
    auth::{OrgType, Role, TokenRequest, TokenSigner, TokenVerifier},
    bsn::BsnVault,
    clock::SystemClock,
    config::ServerArgs,
    db::PoolSettings,
    server::shutdown_signal,
    telemetry,
};

use crate::datadir::{DATABASE, DEV_AUDIENCE, DEV_ISSUER, DataDir, DataDirArg};

/// Lifetime of the SERVICE tokens `zvv up` mints for the services.
const SERVICE_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(24);
/// How often the SERVICE tokens are minted afresh (well before they expire).
const SERVICE_TOKEN_REFRESH: Duration = Duration::from_secs(12 * 60 * 60);
/// How long in-flight calls may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Leeway on token `exp`/`nbf`, in seconds.
const TOKEN_LEEWAY_SECS: u64 = 10;
/// The SERVICE tokens the suite calls itself with: (caller, the one service the token is for).
/// intake, signalling and reintegration relay their outbox to notifications, signalling and
/// reintegration read from intake, signalling subscribes its EventSink, notifications delivers
/// to that EventSink.
const SERVICE_TOKENS: &[(&str, &str)] = &[
    ("signalling", "intake"),
    ("reintegration", "intake"),
    ("intake", "notifications"),
    ("signalling", "notifications"),
    ("reintegration", "notifications"),
    ("notifications", "signalling"),
];
/// How often reintegration's deadline monitor looks under `zvv up` unless told otherwise: short,
/// so that a walkthrough shows its warnings within seconds (the service's own default is 60 s).
const DEV_DEADLINE_MONITOR_SECS: u64 = 5;

/// Options of `zvv up`; every flag has an environment variable.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Address the intake service (SubjectService) listens on.
    #[arg(long, env = "ZVV_INTAKE_LISTEN", default_value = "127.0.0.1:50051")]
    pub intake_listen: SocketAddr,
    /// Address the signalling service (SignalService, ReferralService) listens on.
    #[arg(long, env = "ZVV_SIGNALLING_LISTEN", default_value = "127.0.0.1:50052")]
    pub signalling_listen: SocketAddr,
    /// Address the reintegration service (DetentionService, ContinuityService) listens on.
    #[arg(
        long,
        env = "ZVV_REINTEGRATION_LISTEN",
        default_value = "127.0.0.1:50053"
    )]
    pub reintegration_listen: SocketAddr,
    /// Address the notifications service (NotificationService) listens on.
    #[arg(
        long,
        env = "ZVV_NOTIFICATIONS_LISTEN",
        default_value = "127.0.0.1:50054"
    )]
    pub notifications_listen: SocketAddr,
    /// Seconds between two runs of reintegration's deadline monitor (the service's default is
    /// 60; `zvv up` looks every 5 s so that warnings show up quickly).
    #[arg(long, env = "ZVV_DEADLINE_MONITOR_SECONDS", default_value_t = DEV_DEADLINE_MONITOR_SECS, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub deadline_monitor_seconds: u64,
    /// PostgreSQL URL to use instead of the private cluster in the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Largest number of pooled database connections per service.
    #[arg(long, env = "ZVV_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
    /// Server limits and log format, as for the service binaries.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Where the services' data lives while `zvv up` runs.
enum Database {
    /// The private cluster in the data folder; stopped when `zvv up` ends.
    Private(LocalCluster),
    /// A server named by `DATABASE_URL`; left alone.
    External(Box<PgConnectOptions>),
}

impl Database {
    /// The administrative connection.
    fn options(&self) -> PgConnectOptions {
        match self {
            Self::Private(cluster) => cluster.connect_options(DATABASE),
            Self::External(options) => (**options).clone(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Private(cluster) => format!(
                "private PostgreSQL in {} on 127.0.0.1:{} (database {DATABASE})",
                cluster.data_dir().display(),
                cluster.port()
            ),
            Self::External(options) => format!(
                "{}:{} (database {}, from DATABASE_URL)",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or("(default)")
            ),
        }
    }
}

/// Runs the suite until a shutdown signal or until a service fails.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    // installed first: Ctrl-C during start-up (initdb, migrations) still stops the cluster
    let shutdown = shutdown_signal();
    let _telemetry = telemetry::init("zvv", args.server.log_format);
    let data = DataDir::new(&args.data.data_dir)?;
    let _lock = lock_data_dir(&data)?;
    data.ensure_keys().context("creating development keys")?;
    // A taken port fails here, before the database starts; the real bind comes when ready.
    drop(bind_intake(args.intake_listen).await?);
    drop(bind_signalling(args.signalling_listen).await?);
    drop(bind_reintegration(args.reintegration_listen).await?);
    drop(bind_notifications(args.notifications_listen).await?);

    let database_url = args
        .database_url
        .filter(|url| !url.expose_secret().trim().is_empty());
    let mut database = match database_url {
        Some(url) => Database::External(Box::new(
            url.expose_secret()
                .parse::<PgConnectOptions>()
                .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))?,
        )),
        None => Database::Private(start_private_cluster(&data).await?),
    };
    // On an error below, dropping `database` stops the private cluster.
    let admin = connect(&database, 2).await?;
    let intake_pool = service_pool(
        &admin,
        &database,
        zvv_intake::SCHEMA,
        args.db_max_connections,
        |owner| async move { zvv_intake::migrate(&owner).await },
    )
    .await?;
    let signalling_pool = service_pool(
        &admin,
        &database,
        zvv_signalling::SCHEMA,
        args.db_max_connections,
        |owner| async move { zvv_signalling::migrate(&owner).await },
    )
    .await?;
    let reintegration_pool = service_pool(
        &admin,
        &database,
        zvv_reintegration::SCHEMA,
        args.db_max_connections,
        |owner| async move { zvv_reintegration::migrate(&owner).await },
    )
    .await?;
    let notifications_pool = service_pool(
        &admin,
        &database,
        zvv_notifications::SCHEMA,
        args.db_max_connections,
        |owner| async move { zvv_notifications::migrate(&owner).await },
    )
    .await?;
    admin.close().await;
    let audit = audit_settings(&data)?;

    // the keys of the data folder must be the ones this database's data was written with
    let vault =
        Arc::new(BsnVault::load(&data.bsn_keys()).context("loading the development BSN keys")?);
    zvv_intake::check_keys(&intake_pool, &vault)
        .await
        .with_context(|| {
            format!(
                "the BSN keys in {} do not belong to this database",
                data.bsn_keys().display()
            )
        })?;
    // a data folder from before the BSN was bound to its subject: seal those rows again
    if zvv_intake::legacy_subjects(&intake_pool).await? > 0 {
        let options = zvv_intake::ReencryptOptions {
            origin: zvv_intake::ReencryptOptions::started_by("zvv up"),
            ..Default::default()
        };
        let rewritten = zvv_intake::reencrypt_with(&intake_pool, &vault, &options)
            .await
            .context("re-encrypting subjects sealed in the legacy form")?;
        println!("re-encrypted {rewritten} subjects sealed in the legacy form");
    }
    let fingerprints = Arc::new(
        zvv_platform::idempotency::FingerprintKey::load(&data.fingerprint_key("signalling"))
            .map_err(anyhow::Error::msg)?,
    );
    zvv_signalling::check_keys(&signalling_pool, &fingerprints)
        .await
        .with_context(|| {
            format!(
                "the signalling fingerprint key in {} does not belong to this database",
                data.fingerprint_key("signalling").display()
            )
        })?;

    let reintegration_fingerprints = Arc::new(
        zvv_platform::idempotency::FingerprintKey::load(&data.fingerprint_key("reintegration"))
            .map_err(anyhow::Error::msg)?,
    );
    zvv_reintegration::check_keys(&reintegration_pool, &reintegration_fingerprints)
        .await
        .with_context(|| {
            format!(
                "the reintegration fingerprint key in {} does not belong to this database",
                data.fingerprint_key("reintegration").display()
            )
        })?;
    // the default continuity policy under its version: other numbers under a version already
    // used are refused
    let reintegration_policy = zvv_reintegration::domain::ContinuityPolicy::default();
    let reintegration_clock: zvv_platform::clock::SharedClock = Arc::new(SystemClock);
    zvv_reintegration::record_policy(
        &reintegration_pool,
        &reintegration_policy,
        &reintegration_clock,
    )
    .await
    .context("recording reintegration's continuity policy")?;

    let secrets = Arc::new(
        zvv_notifications::Secrets::load(&data.notifications_secret_key())
            .map_err(anyhow::Error::msg)?,
    );
    zvv_notifications::check_keys(&notifications_pool, &secrets)
        .await
        .with_context(|| {
            format!(
                "the notifications secret key in {} does not belong to this database",
                data.notifications_secret_key().display()
            )
        })?;

    let signer = data.signer()?;
    for (caller, callee) in SERVICE_TOKENS {
        write_service_token(&signer, &data, caller, callee)?;
    }

    let verifier = |service: &str| -> anyhow::Result<Arc<TokenVerifier>> {
        Ok(Arc::new(
            TokenVerifier::from_files(
                &[data.public_key()],
                None,
                DEV_ISSUER,
                DEV_AUDIENCE,
                TOKEN_LEEWAY_SECS,
            )
            .context("loading the development token key")?
            .for_service(service),
        ))
    };
    // bound before the others are configured: they need its address (a port of 0 picks one);
    // it is served once intake and signalling are
    let notifications_listener = bind_notifications(args.notifications_listen).await?;
    let notifications_addr = notifications_listener
        .local_addr()
        .context("reading the notifications listen address")?;
    // intake, signalling and reintegration relay their outbox to notifications, each with its
    // own token
    let notifications_url = format!("http://{}", loopback(notifications_addr));
    let relay = |service: &str| -> anyhow::Result<zvv_platform::relay::Relay> {
        let publisher = zvv_platform::relay::GrpcPublisher::connect(
            &notifications_url,
            zvv_platform::client::TokenSource::file(data.token_file(service, "notifications")),
        )
        .with_context(|| format!("connecting the {service} relay to notifications"))?;
        Ok(zvv_platform::relay::Relay::new(
            Arc::new(publisher),
            zvv_platform::relay::RelaySettings::default(),
        ))
    };
    let mut intake_settings = args.server.settings();
    intake_settings.audit = audit.clone();
    let deps = Deps {
        pool: intake_pool.clone(),
        vault,
        verifier: verifier(zvv_intake::SCHEMA.name())?,
        clock: Arc::new(SystemClock),
        settings: intake_settings,
        idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
        relay: Some(relay("intake")?),
    };

    // Bound only now, so that a port that accepts connections means the service is ready.
    let intake_listener = bind_intake(args.intake_listen).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut services = JoinSet::new();
    let intake_addr = intake_listener
        .local_addr()
        .context("reading the intake listen address")?;
    let intake_stop = stop_rx.clone();
    services.spawn(async move {
        let result = zvv_intake::serve(deps, intake_listener, stopped(intake_stop)).await;
        ("intake", result.map_err(anyhow::Error::from))
    });

    // signalling calls intake with its own SERVICE token, read from its token file
    let intake_url = format!("http://{}", loopback(intake_addr));
    let intake_channel = zvv_platform::client::channel(
        &intake_url,
        zvv_platform::client::TokenSource::file(data.token_file("signalling", "intake")),
    )
    .context("connecting signalling to intake")?;
    let signalling_notifications =
        zvv_proto::notifications::v1::notification_service_client::NotificationServiceClient::new(
            zvv_platform::client::channel(
                &notifications_url,
                zvv_platform::client::TokenSource::file(
                    data.token_file("signalling", "notifications"),
                ),
            )
            .context("connecting signalling to notifications")?,
        );
    let mut signalling_settings = args.server.settings();
    signalling_settings.audit = audit.clone();
    let signalling_deps = zvv_signalling::Deps {
        pool: signalling_pool.clone(),
        verifier: verifier(zvv_signalling::SCHEMA.name())?,
        clock: Arc::new(SystemClock),
        settings: signalling_settings,
        intake: zvv_proto::intake::v1::subject_service_client::SubjectServiceClient::new(
            intake_channel,
        ),
        default_duration_months: 12,
        idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
        referral_deadline_working_days: zvv_signalling::DEFAULT_REFERRAL_DEADLINE_WORKING_DAYS,
        statistics_threshold: zvv_signalling::DEFAULT_STATISTICS_THRESHOLD,
        fingerprints,
        retention: zvv_signalling::retention::RetentionRules::default(),
        relay: Some(relay("signalling")?),
        notifications: Some(signalling_notifications),
    };
    let signalling_listener = bind_signalling(args.signalling_listen).await?;
    let signalling_addr = signalling_listener
        .local_addr()
        .context("reading the signalling listen address")?;
    let signalling_stop = stop_rx.clone();
    services.spawn(async move {
        let result = zvv_signalling::serve(
            signalling_deps,
            signalling_listener,
            stopped(signalling_stop),
        )
        .await;
        ("signalling", result.map_err(anyhow::Error::from))
    });

    // reintegration calls intake with its own SERVICE token and relays its outbox (warnings,
    // tasks) to notifications
    let reintegration_intake = zvv_platform::client::channel(
        &intake_url,
        zvv_platform::client::TokenSource::file(data.token_file("reintegration", "intake")),
    )
    .context("connecting reintegration to intake")?;
    let mut reintegration_settings = args.server.settings();
    reintegration_settings.audit = audit.clone();
    let reintegration_deps = zvv_reintegration::Deps {
        pool: reintegration_pool.clone(),
        verifier: verifier(zvv_reintegration::SCHEMA.name())?,
        clock: reintegration_clock,
        settings: reintegration_settings,
        intake: zvv_proto::intake::v1::subject_service_client::SubjectServiceClient::new(
            reintegration_intake,
        ),
        logic: zvv_reintegration::service::Settings {
            policy: reintegration_policy,
            follow_up_months: zvv_reintegration::DEFAULT_FOLLOW_UP_MONTHS,
            statistics_threshold: zvv_reintegration::DEFAULT_STATISTICS_THRESHOLD,
        },
        jobs: zvv_reintegration::jobs::JobSettings {
            monitor_interval: Duration::from_secs(args.deadline_monitor_seconds),
            warn_working_days: zvv_reintegration::DEFAULT_WARN_WORKING_DAYS,
            retention_months: zvv_reintegration::DEFAULT_RETENTION_MONTHS,
            idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
        },
        fingerprints: reintegration_fingerprints,
        relay: Some(relay("reintegration")?),
    };
    let reintegration_listener = bind_reintegration(args.reintegration_listen).await?;
    let reintegration_addr = reintegration_listener
        .local_addr()
        .context("reading the reintegration listen address")?;
    let reintegration_stop = stop_rx.clone();
    services.spawn(async move {
        let result = zvv_reintegration::serve(
            reintegration_deps,
            reintegration_listener,
            stopped(reintegration_stop),
        )
        .await;
        ("reintegration", result.map_err(anyhow::Error::from))
    });

    // notifications: webhooks may use http to loopback (development mode); it delivers to
    // signalling's EventSink with its token for signalling
    let mut sinks = zvv_notifications::SinkEndpoints::new();
    sinks.insert(
        "signalling".to_owned(),
        zvv_platform::client::channel(
            &format!("http://{}", loopback(signalling_addr)),
            zvv_platform::client::TokenSource::file(data.token_file("notifications", "signalling")),
        )
        .context("connecting notifications to signalling")?,
    );
    let mut notifications_settings = args.server.settings();
    notifications_settings.audit = audit;
    let notifications_deps = zvv_notifications::Deps {
        pool: notifications_pool.clone(),
        verifier: verifier(zvv_notifications::SCHEMA.name())?,
        clock: Arc::new(SystemClock),
        settings: notifications_settings,
        secrets,
        delivery: zvv_notifications::DeliverySettings {
            public_base_url: format!("http://{}", loopback(notifications_addr)),
            ..Default::default()
        },
        targets: zvv_notifications::domain::target::TargetPolicy {
            development: true,
            allowed: Vec::new(),
        },
        sinks,
        stream: zvv_notifications::StreamSettings::default(),
        retention: zvv_notifications::Retention::default(),
        run_workers: true,
    };
    services.spawn(async move {
        let result =
            zvv_notifications::serve(notifications_deps, notifications_listener, stopped(stop_rx))
                .await;
        ("notifications", result.map_err(anyhow::Error::from))
    });

    print_banner(
        &args.data.data_dir,
        Listening {
            intake: intake_addr,
            signalling: signalling_addr,
            reintegration: reintegration_addr,
            notifications: notifications_addr,
        },
        &database,
    );

    let mut refresh = tokio::time::interval_at(
        tokio::time::Instant::now() + SERVICE_TOKEN_REFRESH,
        SERVICE_TOKEN_REFRESH,
    );
    tokio::pin!(shutdown);
    let mut outcome = loop {
        tokio::select! {
            () = &mut shutdown => {
                println!("stopping: draining in-flight calls");
                break Ok(());
            }
            Some(joined) = services.join_next() => {
                break Err(service_ended(joined));
            }
            _ = refresh.tick() => {
                for (caller, callee) in SERVICE_TOKENS {
                    if let Err(e) = write_service_token(&signer, &data, caller, callee) {
                        tracing::warn!(service = caller, error = %format!("{e:#}"), "could not refresh a service token");
                    }
                }
            }
        }
    };

    // Stop every service (gracefully), then the database.
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut first_error = None;
        while let Some(joined) = services.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                other => {
                    first_error.get_or_insert(service_ended(other));
                }
            }
        }
        first_error
    })
    .await;
    match drained {
        Ok(Some(e)) if outcome.is_ok() => outcome = Err(e),
        Ok(_) => {}
        Err(_) => {
            services.abort_all();
            tracing::warn!("services did not stop within {DRAIN_TIMEOUT:?}; aborted them");
        }
    }
    intake_pool.close().await;
    signalling_pool.close().await;
    reintegration_pool.close().await;
    notifications_pool.close().await;
    if let Database::Private(cluster) = &mut database {
        match cluster.stop() {
            Ok(()) => println!("stopped the private PostgreSQL cluster"),
            Err(e) => {
                let e = anyhow::Error::from(e).context("stopping the private PostgreSQL cluster");
                if outcome.is_ok() {
                    outcome = Err(e);
                } else {
                    eprintln!("error: {e:#}");
                }
            }
        }
    }
    outcome
}

/// Completes when `true` is sent, or when the sender is gone.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The error for a service task that ended before it was told to.
fn service_ended(
    joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> anyhow::Error {
    match joined {
        Ok((name, Ok(()))) => anyhow::anyhow!("{name} stopped unexpectedly"),
        Ok((name, Err(e))) => e.context(format!("{name} failed")),
        Err(e) => anyhow::anyhow!("a service task failed: {e}"),
    }
}

/// Makes sure only one `zvv up` uses a data folder at a time (the lock ends with the process).
fn lock_data_dir(data: &DataDir) -> anyhow::Result<File> {
    let path = data.root().join("zvv-up.lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another `zvv up` is already running with the data folder {}; stop it first or pass another --data-dir",
            data.root().display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

async fn bind_intake(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    bind("intake", addr, "--intake-listen", "ZVV_INTAKE_LISTEN").await
}

async fn bind_notifications(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    bind(
        "notifications",
        addr,
        "--notifications-listen",
        "ZVV_NOTIFICATIONS_LISTEN",
    )
    .await
}

async fn bind_reintegration(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    bind(
        "reintegration",
        addr,
        "--reintegration-listen",
        "ZVV_REINTEGRATION_LISTEN",
    )
    .await
}

async fn bind_signalling(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    bind(
        "signalling",
        addr,
        "--signalling-listen",
        "ZVV_SIGNALLING_LISTEN",
    )
    .await
}

/// The address clients on this machine use for a listener (unspecified → 127.0.0.1).
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Binds a service's listener, naming the flag and variable to change when that fails.
async fn bind(
    service: &str,
    addr: SocketAddr,
    flag: &str,
    env: &str,
) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
            "the address is already in use (is another `zvv up` running?)".to_owned()
        } else {
            e.to_string()
        };
        anyhow::anyhow!(
            "{service} cannot listen on {addr}: {why}; choose another address with {flag} or {env}"
        )
    })
}

/// Starts (creating it on first run) the private cluster and its database.
async fn start_private_cluster(data: &DataDir) -> anyhow::Result<LocalCluster> {
    let pg_dir = data.pg_dir();
    if !pg_dir.join("PG_VERSION").exists() {
        println!(
            "creating a private PostgreSQL cluster in {} (first run)",
            pg_dir.display()
        );
    }
    let options = ClusterOptions {
        port: None,
        durable: true,
    };
    let cluster = match LocalCluster::start(&pg_dir, options).await {
        Ok(cluster) => cluster,
        // Already says what to install; only add the alternative.
        Err(e @ DevDbError::NotInstalled) => {
            anyhow::bail!("{e}\n(or set DATABASE_URL to use a PostgreSQL server you already run)")
        }
        Err(e) => {
            return Err(anyhow::Error::from(e).context(format!(
                "starting the private PostgreSQL cluster in {}",
                pg_dir.display()
            )));
        }
    };
    cluster
        .create_database(DATABASE)
        .await
        .with_context(|| format!("creating the database {DATABASE}"))?;
    Ok(cluster)
}

/// The runtime pool of one service: its owner role migrates the schema and grants the runtime
/// role only what it needs. A `DATABASE_URL` user that may not create roles runs the service
/// itself (with a warning: the runtime role then owns its audit log).
async fn service_pool<F, Fut>(
    admin: &PgPool,
    database: &Database,
    schema: zvv_platform::db::Schema,
    max_connections: u32,
    migrate: F,
) -> anyhow::Result<PgPool>
where
    F: FnOnce(PgPool) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>>,
{
    let base = database.options();
    let name = base.get_database().unwrap_or("postgres").to_owned();
    let settings = PoolSettings {
        max_connections,
        ..PoolSettings::default()
    };
    let roles = match crate::roles::ensure(admin, &base, &name, schema).await {
        Ok(roles) => roles,
        Err(e) => {
            tracing::warn!(schema = schema.name(), error = %format!("{e:#}"),
                "cannot create the service's database roles: running it as the DATABASE_URL user");
            migrate(admin.clone())
                .await
                .with_context(|| format!("applying the {} migrations", schema.name()))?;
            return zvv_platform::db::connect(base, &settings)
                .await
                .with_context(|| format!("connecting to {}", database.describe()));
        }
    };
    let owner = zvv_platform::db::connect(roles.owner.clone(), &PoolSettings::default())
        .await
        .with_context(|| format!("connecting as the owner of {}", schema.name()))?;
    migrate(owner.clone())
        .await
        .with_context(|| format!("applying the {} migrations", schema.name()))?;
    zvv_platform::db::grant_runtime(&owner, schema, &roles.runtime_role)
        .await
        .with_context(|| format!("granting the {} runtime role", schema.name()))?;
    owner.close().await;
    zvv_platform::db::connect(roles.runtime, &settings)
        .await
        .with_context(|| format!("connecting as the {} runtime role", schema.name()))
}

/// Seals every service's audit chain and signs checkpoints with the development key, written to
/// `<data-dir>/audit/<schema>.checkpoints.jsonl`.
fn audit_settings(data: &DataDir) -> anyhow::Result<zvv_platform::server::AuditSettings> {
    let key = zvv_platform::audit::checkpoint::load_signing_key(&data.audit_signing_key())
        .context("loading the development audit signing key")?;
    Ok(zvv_platform::server::AuditSettings {
        sealer: zvv_platform::audit::seal::SealerSettings::default(),
        checkpoints: Some(zvv_platform::audit::checkpoint::CheckpointWriter::new(
            key,
            Some(data.checkpoint_dir()),
        )),
    })
}

async fn connect(database: &Database, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = database.options();
    let settings = PoolSettings {
        max_connections,
        ..PoolSettings::default()
    };
    zvv_platform::db::connect(options, &settings)
        .await
        .with_context(|| format!("connecting to {}", database.describe()))
}

/// Mints the SERVICE token `service` calls `callee` with (accepted by `callee` only) and
/// writes it (mode 0600, atomically) where the service reads it.
fn write_service_token(
    signer: &TokenSigner,
    data: &DataDir,
    service: &str,
    callee: &str,
) -> anyhow::Result<()> {
    let token = signer
        .mint(&TokenRequest {
            sub: service.to_owned(),
            org: format!("zvv-{service}"),
            org_type: OrgType::Suite,
            roles: vec![Role::Service],
            municipalities: Vec::new(),
            ttl: SERVICE_TOKEN_TTL,
            for_service: Some(callee.to_owned()),
        })
        .with_context(|| format!("minting the {service} service token for {callee}"))?;
    let path = data.token_file(service, callee);
    crate::datadir::write_private(&path, &format!("{token}\n"))
}

/// The addresses the services listen on.
struct Listening {
    intake: SocketAddr,
    signalling: SocketAddr,
    reintegration: SocketAddr,
    notifications: SocketAddr,
}

/// What runs where, and how to call it.
fn print_banner(data_arg: &Path, at: Listening, database: &Database) {
    let Listening {
        intake,
        signalling,
        reintegration,
        notifications,
    } = at;
    let client_addr = loopback(intake);
    let data_flag = if data_arg == Path::new(".zvv") {
        String::new()
    } else {
        format!(" --data-dir {}", data_arg.display())
    };
    println!();
    println!("zvv is up (Ctrl-C to stop)");
    println!("  intake         {intake}  zvv.intake.v1.SubjectService");
    println!("  signalling     {signalling}  zvv.signalling.v1.SignalService, ReferralService");
    println!(
        "  reintegration  {reintegration}  zvv.reintegration.v1.DetentionService, ContinuityService"
    );
    println!("  notifications  {notifications}  zvv.notifications.v1.NotificationService");
    println!("  database       {}", database.describe());
    println!();
    println!("Get a token and call intake:");
    if client_addr.to_string() != "127.0.0.1:50051" {
        println!("  export ZVV_INTAKE_ADDR=http://{client_addr}");
    }
    println!(
        "  export ZVV_TOKEN=$(zvv token --org gm0363 --org-type MUNICIPALITY --role PROFESSIONAL{data_flag} | tail -n1)"
    );
    println!(
        "  zvv subject register --bsn 123456782 --given-name Jan --family-name Jansen \
         --birth-date 2015-03-01 --municipality GM0363 --neighbourhood WK036305"
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $ZVV_TOKEN\" -d '{{\"subject_id\": \"<id>\"}}' \
         {client_addr} zvv.intake.v1.SubjectService/GetSubject"
    );
    println!();
}
