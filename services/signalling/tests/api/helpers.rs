//! The test harness: per test a fresh database, intake and signalling each served on a loopback
//! port of their own (real gRPC between them), one key pair and one manual clock for both.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use chrono::{DateTime, NaiveDate, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Code, Status,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};
use zvv_devkit::testkit::{ServiceRoles, TestDb, TestKeys};
pub use zvv_devkit::testkit::{assert_invalid, expect_err, valid_bsn, violation_fields};
use zvv_platform::{
    auth::{OrgType, Role, TokenRequest},
    client::{Outgoing, TokenSource},
    clock::{ManualClock, SharedClock},
    db::PoolSettings,
    server::ServerSettings,
    telemetry::{self, TelemetryGuard},
};
use zvv_proto::{
    intake::v1::{self as ipb, subject_service_client::SubjectServiceClient},
    signalling::v1::{
        self as pb, register_signal_request::Subject, signal_service_client::SignalServiceClient,
    },
};

/// A signalling client that sends a bearer token (and the current trace context).
pub type Client = SignalServiceClient<InterceptedService<Channel, Outgoing>>;
/// A referral client with a bearer token.
pub type ReferralClient = zvv_proto::signalling::v1::referral_service_client::ReferralServiceClient<
    InterceptedService<Channel, Outgoing>,
>;
/// A signalling client that sends no `authorization` metadata at all.
pub type BareClient = SignalServiceClient<Channel>;
/// An intake client with a bearer token.
pub type IntakeClient = SubjectServiceClient<InterceptedService<Channel, Outgoing>>;
/// A client of signalling's EventSink with a bearer token.
pub type SinkClient = zvv_proto::events::v1::event_sink_client::EventSinkClient<
    InterceptedService<Channel, Outgoing>,
>;

/// The organisation of the notifications service's SERVICE token.
pub const NOTIFICATIONS_ORG: &str = "zvv-notifications";

/// The instant both services' clock stands at in every test.
pub const NOW: &str = "2026-06-15T10:00:00Z";
/// The date of [`NOW`].
pub const TODAY: &str = "2026-06-15";
/// The birth date of the children the helpers register (11 years old on [`TODAY`]).
pub const CHILD_BIRTH_DATE: &str = "2015-03-14";

/// The organisation name of signalling's own SERVICE token towards intake.
pub const SIGNALLING_ORG: &str = "zvv-signalling";

static TELEMETRY: OnceLock<TelemetryGuard> = OnceLock::new();

fn init_telemetry() {
    TELEMETRY.get_or_init(|| telemetry::init_for_tests("signalling-test"));
}

/// A professional (or coordinator) of an organisation, as the tests use them.
#[derive(Debug, Clone, Copy)]
pub struct Org {
    pub name: &'static str,
    pub org_type: OrgType,
    pub role: Role,
}

pub const SCHOOL: Org = Org {
    name: "school-1",
    org_type: OrgType::School,
    role: Role::Professional,
};
pub const YOUTH_HEALTH: Org = Org {
    name: "ggd-jgz",
    org_type: OrgType::YouthHealth,
    role: Role::Professional,
};
pub const POLICE: Org = Org {
    name: "politie-amsterdam",
    org_type: OrgType::Police,
    role: Role::Professional,
};
pub const TEAM: Org = Org {
    name: "wijkteam-centrum",
    org_type: OrgType::NeighbourhoodTeam,
    role: Role::Coordinator,
};
pub const PRISON: Org = Org {
    name: "pi-vught",
    org_type: OrgType::Prison,
    role: Role::Professional,
};
pub const HOUSING: Org = Org {
    name: "woonstichting",
    org_type: OrgType::Housing,
    role: Role::Professional,
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

    async fn stop(&mut self, name: &str) {
        self.signal();
        if let Some(task) = self.task.take() {
            let done = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap_or_else(|_| panic!("{name} stops within 10 s"))
                .unwrap_or_else(|e| panic!("{name} task: {e}"));
            done.unwrap_or_else(|e| panic!("{name} ends without an error: {e}"));
        }
    }
}

/// Intake and signalling running against one fresh database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>` of signalling.
    pub url: String,
    /// `http://127.0.0.1:<port>` of intake.
    pub intake_url: String,
    /// A pool of the test's own for SQL assertions (a superuser's).
    pub pool: PgPool,
    /// The pool signalling runs on (its runtime role), for running its jobs in tests.
    pub runtime_pool: PgPool,
    /// signalling's owner and runtime roles.
    pub roles: ServiceRoles,
    pub keys: TestKeys,
    pub clock: ManualClock,
    /// Kept for the whole test: the database is dropped with it.
    #[allow(dead_code)]
    pub db: TestDb,
    signalling: Server,
    intake: Server,
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

/// Migrates a service with its owner role, grants its runtime role, and opens the runtime pool.
async fn migrated<F, Fut>(
    roles: &ServiceRoles,
    schema: zvv_platform::db::Schema,
    migrate: F,
) -> PgPool
where
    F: FnOnce(PgPool) -> Fut,
    Fut: Future<Output = Result<(), sqlx::migrate::MigrateError>>,
{
    let owner = pool(&roles.owner, 2).await;
    migrate(owner.clone())
        .await
        .unwrap_or_else(|e| panic!("migrate {}: {e}", schema.name()));
    zvv_platform::db::grant_runtime(&owner, schema, &roles.runtime_role)
        .await
        .unwrap_or_else(|e| panic!("grant the runtime role of {}: {e}", schema.name()));
    owner.close().await;
    pool(&roles.runtime, 10).await
}

fn spawn_server(
    fut: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    tx: oneshot::Sender<()>,
) -> Server {
    Server {
        shutdown: Some(tx),
        task: Some(tokio::spawn(fut)),
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        init_telemetry();
        let db = TestDb::create().await.expect("create test database");
        let test_pool = pool(&db.options, 4).await;
        // each service migrates as its owner role and runs as its runtime role, which may only
        // add and read audit rows
        let intake_roles = db.service_roles("intake").await.expect("intake roles");
        let intake_pool = migrated(&intake_roles, zvv_intake::SCHEMA, |owner| async move {
            zvv_intake::migrate(&owner).await
        })
        .await;
        let roles = db
            .service_roles("signalling")
            .await
            .expect("signalling roles");
        let runtime_pool = migrated(&roles, zvv_signalling::SCHEMA, |owner| async move {
            zvv_signalling::migrate(&owner).await
        })
        .await;

        let keys = TestKeys::new().expect("test keys");
        // as at every start: each service's keys are recorded in (and checked against) its schema
        zvv_intake::check_keys(&intake_pool, &keys.vault().expect("vault"))
            .await
            .expect("intake's key check accepts a fresh database");
        let fingerprints = keys.fingerprints().expect("fingerprint key");
        zvv_signalling::check_keys(&runtime_pool, &fingerprints)
            .await
            .expect("signalling's key check accepts a fresh database");
        let clock = ManualClock::new(now());
        let shared: SharedClock = Arc::new(clock.clone());

        // intake
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
        let intake = spawn_server(
            zvv_intake::serve(intake_deps, listener, async move {
                let _ = rx.await;
            }),
            tx,
        );

        // signalling, calling intake with its own SERVICE token
        let service_token = keys.service_token(SIGNALLING_ORG, zvv_intake::SCHEMA.name());
        let intake_client = SubjectServiceClient::new(
            zvv_platform::client::channel(
                &intake_url,
                TokenSource::Static(SecretString::from(service_token)),
            )
            .expect("intake channel"),
        );
        let deps = zvv_signalling::Deps {
            pool: runtime_pool.clone(),
            verifier: keys
                .verifier(zvv_signalling::SCHEMA.name())
                .expect("verifier"),
            clock: shared,
            settings: ServerSettings::default(),
            intake: intake_client,
            default_duration_months: 12,
            idempotency_retention: chrono::Duration::hours(24),
            referral_deadline_working_days: zvv_signalling::DEFAULT_REFERRAL_DEADLINE_WORKING_DAYS,
            statistics_threshold: zvv_signalling::DEFAULT_STATISTICS_THRESHOLD,
            fingerprints,
            retention: zvv_signalling::retention::RetentionRules::default(),
            relay: None,
            notifications: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let signalling = spawn_server(
            zvv_signalling::serve(deps, listener, async move {
                let _ = rx.await;
            }),
            tx,
        );

        Self {
            url,
            intake_url,
            pool: test_pool,
            runtime_pool,
            roles,
            keys,
            clock,
            db,
            signalling,
            intake,
        }
    }

    /// A token of `org`'s professional (or coordinator).
    pub fn token(&self, org: Org) -> String {
        self.keys.token(org.name, org.org_type, &[org.role])
    }

    /// A token of another user (`sub`) of the same organisation.
    pub fn colleague_token(&self, org: Org, sub: &str) -> String {
        self.keys
            .signer()
            .mint(&TokenRequest {
                sub: sub.to_owned(),
                org: org.name.to_owned(),
                org_type: org.org_type,
                roles: vec![org.role],
                municipalities: Vec::new(),
                ttl: chrono::Duration::hours(1),
                for_service: None,
            })
            .expect("colleague token")
    }

    /// A signalling client over real TCP sending `token`.
    pub fn client_with(&self, token: &str) -> Client {
        let channel = zvv_platform::client::channel(
            &self.url,
            TokenSource::Static(SecretString::from(token.to_owned())),
        )
        .expect("channel");
        SignalServiceClient::new(channel)
    }

    /// A signalling client of `org`.
    pub fn client(&self, org: Org) -> Client {
        self.client_with(&self.token(org))
    }

    /// A ReferralService client sending `token`.
    pub fn referrals_with(&self, token: &str) -> ReferralClient {
        ReferralClient::new(
            zvv_platform::client::channel(
                &self.url,
                TokenSource::Static(SecretString::from(token.to_owned())),
            )
            .expect("channel"),
        )
    }

    /// A plain channel to signalling (no token, no interceptor).
    pub fn raw_channel(&self) -> Channel {
        Endpoint::from_shared(self.url.clone())
            .expect("endpoint")
            .timeout(Duration::from_secs(10))
            .connect_lazy()
    }

    pub fn bare_client(&self) -> BareClient {
        SignalServiceClient::new(self.raw_channel())
    }

    /// An intake client sending `token`.
    pub fn intake_with(&self, token: &str) -> IntakeClient {
        SubjectServiceClient::new(
            zvv_platform::client::channel(
                &self.intake_url,
                TokenSource::Static(SecretString::from(token.to_owned())),
            )
            .expect("intake channel"),
        )
    }

    /// A client of signalling's EventSink sending `token`.
    pub fn sink_with(&self, token: &str) -> SinkClient {
        SinkClient::new(
            zvv_platform::client::channel(
                &self.url,
                TokenSource::Static(SecretString::from(token.to_owned())),
            )
            .expect("channel"),
        )
    }

    /// The EventSink client of notifications, with its SERVICE token for signalling.
    pub fn sink(&self) -> SinkClient {
        self.sink_with(
            &self
                .keys
                .service_token(NOTIFICATIONS_ORG, zvv_signalling::SCHEMA.name()),
        )
    }

    /// The last event of `event_type` intake wrote, as its relay publishes it.
    pub async fn intake_event(&self, event_type: &str) -> zvv_proto::events::v1::Event {
        type Row = (
            uuid::Uuid,
            String,
            DateTime<Utc>,
            serde_json::Value,
            serde_json::Value,
            String,
            Vec<String>,
            Vec<String>,
        );
        let row: Row = sqlx::query_as(
            "SELECT event_id, event_type, occurred_at, ids, codes, trace_id, \
             audience_organisations, audience_municipalities FROM intake.outbox \
             WHERE event_type = $1 ORDER BY occurred_at DESC, event_id DESC LIMIT 1",
        )
        .bind(event_type)
        .fetch_one(&self.pool)
        .await
        .unwrap_or_else(|e| panic!("an intake event {event_type}: {e}"));
        let strings = |v: serde_json::Value| {
            serde_json::from_value::<std::collections::BTreeMap<String, String>>(v)
                .expect("ids and codes are strings")
        };
        zvv_platform::relay::to_event(&zvv_platform::relay::OutboxRow {
            event_id: row.0,
            event_type: row.1,
            occurred_at: row.2,
            ids: strings(row.3),
            codes: strings(row.4),
            trace_id: row.5,
            audience_organisations: row.6,
            audience_municipalities: row.7,
        })
        .expect("intake's event maps")
    }

    /// A coordinator of GM0363 in intake.
    fn intake_coordinator(&self) -> IntakeClient {
        self.intake_with(&self.keys.token_in(
            "gm0363",
            OrgType::Municipality,
            &[Role::Coordinator],
            &["GM0363"],
        ))
    }

    /// Records the death of a subject of GM0363 in intake (yesterday).
    pub async fn record_death(&self, subject_id: &str) {
        let yesterday = (now() - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string();
        self.intake_coordinator()
            .update_subject(ipb::UpdateSubjectRequest {
                request_id: request_id(),
                subject_id: subject_id.to_owned(),
                subject: Some(ipb::Subject {
                    date_of_death: yesterday,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["date_of_death".to_owned()],
                }),
            })
            .await
            .unwrap_or_else(|s| panic!("record the death of {subject_id}: {s:?}"));
    }

    /// Removes in intake the relation of `parent` and `child` (as a coordinator of GM0363).
    pub async fn unlink(&self, parent: &str, child: &str) {
        self.intake_coordinator()
            .unlink_relation(ipb::UnlinkRelationRequest {
                request_id: request_id(),
                parent_subject_id: parent.to_owned(),
                child_subject_id: child.to_owned(),
                reason: ipb::UnlinkReason::WrongPerson as i32,
            })
            .await
            .unwrap_or_else(|s| panic!("unlink {parent} from {child}: {s:?}"));
    }

    /// Registers a child in intake (as a municipality professional); returns its subject_id.
    pub async fn child(&self, bsn: &str) -> String {
        self.child_born(bsn, CHILD_BIRTH_DATE).await
    }

    /// Registers a person born on `birth_date` in intake; returns the subject_id.
    pub async fn child_born(&self, bsn: &str, birth_date: &str) -> String {
        let token = self
            .keys
            .token("gm0363", OrgType::Municipality, &[Role::Professional]);
        self.intake_with(&token)
            .register_subject(ipb::RegisterSubjectRequest {
                request_id: request_id(),
                bsn: bsn.to_owned(),
                given_name: "Sanne".to_owned(),
                family_name: "de Vries".to_owned(),
                birth_date: birth_date.to_owned(),
                municipality_code: "GM0363".to_owned(),
                neighbourhood_code: "WK036305".to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("register subject born {birth_date}: {s:?}"))
            .into_inner()
            .subject
            .expect("subject in response")
            .subject_id
    }

    /// Records in intake that `parent` is a parent of `child` (as a coordinator of GM0363).
    pub async fn link(&self, parent: &str, child: &str) {
        let token = self.keys.token_in(
            "gm0363",
            OrgType::Municipality,
            &[Role::Coordinator],
            &["GM0363"],
        );
        self.intake_with(&token)
            .link_relation(ipb::LinkRelationRequest {
                request_id: request_id(),
                parent_subject_id: parent.to_owned(),
                child_subject_id: child.to_owned(),
                kind: ipb::RelationKind::Parent as i32,
                source: ipb::RelationSource::Brp as i32,
            })
            .await
            .unwrap_or_else(|s| panic!("link {parent} to {child}: {s:?}"));
    }

    /// A parent and two children in intake, the BSNs numbered from `n`; returns (parent, first
    /// child, second child).
    pub async fn family(&self, n: usize) -> (String, String, String) {
        let parent = self.child_born(&valid_bsn(n), "1985-01-01").await;
        let first = self.child(&valid_bsn(n + 1)).await;
        let second = self.child_born(&valid_bsn(n + 2), "2017-09-01").await;
        self.link(&parent, &first).await;
        self.link(&parent, &second).await;
        (parent, first, second)
    }

    /// The number of outbox events, of one type or (`None`) of all.
    pub async fn events(&self, event_type: Option<&str>) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM signalling.outbox WHERE $1::text IS NULL OR event_type = $1",
        )
        .bind(event_type)
        .fetch_one(&self.pool)
        .await
        .expect("count events")
    }

    /// Makes intake know a BSN without a birth date (ResolveSubject with create_if_missing, as a
    /// suite service other than signalling); returns the subject_id.
    pub async fn subject_without_birth_date(&self, bsn: &str) -> String {
        let token = self
            .keys
            .service_token("test-harness", zvv_intake::SCHEMA.name());
        let resolved = self
            .intake_with(&token)
            .resolve_subject(ipb::ResolveSubjectRequest {
                bsn: bsn.to_owned(),
                create_if_missing: true,
                ..Default::default()
            })
            .await
            .expect("resolve and create")
            .into_inner();
        assert!(resolved.created, "a new subject");
        assert!(resolved.birth_date.is_empty(), "{resolved:?}");
        resolved.subject_id
    }

    /// Registers a signal of `org` on a subject id; panics on an error.
    pub async fn signal(&self, org: Org, subject_id: &str) -> pb::RegisterSignalResponse {
        self.client(org)
            .register_signal(by_subject(subject_id, org))
            .await
            .unwrap_or_else(|s| panic!("{} signals {subject_id}: {s:?}", org.name))
            .into_inner()
    }

    /// Closes a signal as `org`; panics on an error.
    pub async fn close(&self, org: Org, signal_id: &str) -> pb::Signal {
        self.client(org)
            .close_signal(close_request(signal_id))
            .await
            .unwrap_or_else(|s| panic!("{} closes {signal_id}: {s:?}", org.name))
            .into_inner()
            .signal
            .expect("signal in response")
    }

    /// Reads a match as `org`; panics on an error.
    pub async fn get_match(&self, org: Org, match_id: &str) -> pb::Match {
        self.client(org)
            .get_match(pb::GetMatchRequest {
                match_id: match_id.to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("{} gets match {match_id}: {s:?}", org.name))
            .into_inner()
            .r#match
            .expect("match in response")
    }

    /// Every match `org` is in (following the pages).
    pub async fn list_matches(&self, org: Org) -> Vec<pb::Match> {
        let mut client = self.client(org);
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_matches(pb::ListMatchesRequest {
                    page_size: 0,
                    page_token: page_token.clone(),
                })
                .await
                .unwrap_or_else(|s| panic!("{} lists matches: {s:?}", org.name))
                .into_inner();
            out.extend(page.matches);
            if page.next_page_token.is_empty() {
                return out;
            }
            page_token = page.next_page_token;
        }
    }

    /// Every signal `org` has with `status` (following the pages of `page_size`).
    pub async fn list_signals(
        &self,
        org: Org,
        status: pb::SignalStatus,
        page_size: i32,
    ) -> Vec<pb::Signal> {
        let mut client = self.client(org);
        let mut out = Vec::new();
        let mut page_token = String::new();
        for _ in 0..1000 {
            let page = client
                .list_signals(pb::ListSignalsRequest {
                    page_size,
                    page_token: page_token.clone(),
                    status: status as i32,
                })
                .await
                .unwrap_or_else(|s| panic!("{} lists signals: {s:?}", org.name))
                .into_inner();
            if page_size > 0 {
                assert!(page.signals.len() <= page_size as usize, "page too long");
            }
            out.extend(page.signals);
            if page.next_page_token.is_empty() {
                return out;
            }
            page_token = page.next_page_token;
        }
        panic!("paging does not end");
    }

    /// The rows of a SQL count.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// signalling's audit records as (action, result, actor_org, trace_id) in order.
    pub async fn audit_rows(&self) -> Vec<AuditRow> {
        self.audit_rows_of("signalling").await
    }

    /// intake's audit records in order.
    pub async fn intake_audit_rows(&self) -> Vec<AuditRow> {
        self.audit_rows_of("intake").await
    }

    async fn audit_rows_of(&self, schema: &str) -> Vec<AuditRow> {
        sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(format!(
            "SELECT seq, action, result, actor_org, object_ids, trace_id, end_user_org \
             FROM {schema}.audit_log ORDER BY seq"
        )))
        .fetch_all(&self.pool)
        .await
        .expect("read audit log")
    }

    /// Stops signalling, then intake, and waits until both have drained.
    pub async fn stop(mut self) {
        self.signalling.stop("signalling").await;
        self.intake.stop("intake").await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.signalling.signal();
        self.intake.signal();
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub action: String,
    pub result: String,
    pub actor_org: String,
    pub object_ids: Vec<uuid::Uuid>,
    pub trace_id: String,
    /// The end user a suite service called on behalf of (empty for direct callers).
    pub end_user_org: String,
}

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .expect("NOW is RFC 3339")
        .with_timezone(&Utc)
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The full RPC name as audited.
pub fn action(method: &str) -> String {
    format!("zvv.signalling.v1.SignalService/{method}")
}

pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A valid contact of a professional of `org`.
pub fn contact(org: Org) -> pb::Contact {
    pb::Contact {
        name: format!("J. Jansen ({})", org.name),
        phone: "+31 20 123 4567".to_owned(),
        email: format!("j.jansen@{}.nl", org.name),
    }
}

/// A valid RegisterSignal request of `org` on a subject id, with the default duration.
pub fn by_subject(subject_id: &str, org: Org) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: request_id(),
        subject: Some(Subject::SubjectId(subject_id.to_owned())),
        contact: Some(contact(org)),
        duration_months: 0,
    }
}

/// A CloseSignal request (reason: risk gone) with a fresh request id.
pub fn close_request(signal_id: &str) -> pb::CloseSignalRequest {
    pb::CloseSignalRequest {
        signal_id: signal_id.to_owned(),
        reason: pb::CloseReason::RiskGone as i32,
        request_id: request_id(),
    }
}

/// A valid SubmitReferral request (ORANGE, observed today) on a subject id, routed to GM0363.
pub fn referral_on(subject_id: &str) -> pb::SubmitReferralRequest {
    pb::SubmitReferralRequest {
        request_id: request_id(),
        subject: Some(pb::submit_referral_request::Subject::SubjectId(
            subject_id.to_owned(),
        )),
        source_instrument: "ProKid 12-".to_owned(),
        instrument_version: "2.1".to_owned(),
        level: pb::ReferralLevel::Orange as i32,
        observed_on: TODAY.to_owned(),
        municipality_code: "GM0363".to_owned(),
        birth_date: String::new(),
    }
}

/// A valid RegisterSignal request of `org` on a BSN.
pub fn by_bsn(bsn: &str, org: Org) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        subject: Some(Subject::Bsn(bsn.to_owned())),
        ..by_subject("", org)
    }
}

/// Asserts the code of an error.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    code: Code,
    case: &str,
) -> Status {
    let status = expect_err(result, case);
    assert_eq!(status.code(), code, "{case}: {status:?}");
    status
}

/// The participants' organisations of a match, sorted.
pub fn organisations(m: &pb::Match) -> Vec<String> {
    let mut orgs: Vec<String> = m
        .participants
        .iter()
        .map(|p| p.organisation.clone())
        .collect();
    orgs.sort();
    orgs
}

/// Every signal id in a match, sorted.
pub fn signal_ids(m: &pb::Match) -> Vec<String> {
    let mut ids: Vec<String> = m
        .participants
        .iter()
        .flat_map(|p| p.signal_ids.iter().cloned())
        .collect();
    ids.sort();
    ids
}

/// Sorted owned strings.
pub fn sorted<const N: usize>(items: [&str; N]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}
