//! The test harness: per test a fresh database, intake and reintegration each served on a
//! loopback port of their own (real gRPC between them), one key pair and one manual clock for
//! both.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use zvv_devkit::testkit::{TestDb, TestKeys};
pub use zvv_devkit::testkit::{assert_invalid, expect_err, valid_bsn};
use zvv_platform::{
    auth::{OrgType, Role},
    client::{Outgoing, TokenSource},
    clock::{ManualClock, SharedClock},
    db::PoolSettings,
    server::ServerSettings,
    telemetry::{self, TelemetryGuard},
};
use zvv_proto::{
    intake::v1::subject_service_client::SubjectServiceClient,
    reintegration::v1::{
        self as pb, continuity_service_client::ContinuityServiceClient,
        detention_service_client::DetentionServiceClient, record_detention_event_request::Subject,
    },
};
use zvv_reintegration::{
    domain::ContinuityPolicy,
    jobs::JobSettings,
    service::Settings,
    store::{MonitorReport, RetentionReport},
};

pub type Detentions = DetentionServiceClient<InterceptedService<Channel, Outgoing>>;
pub type Continuity = ContinuityServiceClient<InterceptedService<Channel, Outgoing>>;

/// The instant the clock stands at when a test starts (a Monday).
pub const NOW: &str = "2026-06-15T10:00:00Z";
/// The responsible municipality of the tests' episodes (Tilburg) and another (Breda).
pub const TILBURG: &str = "GM0855";
pub const BREDA: &str = "GM0758";
/// The organisation name of reintegration's SERVICE token towards intake.
pub const REINTEGRATION_ORG: &str = "zvv-reintegration";

static TELEMETRY: OnceLock<TelemetryGuard> = OnceLock::new();

/// A caller as the tests use them.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    pub org: &'static str,
    pub org_type: OrgType,
    pub role: Role,
    pub municipalities: &'static [&'static str],
}

pub const PRISON: Who = Who {
    org: "pi-vught",
    org_type: OrgType::Prison,
    role: Role::Professional,
    municipalities: &[],
};
pub const TILBURG_DESK: Who = Who {
    org: "gm0855",
    org_type: OrgType::Municipality,
    role: Role::Coordinator,
    municipalities: &[TILBURG],
};
pub const BREDA_DESK: Who = Who {
    org: "gm0758",
    org_type: OrgType::Municipality,
    role: Role::Coordinator,
    municipalities: &[BREDA],
};
pub const PROBATION: Who = Who {
    org: "reclassering-brabant",
    org_type: OrgType::Probation,
    role: Role::Professional,
    municipalities: &[TILBURG],
};
pub const HOUSING: Who = Who {
    org: "woonstichting-tilburg",
    org_type: OrgType::Housing,
    role: Role::Professional,
    municipalities: &[TILBURG],
};
pub const ANALYST: Who = Who {
    org: "gm0855",
    org_type: OrgType::Municipality,
    role: Role::Analyst,
    municipalities: &[TILBURG],
};

struct Server {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Server {
    fn signal(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn pool(options: &sqlx::postgres::PgConnectOptions, max_connections: u32) -> PgPool {
    zvv_platform::db::connect(
        options.clone(),
        &PoolSettings {
            max_connections,
            acquire_timeout: Duration::from_secs(10),
        },
    )
    .await
    .expect("connect pool")
}

/// The settings of a test's reintegration.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy: ContinuityPolicy,
    pub statistics_threshold: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: ContinuityPolicy::default(),
            statistics_threshold: zvv_reintegration::DEFAULT_STATISTICS_THRESHOLD,
        }
    }
}

/// Intake and reintegration running against one fresh database.
pub struct TestApp {
    pub url: String,
    pub intake_url: String,
    /// A superuser's pool for SQL assertions.
    pub pool: PgPool,
    /// The pool reintegration runs on (its runtime role), for its jobs.
    pub runtime_pool: PgPool,
    /// A second runtime pool: a second replica's jobs.
    pub replica_pool: PgPool,
    pub keys: TestKeys,
    pub clock: ManualClock,
    /// Servers of another release of the service on the same database (see [`Self::serve`]).
    others: Vec<Server>,
    pub shared_clock: SharedClock,
    #[allow(dead_code)]
    pub db: TestDb,
    intake: Server,
    reintegration: Server,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        TELEMETRY.get_or_init(|| telemetry::init_for_tests("reintegration-test"));
        let db = TestDb::create().await.expect("create test database");
        let test_pool = pool(&db.options, 4).await;
        let keys = TestKeys::new().expect("test keys");

        let (intake_pool, _) =
            zvv_devkit::testkit::service_pool(&db, zvv_intake::SCHEMA, 10, |owner| async move {
                zvv_intake::migrate(&owner).await
            })
            .await
            .expect("intake pool");
        zvv_intake::check_keys(&intake_pool, &keys.vault().expect("vault"))
            .await
            .expect("intake's key check");
        let (runtime_pool, roles) = zvv_devkit::testkit::service_pool(
            &db,
            zvv_reintegration::SCHEMA,
            10,
            |owner| async move { zvv_reintegration::migrate(&owner).await },
        )
        .await
        .expect("reintegration pool");
        let replica_pool = pool(&roles.runtime, 4).await;
        let fingerprints = keys.fingerprints().expect("fingerprint key");
        zvv_reintegration::check_keys(&runtime_pool, &fingerprints)
            .await
            .expect("reintegration's key check accepts a fresh database");
        let clock = ManualClock::new(now());
        let shared: SharedClock = Arc::new(clock.clone());
        zvv_reintegration::record_policy(&runtime_pool, &options.policy, &shared)
            .await
            .expect("the policy is recorded");

        let intake_deps = zvv_intake::Deps {
            pool: intake_pool,
            vault: keys.vault().expect("vault"),
            verifier: keys.verifier(zvv_intake::SCHEMA.name()).expect("verifier"),
            clock: shared.clone(),
            settings: ServerSettings::default(),
            idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
            relay: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let intake_url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let intake = Server {
            shutdown: Some(tx),
            task: Some(tokio::spawn(zvv_intake::serve(
                intake_deps,
                listener,
                async move {
                    let _ = rx.await;
                },
            ))),
        };

        let intake_client = SubjectServiceClient::new(
            zvv_platform::client::channel(
                &intake_url,
                TokenSource::Static(SecretString::from(
                    keys.service_token(REINTEGRATION_ORG, zvv_intake::SCHEMA.name()),
                )),
            )
            .expect("intake channel"),
        );
        let deps = zvv_reintegration::Deps {
            pool: runtime_pool.clone(),
            verifier: keys
                .verifier(zvv_reintegration::SCHEMA.name())
                .expect("verifier"),
            clock: shared.clone(),
            settings: ServerSettings::default(),
            intake: intake_client,
            logic: Settings {
                policy: options.policy,
                follow_up_months: zvv_reintegration::DEFAULT_FOLLOW_UP_MONTHS,
                statistics_threshold: options.statistics_threshold,
            },
            // the jobs of the tests run by hand on the moved clock
            jobs: JobSettings {
                monitor_interval: Duration::from_secs(3600),
                warn_working_days: zvv_reintegration::DEFAULT_WARN_WORKING_DAYS,
                retention_months: zvv_reintegration::DEFAULT_RETENTION_MONTHS,
                idempotency_retention: chrono::Duration::hours(24),
            },
            fingerprints,
            relay: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let reintegration = Server {
            shutdown: Some(tx),
            task: Some(tokio::spawn(zvv_reintegration::serve(
                deps,
                listener,
                async move {
                    let _ = rx.await;
                },
            ))),
        };
        Self {
            url,
            intake_url,
            pool: test_pool,
            runtime_pool,
            replica_pool,
            keys,
            clock,
            shared_clock: shared,
            db,
            intake,
            reintegration,
            others: Vec::new(),
        }
    }

    /// Starts another reintegration server on the same database with `options` (another release
    /// of the service, e.g. with a new continuity policy, which it records first); returns its
    /// address.
    pub async fn serve(&mut self, options: Options) -> String {
        zvv_reintegration::record_policy(&self.runtime_pool, &options.policy, &self.shared_clock)
            .await
            .expect("the new policy is recorded");
        let intake_client = SubjectServiceClient::new(
            zvv_platform::client::channel(
                &self.intake_url,
                TokenSource::Static(SecretString::from(
                    self.keys
                        .service_token(REINTEGRATION_ORG, zvv_intake::SCHEMA.name()),
                )),
            )
            .expect("intake channel"),
        );
        let deps = zvv_reintegration::Deps {
            pool: self.replica_pool.clone(),
            verifier: self
                .keys
                .verifier(zvv_reintegration::SCHEMA.name())
                .expect("verifier"),
            clock: self.shared_clock.clone(),
            settings: ServerSettings::default(),
            intake: intake_client,
            logic: Settings {
                policy: options.policy,
                follow_up_months: zvv_reintegration::DEFAULT_FOLLOW_UP_MONTHS,
                statistics_threshold: options.statistics_threshold,
            },
            jobs: JobSettings {
                monitor_interval: Duration::from_secs(3600),
                warn_working_days: zvv_reintegration::DEFAULT_WARN_WORKING_DAYS,
                retention_months: zvv_reintegration::DEFAULT_RETENTION_MONTHS,
                idempotency_retention: chrono::Duration::hours(24),
            },
            fingerprints: self.keys.fingerprints().expect("fingerprint key"),
            relay: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        self.others.push(Server {
            shutdown: Some(tx),
            task: Some(tokio::spawn(zvv_reintegration::serve(
                deps,
                listener,
                async move {
                    let _ = rx.await;
                },
            ))),
        });
        url
    }

    /// A DetentionService client of the server at `url` for `who`.
    pub fn detentions_at(&self, url: &str, who: Who) -> Detentions {
        DetentionServiceClient::new(
            zvv_platform::client::channel(
                url,
                TokenSource::Static(SecretString::from(self.token(who))),
            )
            .expect("channel"),
        )
    }

    /// A ContinuityService client of the server at `url` for `who`.
    pub fn continuity_at(&self, url: &str, who: Who) -> Continuity {
        ContinuityServiceClient::new(
            zvv_platform::client::channel(
                url,
                TokenSource::Static(SecretString::from(self.token(who))),
            )
            .expect("channel"),
        )
    }

    pub fn token(&self, who: Who) -> String {
        self.keys
            .token_in(who.org, who.org_type, &[who.role], who.municipalities)
    }

    fn channel(&self, token: String) -> InterceptedService<Channel, Outgoing> {
        zvv_platform::client::channel(&self.url, TokenSource::Static(SecretString::from(token)))
            .expect("channel")
    }

    pub fn detentions_with(&self, token: &str) -> Detentions {
        DetentionServiceClient::new(self.channel(token.to_owned()))
    }

    pub fn detentions(&self, who: Who) -> Detentions {
        self.detentions_with(&self.token(who))
    }

    pub fn continuity_with(&self, token: &str) -> Continuity {
        ContinuityServiceClient::new(self.channel(token.to_owned()))
    }

    pub fn continuity(&self, who: Who) -> Continuity {
        self.continuity_with(&self.token(who))
    }

    /// Records an event as the prison; panics on an error.
    pub async fn record(
        &self,
        request: pb::RecordDetentionEventRequest,
    ) -> pb::RecordDetentionEventResponse {
        self.detentions(PRISON)
            .record_detention_event(request.clone())
            .await
            .unwrap_or_else(|s| panic!("record {:?}: {s:?}", request.kind))
            .into_inner()
    }

    /// The plan as `who` sees it; panics on an error.
    pub async fn plan(&self, who: Who, detention_id: &str) -> pb::Plan {
        self.continuity(who)
            .get_plan(pb::GetPlanRequest {
                detention_id: detention_id.to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("{} gets the plan: {s:?}", who.org))
            .into_inner()
            .plan
            .expect("plan")
    }

    /// Assigns the condition of `kind` of the episode to `partner` (as Tilburg's desk).
    pub async fn assign(
        &self,
        detention_id: &str,
        kind: pb::ConditionKind,
        partner: Who,
    ) -> pb::Task {
        let plan = self.plan(TILBURG_DESK, detention_id).await;
        let condition = condition(&plan, kind);
        self.continuity(TILBURG_DESK)
            .assign_task(pb::AssignTaskRequest {
                request_id: request_id(),
                condition_id: condition.condition_id.clone(),
                organisation: partner.org.to_owned(),
                organisation_type: partner.org_type.as_str().to_owned(),
                contact: Some(contact()),
            })
            .await
            .unwrap_or_else(|s| panic!("assign {kind:?}: {s:?}"))
            .into_inner()
            .task
            .expect("task")
    }

    /// Runs the deadline monitor once, as the first replica.
    pub async fn monitor(&self) -> MonitorReport {
        zvv_reintegration::run_deadline_monitor(
            &self.runtime_pool,
            &self.shared_clock,
            zvv_reintegration::DEFAULT_WARN_WORKING_DAYS,
        )
        .await
        .expect("monitor runs")
    }

    /// Runs the monitor on both replicas at once; returns what each did.
    pub async fn monitor_on_two_replicas(&self) -> (MonitorReport, MonitorReport) {
        let warn = zvv_reintegration::DEFAULT_WARN_WORKING_DAYS;
        let (a, b) = tokio::join!(
            zvv_reintegration::run_deadline_monitor(&self.runtime_pool, &self.shared_clock, warn),
            zvv_reintegration::run_deadline_monitor(&self.replica_pool, &self.shared_clock, warn),
        );
        (a.expect("replica 1"), b.expect("replica 2"))
    }

    pub async fn retention(&self) -> RetentionReport {
        zvv_reintegration::run_retention(
            &self.runtime_pool,
            &self.shared_clock,
            zvv_reintegration::DEFAULT_RETENTION_MONTHS,
        )
        .await
        .expect("retention runs")
    }

    /// Moves the clock to 10:00 UTC of `day`.
    pub fn set_day(&self, day: &str) {
        self.clock.set(
            DateTime::parse_from_rfc3339(&format!("{day}T10:00:00Z"))
                .expect("a day")
                .with_timezone(&Utc),
        );
    }

    /// The outbox events of `event_type`, oldest first.
    pub async fn events(&self, event_type: &str) -> Vec<OutboxEvent> {
        sqlx::query_as::<_, OutboxEvent>(
            "SELECT ids, codes, audience_organisations, audience_municipalities \
             FROM reintegration.outbox WHERE event_type = $1 ORDER BY occurred_at, event_id",
        )
        .bind(event_type)
        .fetch_all(&self.pool)
        .await
        .expect("read outbox")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// reintegration's audit records in order.
    pub async fn audit_rows(&self) -> Vec<AuditRow> {
        sqlx::query_as::<_, AuditRow>(
            "SELECT action, result, actor_org, object_ids FROM reintegration.audit_log \
             ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await
        .expect("read audit log")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.reintegration.signal();
        self.intake.signal();
        for other in &mut self.others {
            other.signal();
        }
        let _ = (self.reintegration.task.take(), self.intake.task.take());
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxEvent {
    pub ids: serde_json::Value,
    pub codes: serde_json::Value,
    pub audience_organisations: Vec<String>,
    pub audience_municipalities: Vec<String>,
}

impl OutboxEvent {
    pub fn id(&self, name: &str) -> &str {
        self.ids[name].as_str().unwrap_or_default()
    }

    pub fn code(&self, name: &str) -> &str {
        self.codes[name].as_str().unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub action: String,
    pub result: String,
    pub actor_org: String,
    pub object_ids: Vec<uuid::Uuid>,
}

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .expect("NOW is RFC 3339")
        .with_timezone(&Utc)
}

pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn contact() -> pb::Contact {
    pb::Contact {
        name: "Dhr. Jansen".into(),
        phone: "+31 13 555 0101".into(),
        email: "jansen@partner.nl".into(),
    }
}

/// An event of episode `external_ref` of the person with `bsn`, for Tilburg.
pub fn event(
    external_ref: &str,
    bsn: &str,
    kind: pb::DetentionEventKind,
    on: &str,
    expected_release: &str,
) -> pb::RecordDetentionEventRequest {
    pb::RecordDetentionEventRequest {
        request_id: request_id(),
        external_ref: external_ref.to_owned(),
        subject: Some(Subject::Bsn(bsn.to_owned())),
        birth_date: "1990-04-02".into(),
        kind: kind as i32,
        institution_code: "PI-VUGHT".into(),
        institution_type: pb::InstitutionType::Pi as i32,
        occurred_on: on.to_owned(),
        expected_release_on: expected_release.to_owned(),
        municipality_code: TILBURG.into(),
    }
}

pub fn begin(
    external_ref: &str,
    bsn: &str,
    on: &str,
    release: &str,
) -> pb::RecordDetentionEventRequest {
    event(
        external_ref,
        bsn,
        pb::DetentionEventKind::Begin,
        on,
        release,
    )
}

pub fn end(external_ref: &str, bsn: &str, on: &str) -> pb::RecordDetentionEventRequest {
    event(external_ref, bsn, pb::DetentionEventKind::End, on, "")
}

/// The condition of `kind` in a plan.
pub fn condition(plan: &pb::Plan, kind: pb::ConditionKind) -> &pb::Condition {
    plan.conditions
        .iter()
        .find(|c| c.kind == kind as i32)
        .unwrap_or_else(|| panic!("no {kind:?} in the plan"))
}

/// The action with `code` of a condition.
pub fn action<'a>(c: &'a pb::Condition, code: &str) -> &'a pb::Action {
    c.actions
        .iter()
        .find(|a| a.action == code)
        .unwrap_or_else(|| panic!("no action {code} in {:?}", c.kind))
}
