//! The suite sandbox for end-to-end tests: every service that exists, each on its own loopback
//! port with its own database schema, talking over real gRPC.

use std::sync::Arc;

use secrecy::SecretString;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::watch};
use zvv_devkit::testkit::{ServiceRoles, TestDb, TestKeys};
use zvv_platform::{
    auth::{OrgType, Role},
    client::{TokenSource, channel},
    clock::{ManualClock, SharedClock},
    db::{PoolSettings, Schema, connect},
    server::ServerSettings,
};
use zvv_proto::{
    intake::v1::subject_service_client::SubjectServiceClient,
    notifications::v1::notification_service_client::NotificationServiceClient,
    reintegration::v1::{
        continuity_service_client::ContinuityServiceClient,
        detention_service_client::DetentionServiceClient,
    },
    signalling::v1::signal_service_client::SignalServiceClient,
};

pub type SignallingClient = SignalServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        zvv_platform::client::Outgoing,
    >,
>;

pub type NotificationsClient = NotificationServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        zvv_platform::client::Outgoing,
    >,
>;

pub type IntakeClient = SubjectServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        zvv_platform::client::Outgoing,
    >,
>;

pub type DetentionsClient = DetentionServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        zvv_platform::client::Outgoing,
    >,
>;

pub type ContinuityClient = ContinuityServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        zvv_platform::client::Outgoing,
    >,
>;

/// Installs tracing (captured by the test runner) and the W3C propagator once per process, so
/// that calls get trace ids and carry them across services.
pub fn init_telemetry() {
    static GUARD: std::sync::OnceLock<zvv_platform::telemetry::TelemetryGuard> =
        std::sync::OnceLock::new();
    GUARD.get_or_init(|| zvv_platform::telemetry::init_for_tests("zvv-e2e"));
}

/// What a test may change about the suite it starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub settings: ServerSettings,
    /// The runtime pool of each service.
    pub pools: PoolSettings,
    /// Each service relays its outbox to notifications, as in a deployment (off: the test runs
    /// the relays it needs).
    pub relays: bool,
    /// Notifications runs its delivery workers (off: the test runs them).
    pub delivery_workers: bool,
    /// Every server seals its audit log behind the writers (off: each server seals once at
    /// start, and the test seals).
    pub sealers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            settings: ServerSettings::default(),
            pools: PoolSettings {
                max_connections: 10,
                acquire_timeout: std::time::Duration::from_secs(10),
            },
            relays: true,
            delivery_workers: true,
            sealers: true,
        }
    }
}

/// A running suite. Dropping it stops the services.
pub struct Harness {
    pub keys: TestKeys,
    pub pool: PgPool,
    pub clock: ManualClock,
    pub intake_url: String,
    pub signalling_url: String,
    pub notifications_url: String,
    pub reintegration_url: String,
    /// Reintegration's runtime pool, for running its jobs as a replica does.
    pub reintegration_pool: PgPool,
    /// The key notifications seals webhook secrets with (another replica needs the same).
    pub notifications_secrets: Arc<zvv_notifications::Secrets>,
    /// The database roles of each service, by schema name.
    roles: Vec<(&'static str, ServiceRoles)>,
    /// Kept for as long as the suite runs (on an external server it is dropped with it).
    pub db: TestDb,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Harness {
    /// Starts every service against a fresh database.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(ServerSettings::default()).await
    }

    /// Like [`Harness::start`], with other server settings.
    pub async fn start_with(settings: ServerSettings) -> anyhow::Result<Self> {
        Self::start_with_options(Options {
            settings,
            ..Options::default()
        })
        .await
    }

    /// Like [`Harness::start`], with `options`.
    pub async fn start_with_options(options: Options) -> anyhow::Result<Self> {
        Self::start_on_with(TestDb::create().await?, options).await
    }

    /// Every service against `db` (e.g. on a cluster the test stops and starts), with these
    /// server settings and runtime pool settings for each service.
    pub async fn start_on(
        db: TestDb,
        settings: ServerSettings,
        pools: PoolSettings,
    ) -> anyhow::Result<Self> {
        Self::start_on_with(
            db,
            Options {
                settings,
                pools,
                ..Options::default()
            },
        )
        .await
    }

    /// Every service against `db`, with `options`.
    pub async fn start_on_with(db: TestDb, options: Options) -> anyhow::Result<Self> {
        let Options {
            settings,
            pools,
            relays,
            delivery_workers,
            sealers,
        } = options;
        init_telemetry();
        let pool = connect(db.options.clone(), &PoolSettings::default()).await?;
        let keys = TestKeys::new()?;
        let clock = ManualClock::new(chrono::Utc::now());
        let shared: SharedClock = Arc::new(clock.clone());
        let (stop, stop_rx) = watch::channel(false);

        let mut settings = settings;
        if settings.audit.checkpoints.is_none() {
            settings.audit = keys.audit_settings()?;
        }
        if !sealers {
            settings.audit.sealer.interval = std::time::Duration::from_secs(24 * 3600);
        }
        let settings_for_signalling = settings.clone();
        // notifications is bound first: intake, signalling and reintegration relay their outbox
        // to it
        let notifications_listener = TcpListener::bind("127.0.0.1:0").await?;
        let notifications_url = format!("http://{}", notifications_listener.local_addr()?);
        let relay = |service: &str| -> anyhow::Result<Option<zvv_platform::relay::Relay>> {
            if !relays {
                return Ok(None);
            }
            let token = keys.service_token(&format!("zvv-{service}"), "notifications");
            Ok(Some(zvv_platform::relay::Relay::new(
                Arc::new(zvv_platform::relay::GrpcPublisher::connect(
                    &notifications_url,
                    TokenSource::Static(SecretString::from(token)),
                )?),
                zvv_platform::relay::RelaySettings {
                    interval: std::time::Duration::from_millis(50),
                    ..Default::default()
                },
            )))
        };
        let (intake_pool, intake_roles) = zvv_devkit::testkit::service_pool_with(
            &db,
            zvv_intake::SCHEMA,
            &pools,
            |owner| async move { zvv_intake::migrate(&owner).await },
        )
        .await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let intake_url = format!("http://{}", listener.local_addr()?);
        let deps = zvv_intake::Deps {
            pool: intake_pool,
            vault: keys.vault()?,
            verifier: keys.verifier(zvv_intake::SCHEMA.name())?,
            clock: shared,
            settings: settings.clone(),
            idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
            relay: relay("intake")?,
        };
        let mut rx = stop_rx.clone();
        let intake = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = zvv_intake::serve(deps, listener, shutdown).await {
                tracing::error!(error = %e, "intake stopped with an error");
            }
        });

        let (signalling_pool, signalling_roles) = zvv_devkit::testkit::service_pool_with(
            &db,
            zvv_signalling::SCHEMA,
            &pools,
            |owner| async move { zvv_signalling::migrate(&owner).await },
        )
        .await?;
        let service_token = keys.service_token("zvv-signalling", zvv_intake::SCHEMA.name());
        let to_intake = channel(
            &intake_url,
            TokenSource::Static(SecretString::from(service_token)),
        )?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let signalling_url = format!("http://{}", listener.local_addr()?);
        let deps = zvv_signalling::Deps {
            pool: signalling_pool,
            verifier: keys.verifier(zvv_signalling::SCHEMA.name())?,
            clock: Arc::new(clock.clone()),
            settings: settings_for_signalling,
            intake: SubjectServiceClient::new(to_intake),
            default_duration_months: 12,
            idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
            referral_deadline_working_days: zvv_signalling::DEFAULT_REFERRAL_DEADLINE_WORKING_DAYS,
            statistics_threshold: zvv_signalling::DEFAULT_STATISTICS_THRESHOLD,
            fingerprints: keys.fingerprints()?,
            retention: zvv_signalling::retention::RetentionRules::default(),
            relay: relay("signalling")?,
            notifications: Some(
                zvv_proto::notifications::v1::notification_service_client::NotificationServiceClient::new(
                    channel(
                        &notifications_url,
                        TokenSource::Static(SecretString::from(
                            keys.service_token("zvv-signalling", "notifications"),
                        )),
                    )?,
                ),
            ),
        };
        let mut rx = stop_rx.clone();
        let signalling = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = zvv_signalling::serve(deps, listener, shutdown).await {
                tracing::error!(error = %e, "signalling stopped with an error");
            }
        });

        let (reintegration_pool, reintegration_roles) = zvv_devkit::testkit::service_pool_with(
            &db,
            zvv_reintegration::SCHEMA,
            &pools,
            |owner| async move { zvv_reintegration::migrate(&owner).await },
        )
        .await?;
        let to_intake = channel(
            &intake_url,
            TokenSource::Static(SecretString::from(
                keys.service_token("zvv-reintegration", zvv_intake::SCHEMA.name()),
            )),
        )?;
        let fingerprints = keys.fingerprints()?;
        zvv_reintegration::check_keys(&reintegration_pool, &fingerprints).await?;
        let policy = zvv_reintegration::domain::ContinuityPolicy::default();
        let reintegration_clock: SharedClock = Arc::new(clock.clone());
        zvv_reintegration::record_policy(&reintegration_pool, &policy, &reintegration_clock)
            .await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let reintegration_url = format!("http://{}", listener.local_addr()?);
        let deps = zvv_reintegration::Deps {
            pool: reintegration_pool.clone(),
            verifier: keys.verifier(zvv_reintegration::SCHEMA.name())?,
            clock: reintegration_clock,
            settings: settings.clone(),
            intake: SubjectServiceClient::new(to_intake),
            logic: zvv_reintegration::service::Settings {
                policy,
                follow_up_months: zvv_reintegration::DEFAULT_FOLLOW_UP_MONTHS,
                statistics_threshold: zvv_reintegration::DEFAULT_STATISTICS_THRESHOLD,
            },
            jobs: zvv_reintegration::jobs::JobSettings {
                // the tests run the monitor themselves, on the harness clock
                monitor_interval: std::time::Duration::from_secs(3600),
                warn_working_days: zvv_reintegration::DEFAULT_WARN_WORKING_DAYS,
                retention_months: zvv_reintegration::DEFAULT_RETENTION_MONTHS,
                idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
            },
            fingerprints,
            relay: relay("reintegration")?,
        };
        let mut rx = stop_rx.clone();
        let reintegration = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = zvv_reintegration::serve(deps, listener, shutdown).await {
                tracing::error!(error = %e, "reintegration stopped with an error");
            }
        });

        let (notifications_pool, notifications_roles) = zvv_devkit::testkit::service_pool_with(
            &db,
            zvv_notifications::SCHEMA,
            &pools,
            |owner| async move { zvv_notifications::migrate(&owner).await },
        )
        .await?;
        let secrets = Arc::new(
            zvv_notifications::Secrets::from_base64(&zvv_notifications::Secrets::generate_base64())
                .map_err(anyhow::Error::msg)?,
        );
        zvv_notifications::check_keys(&notifications_pool, &secrets).await?;
        let mut sinks = zvv_notifications::SinkEndpoints::new();
        sinks.insert(
            "signalling".to_owned(),
            channel(
                &signalling_url,
                TokenSource::Static(SecretString::from(
                    keys.service_token("zvv-notifications", "signalling"),
                )),
            )?,
        );
        let deps = zvv_notifications::Deps {
            pool: notifications_pool,
            verifier: keys.verifier(zvv_notifications::SCHEMA.name())?,
            clock: Arc::new(clock.clone()),
            settings: settings.clone(),
            secrets: secrets.clone(),
            delivery: zvv_notifications::DeliverySettings {
                poll_interval: std::time::Duration::from_millis(50),
                public_base_url: notifications_url.clone(),
                ..Default::default()
            },
            targets: zvv_notifications::domain::target::TargetPolicy {
                development: true,
                allowed: Vec::new(),
            },
            sinks,
            stream: zvv_notifications::StreamSettings::default(),
            retention: zvv_notifications::Retention::default(),
            run_workers: delivery_workers,
        };
        let mut rx = stop_rx.clone();
        let notifications = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = zvv_notifications::serve(deps, notifications_listener, shutdown).await {
                tracing::error!(error = %e, "notifications stopped with an error");
            }
        });

        Ok(Self {
            keys,
            pool,
            clock,
            intake_url,
            signalling_url,
            notifications_url,
            reintegration_url,
            reintegration_pool,
            notifications_secrets: secrets,
            roles: vec![
                (zvv_intake::SCHEMA.name(), intake_roles),
                (zvv_signalling::SCHEMA.name(), signalling_roles),
                (zvv_reintegration::SCHEMA.name(), reintegration_roles),
                (zvv_notifications::SCHEMA.name(), notifications_roles),
            ],
            db,
            stop,
            tasks: vec![intake, signalling, reintegration, notifications],
        })
    }

    /// A new pool of the runtime role of `schema`'s service: what another replica of the
    /// service connects with.
    pub async fn replica_pool(&self, schema: Schema) -> anyhow::Result<PgPool> {
        let roles = self
            .roles
            .iter()
            .find(|(name, _)| *name == schema.name())
            .map(|(_, roles)| roles)
            .ok_or_else(|| anyhow::anyhow!("no service has schema {}", schema.name()))?;
        Ok(connect(
            roles.runtime.clone(),
            &PoolSettings {
                max_connections: 10,
                acquire_timeout: std::time::Duration::from_secs(10),
            },
        )
        .await?)
    }

    pub fn token(&self, org: &str, org_type: OrgType, roles: &[Role]) -> String {
        self.keys.token(org, org_type, roles)
    }

    /// A client of intake that sends `token` and the current trace context with every call.
    pub fn intake(&self, token: &str) -> anyhow::Result<IntakeClient> {
        let ch = channel(
            &self.intake_url,
            TokenSource::Static(SecretString::from(token.to_owned())),
        )?;
        Ok(SubjectServiceClient::new(ch))
    }

    /// Tells the services to shut down (as SIGTERM does) without waiting.
    pub fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// A client of signalling that sends `token` and the current trace context.
    pub fn signalling(&self, token: &str) -> anyhow::Result<SignallingClient> {
        let ch = channel(
            &self.signalling_url,
            TokenSource::Static(SecretString::from(token.to_owned())),
        )?;
        Ok(SignalServiceClient::new(ch))
    }

    /// A client of notifications that sends `token`.
    pub fn notifications(&self, token: &str) -> anyhow::Result<NotificationsClient> {
        let ch = channel(
            &self.notifications_url,
            TokenSource::Static(SecretString::from(token.to_owned())),
        )?;
        Ok(NotificationServiceClient::new(ch))
    }

    /// A client of reintegration's DetentionService that sends `token`.
    pub fn detentions(&self, token: &str) -> anyhow::Result<DetentionsClient> {
        let ch = channel(
            &self.reintegration_url,
            TokenSource::Static(SecretString::from(token.to_owned())),
        )?;
        Ok(DetentionServiceClient::new(ch))
    }

    /// A client of reintegration's ContinuityService that sends `token`.
    pub fn continuity(&self, token: &str) -> anyhow::Result<ContinuityClient> {
        let ch = channel(
            &self.reintegration_url,
            TokenSource::Static(SecretString::from(token.to_owned())),
        )?;
        Ok(ContinuityServiceClient::new(ch))
    }

    /// Runs reintegration's deadline monitor once for the harness clock's day, with the default
    /// warning period, as a replica's interval job does.
    pub async fn run_deadline_monitor(
        &self,
    ) -> anyhow::Result<zvv_reintegration::store::MonitorReport> {
        let clock: SharedClock = Arc::new(self.clock.clone());
        zvv_reintegration::run_deadline_monitor(
            &self.reintegration_pool,
            &clock,
            zvv_reintegration::DEFAULT_WARN_WORKING_DAYS,
        )
        .await
        .map_err(|e| anyhow::anyhow!("deadline monitor: {e}"))
    }

    /// Stops the services and waits for them to drain.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Taken by the tests that load the machine most (the database outages, the two-replica jobs):
/// one of them at a time, so that an outage's recovery is not measured on a machine that a
/// two-replica run starves.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
