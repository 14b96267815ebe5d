//! intake: the identity registry of the zvv suite (`zvv.intake.v1.SubjectService`).
//!
//! The only service that ever sees a BSN. It stores it sealed (AEAD) with a keyed lookup HMAC
//! and gives every other service a pseudonymous `subject_id` instead.

pub mod config;
pub mod domain;
pub mod grpc;
pub mod keys;
pub mod policy;
pub mod service;
pub mod store;

use std::{future::Future, sync::Arc};

use sqlx::PgPool;
use tokio::net::TcpListener;
use tonic::service::Routes;
use zvv_platform::{
    auth::TokenVerifier,
    bsn::BsnVault,
    clock::SharedClock,
    layer::CallLayer,
    policy::PolicySet,
    server::{self, ServerSettings},
};
use zvv_proto::intake::v1::subject_service_server::SubjectServiceServer;

use crate::{grpc::SubjectApi, service::SubjectLogic, store::PgStore};

pub use keys::{
    ReencryptError, ReencryptOptions, check_keys, legacy_subjects, reencrypt, reencrypt_with,
};
pub use store::SCHEMA;

/// Everything the running service needs, built from configuration or by tests.
pub struct Deps {
    pub pool: PgPool,
    pub vault: Arc<BsnVault>,
    pub verifier: Arc<TokenVerifier>,
    pub clock: SharedClock,
    pub settings: ServerSettings,
    /// How long idempotency keys (and the first responses kept with them) are kept.
    pub idempotency_retention: chrono::Duration,
    /// The relay of the outbox to notifications; `None` leaves the events unpublished (a
    /// warning at start).
    pub relay: Option<zvv_platform::relay::Relay>,
}

/// The default of [`Deps::idempotency_retention`].
pub const DEFAULT_IDEMPOTENCY_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// How often expired idempotency keys are purged.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes the idempotency keys older than `retention` by `clock`; safe to run on every replica.
pub async fn purge_idempotency_keys(
    pool: &PgPool,
    clock: &SharedClock,
    retention: chrono::Duration,
) -> Result<u64, sqlx::Error> {
    zvv_platform::idempotency::purge(pool, SCHEMA, clock.now() - retention).await
}

/// Applies intake's migrations (platform tables, the key records among them, and its own) in
/// schema `intake`. Run it as the schema's owner.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    zvv_platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await
}

/// Serves SubjectService on `listener` until `shutdown` completes, with the idempotency purge
/// and the outbox relay running beside it. Migrations must have run, and [`check_keys`] must
/// have accepted `deps.vault` for `deps.pool`'s database.
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
        zvv_platform::jobs::every("purge-idempotency-keys", PURGE_INTERVAL, move || {
            let (pool, clock) = (pool.clone(), clock.clone());
            async move { purge_idempotency_keys(&pool, &clock, retention).await }
        })
    };
    let relay = zvv_platform::relay::start(deps.pool.clone(), SCHEMA, deps.relay.as_ref());
    let store = PgStore::new(deps.pool.clone(), deps.vault.clone());
    let logic = SubjectLogic::new(store, deps.vault, deps.clock.clone());
    let api = SubjectServiceServer::new(SubjectApi::new(logic))
        .max_decoding_message_size(deps.settings.max_message_bytes);
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
        Routes::new(api),
        &[policy::SUBJECT_SERVICE.service],
        layer,
        &deps.settings,
        shutdown,
    )
    .await;
    drop(purger);
    drop(relay);
    served
}
