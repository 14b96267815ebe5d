//! signalling: the signalling index of the zvv suite (`zvv.signalling.v1`).
//!
//! Professionals register *that* their organisation is involved with a child; where signals of
//! different organisations converge, those organisations see each other. Only the pseudonymous
//! `subject_id` from intake is stored here, never a BSN.
//!
//! Background work (idempotency purge, overdue referrals, retention) runs on every replica;
//! the jobs claim rows with `FOR UPDATE SKIP LOCKED`.

pub mod config;
pub mod domain;
pub mod grpc;
pub mod identity;
pub mod policy;
pub mod referral_service;
pub mod referrals;
pub mod retention;
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
use zvv_proto::signalling::v1::{
    referral_service_server::ReferralServiceServer, signal_service_server::SignalServiceServer,
};

use crate::{
    grpc::{ReferralApi, SignalApi},
    identity::{IntakeClient, IntakeIdentity},
    referral_service::ReferralLogic,
    service::SignalLogic,
    store::PgStore,
};

pub use store::SCHEMA;

/// Everything the running service needs, built from configuration or by tests.
pub struct Deps {
    pub pool: PgPool,
    pub verifier: Arc<TokenVerifier>,
    pub clock: SharedClock,
    pub settings: ServerSettings,
    /// Intake, called with this service's SERVICE token.
    pub intake: IntakeClient,
    pub default_duration_months: u32,
    pub idempotency_retention: chrono::Duration,
    /// Working days within which YELLOW and higher referrals must be decided.
    pub referral_deadline_working_days: u32,
    /// Statistics cells below this count are suppressed.
    pub statistics_threshold: u32,
    /// The key of request fingerprints (requests may carry a BSN).
    pub fingerprints: Arc<FingerprintKey>,
    pub retention: retention::RetentionRules,
}

/// The default of [`Deps::statistics_threshold`].
pub const DEFAULT_STATISTICS_THRESHOLD: u32 = 5;

/// The default of [`Deps::referral_deadline_working_days`].
pub const DEFAULT_REFERRAL_DEADLINE_WORKING_DAYS: u32 = 5;

/// Applies signalling's migrations (platform tables and its own) in schema `signalling`.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    zvv_platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await
}

/// Serves SignalService and ReferralService on `listener` until `shutdown` completes.
pub async fn serve(
    deps: Deps,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let purger = {
        let (pool, clock, retention) = (
            deps.pool.clone(),
            deps.clock.clone(),
            deps.idempotency_retention,
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tick.tick().await;
                if let Err(e) =
                    zvv_platform::idempotency::purge(&pool, SCHEMA, clock.now() - retention).await
                {
                    tracing::warn!(error = %e, "cannot purge idempotency keys");
                }
            }
        })
    };
    let identity = IntakeIdentity::new(deps.intake);
    let logic = Arc::new(SignalLogic::new(
        PgStore::new(deps.pool.clone()),
        identity.clone(),
        deps.clock.clone(),
        deps.default_duration_months,
        deps.fingerprints.clone(),
    ));
    let referrals = Arc::new(ReferralLogic::new(
        PgStore::new(deps.pool.clone()),
        identity,
        deps.clock.clone(),
        deps.referral_deadline_working_days,
        deps.fingerprints.clone(),
    ));
    let retention_job = {
        let (pool, clock, rules) = (deps.pool.clone(), deps.clock.clone(), deps.retention);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                match retention::run(&pool, &rules, clock.today(), clock.now()).await {
                    Ok(r) if r == retention::RetentionReport::default() => {}
                    Ok(r) => tracing::info!(report = ?r, "retention run"),
                    Err(e) => tracing::warn!(error = %e, "retention run failed"),
                }
            }
        })
    };
    let monitor = {
        let referrals = referrals.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                match referrals.report_overdue().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(reported = n, "referrals past their triage deadline"),
                    Err(e) => tracing::warn!(error = %e, "cannot report overdue referrals"),
                }
            }
        })
    };
    let max = deps.settings.max_message_bytes;
    let routes = Routes::new(
        SignalServiceServer::new(SignalApi::new(logic, deps.statistics_threshold))
            .max_decoding_message_size(max),
    )
    .add_service(
        ReferralServiceServer::new(ReferralApi::new(referrals)).max_decoding_message_size(max),
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
            policy::SIGNAL_SERVICE.service,
            policy::REFERRAL_SERVICE.service,
        ],
        layer,
        &deps.settings,
        shutdown,
    )
    .await;
    purger.abort();
    monitor.abort();
    retention_job.abort();
    served
}

/// Reports referrals past their triage deadline by `clock` (what the monitor does every minute).
pub async fn report_overdue_referrals(
    pool: &PgPool,
    clock: SharedClock,
) -> Result<u64, zvv_platform::error::ApiError> {
    use store::ReferralStore;
    PgStore::new(pool.clone())
        .report_overdue(clock.today(), clock.now())
        .await
}
