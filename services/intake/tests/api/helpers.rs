//! The test harness: one intake server per test, on a loopback port of its own, against a fresh
//! database, with keys and tokens made for that test only.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Code,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};
use zvv_devkit::testkit::{AUDIENCE, ISSUER, ServiceRoles, TestDb, TestKeys};
pub use zvv_devkit::testkit::{assert_invalid, expect_err, valid_bsn, violation_fields};
use zvv_platform::{
    auth::{Claims, OrgType, Role},
    client::{Outgoing, TokenSource},
    clock::{ManualClock, SharedClock},
    db::PoolSettings,
    server::ServerSettings,
    telemetry::{self, TelemetryGuard},
};
use zvv_proto::intake::v1::{self as pb, subject_service_client::SubjectServiceClient};

/// A client that sends a bearer token (and the current trace context) with every call.
pub type Client = SubjectServiceClient<InterceptedService<Channel, Outgoing>>;
/// A client that sends no `authorization` metadata at all.
pub type BareClient = SubjectServiceClient<Channel>;

/// The instant the service's clock stands at in every test.
pub const NOW: &str = "2026-06-15T10:00:00Z";

/// A BSN that passes the elfproef and masks to `******782`.
pub const BSN: &str = "123456782";

static TELEMETRY: OnceLock<TelemetryGuard> = OnceLock::new();

/// Installs the tracing subscriber and the W3C propagator once per test process, so that calls
/// get real trace ids and an incoming `traceparent` is honoured.
fn init_telemetry() {
    TELEMETRY.get_or_init(|| telemetry::init_for_tests("intake-test"));
}

/// One running intake server with its own database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    /// A pool of the test's own (separate from the server's) for SQL assertions.
    pub pool: PgPool,
    /// The owner and runtime roles of intake in this test's database.
    pub roles: ServiceRoles,
    pub keys: TestKeys,
    pub clock: ManualClock,
    pub db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl TestApp {
    /// A server with the default settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(ServerSettings::default()).await
    }

    /// A server with the given limits.
    pub async fn spawn_with(settings: ServerSettings) -> Self {
        init_telemetry();
        let db = TestDb::create().await.expect("create test database");
        let pool = zvv_platform::db::connect(
            db.options.clone(),
            &PoolSettings {
                max_connections: 4,
                acquire_timeout: Duration::from_secs(10),
            },
        )
        .await
        .expect("connect test pool");
        // the owner migrates and owns the tables; the server runs as the runtime role
        let (server_pool, roles) =
            zvv_devkit::testkit::service_pool(&db, zvv_intake::SCHEMA, 10, |owner| async move {
                zvv_intake::migrate(&owner).await
            })
            .await
            .expect("intake's database roles and pool");

        let keys = TestKeys::new().expect("test keys");
        let vault = keys.vault().expect("vault");
        // as at every start: the keys are recorded in (and checked against) the database
        zvv_intake::check_keys(&server_pool, &vault)
            .await
            .expect("the key check accepts a fresh database");
        let mut settings = settings;
        if settings.audit.checkpoints.is_none() {
            // the test's signing key; a fast sealer unless the test chose its own timings
            let fast = keys.audit_settings().expect("audit settings");
            let default = zvv_platform::audit::seal::SealerSettings::default();
            let chosen = &settings.audit.sealer;
            if chosen.interval == default.interval
                && chosen.checkpoint_interval == default.checkpoint_interval
            {
                settings.audit = fast;
            } else {
                settings.audit.checkpoints = fast.checkpoints;
            }
        }
        let clock = ManualClock::new(now());
        let shared: SharedClock = Arc::new(clock.clone());
        let deps = zvv_intake::Deps {
            pool: server_pool,
            vault,
            verifier: keys.verifier(zvv_intake::SCHEMA.name()).expect("verifier"),
            clock: shared,
            settings,
            idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
            relay: None,
        };

        // bound before the server task starts, so that the first call cannot race it
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(zvv_intake::serve(deps, listener, async move {
            let _ = rx.await;
        }));

        Self {
            url: format!("http://{addr}"),
            pool,
            roles,
            keys,
            clock,
            db,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// A client over a real TCP channel that sends `token` as its bearer token.
    pub fn client(&self, token: &str) -> Client {
        let channel = zvv_platform::client::channel(
            &self.url,
            TokenSource::Static(SecretString::from(token.to_owned())),
        )
        .expect("channel");
        SubjectServiceClient::new(channel)
    }

    /// A plain channel to the server (no token, no interceptor).
    pub fn raw_channel(&self) -> Channel {
        Endpoint::from_shared(self.url.clone())
            .expect("endpoint")
            .timeout(Duration::from_secs(10))
            .connect_lazy()
    }

    /// A client that sends no `authorization` metadata.
    pub fn bare_client(&self) -> BareClient {
        SubjectServiceClient::new(self.raw_channel())
    }

    /// MUNICIPALITY professional of GM0363.
    pub fn muni_professional(&self) -> String {
        self.keys
            .token("gm0363", OrgType::Municipality, &[Role::Professional])
    }

    /// COORDINATOR of the municipality GM0363 (jurisdiction GM0363 from its `org`).
    pub fn muni_coordinator(&self) -> String {
        self.keys
            .token("gm0363", OrgType::Municipality, &[Role::Coordinator])
    }

    /// NEIGHBOURHOOD_TEAM coordinator working for GM0363.
    pub fn team_coordinator(&self) -> String {
        self.keys.token_in(
            "wijkteam-centrum",
            OrgType::NeighbourhoodTeam,
            &[Role::Coordinator],
            &["GM0363"],
        )
    }

    /// A suite service (signalling) with its SERVICE token.
    pub fn service(&self) -> String {
        self.keys
            .service_token("signalling", zvv_intake::SCHEMA.name())
    }

    /// A SCHOOL professional.
    pub fn school_professional(&self) -> String {
        self.keys
            .token("school-1", OrgType::School, &[Role::Professional])
    }

    /// An ANALYST of the municipality.
    pub fn muni_analyst(&self) -> String {
        self.keys
            .token("gm0363", OrgType::Municipality, &[Role::Analyst])
    }

    /// A MUNICIPALITY professional's claims valid for an hour, to be changed and signed by tests.
    pub fn claims(&self) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "gm0363-user".into(),
            org: "gm0363".into(),
            org_type: "MUNICIPALITY".into(),
            roles: vec!["PROFESSIONAL".into()],
            exp: now + 3600,
            nbf: now,
            iat: now,
            municipalities: None,
        }
    }

    /// Signs claims with this app's trusted key.
    pub fn sign(&self, claims: &Claims) -> String {
        self.keys.signer().mint_claims(claims).expect("sign claims")
    }

    /// Registers a subject (as a municipality professional) and returns it.
    pub async fn register(&self, bsn: &str, given_name: &str) -> pb::Subject {
        self.client(&self.muni_professional())
            .register_subject(register_request(bsn, given_name))
            .await
            .unwrap_or_else(|s| panic!("register {given_name}: {s:?}"))
            .into_inner()
            .subject
            .expect("subject in response")
    }

    /// Reads a subject back (as a municipality professional).
    pub async fn get(&self, subject_id: &str) -> pb::Subject {
        self.client(&self.muni_professional())
            .get_subject(pb::GetSubjectRequest {
                subject_id: subject_id.to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("get {subject_id}: {s:?}"))
            .into_inner()
            .subject
            .expect("subject in response")
    }

    /// Links parent → child (as a municipality coordinator).
    pub async fn link(&self, parent: &str, child: &str) -> pb::Relation {
        self.client(&self.muni_coordinator())
            .link_relation(link_request(parent, child))
            .await
            .unwrap_or_else(|s| panic!("link {parent} -> {child}: {s:?}"))
            .into_inner()
            .relation
            .expect("relation in response")
    }

    /// The audit records as (seq, action, result, actor_org, legal_basis, object_ids, trace_id).
    pub async fn audit_rows(&self) -> Vec<AuditRow> {
        sqlx::query_as::<_, AuditRow>(
            "SELECT seq, action, result, actor_org, actor_org_type, legal_basis, object_ids, trace_id \
             FROM intake.audit_log ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await
        .expect("read audit log")
    }

    /// Seals the audit log and verifies it against this test's signed checkpoints.
    pub async fn verify_audit(&self) -> zvv_platform::audit::VerifyReport {
        self.keys
            .verify_audit(&self.pool, zvv_intake::SCHEMA)
            .await
            .expect("verify the audit log")
    }

    pub async fn count_subjects(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM intake.subjects")
            .fetch_one(&self.pool)
            .await
            .expect("count subjects")
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let done = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("server stops within 10 s")
                .expect("server task");
            done.expect("server ends without an error");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub action: String,
    pub result: String,
    pub actor_org: String,
    pub actor_org_type: String,
    pub legal_basis: String,
    pub object_ids: Vec<uuid::Uuid>,
    pub trace_id: String,
}

/// The frozen "now" of every test server.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .expect("NOW is RFC 3339")
        .with_timezone(&Utc)
}

/// The full RPC name as audited.
pub fn action(method: &str) -> String {
    format!("zvv.intake.v1.SubjectService/{method}")
}

/// A fresh idempotency key.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A valid RegisterSubject request: a child born 2015-03-14 living in GM0363 / WK036305.
pub fn register_request(bsn: &str, given_name: &str) -> pb::RegisterSubjectRequest {
    pb::RegisterSubjectRequest {
        request_id: request_id(),
        bsn: bsn.to_owned(),
        given_name: given_name.to_owned(),
        family_name: "de Vries".to_owned(),
        birth_date: "2015-03-14".to_owned(),
        municipality_code: "GM0363".to_owned(),
        neighbourhood_code: "WK036305".to_owned(),
    }
}

pub fn link_request(parent: &str, child: &str) -> pb::LinkRelationRequest {
    pb::LinkRelationRequest {
        request_id: request_id(),
        parent_subject_id: parent.to_owned(),
        child_subject_id: child.to_owned(),
        kind: pb::RelationKind::Parent as i32,
        source: pb::RelationSource::Declaration as i32,
    }
}

/// A hand-built unsigned JWT (`alg: none`) carrying `claims`.
pub fn alg_none_token(claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims json"));
    format!("{header}.{body}.")
}

/// The name of a gRPC code as audit records store it.
pub fn code_name(code: Code) -> &'static str {
    zvv_platform::layer::code_name(code)
}
