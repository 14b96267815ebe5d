//! Typed configuration shared by the services: environment first, with a matching flag for each
//! variable (`clap` `env`). Secrets are `secrecy` types and never printed; clap's help hides their
//! values.

use std::{path::PathBuf, sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;

use crate::{
    auth::{KeyError, TokenVerifier},
    db::PoolSettings,
    server::ServerSettings,
    telemetry::LogFormat,
};

/// Database connection.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// PostgreSQL connection URL of the service's runtime role.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,
    /// PostgreSQL URL of the owner role that runs the migrations and owns the tables; the runtime
    /// role (the user of DATABASE_URL) is then granted only what it needs. Without it the service
    /// migrates with its runtime connection, and that role owns (and could alter) its audit log.
    #[arg(
        long = "migration-database-url",
        env = "ZVV_MIGRATION_DATABASE_URL",
        hide_env_values = true
    )]
    pub migration_database_url: Option<SecretString>,
    /// Largest number of pooled connections.
    #[arg(long, env = "ZVV_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
    /// Seconds to wait for a free connection before answering UNAVAILABLE.
    #[arg(long, env = "ZVV_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    pub db_acquire_timeout_secs: u64,
    /// Apply the migrations (as the owner of ZVV_MIGRATION_DATABASE_URL), grant the runtime role
    /// (the user of DATABASE_URL) what it needs, and exit with status 0 without serving: for a
    /// Kubernetes init container or Job that migrates before the replicas start. No runtime
    /// connection is made. The serving replicas still run the migrations at start, which is a
    /// no-op once they are applied (and needs the same ZVV_MIGRATION_DATABASE_URL).
    #[arg(long, env = "ZVV_MIGRATE_ONLY", default_value_t = false)]
    pub migrate_only: bool,
}

/// What [`DbArgs::open`] leaves the binary to do.
#[derive(Debug)]
pub enum Opened {
    /// Serve with this runtime pool.
    Serve(sqlx::PgPool),
    /// ZVV_MIGRATE_ONLY: the schema is migrated and the runtime role granted; exit (status 0)
    /// without serving.
    Migrated,
}

impl DbArgs {
    pub fn connect_options(&self) -> Result<PgConnectOptions, String> {
        self.database_url
            .expose_secret()
            .parse::<PgConnectOptions>()
            .map_err(|_| "DATABASE_URL is not a valid PostgreSQL URL".to_owned())
    }

    /// The owner's connection, when a migration URL is set.
    pub fn migration_options(&self) -> Result<Option<PgConnectOptions>, String> {
        self.migration_database_url
            .as_ref()
            .filter(|u| !u.expose_secret().trim().is_empty())
            .map(|u| {
                u.expose_secret().parse::<PgConnectOptions>().map_err(|_| {
                    "ZVV_MIGRATION_DATABASE_URL is not a valid PostgreSQL URL".to_owned()
                })
            })
            .transpose()
    }

    /// The runtime pool of a service whose schema is `schema`, with its migrations applied: by
    /// the owner role when a migration URL is set (and the runtime role then granted only what it
    /// needs), else by the runtime connection itself, with a warning. With ZVV_MIGRATE_ONLY it
    /// migrates and grants the same way but opens no runtime pool: [`Opened::Migrated`], and
    /// the binary exits.
    pub async fn open<F, Fut>(
        &self,
        schema: crate::db::Schema,
        migrate: F,
    ) -> Result<Opened, String>
    where
        F: FnOnce(sqlx::PgPool) -> Fut,
        Fut: std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>>,
    {
        let runtime = self.connect_options()?;
        let runtime_role = runtime.get_username().to_owned();
        let owner = self.migration_options()?;
        if self.migrate_only {
            let by_owner = owner.is_some();
            let options = owner.unwrap_or_else(|| {
                tracing::warn!(
                    schema = schema.name(),
                    "ZVV_MIGRATE_ONLY without ZVV_MIGRATION_DATABASE_URL: migrating with the \
                     runtime role, which then owns (and could alter) its own audit log"
                );
                runtime
            });
            let pool = crate::db::connect(options, &PoolSettings::default())
                .await
                .map_err(|e| format!("connecting to PostgreSQL to migrate: {e}"))?;
            let done = migrate_and_grant(&pool, schema, &runtime_role, by_owner, migrate).await;
            pool.close().await;
            done?;
            tracing::info!(
                schema = schema.name(),
                runtime_role,
                by_owner,
                "migrated; ZVV_MIGRATE_ONLY: exiting without serving"
            );
            return Ok(Opened::Migrated);
        }
        let pool = crate::db::connect(runtime, &self.pool_settings())
            .await
            .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
        match owner {
            Some(owner) => {
                let owner_pool = crate::db::connect(owner, &PoolSettings::default())
                    .await
                    .map_err(|e| format!("connecting to PostgreSQL as the migration owner: {e}"))?;
                let done =
                    migrate_and_grant(&owner_pool, schema, &runtime_role, true, migrate).await;
                owner_pool.close().await;
                done?;
            }
            None => {
                tracing::info!(
                    schema = schema.name(),
                    "no ZVV_MIGRATION_DATABASE_URL: migrations not applied yet are applied with \
                     the runtime role, which would then own (and could alter) its own audit log; \
                     in deployments the owner applies them first (ZVV_MIGRATE_ONLY)"
                );
                migrate(pool.clone())
                    .await
                    .map_err(|e| format!("applying migrations: {e}"))?;
            }
        }
        Ok(Opened::Serve(pool))
    }

    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_secs),
        }
    }
}

/// Runs `migrate` on `pool`, then (when `pool` is the owner's) grants `runtime_role` what it
/// needs.
async fn migrate_and_grant<F, Fut>(
    pool: &sqlx::PgPool,
    schema: crate::db::Schema,
    runtime_role: &str,
    grant: bool,
    migrate: F,
) -> Result<(), String>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>>,
{
    migrate(pool.clone())
        .await
        .map_err(|e| format!("applying migrations: {e}"))?;
    if grant {
        crate::db::grant_runtime(pool, schema, runtime_role)
            .await
            .map_err(|e| format!("granting the runtime role {runtime_role}: {e}"))?;
    }
    Ok(())
}

/// Token verification.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// PEM files with the pinned public keys (Ed25519 or P-256), comma-separated.
    #[arg(long, env = "ZVV_JWT_PUBLIC_KEY_FILE", value_delimiter = ',')]
    pub jwt_public_key_file: Vec<PathBuf>,
    /// A JWKS file with pinned public keys (OKP Ed25519 or EC P-256).
    #[arg(long, env = "ZVV_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "ZVV_JWT_ISSUER", default_value = "zvv")]
    pub jwt_issuer: String,
    /// Required `aud` claim of callers' tokens; a suite SERVICE token must have
    /// `<audience>/<service>` instead, naming the one service it is for (e.g. `zvv/intake`).
    #[arg(long, env = "ZVV_JWT_AUDIENCE", default_value = "zvv")]
    pub jwt_audience: String,
    /// Clock skew allowed on `exp` and `nbf`, at most 30 seconds.
    #[arg(long, env = "ZVV_JWT_LEEWAY_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=30))]
    pub jwt_leeway_secs: u64,
}

impl AuthArgs {
    /// The verifier of `service` (e.g. `intake`): it takes SERVICE tokens only when their
    /// `aud` is `<jwt_audience>/<service>`.
    pub fn verifier(&self, service: &str) -> Result<Arc<TokenVerifier>, KeyError> {
        TokenVerifier::from_files(
            &self.jwt_public_key_file,
            self.jwks_file.as_deref(),
            &self.jwt_issuer,
            &self.jwt_audience,
            self.jwt_leeway_secs,
        )
        .map(|v| Arc::new(v.for_service(service)))
    }
}

/// Server limits and logging.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Seconds a call may take before it is cancelled.
    #[arg(long, env = "ZVV_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,
    /// Largest request message in bytes.
    #[arg(long, env = "ZVV_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024)]
    pub max_message_bytes: usize,
    /// Calls in flight before new ones are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "ZVV_CONCURRENCY_LIMIT", default_value_t = 256)]
    pub concurrency_limit: usize,
    /// Seconds between reporting NOT_SERVING and closing the listener on shutdown.
    #[arg(long, env = "ZVV_SHUTDOWN_DELAY_SECS", default_value_t = 0)]
    pub shutdown_delay_secs: u64,
    /// Log output: plain or json.
    #[arg(long, env = "ZVV_LOG_FORMAT", default_value = "plain")]
    pub log_format: LogFormat,
    /// Calls with a missing or invalid token that one peer address may cause at once before
    /// further ones are refused without an audit record (RESOURCE_EXHAUSTED).
    #[arg(long, env = "ZVV_AUTH_FAILURE_BURST", default_value_t = 30)]
    pub auth_failure_burst: u32,
    /// How many of those audited refusals a peer address regains per minute.
    #[arg(long, env = "ZVV_AUTH_FAILURE_PER_MINUTE", default_value_t = 60)]
    pub auth_failure_per_minute: u32,
    /// Milliseconds between the background checks of the database that readiness follows.
    #[arg(long, env = "ZVV_READINESS_INTERVAL_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub readiness_interval_ms: u64,
    /// A second, plaintext address that serves gRPC health only (grpc.health.v1, the same
    /// statuses): for probes that cannot speak TLS, e.g. the kubelet's gRPC probe. Unset: none.
    #[arg(long, env = "ZVV_HEALTH_LISTEN")]
    pub health_listen: Option<std::net::SocketAddr>,
    /// TLS of the listener and of outgoing calls.
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl ServerArgs {
    pub fn settings(&self) -> ServerSettings {
        ServerSettings {
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            max_message_bytes: self.max_message_bytes,
            concurrency_limit: self.concurrency_limit.max(1),
            shutdown_delay: Duration::from_secs(self.shutdown_delay_secs),
            auth_failure_budget: crate::budget::BudgetSettings {
                burst: self.auth_failure_burst,
                per_minute: self.auth_failure_per_minute,
            },
            audit: crate::server::AuditSettings::default(),
            readiness: crate::server::ReadinessSettings {
                interval: Duration::from_millis(self.readiness_interval_ms),
                ..Default::default()
            },
            // read by the binary with `tls.server()`, so that a file that cannot be used is a
            // start-up error
            tls: None,
            health_listen: self.health_listen,
        }
    }
}

/// TLS of the service's own listener and of its calls to other suite services (rustls, see
/// [`crate::tls`]). Every file is PEM and is checked again for a renewal (cert-manager renews
/// in place) at most once per ZVV_TLS_RELOAD_INTERVAL_MS; a renewed file that cannot be used is
/// logged and the previous one kept. Without a certificate the listener is plaintext; an
/// `http://` address of another service is called in plaintext, an `https://` one over TLS.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Certificate chain of this service's listener, leaf first (e.g. cert-manager's
    /// `tls.crt`). With ZVV_TLS_KEY_FILE the service serves gRPC over TLS only, health and
    /// reflection included; one without the other is a start-up error.
    #[arg(long, env = "ZVV_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key of the listener's certificate (`tls.key`; PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ZVV_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle whose client certificates the listener requires (mutual TLS): a caller without
    /// a certificate signed by one of these CAs cannot connect. Needs ZVV_TLS_CERT_FILE.
    #[arg(long, env = "ZVV_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// CA bundle that the certificates of the services this one calls at `https://` addresses
    /// must be signed by (intake, notifications, event sinks); without it the system's roots.
    #[arg(long, env = "ZVV_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate this service presents when it calls `https://` addresses (for
    /// servers that require mutual TLS); needs ZVV_TLS_CLIENT_KEY_FILE.
    #[arg(long, env = "ZVV_TLS_CLIENT_CERT_FILE")]
    pub tls_client_cert_file: Option<PathBuf>,
    /// Private key of the client certificate.
    #[arg(long, env = "ZVV_TLS_CLIENT_KEY_FILE")]
    pub tls_client_key_file: Option<PathBuf>,
    /// Least milliseconds between two checks of the TLS files for a renewal (checked when a
    /// connection is made).
    #[arg(long, env = "ZVV_TLS_RELOAD_INTERVAL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub tls_reload_interval_ms: u64,
}

/// A path that is set and not empty (an empty variable in a manifest means unset).
fn set(path: &Option<PathBuf>) -> Option<PathBuf> {
    path.as_ref().filter(|p| !p.as_os_str().is_empty()).cloned()
}

impl TlsArgs {
    fn reload_interval(&self) -> Duration {
        Duration::from_millis(self.tls_reload_interval_ms)
    }

    /// The listener's TLS, read from the files now; `None` without a certificate (plaintext).
    pub fn server(&self) -> Result<Option<crate::tls::ServerTls>, String> {
        let (cert, key, client_ca) = (
            set(&self.tls_cert_file),
            set(&self.tls_key_file),
            set(&self.tls_client_ca_file),
        );
        let (cert_file, key_file) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) if client_ca.is_none() => return Ok(None),
            (None, None) => {
                return Err("ZVV_TLS_CLIENT_CA_FILE needs ZVV_TLS_CERT_FILE and \
                            ZVV_TLS_KEY_FILE: mutual TLS is TLS first"
                    .to_owned());
            }
            (Some(_), None) => {
                return Err(
                    "ZVV_TLS_CERT_FILE is set without ZVV_TLS_KEY_FILE: set both to \
                            serve over TLS, or neither"
                        .to_owned(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "ZVV_TLS_KEY_FILE is set without ZVV_TLS_CERT_FILE: set both to \
                            serve over TLS, or neither"
                        .to_owned(),
                );
            }
        };
        crate::tls::ServerTls::from_files(crate::tls::ServerTlsFiles {
            cert_file,
            key_file,
            client_ca_file: client_ca,
            reload_interval: self.reload_interval(),
        })
        .map(Some)
        .map_err(|e| format!("the listener's TLS: {e}"))
    }

    /// The TLS of calls to `https://` addresses, read from the files now. Install it with
    /// [`crate::client::configure_tls`] before any channel is made.
    pub fn client(&self) -> Result<crate::tls::ClientTls, String> {
        let (cert, key) = (
            set(&self.tls_client_cert_file),
            set(&self.tls_client_key_file),
        );
        match (&cert, &key) {
            (Some(_), None) => {
                return Err(
                    "ZVV_TLS_CLIENT_CERT_FILE is set without ZVV_TLS_CLIENT_KEY_FILE".to_owned(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "ZVV_TLS_CLIENT_KEY_FILE is set without ZVV_TLS_CLIENT_CERT_FILE".to_owned(),
                );
            }
            _ => {}
        }
        crate::tls::ClientTls::from_files(crate::tls::ClientTlsFiles {
            ca_file: set(&self.tls_ca_file),
            cert_file: cert,
            key_file: key,
            reload_interval: self.reload_interval(),
        })
        .map_err(|e| format!("the TLS of outgoing calls: {e}"))
    }
}

/// The anchoring of the audit chain.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints of the audit chain; keep it out of
    /// the database. Without it the chain is not anchored.
    #[arg(long, env = "ZVV_AUDIT_SIGNING_KEY_FILE")]
    pub audit_signing_key_file: Option<PathBuf>,
    /// Folder of the append-only checkpoint files (one per schema), e.g. a write-once volume.
    #[arg(long, env = "ZVV_AUDIT_CHECKPOINT_DIR")]
    pub audit_checkpoint_dir: Option<PathBuf>,
    /// Seconds between checkpoints of the chain head.
    #[arg(long, env = "ZVV_AUDIT_CHECKPOINT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub audit_checkpoint_secs: u64,
}

impl AuditArgs {
    pub fn settings(&self) -> Result<crate::server::AuditSettings, String> {
        let checkpoints = match &self.audit_signing_key_file {
            None => None,
            Some(path) => Some(crate::audit::checkpoint::CheckpointWriter::new(
                crate::audit::checkpoint::load_signing_key(path).map_err(|e| e.to_string())?,
                self.audit_checkpoint_dir.clone(),
            )),
        };
        Ok(crate::server::AuditSettings {
            sealer: crate::audit::seal::SealerSettings {
                checkpoint_interval: Duration::from_secs(self.audit_checkpoint_secs),
                ..Default::default()
            },
            checkpoints,
        })
    }
}

/// This service's identity for calls to other suite services.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// File holding this service's SERVICE token; re-read whenever it changes.
    #[arg(long, env = "ZVV_SERVICE_TOKEN_FILE")]
    pub service_token_file: PathBuf,
}

impl ClientArgs {
    pub fn token_source(&self) -> crate::client::TokenSource {
        crate::client::TokenSource::file(&self.service_token_file)
    }
}

/// The relay of the service's outbox to NotificationService ([`crate::relay`]).
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Address of the notifications service (e.g. `http://127.0.0.1:50054`). Without it the
    /// outbox is not relayed (a warning at start).
    #[arg(long, env = "ZVV_NOTIFICATIONS_ADDR")]
    pub notifications_addr: Option<String>,
    /// File holding this service's SERVICE token for notifications (minted for the service
    /// `notifications`); re-read whenever it changes. Required with ZVV_NOTIFICATIONS_ADDR.
    #[arg(long, env = "ZVV_NOTIFICATIONS_TOKEN_FILE")]
    pub notifications_token_file: Option<PathBuf>,
    /// Hours published outbox events are kept before they are purged.
    #[arg(long, env = "ZVV_OUTBOX_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u32).range(1..=8760))]
    pub outbox_retention_hours: u32,
    /// Events published per relay round (one transaction).
    #[arg(long, env = "ZVV_RELAY_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub relay_batch_size: u32,
    /// Milliseconds between relay rounds while there is nothing to publish.
    #[arg(long, env = "ZVV_RELAY_INTERVAL_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub relay_interval_ms: u64,
}

impl RelayArgs {
    /// The relay settings these arguments give.
    pub fn settings(&self) -> crate::relay::RelaySettings {
        crate::relay::RelaySettings {
            batch_size: self.relay_batch_size,
            interval: Duration::from_millis(self.relay_interval_ms),
            retention: Duration::from_secs(u64::from(self.outbox_retention_hours) * 3600),
            ..Default::default()
        }
    }

    /// A NotificationService client with the service's token for it, or `None` when no address
    /// is set. Connects lazily.
    pub fn notifications(&self) -> Result<Option<crate::relay::NotificationsClient>, String> {
        let Some(addr) = self
            .notifications_addr
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        else {
            return Ok(None);
        };
        let token = self
            .notifications_token_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| {
                "ZVV_NOTIFICATIONS_TOKEN_FILE is required with ZVV_NOTIFICATIONS_ADDR: the \
                 service's SERVICE token for notifications"
                    .to_owned()
            })?;
        let channel = crate::client::channel(addr, crate::client::TokenSource::file(token))
            .map_err(|e| format!("invalid ZVV_NOTIFICATIONS_ADDR {addr:?}: {e}"))?;
        Ok(Some(crate::relay::NotificationsClient::new(channel)))
    }

    /// The relay to NotificationService, or `None` (the relay is off) when no address is set.
    pub fn relay(&self) -> Result<Option<crate::relay::Relay>, String> {
        Ok(self.notifications()?.map(|client| {
            crate::relay::Relay::new(
                Arc::new(crate::relay::GrpcPublisher::new(client)),
                self.settings(),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Args {
        #[command(flatten)]
        relay: RelayArgs,
    }

    #[derive(Debug, clap::Parser)]
    struct Server {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn tls(args: &[&str]) -> TlsArgs {
        Server::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .server
            .tls
    }

    #[test]
    fn without_tls_settings_the_listener_and_calls_are_as_before() {
        let args = tls(&[]);
        assert!(args.server().unwrap().is_none());
        assert!(!args.client().unwrap().is_configured());
        assert_eq!(args.tls_reload_interval_ms, 5000);
        let settings = Server::try_parse_from(["x"]).unwrap().server.settings();
        assert!(settings.tls.is_none());
    }

    #[test]
    fn tls_settings_that_belong_together_are_checked() {
        let err = tls(&["--tls-cert-file", "/c.pem"]).server().unwrap_err();
        assert!(err.contains("ZVV_TLS_KEY_FILE"), "{err}");
        let err = tls(&["--tls-key-file", "/k.pem"]).server().unwrap_err();
        assert!(err.contains("ZVV_TLS_CERT_FILE"), "{err}");
        let err = tls(&["--tls-client-ca-file", "/ca.pem"])
            .server()
            .unwrap_err();
        assert!(err.contains("ZVV_TLS_CLIENT_CA_FILE"), "{err}");
        let err = tls(&["--tls-client-cert-file", "/c.pem"])
            .client()
            .unwrap_err();
        assert!(err.contains("ZVV_TLS_CLIENT_KEY_FILE"), "{err}");
        let err = tls(&["--tls-client-key-file", "/k.pem"])
            .client()
            .unwrap_err();
        assert!(err.contains("ZVV_TLS_CLIENT_CERT_FILE"), "{err}");
        // files that cannot be read are a start-up error that names them
        let err = tls(&[
            "--tls-cert-file",
            "/nonexistent/c.pem",
            "--tls-key-file",
            "/k.pem",
        ])
        .server()
        .unwrap_err();
        assert!(err.contains("/nonexistent/c.pem"), "{err}");
        let err = tls(&["--tls-ca-file", "/nonexistent/ca.pem"])
            .client()
            .unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(
            Server::try_parse_from(["x", "--tls-reload-interval-ms", "10"]).is_err(),
            "at least 100 ms"
        );
    }

    #[tokio::test]
    async fn the_relay_is_off_without_an_address_and_needs_its_token_with_one() {
        let args = Args::try_parse_from(["x"]).unwrap();
        assert!(args.relay.relay().unwrap().is_none());
        let settings = args.relay.settings();
        assert_eq!(settings.retention, Duration::from_secs(168 * 3600));
        assert_eq!(settings.interval, Duration::from_millis(250));
        let args =
            Args::try_parse_from(["x", "--notifications-addr", "http://127.0.0.1:1"]).unwrap();
        let err = args.relay.relay().unwrap_err();
        assert!(err.contains("ZVV_NOTIFICATIONS_TOKEN_FILE"), "{err}");
        let args = Args::try_parse_from([
            "x",
            "--notifications-addr",
            "http://127.0.0.1:1",
            "--notifications-token-file",
            "/nonexistent/token",
            "--outbox-retention-hours",
            "2",
        ])
        .unwrap();
        let relay = args.relay.relay().unwrap().expect("a relay");
        assert_eq!(relay.settings.retention, Duration::from_secs(7200));
    }
}
