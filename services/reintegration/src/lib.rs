//! reintegration: the re-integration programme of the zvv suite (`zvv.reintegration.v1`;
//! short detentions, DESIGN.md §1.2 and §3).
//!
//! The prison system's events (begin, leave, transfer, end) make one episode per detention, in
//! whatever order they arrive; the first opens a continuity plan of the basic conditions that
//! a detention makes lapse, with the actions due computed by a versioned policy. The
//! responsible municipality assigns conditions to partners; a deadline monitor warns the
//! partner (or the municipality) before a date and when it is missed. Only the pseudonymous
//! `subject_id` from intake is stored, never a BSN.
//!
//! Background work (the deadline monitor, retention, idempotency purge, the outbox relay) runs
//! on every replica; the jobs claim rows with `FOR UPDATE SKIP LOCKED`.

pub mod clients;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod jobs;
pub mod policy;
pub mod service;
pub mod store;

use std::{future::Future, sync::Arc};

use sqlx::PgPool;
use tokio::net::TcpListener;
use tonic::service::Routes;
use zvv_platform::{
    auth::TokenVerifier,
    clock::SharedClock,
    idempotency::FingerprintKey,
    layer::CallLayer,
    policy::PolicySet,
    server::{self, ServerSettings},
};
use zvv_proto::reintegration::v1::{
    continuity_service_server::ContinuityServiceServer,
    detention_service_server::DetentionServiceServer,
};

use crate::{
    clients::{IntakeClient, IntakeService},
    grpc::{ContinuityApi, DetentionApi},
    service::{ContinuityLogic, DetentionLogic, Settings},
    store::{DetentionStore, PgStore},
};

pub use store::{PolicyError, SCHEMA};

/// Everything the running service needs, built from configuration or by tests.
pub struct Deps {
    pub pool: PgPool,
    pub verifier: Arc<TokenVerifier>,
    pub clock: SharedClock,
    pub settings: ServerSettings,
    /// Intake, called with this service's SERVICE token.
    pub intake: IntakeClient,
    /// The policy of new plans, the follow-up period and the statistics threshold.
    pub logic: Settings,
    pub jobs: jobs::JobSettings,
    /// The key of request fingerprints and release marks (requests may carry a BSN).
    pub fingerprints: Arc<FingerprintKey>,
    /// The relay of the outbox (warnings, tasks) to notifications; `None` leaves the events
    /// unpublished (a warning at start).
    pub relay: Option<zvv_platform::relay::Relay>,
}

/// The defaults of the settings.
pub const DEFAULT_WARN_WORKING_DAYS: u32 = 3;
pub const DEFAULT_FOLLOW_UP_MONTHS: u32 = 6;
pub const DEFAULT_RETENTION_MONTHS: u32 = 6;
pub const DEFAULT_STATISTICS_THRESHOLD: u32 = 5;
pub const DEFAULT_MONITOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Applies reintegration's migrations (platform tables and its own) in schema
/// `reintegration`. Run it as the schema's owner.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    zvv_platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await
}

/// The fingerprint key as the key records name it: purpose, id and check value (never the key).
pub fn configured_key(fingerprints: &FingerprintKey) -> zvv_platform::keys::ConfiguredKey {
    zvv_platform::idempotency::fingerprint_key_record(fingerprints)
}

/// Checks the fingerprint key against the one recorded in `reintegration.service_keys`
/// (recording it on first start); refuses another key, which would also break the link between
/// a release and a later detention. Run it before serving (after the migrations).
pub async fn check_keys(
    pool: &PgPool,
    fingerprints: &FingerprintKey,
) -> Result<(), zvv_platform::keys::KeyCheckError> {
    zvv_platform::idempotency::check_fingerprint_key(pool, SCHEMA, "reintegration", fingerprints)
        .await
}

/// Records the continuity policy of new plans under its version (refusing other numbers under
/// a version already used). Run it before serving.
pub async fn record_policy(
    pool: &PgPool,
    policy: &domain::ContinuityPolicy,
    clock: &SharedClock,
) -> Result<(), PolicyError> {
    PgStore::new(pool.clone())
        .record_policy(policy, clock.now())
        .await
}

/// Serves DetentionService and ContinuityService on `listener` until `shutdown` completes, with
/// the background jobs and the outbox relay running beside them. Migrations must have run, and
/// [`check_keys`] and [`record_policy`] must have accepted the key and the policy.
pub async fn serve(
    deps: Deps,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let store = PgStore::new(deps.pool.clone());
    let jobs = jobs::start(Arc::new(store.clone()), deps.clock.clone(), deps.jobs);
    let settings = Arc::new(deps.logic);
    let detentions = Arc::new(DetentionLogic::new(
        store.clone(),
        IntakeService::new(deps.intake),
        deps.clock.clone(),
        settings.clone(),
        deps.fingerprints.clone(),
    ));
    let continuity = Arc::new(ContinuityLogic::new(
        store,
        deps.clock.clone(),
        settings,
        deps.fingerprints,
    ));
    let relay = zvv_platform::relay::start(deps.pool.clone(), SCHEMA, deps.relay.as_ref());
    let max = deps.settings.max_message_bytes;
    let routes = Routes::new(
        DetentionServiceServer::new(DetentionApi::new(detentions)).max_decoding_message_size(max),
    )
    .add_service(
        ContinuityServiceServer::new(ContinuityApi::new(continuity)).max_decoding_message_size(max),
    );
    let layer = CallLayer::new(
        deps.verifier,
        PolicySet(policy::POLICIES),
        deps.pool,
        SCHEMA,
        deps.clock,
        &deps.settings,
    );
    let served = server::serve(
        listener,
        routes,
        &[
            policy::DETENTION_SERVICE.service,
            policy::CONTINUITY_SERVICE.service,
        ],
        layer,
        &deps.settings,
        shutdown,
    )
    .await;
    drop(jobs);
    drop(relay);
    served
}

/// Runs the deadline monitor once on `pool` for the day of `clock` (what every replica does
/// every interval).
pub async fn run_deadline_monitor(
    pool: &PgPool,
    clock: &SharedClock,
    warn_working_days: u32,
) -> Result<store::MonitorReport, zvv_platform::error::ApiError> {
    jobs::monitor(
        &PgStore::new(pool.clone()),
        clock.today(),
        warn_working_days,
        clock.now(),
    )
    .await
}

/// Runs retention once on `pool` for the day of `clock`.
pub async fn run_retention(
    pool: &PgPool,
    clock: &SharedClock,
    retention_months: u32,
) -> Result<store::RetentionReport, zvv_platform::error::ApiError> {
    jobs::retention(
        &PgStore::new(pool.clone()),
        clock.today(),
        retention_months,
        clock.now(),
    )
    .await
}
