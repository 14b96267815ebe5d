//! signalling: the signalling index of the zvv suite (`zvv.signalling.v1`).
//!
//! Professionals register *that* their organisation is involved with a child; where signals of
//! different organisations converge, those organisations see each other. Only the pseudonymous
//! `subject_id` from intake is stored here, never a BSN.
//!
//! Background work (idempotency purge, overdue referrals, retention, the outbox relay) runs on
//! every replica; the jobs claim rows with `FOR UPDATE SKIP LOCKED`. Signalling takes intake's
//! events (a death, a changed family) through its EventSink.

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
use zvv_proto::signalling::v1::{
    referral_service_server::ReferralServiceServer, signal_service_server::SignalServiceServer,
};

use crate::{
    clients::{IntakeClient, IntakeService},
    grpc::{EventApi, ReferralApi, SignalApi},
    service::{EventLogic, ReferralLogic, SignalLogic, SignalSettings},
    store::PgStore,
};

pub use jobs::retention;
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
    /// The relay of the outbox to notifications; `None` leaves the events unpublished (a
    /// warning at start).
    pub relay: Option<zvv_platform::relay::Relay>,
    /// NotificationService with signalling's SERVICE token for it: the EventSink is kept
    /// subscribed to intake's deaths and relations ([`service::SUBSCRIBED`]). `None`: no
    /// subscription is made (a warning at start).
    pub notifications: Option<zvv_platform::relay::NotificationsClient>,
}

/// How often the subscription of the EventSink is checked (and made again when missing).
pub const SUBSCRIPTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// The default of [`Deps::statistics_threshold`].
pub const DEFAULT_STATISTICS_THRESHOLD: u32 = 5;

/// The default of [`Deps::referral_deadline_working_days`].
pub const DEFAULT_REFERRAL_DEADLINE_WORKING_DAYS: u32 = 5;

/// Applies signalling's migrations (platform tables, the key records among them, and its own)
/// in schema `signalling`. Run it as the schema's owner.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    zvv_platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await
}

pub use zvv_platform::idempotency::{FINGERPRINT_KEY_ID, FINGERPRINT_PURPOSE};

/// The fingerprint key as the key records name it: purpose, id and check value (never the key).
pub fn configured_key(fingerprints: &FingerprintKey) -> zvv_platform::keys::ConfiguredKey {
    zvv_platform::idempotency::fingerprint_key_record(fingerprints)
}

/// Checks the request fingerprint key against the one recorded in `signalling.service_keys`
/// (recording it on first start); refuses another key. Run it before serving (after the
/// migrations).
pub async fn check_keys(
    pool: &PgPool,
    fingerprints: &FingerprintKey,
) -> Result<(), zvv_platform::keys::KeyCheckError> {
    zvv_platform::idempotency::check_fingerprint_key(pool, SCHEMA, "signalling", fingerprints).await
}

/// Serves SignalService, ReferralService and the EventSink on `listener` until `shutdown`
/// completes, with the background jobs and the outbox relay running beside them. Migrations must have run, and [`check_keys`] must have
/// accepted `deps.fingerprints` for `deps.pool`'s database.
pub async fn serve(
    deps: Deps,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let store = PgStore::new(deps.pool.clone());
    let jobs = jobs::start(
        Arc::new(store.clone()),
        deps.clock.clone(),
        deps.idempotency_retention,
        deps.retention,
    );
    let intake = IntakeService::new(deps.intake);
    let signals = Arc::new(SignalLogic::new(
        store.clone(),
        intake.clone(),
        deps.clock.clone(),
        SignalSettings {
            default_duration_months: deps.default_duration_months,
            statistics_threshold: deps.statistics_threshold,
        },
        deps.fingerprints.clone(),
    ));
    let referrals = Arc::new(ReferralLogic::new(
        store.clone(),
        intake.clone(),
        deps.clock.clone(),
        deps.referral_deadline_working_days,
        deps.fingerprints,
    ));
    let events = Arc::new(EventLogic::new(store, intake, deps.clock.clone()));
    let relay = zvv_platform::relay::start(deps.pool.clone(), SCHEMA, deps.relay.as_ref());
    let subscription = match deps.notifications {
        Some(client) => Some(zvv_platform::sink::keep_subscribed(
            client,
            SCHEMA.name(),
            service::SUBSCRIBED,
            SUBSCRIPTION_INTERVAL,
        )),
        None => {
            tracing::warn!(
                "no ZVV_NOTIFICATIONS_ADDR: signalling is not subscribed to intake's events \
                 (deaths, relations)"
            );
            None
        }
    };
    let max = deps.settings.max_message_bytes;
    let routes = Routes::new(
        SignalServiceServer::new(SignalApi::new(signals)).max_decoding_message_size(max),
    )
    .add_service(
        ReferralServiceServer::new(ReferralApi::new(referrals)).max_decoding_message_size(max),
    )
    .add_service(zvv_platform::sink::server(
        Arc::new(EventApi::new(events)),
        max,
    ));
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
            zvv_platform::sink::SERVICE_NAME,
        ],
        layer,
        &deps.settings,
        shutdown,
    )
    .await;
    drop(jobs);
    drop(relay);
    drop(subscription);
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
