//! notifications: the notification service of the zvv suite (`zvv.notifications.v1`).
//!
//! Services publish events (ids and codes only) on channels; organisations subscribe with
//! filters and receive, on a need-to-know basis, only the events whose audience they are in: in
//! an inbox (listed or streamed), as a signed webhook (the ZGW Notificatie body with Standard
//! Webhooks signatures), or — suite services — over gRPC (`zvv.events.v1.EventSink`).
//! Deliveries are retried with backoff until a retention window ends and only then
//! dead-lettered, visibly.

pub mod clients;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod jobs;
pub mod policy;
pub mod secrets;
pub mod service;
pub mod store;

use std::{future::Future, sync::Arc};

use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Notify};
use tonic::service::Routes;
use zvv_platform::{
    auth::TokenVerifier,
    clock::SharedClock,
    layer::CallLayer,
    policy::PolicySet,
    server::{self, ServerSettings},
};
use zvv_proto::notifications::v1::notification_service_server::NotificationServiceServer;

pub use clients::SinkEndpoints;
pub use jobs::{Retention, delivery::DeliverySettings};
pub use secrets::Secrets;
pub use service::StreamSettings;
pub use store::SCHEMA;

use crate::{
    clients::{HttpWebhooks, ServiceSinks},
    domain::target::TargetPolicy,
    grpc::NotificationApi,
    service::NotificationLogic,
    store::PgStore,
};

/// Everything the running service needs, built from configuration or by tests.
pub struct Deps {
    pub pool: PgPool,
    pub verifier: Arc<TokenVerifier>,
    pub clock: SharedClock,
    pub settings: ServerSettings,
    /// Seals webhook secrets and keys request fingerprints.
    pub secrets: Arc<Secrets>,
    pub delivery: DeliverySettings,
    /// Where webhooks may point.
    pub targets: TargetPolicy,
    /// The EventSinks of suite services, with the tokens to call them.
    pub sinks: SinkEndpoints,
    pub stream: StreamSettings,
    pub retention: Retention,
    /// Whether this replica runs delivery workers (tests turn them off to drive rounds).
    pub run_workers: bool,
}

/// Applies notifications' migrations (platform tables and its own) in schema
/// `notifications`. Run it as the schema's owner.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    zvv_platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await
}

/// What the secrets key tells the key check: without it no stored webhook can be delivered.
struct SubscriptionSecrets;

impl zvv_platform::keys::ServiceData for SubscriptionSecrets {
    fn probe<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
    ) -> zvv_platform::keys::BoxFuture<'a, Result<zvv_platform::keys::Existing, sqlx::Error>> {
        Box::pin(async move {
            let sealed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM notifications.subscriptions WHERE secret_sealed IS NOT NULL",
            )
            .fetch_one(conn)
            .await?;
            Ok(if sealed == 0 {
                zvv_platform::keys::Existing::Empty
            } else {
                zvv_platform::keys::Existing::Unverifiable(format!(
                    "{sealed} webhook subscriptions hold secrets sealed with the recorded key"
                ))
            })
        })
    }
}

/// Checks the secrets key against the one recorded in `notifications.service_keys` (recording
/// it on first start); refuses another key. Run it before serving (after the migrations).
pub async fn check_keys(
    pool: &PgPool,
    secrets: &Secrets,
) -> Result<(), zvv_platform::keys::KeyCheckError> {
    zvv_platform::keys::check(
        pool,
        SCHEMA,
        "notifications",
        &[secrets.configured_key()],
        &SubscriptionSecrets,
        zvv_platform::keys::Mode::Record,
    )
    .await
    .map(drop)
}

/// The delivery worker of a store, as `serve` runs it (for tests that drive rounds).
pub fn worker(
    pool: PgPool,
    deps_secrets: Arc<Secrets>,
    clock: SharedClock,
    targets: TargetPolicy,
    sinks: SinkEndpoints,
    settings: DeliverySettings,
) -> Result<jobs::delivery::Worker<PgStore, HttpWebhooks, ServiceSinks>, String> {
    Ok(jobs::delivery::Worker {
        store: Arc::new(PgStore::new(pool)),
        webhooks: Arc::new(HttpWebhooks::new(targets)?),
        sinks: Arc::new(ServiceSinks::new(sinks)),
        secrets: deps_secrets,
        clock,
        settings,
    })
}

/// Serves NotificationService on `listener` until `shutdown` completes, with the delivery
/// workers and the purge running beside it. Migrations must have run and [`check_keys`] must
/// have accepted `deps.secrets`.
pub async fn serve(
    deps: Deps,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let store = Arc::new(PgStore::new(deps.pool.clone()));
    let webhooks = Arc::new(
        HttpWebhooks::new(deps.targets.clone())
            .unwrap_or_else(|e| panic!("the webhook client cannot be built: {e}")),
    );
    let sinks = Arc::new(ServiceSinks::new(deps.sinks));
    let wake = Arc::new(Notify::new());
    let logic = Arc::new(NotificationLogic::new(
        store.clone(),
        webhooks.clone(),
        sinks.clone(),
        deps.secrets.clone(),
        deps.clock.clone(),
        deps.delivery.clone(),
        deps.stream,
        wake.clone(),
    ));
    let workers = deps.run_workers.then(|| {
        jobs::delivery::start(
            jobs::delivery::Worker {
                store: store.clone(),
                webhooks,
                sinks,
                secrets: deps.secrets.clone(),
                clock: deps.clock.clone(),
                settings: deps.delivery.clone(),
            },
            wake,
        )
    });
    let purge = jobs::start_purge(store, deps.clock.clone(), deps.retention);
    let max = deps.settings.max_message_bytes;
    let routes = Routes::new(
        NotificationServiceServer::new(NotificationApi::new(logic)).max_decoding_message_size(max),
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
        &[policy::NOTIFICATION_SERVICE.service],
        layer,
        &deps.settings,
        shutdown,
    )
    .await;
    drop(workers);
    drop(purge);
    served
}
