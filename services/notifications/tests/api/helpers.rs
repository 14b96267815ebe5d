//! The test harness: per test a fresh database, notifications served on a loopback port as its
//! runtime role, a real HTTP webhook receiver on loopback that checks every signature, a real
//! gRPC EventSink of a "suite service", and a manual clock. Delivery rounds are driven by the
//! tests (the server runs no workers of its own), so that a clock moved by hours is exact.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use zvv_devkit::testkit::{TestDb, TestKeys, service_pool};
pub use zvv_devkit::testkit::{assert_invalid, expect_err};
use zvv_notifications::{
    DeliverySettings, Deps, Retention, Secrets, SinkEndpoints, StreamSettings,
    clients::{HttpWebhooks, ServiceSinks},
    domain::{target::TargetPolicy, webhook},
    jobs::delivery::Worker,
    store::PgStore,
};
use zvv_platform::{
    auth::{OrgType, Role},
    client::{Outgoing, TokenSource},
    clock::{ManualClock, SharedClock},
    server::ServerSettings,
    telemetry::{self, TelemetryGuard},
};
use zvv_proto::{
    events::v1 as ev,
    notifications::v1::{self as pb, notification_service_client::NotificationServiceClient},
};

pub type Client = NotificationServiceClient<InterceptedService<Channel, Outgoing>>;

pub const NOW: &str = "2026-06-15T10:00:00Z";

static TELEMETRY: OnceLock<TelemetryGuard> = OnceLock::new();

pub fn now() -> DateTime<Utc> {
    NOW.parse().expect("NOW")
}

/// A caller as the tests use them.
#[derive(Debug, Clone, Copy)]
pub struct Org {
    pub name: &'static str,
    pub org_type: OrgType,
    pub role: Role,
    pub municipalities: &'static [&'static str],
}

pub const SCHOOL: Org = Org {
    name: "school-1",
    org_type: OrgType::School,
    role: Role::Professional,
    municipalities: &[],
};
pub const CARE: Org = Org {
    name: "jeugdzorg-1",
    org_type: OrgType::YouthCare,
    role: Role::Professional,
    municipalities: &[],
};
pub const TRIAGE_AMSTERDAM: Org = Org {
    name: "gm0363",
    org_type: OrgType::Municipality,
    role: Role::TriageOfficer,
    municipalities: &["GM0363"],
};
pub const TRIAGE_ROTTERDAM: Org = Org {
    name: "gm0599",
    org_type: OrgType::Municipality,
    role: Role::TriageOfficer,
    municipalities: &["GM0599"],
};
pub const CLERK_AMSTERDAM: Org = Org {
    name: "gm0363",
    org_type: OrgType::Municipality,
    role: Role::Professional,
    municipalities: &["GM0363"],
};

/// What the webhook receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Fail,
    Gone,
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub signature_ok: bool,
    pub authorization: Option<String>,
    pub body: serde_json::Value,
}

/// A POST as it came in.
#[derive(Debug, Clone)]
struct Raw {
    webhook_id: String,
    timestamp: i64,
    signature: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

#[derive(Default)]
struct ReceiverState {
    mode: Option<Mode>,
    secrets: Vec<Vec<u8>>,
    received: Vec<Raw>,
}

/// A real HTTP receiver on loopback. It verifies signatures against every secret it was told
/// (the test notification of a new subscription is signed with a secret nobody knows yet: its
/// signature is checked once the secret is added).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
    /// When each accepted notification arrived, by webhook id (first arrival).
    pub arrivals: Arc<Mutex<std::collections::HashMap<String, std::time::Instant>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let arrivals = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state((state.clone(), arrivals.clone()));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            state,
            arrivals,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    pub fn add_secret(&self, secret_text: &str) {
        let secret = webhook::parse_secret(secret_text).expect("secret text");
        let mut state = self.state.lock().unwrap();
        state.secrets.push(secret);
    }

    /// Everything received, with signatures checked against the secrets known now.
    pub fn received(&self) -> Vec<Received> {
        let state = self.state.lock().unwrap();
        state
            .received
            .iter()
            .map(|r| Received {
                webhook_id: r.webhook_id.clone(),
                signature_ok: state
                    .secrets
                    .iter()
                    .any(|s| webhook::verify(s, &r.webhook_id, r.timestamp, &r.body, &r.signature)),
                authorization: r.authorization.clone(),
                body: serde_json::from_slice(&r.body).unwrap_or_default(),
            })
            .collect()
    }

    /// The notifications received apart from test notifications.
    pub fn notifications(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.body["kanaal"] != "test")
            .collect()
    }
}

type Shared = (
    Arc<Mutex<ReceiverState>>,
    Arc<Mutex<std::collections::HashMap<String, std::time::Instant>>>,
);

async fn receive(
    State((state, arrivals)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let id = header("webhook-id").unwrap_or_default();
    let ts: i64 = header("webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    let sig = header("webhook-signature").unwrap_or_default();
    let mut state = state.lock().unwrap();
    let body_json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let is_test = body_json["kanaal"] == "test";
    if state.mode.unwrap_or(Mode::Accept) == Mode::Accept && !is_test {
        arrivals
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_insert_with(std::time::Instant::now);
    }
    if state.mode == Some(Mode::Accept) && state.secrets.is_empty() && !is_test {
        // a bench receiver: keeps arrival times only
        return StatusCode::OK;
    }
    state.received.push(Raw {
        webhook_id: id,
        timestamp: ts,
        signature: sig,
        authorization: header("authorization"),
        body: body.to_vec(),
    });
    match state.mode.unwrap_or(Mode::Accept) {
        Mode::Accept if is_test => StatusCode::NO_CONTENT,
        // a real receiver would check the signature; this one records it for the test to check
        Mode::Accept => StatusCode::OK,
        Mode::Fail => StatusCode::SERVICE_UNAVAILABLE,
        Mode::Gone => StatusCode::GONE,
    }
}

/// A real EventSink of a suite service: records what it gets, acknowledges each once.
#[derive(Clone, Default)]
pub struct Sink {
    pub got: Arc<Mutex<Vec<(String, ev::Event)>>>,
}

#[tonic::async_trait]
impl ev::event_sink_server::EventSink for Sink {
    async fn deliver(
        &self,
        request: tonic::Request<ev::DeliverRequest>,
    ) -> Result<tonic::Response<ev::DeliverResponse>, tonic::Status> {
        let r = request.into_inner();
        let mut got = self.got.lock().unwrap();
        let event = r.event.unwrap_or_default();
        let duplicate = got.iter().any(|(_, e)| e.event_id == event.event_id);
        got.push((r.subscription_id, event));
        Ok(tonic::Response::new(ev::DeliverResponse { duplicate }))
    }
}

pub struct TestApp {
    pub url: String,
    pub pool: PgPool,
    pub runtime_pool: PgPool,
    pub keys: TestKeys,
    pub clock: ManualClock,
    pub secrets: Arc<Secrets>,
    pub receiver: Receiver,
    pub sink: Sink,
    sinks: SinkEndpoints,
    settings: DeliverySettings,
    targets: TargetPolicy,
    #[allow(dead_code)]
    db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(TargetPolicy {
            development: true,
            allowed: Vec::new(),
        })
        .await
    }

    pub async fn spawn_with(targets: TargetPolicy) -> Self {
        Self::spawn_full(targets, false).await
    }

    /// A server that runs its own delivery workers (as in production).
    pub async fn spawn_running() -> Self {
        Self::spawn_full(
            TargetPolicy {
                development: true,
                allowed: Vec::new(),
            },
            true,
        )
        .await
    }

    async fn spawn_full(targets: TargetPolicy, run_workers: bool) -> Self {
        TELEMETRY.get_or_init(|| telemetry::init_for_tests("notifications-test"));
        let db = TestDb::create().await.expect("test database");
        let pool = zvv_platform::db::connect(
            db.options.clone(),
            &zvv_platform::db::PoolSettings::default(),
        )
        .await
        .expect("test pool");
        let (runtime_pool, _roles) =
            service_pool(&db, zvv_notifications::SCHEMA, 20, |owner| async move {
                zvv_notifications::migrate(&owner).await
            })
            .await
            .expect("notifications pool");
        let keys = TestKeys::new().expect("keys");
        let secrets = Arc::new(Secrets::from_base64(&Secrets::generate_base64()).unwrap());
        zvv_notifications::check_keys(&runtime_pool, &secrets)
            .await
            .expect("key check accepts a fresh database");
        let clock = ManualClock::new(now());
        let shared: SharedClock = Arc::new(clock.clone());
        let receiver = Receiver::start().await;

        // the EventSink of a suite service called "signalling", with a token for it
        let sink = Sink::default();
        let sink_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let sink_url = format!("http://{}", sink_listener.local_addr().unwrap());
        let sink_server = sink.clone();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(ev::event_sink_server::EventSinkServer::new(sink_server))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                    sink_listener,
                ))
                .await;
        });
        let mut sinks = SinkEndpoints::new();
        sinks.insert(
            "signalling".to_owned(),
            zvv_platform::client::channel(
                &sink_url,
                TokenSource::Static(SecretString::from(
                    keys.service_token("zvv-notifications", "signalling"),
                )),
            )
            .unwrap(),
        );

        let settings = DeliverySettings {
            attempt_timeout: Duration::from_secs(3),
            ..DeliverySettings::default()
        };
        let deps = Deps {
            pool: runtime_pool.clone(),
            verifier: keys
                .verifier(zvv_notifications::SCHEMA.name())
                .expect("verifier"),
            clock: shared,
            settings: ServerSettings::default(),
            secrets: secrets.clone(),
            delivery: settings.clone(),
            targets: targets.clone(),
            sinks: sinks.clone(),
            stream: if run_workers {
                StreamSettings::default()
            } else {
                StreamSettings {
                    heartbeat: Duration::from_millis(300),
                    poll: Duration::from_millis(200),
                    buffer: 8,
                    ..StreamSettings::default()
                }
            },
            retention: Retention::default(),
            run_workers,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(zvv_notifications::serve(deps, listener, async move {
            let _ = rx.await;
        }));
        Self {
            url,
            pool,
            runtime_pool,
            keys,
            clock,
            secrets,
            receiver,
            sink,
            sinks,
            settings,
            targets,
            db,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn token(&self, org: Org) -> String {
        self.keys
            .token_in(org.name, org.org_type, &[org.role], org.municipalities)
    }

    pub fn client_with(&self, token: String) -> Client {
        NotificationServiceClient::new(
            zvv_platform::client::channel(
                &self.url,
                TokenSource::Static(SecretString::from(token)),
            )
            .expect("channel"),
        )
    }

    pub fn client(&self, org: Org) -> Client {
        self.client_with(self.token(org))
    }

    /// The client of a suite service (`zvv-<service>`).
    pub fn service(&self, service: &str) -> Client {
        self.client_with(
            self.keys
                .service_token(&format!("zvv-{service}"), "notifications"),
        )
    }

    /// One delivery round, as a worker of any replica runs it. Returns the deliveries attempted.
    pub async fn deliver(&self) -> usize {
        let worker: Worker<PgStore, HttpWebhooks, ServiceSinks> = zvv_notifications::worker(
            self.runtime_pool.clone(),
            self.secrets.clone(),
            Arc::new(self.clock.clone()),
            self.targets.clone(),
            self.sinks.clone(),
            self.settings.clone(),
        )
        .expect("worker");
        worker.run_once().await.expect("delivery round")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Audit entries of an action (e.g. `Publish`) with a result.
    pub async fn audited(&self, method: &str, result: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM notifications.audit_entries WHERE action = $1 AND result = $2",
        )
        .bind(format!("zvv.notifications.v1.NotificationService/{method}"))
        .bind(result)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An event of `source` on `channel` about a new resource.
pub fn event(source: &str, channel: &str, resource: &str, action: &str) -> ev::Event {
    ev::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        source: source.into(),
        channel: channel.into(),
        resource: resource.into(),
        resource_id: uuid::Uuid::new_v4().to_string(),
        action: action.into(),
        occurred_at: Some(zvv_platform::adapter::timestamp(now())),
        attributes: Default::default(),
        audience: Some(ev::Audience::default()),
        trace_parent: String::new(),
    }
}

/// A match event whose audience is these organisations.
pub fn match_event(kind: &str, orgs: &[&str]) -> ev::Event {
    let mut e = event("signalling", "signalling.matches", "match", "created");
    e.attributes = BTreeMap::from([("kind".to_owned(), kind.to_owned())])
        .into_iter()
        .collect();
    e.audience = Some(ev::Audience {
        organisations: orgs.iter().map(|o| (*o).to_owned()).collect(),
        municipality_codes: vec![],
    });
    e
}

pub async fn publish(app: &TestApp, event: ev::Event) -> pb::PublishResponse {
    app.service("signalling")
        .publish(pb::PublishRequest { event: Some(event) })
        .await
        .expect("publish")
        .into_inner()
}

pub fn channel(name: &str, filters: &[(&str, &str)]) -> pb::ChannelFilter {
    pb::ChannelFilter {
        channel: name.into(),
        filters: filters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

pub async fn subscribe_inbox(client: &mut Client, channels: Vec<pb::ChannelFilter>) -> String {
    client
        .create_subscription(pb::CreateSubscriptionRequest {
            request_id: request_id(),
            channels,
            delivery: Some(pb::create_subscription_request::Delivery::Inbox(
                pb::InboxDelivery {},
            )),
        })
        .await
        .expect("inbox subscription")
        .into_inner()
        .subscription
        .unwrap()
        .subscription_id
}

/// A webhook subscription to the test receiver; the receiver learns its secret.
pub async fn subscribe_webhook(
    app: &TestApp,
    client: &mut Client,
    channels: Vec<pb::ChannelFilter>,
    authorization: &str,
) -> String {
    let created = client
        .create_subscription(pb::CreateSubscriptionRequest {
            request_id: request_id(),
            channels,
            delivery: Some(pb::create_subscription_request::Delivery::Webhook(
                pb::WebhookDelivery {
                    url: app.receiver.url.clone(),
                    authorization: authorization.into(),
                },
            )),
        })
        .await
        .expect("webhook subscription")
        .into_inner();
    assert!(created.signing_secret.starts_with("whsec_"));
    app.receiver.add_secret(&created.signing_secret);
    created.subscription.unwrap().subscription_id
}

pub async fn inbox(client: &mut Client) -> Vec<pb::InboxItem> {
    client
        .list_inbox(pb::ListInboxRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list inbox")
        .into_inner()
        .items
}

/// The inbox once it holds at least `n` items (items become readable once every transaction
/// that started before them has ended, normally within milliseconds).
pub async fn inbox_with(client: &mut Client, n: usize) -> Vec<pb::InboxItem> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let items = inbox(client).await;
        if items.len() >= n || tokio::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
