//! The server frame every service runs in: health (`grpc.health.v1`, overall and per service),
//! reflection (v1 and v1alpha), request timeout, load shedding, the call layer, and graceful
//! shutdown: health goes NOT_SERVING first, then in-flight calls drain.
//!
//! Health has two meanings. The overall status (service name `""`) is the process's
//! **liveness**: SERVING from start until shutdown, whatever the database does, so that an
//! orchestrator does not restart a healthy process because PostgreSQL is away. The status of
//! each named service (e.g. `zvv.intake.v1.SubjectService`) is its **readiness**: it follows
//! the database, checked in the background ([`ReadinessSettings`]), NOT_SERVING while the
//! database cannot be reached and SERVING again within a second after it is back.

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;

use crate::{layer::CallLayer, shed::ShedLayer};

/// Limits and timings of a server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub request_timeout: Duration,
    /// Largest request message accepted (set on each generated server).
    pub max_message_bytes: usize,
    /// Calls in flight before new ones are shed with RESOURCE_EXHAUSTED.
    pub concurrency_limit: usize,
    /// Time between reporting NOT_SERVING and closing the listener, so that load balancers
    /// stop sending new calls first.
    pub shutdown_delay: Duration,
    /// Audited authentication failures per peer address before they are refused unaudited.
    pub auth_failure_budget: crate::budget::BudgetSettings,
    /// The audit sealer every server runs for its schema.
    pub audit: AuditSettings,
    /// How readiness follows the database.
    pub readiness: ReadinessSettings,
    /// A second, plaintext listener that serves `grpc.health.v1` only (the same statuses as the
    /// main listener): for probes that cannot speak TLS, such as the kubelet's native gRPC probe.
    /// It tells nothing but SERVING or NOT_SERVING. `None`: health on the main listener only.
    pub health_listen: Option<std::net::SocketAddr>,
    /// The listener's certificate: with it the server takes TLS connections only (health and
    /// reflection too), re-reading the certificate when it is renewed. `None` (the default):
    /// plaintext.
    pub tls: Option<crate::tls::ServerTls>,
}

/// How often readiness checks the database, and how long one check may take.
#[derive(Debug, Clone)]
pub struct ReadinessSettings {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for ReadinessSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
        }
    }
}

/// How the audit log of a server is sealed and anchored.
#[derive(Debug, Clone, Default)]
pub struct AuditSettings {
    pub sealer: crate::audit::seal::SealerSettings,
    /// Signs checkpoints of the chain head; without it the chain is not anchored outside the
    /// database (a warning at start).
    pub checkpoints: Option<crate::audit::checkpoint::CheckpointWriter>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_message_bytes: 256 * 1024,
            concurrency_limit: 256,
            shutdown_delay: Duration::ZERO,
            auth_failure_budget: crate::budget::BudgetSettings::default(),
            audit: AuditSettings::default(),
            readiness: ReadinessSettings::default(),
            tls: None,
            health_listen: None,
        }
    }
}

/// Serves `routes` (the service's own gRPC services, named in `service_names`) plus health and
/// reflection on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&'static str],
    call_layer: CallLayer,
    settings: &ServerSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    for name in service_names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }

    // advertise only what this server serves (the descriptor set holds every zvv service)
    let reflection = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(zvv_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in service_names {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let reflection_v1 = reflection().build_v1();
    let reflection_v1alpha = reflection().build_v1alpha();
    let (Ok(reflection_v1), Ok(reflection_v1alpha)) = (reflection_v1, reflection_v1alpha) else {
        unreachable!("the embedded descriptor sets are valid: they were compiled by build.rs");
    };

    // the plaintext health-only listener, stopped with the server
    let health_only = match settings.health_listen {
        None => None,
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(health_listener) => {
                tracing::info!(addr = %addr, "serving health only, plaintext");
                let health = health.clone();
                Some(tokio::spawn(async move {
                    let served = Server::builder()
                        .add_service(health)
                        .serve_with_incoming(
                            TcpIncoming::from(health_listener).with_nodelay(Some(true)),
                        )
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "the health-only listener stopped");
                    }
                }))
            }
            Err(e) => {
                tracing::error!(addr = %addr, error = %e, "cannot bind the health-only listener: probes on it fail");
                None
            }
        },
    };

    let routes = routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    // every replica seals; one at a time per schema does the work
    let (pool, schema) = call_layer.audit_target();
    let _sealer = crate::audit::seal::start(
        pool,
        schema,
        &settings.audit.sealer,
        settings.audit.checkpoints.clone(),
    );

    let readiness = tokio::spawn(follow_database(
        call_layer.audit_target().0,
        reporter.clone(),
        service_names.to_vec(),
        settings.readiness.clone(),
        call_layer.database_reachable(),
    ));

    let addr = listener.local_addr().ok();
    let tls = match &settings.tls {
        None => "off",
        Some(tls) if tls.is_mutual() => "mutual",
        Some(_) => "on",
    };
    tracing::info!(addr = ?addr, services = ?service_names, tls, "serving");
    let delay = settings.shutdown_delay;
    let names: Vec<&'static str> = service_names.to_vec();
    let drain_signal = async move {
        shutdown.await;
        // readiness no longer follows the database: the process is going away (awaited, so
        // that a check under way cannot report SERVING after the NOT_SERVING below)
        readiness.abort();
        let _ = readiness.await;
        tracing::info!("shutting down: reporting NOT_SERVING");
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in names {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        tokio::time::sleep(delay).await;
        tracing::info!("draining in-flight calls");
    };

    // the call layer enforces the request timeout (and audits it); this is the backstop for
    // health and reflection
    let router = Server::builder()
        .timeout(settings.request_timeout + Duration::from_secs(5))
        .layer(ShedLayer::new(settings.concurrency_limit))
        .layer(call_layer)
        .add_routes(routes);
    match &settings.tls {
        None => {
            router
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    drain_signal,
                )
                .await?
        }
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls.incoming(listener), drain_signal)
                .await?
        }
    }
    if let Some(task) = health_only {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Keeps the readiness of `names` in step with the database: one `SELECT 1` per interval on a
/// connection of its own (so that a busy pool does not look like an unreachable database),
/// bounded by the timeout; a change is logged. While the database is away, and once it is back,
/// the pool's idle connections that the server dropped are closed.
async fn follow_database(
    pool: sqlx::PgPool,
    reporter: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
    settings: ReadinessSettings,
    reachable_flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let options = pool.connect_options();
    let mut probe: Option<sqlx::PgConnection> = None;
    let mut ready = true;
    loop {
        tokio::time::sleep(settings.interval).await;
        let check = tokio::time::timeout(settings.timeout, select_one(&mut probe, &options)).await;
        let reachable = matches!(check, Ok(Ok(())));
        tracing::debug!(reachable, result = ?check, pool_size = pool.size(), idle = pool.num_idle(), "readiness check");
        if !reachable {
            probe = None;
        }
        if !reachable || !ready {
            let closed = crate::db::sweep_idle(&pool).await;
            if closed > 0 {
                tracing::info!(closed, "closed pooled connections the database dropped");
            }
        }
        if reachable == ready {
            continue;
        }
        ready = reachable;
        reachable_flag.store(ready, std::sync::atomic::Ordering::Relaxed);
        if ready {
            tracing::info!("the database is reachable again: reporting SERVING");
        } else {
            let why = match check {
                Ok(Err(e)) => crate::error::cause_chain(&e),
                _ => format!("no answer within {:?}", settings.timeout),
            };
            tracing::warn!(error = %why, "the database cannot be reached: reporting NOT_SERVING");
        }
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in &names {
            reporter.set_service_status(*name, status).await;
        }
    }
}

/// `SELECT 1` on the probe connection, opened first when there is none.
async fn select_one(
    probe: &mut Option<sqlx::PgConnection>,
    options: &sqlx::postgres::PgConnectOptions,
) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let conn = match probe {
        Some(conn) => conn,
        None => probe.insert(sqlx::PgConnection::connect_with(options).await?),
    };
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is called, not
/// when the future is first polled: call it first thing, and a signal that arrives during
/// start-up is kept and ends the process cleanly once it is up.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
