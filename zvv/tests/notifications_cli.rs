//! The notification commands as a person uses them: `zvv subscription`, `zvv inbox`,
//! `zvv deliveries` and `zvv webhook-sink`, run as the real binary against a notifications
//! server this test starts on loopback (a fresh database, real gRPC, its delivery workers
//! running). Events are published the way suite services do: Publish with a SERVICE token.

mod common;

#[allow(dead_code)]
#[path = "../src/webhook_sink.rs"]
mod webhook_sink;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Output, Stdio},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use common::{text, zvv};
use secrecy::SecretString;
use tokio::runtime::Runtime;
use zvv_devkit::testkit::{ServiceRoles, TestDb, TestKeys, service_pool};
use zvv_notifications::{
    DeliverySettings, Deps, Retention, Secrets, SinkEndpoints, StreamSettings,
    domain::{target::TargetPolicy, webhook::signature},
};
use zvv_platform::{
    auth::{OrgType, Role},
    client::TokenSource,
    clock::SystemClock,
    db::PoolSettings,
    server::ServerSettings,
};
use zvv_proto::{
    events::v1::{Audience, Event},
    notifications::v1::{PublishRequest, notification_service_client::NotificationServiceClient},
};

use webhook_sink::{Received, SecretSource, SinkOptions, Verdict};

/// The organisation whose professional subscribes in these tests.
const SCHOOL: &str = "school-1";
/// The Authorization value the webhook sink expects; it must never show up in any output.
const SINK_AUTHORIZATION: &str = "Bearer sink-token-7f3a";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A notifications server on a fixed loopback port, which the test can kill (every connection
/// dropped at once) and start again on the same port and database.
struct Suite {
    /// Runs the test's own async work: publishing, the in-process webhook sink.
    rt: Runtime,
    /// The running server's own runtime; shut down to kill the server.
    server: Option<Runtime>,
    roles: ServiceRoles,
    keys: TestKeys,
    secrets_key: String,
    addr: SocketAddr,
    url: String,
    /// Every command and its output, to look for secrets.
    seen: Vec<String>,
    // dropped last: the database goes with it
    _db: TestDb,
}

impl Drop for Suite {
    fn drop(&mut self) {
        self.kill_server();
    }
}

impl Suite {
    fn start() -> Self {
        let rt = runtime();
        let db = rt.block_on(TestDb::create()).expect("a test database");
        let (pool, roles) = rt
            .block_on(service_pool(
                &db,
                zvv_notifications::SCHEMA,
                2,
                |owner| async move { zvv_notifications::migrate(&owner).await },
            ))
            .expect("migrated notifications schema");
        rt.block_on(pool.close());
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut suite = Suite {
            rt,
            server: None,
            roles,
            keys: TestKeys::new().expect("test keys"),
            secrets_key: Secrets::generate_base64(),
            addr,
            url: format!("http://{addr}"),
            seen: Vec::new(),
            _db: db,
        };
        suite.start_server();
        suite
    }

    /// Serves notifications on `addr` in a runtime of its own, as `zvv up` would (development
    /// mode: webhooks may be http to loopback).
    fn start_server(&mut self) {
        assert!(self.server.is_none(), "the server is running already");
        let rt = runtime();
        let listener = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::net::TcpListener::bind(self.addr).await {
                    Ok(listener) => break listener,
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("binding {} again: {e}", self.addr);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("cannot bind {}: {e}", self.addr),
                }
            }
        });
        let secrets = Arc::new(Secrets::from_base64(&self.secrets_key).expect("secrets key"));
        let pool = rt
            .block_on(zvv_platform::db::connect(
                self.roles.runtime.clone(),
                &PoolSettings {
                    max_connections: 8,
                    acquire_timeout: Duration::from_secs(10),
                },
            ))
            .expect("the runtime pool");
        rt.block_on(zvv_notifications::check_keys(&pool, &secrets))
            .expect("the secrets key is accepted");
        let deps = Deps {
            pool,
            verifier: self
                .keys
                .verifier(zvv_notifications::SCHEMA.name())
                .expect("verifier"),
            clock: Arc::new(SystemClock),
            // short, so that the watch test shows streams outlive it
            settings: ServerSettings {
                request_timeout: Duration::from_secs(3),
                ..ServerSettings::default()
            },
            secrets,
            delivery: DeliverySettings {
                poll_interval: Duration::from_millis(100),
                ..DeliverySettings::default()
            },
            targets: TargetPolicy {
                development: true,
                allowed: vec![],
            },
            sinks: SinkEndpoints::new(),
            stream: StreamSettings {
                heartbeat: Duration::from_millis(300),
                poll: Duration::from_millis(200),
                buffer: 32,
                ..StreamSettings::default()
            },
            retention: Retention::default(),
            run_workers: true,
        };
        rt.spawn(async move {
            if let Err(e) = zvv_notifications::serve(deps, listener, std::future::pending()).await {
                eprintln!("notifications stopped with an error: {e}");
            }
        });
        self.server = Some(rt);
    }

    /// Kills the server: its tasks and every connection go at once, as in a crash.
    fn kill_server(&mut self) {
        if let Some(rt) = self.server.take() {
            rt.shutdown_background();
        }
    }

    fn token(&self, org: &str, org_type: OrgType) -> String {
        self.keys.token(org, org_type, &[Role::Professional])
    }

    fn school(&self) -> String {
        self.token(SCHOOL, OrgType::School)
    }

    /// `zvv` for the notifications server of this suite, with `token`.
    fn command(&self, token: &str) -> Command {
        let mut cmd = zvv();
        cmd.env_remove("ZVV_WEBHOOK_SECRET")
            .env("ZVV_NOTIFICATIONS_ADDR", &self.url)
            .env("ZVV_TOKEN", token);
        cmd
    }

    /// Runs `zvv args…`; returns (success, stdout, stderr).
    fn call(&mut self, token: &str, args: &[&str]) -> (bool, String, String) {
        let out: Output = self.command(token).args(args).output().expect("zvv runs");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        self.seen
            .push(format!("$ zvv {}\n{stdout}{stderr}", args.join(" ")));
        (out.status.success(), stdout, stderr)
    }

    fn ok(&mut self, token: &str, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.call(token, args);
        assert!(success, "zvv {} failed:\n{stdout}{stderr}", args.join(" "));
        stdout
    }

    fn fails(&mut self, token: &str, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.call(token, args);
        assert!(
            !success,
            "zvv {} should have failed:\n{stdout}",
            args.join(" ")
        );
        stderr
    }

    /// Publishes `event` as signalling does; returns how many deliveries and inbox items it
    /// made.
    fn publish(&self, event: Event) -> i32 {
        let token = self.keys.service_token("zvv-signalling", "notifications");
        let response = self
            .rt
            .block_on(async {
                let channel = zvv_platform::client::channel(
                    &self.url,
                    TokenSource::Static(SecretString::from(token)),
                )
                .expect("channel");
                NotificationServiceClient::new(channel)
                    .publish(PublishRequest { event: Some(event) })
                    .await
            })
            .expect("Publish");
        let r = response.into_inner();
        assert!(!r.duplicate, "a fresh event is no duplicate");
        r.routed
    }

    /// Starts a webhook sink in-process; returns its URL and what it receives.
    fn sink(&self, secret: SecretSource) -> (String, mpsc::Receiver<Received>) {
        let (tx, rx) = mpsc::channel();
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the sink");
        let addr = listener.local_addr().expect("sink address");
        let options = SinkOptions {
            secret,
            expect_authorization: Some(Arc::new(SecretString::from(SINK_AUTHORIZATION))),
        };
        self.rt.spawn(webhook_sink::serve(
            listener,
            options,
            move |received| {
                let _ = tx.send(received);
            },
            std::future::pending(),
        ));
        (format!("http://{addr}/hook"), rx)
    }

    /// `zvv inbox list` once it shows `needle`: an item is listed once every transaction that
    /// began before it was written has ended (so that cursors never skip one), which on a busy
    /// database server can take a moment.
    fn inbox_showing(&mut self, token: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self.ok(token, &["inbox", "list"]);
            if out.contains(needle) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle} in the inbox:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn assert_never_seen(&self, secret: &str) {
        let everything = self.seen.join("\n");
        assert!(
            !everything.contains(secret),
            "{secret} appeared in the output:\n{everything}"
        );
    }
}

/// A match event of signalling for `org`, of `kind` (CLIENT or FAMILY).
fn match_event(kind: &str, org: &str) -> Event {
    let match_id = uuid::Uuid::new_v4().to_string();
    Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        source: "signalling".into(),
        channel: "signalling.matches".into(),
        resource: "match".into(),
        resource_id: match_id.clone(),
        action: "found".into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp(),
            nanos: 0,
        }),
        attributes: [
            ("kind".to_owned(), kind.to_owned()),
            ("match_id".to_owned(), match_id),
        ]
        .into(),
        audience: Some(Audience {
            organisations: vec![org.to_owned()],
            municipality_codes: vec![],
        }),
        trace_parent: String::new(),
    }
}

/// The value of the first `key: value` line of `stdout`.
fn field(stdout: &str, key: &str) -> String {
    let prefix = format!("{key}:");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
}

/// The first column of the table row that mentions `needle`.
fn id_in_row(stdout: &str, needle: &str) -> String {
    stdout
        .lines()
        .find(|line| line.contains(needle))
        .and_then(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no row with {needle} in:\n{stdout}"))
}

/// The next report of the sink that `pick` accepts, within `timeout`.
fn next_report(
    rx: &mpsc::Receiver<Received>,
    timeout: Duration,
    pick: impl Fn(&Received) -> bool,
) -> Received {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) if pick(&r) => return r,
            Ok(other) => eprintln!("sink (skipped): {}", other.line()),
            Err(_) => panic!("the sink received nothing that fits within {timeout:?}"),
        }
    }
}

#[test]
fn inbox_subscriptions_from_create_to_read_and_delete() {
    let mut s = Suite::start();
    let school = s.school();

    let channels = s.ok(&school, &["subscription", "channels"]);
    assert!(
        channels
            .lines()
            .any(|l| l.starts_with("signalling.matches") && l.contains("kind")),
        "{channels}"
    );

    let created = s.ok(
        &school,
        &[
            "subscription",
            "create",
            "--channel",
            "signalling.matches",
            "--filter",
            "kind=CLIENT",
            "--channel",
            "signalling.signals",
            "--inbox",
        ],
    );
    let id = field(&created, "subscription_id");
    assert_eq!(field(&created, "delivery"), "inbox");
    assert_eq!(field(&created, "organisation"), SCHOOL);
    assert!(
        created.contains("  signalling.matches (kind=CLIENT)\n"),
        "{created}"
    );
    assert!(created.contains("  signalling.signals\n"), "{created}");
    assert!(!created.contains("signing_secret"), "{created}");

    let list = s.ok(&school, &["subscription", "list"]);
    assert_eq!(id_in_row(&list, &id), id, "{list}");
    assert!(list.contains("inbox"), "{list}");
    let shown = s.ok(&school, &["subscription", "show", &id]);
    assert_eq!(field(&shown, "subscription_id"), id);
    assert_eq!(field(&shown, "status"), "active");

    // another organisation sees neither the subscription nor anything in its inbox
    let police = s.token("politie-amsterdam", OrgType::Police);
    let err = s.fails(&police, &["subscription", "show", &id]);
    assert!(err.contains("NotFound"), "{err}");
    assert!(
        s.ok(&police, &["subscription", "list"])
            .contains("no subscriptions")
    );

    assert!(
        s.ok(&school, &["inbox", "list"])
            .contains("the inbox is empty")
    );
    let client = match_event("CLIENT", SCHOOL);
    let family = match_event("FAMILY", SCHOOL);
    assert_eq!(
        s.publish(client.clone()),
        1,
        "the client match reaches the inbox"
    );
    assert_eq!(
        s.publish(family.clone()),
        0,
        "the filter keeps family matches out"
    );

    let inbox = s.inbox_showing(&school, &client.resource_id);
    let item = id_in_row(&inbox, &client.resource_id);
    assert!(inbox.contains("kind=CLIENT"), "{inbox}");
    assert!(inbox.contains("signalling.matches"), "{inbox}");
    assert!(!inbox.contains(&family.resource_id), "{inbox}");
    assert_eq!(
        id_in_row(
            &s.ok(&school, &["inbox", "list", "--unread"]),
            &client.resource_id
        ),
        item
    );
    assert!(
        s.ok(&police, &["inbox", "list"])
            .contains("the inbox is empty")
    );

    let read = s.ok(&school, &["inbox", "read", &item]);
    assert!(read.contains("marked 1 of 1 read"), "{read}");
    let again = s.ok(&school, &["inbox", "read", &item]);
    assert!(again.contains("marked 0 of 1 read"), "{again}");
    assert!(again.contains("read already"), "{again}");
    assert!(
        s.ok(&school, &["inbox", "list", "--unread"])
            .contains("no unread items")
    );
    let listed = s.ok(&school, &["inbox", "list"]);
    assert!(
        listed.contains(&client.resource_id),
        "read items stay listed: {listed}"
    );
    let err = s.fails(
        &school,
        &["inbox", "read", &uuid::Uuid::new_v4().to_string()],
    );
    assert!(err.contains("NotFound"), "{err}");
    let err = s.fails(&police, &["inbox", "read", &item]);
    assert!(
        err.contains("NotFound"),
        "another organisation's item: {err}"
    );

    let deleted = s.ok(&school, &["subscription", "delete", &id]);
    assert!(
        deleted.contains(&format!("subscription {id} deleted")),
        "{deleted}"
    );
    let err = s.fails(&school, &["subscription", "show", &id]);
    assert!(err.contains("NotFound"), "{err}");
    assert!(err.contains(&id), "{err}");
    assert!(
        s.ok(&school, &["subscription", "list"])
            .contains("no subscriptions")
    );
    assert_eq!(
        s.publish(match_event("CLIENT", SCHOOL)),
        0,
        "nothing routed after delete"
    );
}

#[test]
fn bad_subscription_requests_are_refused_with_the_reason() {
    let mut s = Suite::start();
    let school = s.school();
    let create = ["subscription", "create"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        create.iter().chain(extra).copied().collect()
    };

    // refused before any call
    let err = s.fails(
        &school,
        &with(&[
            "--channel",
            "signalling.matches",
            "--filter",
            "kind",
            "--inbox",
        ]),
    );
    assert!(err.contains("is not KEY=VALUE"), "{err}");
    let err = s.fails(
        &school,
        &with(&[
            "--filter",
            "kind=CLIENT",
            "--channel",
            "signalling.matches",
            "--inbox",
        ]),
    );
    assert!(err.contains("comes before any --channel"), "{err}");
    let err = s.fails(
        &school,
        &with(&[
            "--channel",
            "signalling.matches",
            "--filter",
            "kind=CLIENT",
            "--filter",
            "kind=FAMILY",
            "--inbox",
        ]),
    );
    assert!(err.contains("twice"), "{err}");
    let err = s.fails(&school, &with(&["--channel", "signalling.matches"]));
    assert!(err.contains("--inbox"), "a delivery is required: {err}");
    let err = s.fails(
        &school,
        &with(&[
            "--channel",
            "signalling.matches",
            "--inbox",
            "--service",
            "x",
        ]),
    );
    assert!(err.contains("cannot be used with"), "{err}");
    let err = s.fails(
        &school,
        &with(&[
            "--channel",
            "signalling.matches",
            "--inbox",
            "--authorization",
            "Bearer x",
        ]),
    );
    assert!(
        err.contains("--webhook"),
        "--authorization needs a webhook: {err}"
    );

    // refused by the service, with the field that is wrong
    let err = s.fails(
        &school,
        &with(&[
            "--channel",
            "signalling.matches",
            "--filter",
            "colour=RED",
            "--inbox",
        ]),
    );
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(
        err.contains("channels[0].filters[\"colour\"]: is not a filter key of the channel"),
        "{err}"
    );
    let err = s.fails(
        &school,
        &with(&[
            "--channel",
            "signalling.matches",
            "--filter",
            "kind=client",
            "--inbox",
        ]),
    );
    assert!(err.contains("channels[0].filters[\"kind\"]"), "{err}");
    let err = s.fails(&school, &with(&["--channel", "signalling.nope", "--inbox"]));
    assert!(err.contains("is not a channel"), "{err}");
    let err = s.fails(
        &school,
        &with(&["--channel", "signalling.matches", "--service", "signalling"]),
    );
    assert!(err.contains("PermissionDenied"), "{err}");
    let err = s.fails(
        &school,
        &with(&[
            "--channel",
            "signalling.matches",
            "--webhook",
            "ftp://example.nl/x",
        ]),
    );
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("delivery.webhook.url"), "{err}");

    let err = s.fails("", &["subscription", "list"]);
    assert!(err.contains("no token"), "{err}");
    let err = s.fails(
        &school,
        &[
            "subscription",
            "list",
            "--notifications-addr",
            &format!("http://127.0.0.1:{}", common::free_port()),
        ],
    );
    assert!(err.contains("service unavailable"), "{err}");
    let err = s.fails(&school, &["deliveries", "list", "--subscription", "nope"]);
    assert!(err.contains("subscription_id: must be a UUID"), "{err}");
    let err = s.fails(&school, &["inbox", "watch", "--after", "nope"]);
    assert!(err.contains("after_cursor"), "{err}");
}

#[test]
fn webhook_subscriptions_are_verified_signed_delivered_and_redelivered() {
    let mut s = Suite::start();
    let school = s.school();
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("sink.secret");
    let auth_file = dir.path().join("sink.auth");
    std::fs::write(&auth_file, format!("{SINK_AUTHORIZATION}\n")).expect("auth file");
    let (url, rx) = s.sink(SecretSource::File(secret_file.clone()));

    // without the Authorization the sink expects, the test notification gets 401: refused
    let err = s.fails(
        &school,
        &[
            "subscription",
            "create",
            "--channel",
            "signalling.matches",
            "--webhook",
            &url,
        ],
    );
    assert!(err.contains("FailedPrecondition"), "{err}");
    assert!(err.contains("answered HTTP 401"), "{err}");
    let refused = next_report(&rx, Duration::from_secs(5), |_| true);
    assert_eq!(refused.status(), 401, "{}", refused.line());

    let created = s.ok(
        &school,
        &[
            "subscription",
            "create",
            "--channel",
            "signalling.matches",
            "--filter",
            "kind=CLIENT",
            "--webhook",
            &url,
            "--authorization-file",
            auth_file.to_str().expect("path"),
            "--signing-secret-file",
            secret_file.to_str().expect("path"),
        ],
    );
    let id = field(&created, "subscription_id");
    assert_eq!(field(&created, "delivery"), format!("webhook {url}"));
    assert!(created.contains("signing_secret: written to"), "{created}");
    assert!(!created.contains("whsec_"), "{created}");
    let test = next_report(&rx, Duration::from_secs(5), |_| true);
    assert_eq!(test.verdict, Verdict::TestUnchecked, "{}", test.line());
    assert_eq!(test.notification.as_ref().expect("a body").kanaal, "test");
    let secret = std::fs::read_to_string(&secret_file).expect("the secret file");
    assert!(secret.starts_with("whsec_"), "the file holds the secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret file is private");
    }

    // a published event is POSTed, signed with the secret the sink now reads from the file
    let event = match_event("CLIENT", SCHOOL);
    assert_eq!(s.publish(event.clone()), 1);
    let got = next_report(&rx, Duration::from_secs(15), |r| {
        r.webhook_id.as_deref() == Some(event.event_id.as_str())
    });
    assert_eq!(got.verdict, Verdict::Verified, "{}", got.line());
    assert!(!got.repeat);
    let n = got.notification.clone().expect("a notification");
    assert_eq!(n.kanaal, "signalling.matches");
    assert_eq!(n.actie, "update");
    assert!(
        n.resource_url
            .ends_with(&format!("/signalling/v1/matches/{}", event.resource_id)),
        "{}",
        n.resource_url
    );
    assert!(
        n.kenmerken
            .contains(&("kind".to_owned(), "CLIENT".to_owned()))
    );
    assert!(
        n.kenmerken
            .contains(&("action".to_owned(), "found".to_owned()))
    );
    let line = got.line();
    assert!(line.contains("signalling.matches update http://"), "{line}");
    assert!(
        line.contains("kenmerken: action=found kind=CLIENT"),
        "{line}"
    );
    assert!(line.contains("signature valid"), "{line}");

    // the delivery is recorded as delivered (the attempt is written just after the answer)
    let deadline = Instant::now() + Duration::from_secs(10);
    let deliveries = loop {
        let out = s.ok(&school, &["deliveries", "list", "--subscription", &id]);
        if out.contains("delivered") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let delivery = id_in_row(&deliveries, &event.event_id);
    assert!(deliveries.contains("delivered"), "{deliveries}");
    assert!(deliveries.contains("204"), "{deliveries}");
    assert_eq!(
        id_in_row(
            &s.ok(
                &school,
                &[
                    "deliveries",
                    "list",
                    "--subscription",
                    &id,
                    "--status",
                    "delivered"
                ],
            ),
            &event.event_id
        ),
        delivery
    );
    for status in ["dead-lettered", "pending", "retrying"] {
        let out = s.ok(
            &school,
            &[
                "deliveries",
                "list",
                "--subscription",
                &id,
                "--status",
                status,
            ],
        );
        assert!(out.contains("no deliveries"), "{status}: {out}");
    }

    // sent once more on request: the same webhook-id, so the receiver can tell the repeat
    let redelivered = s.ok(&school, &["deliveries", "redeliver", &delivery]);
    assert!(redelivered.contains("scheduled 1 of 1"), "{redelivered}");
    let again = next_report(&rx, Duration::from_secs(15), |r| {
        r.webhook_id.as_deref() == Some(event.event_id.as_str())
    });
    assert_eq!(again.verdict, Verdict::Verified, "{}", again.line());
    assert!(again.repeat, "{}", again.line());
    let police = s.token("politie-amsterdam", OrgType::Police);
    let err = s.fails(&police, &["deliveries", "list", "--subscription", &id]);
    assert!(err.contains("NotFound"), "{err}");

    // a forged or stale POST gets 401 from the sink
    let client = reqwest::Client::new();
    let body =
        br#"{"kanaal":"signalling.matches","actie":"update","resourceUrl":"x","kenmerken":{}}"#;
    let post = |id: &str, timestamp: i64, signature: String| {
        let request = client
            .post(&url)
            .header("authorization", SINK_AUTHORIZATION)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec());
        s.rt.block_on(async { request.send().await.expect("the sink answers").status() })
    };
    let now = chrono::Utc::now().timestamp();
    let key = zvv_notifications::domain::webhook::parse_secret(&secret).expect("secret");
    assert_eq!(
        post(
            "forged-1",
            now,
            signature(&[9u8; 32], "forged-1", now, body)
        ),
        401
    );
    let forged = next_report(&rx, Duration::from_secs(5), |_| true);
    assert!(
        forged.line().contains("does not match"),
        "{}",
        forged.line()
    );
    let stale = now - 6 * 60;
    assert_eq!(
        post("stale-1", stale, signature(&key, "stale-1", stale, body)),
        401
    );
    let late = next_report(&rx, Duration::from_secs(5), |_| true);
    assert!(late.line().contains("behind"), "{}", late.line());
    assert_eq!(
        post("good-1", now, signature(&key, "good-1", now, body)),
        204
    );
    let good = next_report(&rx, Duration::from_secs(5), |_| true);
    assert_eq!(good.verdict, Verdict::Verified);

    // without --signing-secret-file the secret is printed, once, with a note
    let printed = s.ok(
        &school,
        &[
            "subscription",
            "create",
            "--channel",
            "signalling.matches",
            "--webhook",
            &url,
            "--authorization",
            SINK_AUTHORIZATION,
            "--request-id",
            "second-webhook",
        ],
    );
    let second = field(&printed, "subscription_id");
    assert!(
        field(&printed, "signing_secret").starts_with("whsec_"),
        "{printed}"
    );
    assert!(printed.contains("shown only now"), "{printed}");
    // the same request again answers with the same subscription, without the secret
    let replay = s.ok(
        &school,
        &[
            "subscription",
            "create",
            "--channel",
            "signalling.matches",
            "--webhook",
            &url,
            "--authorization",
            SINK_AUTHORIZATION,
            "--request-id",
            "second-webhook",
        ],
    );
    assert_eq!(field(&replay, "subscription_id"), second);
    assert!(replay.contains("not shown again"), "{replay}");
    assert!(!replay.contains("whsec_"), "{replay}");
    s.seen.pop();
    s.seen.pop(); // these two named the Authorization on the command line themselves
    let shown = s.ok(&school, &["subscription", "show", &second]);
    assert!(!shown.contains("whsec_"), "{shown}");
    s.ok(&school, &["subscription", "list"]);
    s.assert_never_seen(SINK_AUTHORIZATION);
    s.assert_never_seen(secret.trim());
}

/// Reads a child's standard output line by line on a thread of its own.
struct Lines {
    rx: mpsc::Receiver<String>,
    all: Vec<String>,
}

impl Lines {
    fn of(stream: impl std::io::Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            all: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.all.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.all.push(line),
                Err(_) => panic!(
                    "no line with {needle:?} within {timeout:?}; got:\n{}",
                    self.all.join("\n")
                ),
            }
        }
    }

    /// Everything printed until the stream closed.
    fn rest(mut self) -> Vec<String> {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(10)) {
            self.all.push(line);
        }
        self.all
    }
}

fn spawn(mut cmd: Command) -> (Child, Lines, Lines) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zvv starts");
    let out = Lines::of(child.stdout.take().expect("stdout"));
    let err = Lines::of(child.stderr.take().expect("stderr"));
    (child, out, err)
}

/// Sends Ctrl-C (SIGINT) and waits for the exit status.
fn interrupt(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("zvv did not stop within 10 s of Ctrl-C");
}

#[test]
fn inbox_watch_follows_live_and_reconnects_after_its_cursor() {
    let mut s = Suite::start();
    let school = s.school();
    s.ok(
        &school,
        &[
            "subscription",
            "create",
            "--channel",
            "signalling.matches",
            "--inbox",
        ],
    );
    let first = match_event("CLIENT", SCHOOL);
    assert_eq!(s.publish(first.clone()), 1);

    let mut watch = s.command(&school);
    watch.args(["inbox", "watch", "--verbose"]);
    let (mut child, mut out, mut err) = spawn(watch);
    let line = out.wait_for(&first.resource_id, Duration::from_secs(15));
    assert!(line.contains("signalling.matches found match/"), "{line}");
    assert!(line.contains("kind=CLIENT"), "{line}");
    let first_cursor = line
        .rsplit_once("cursor ")
        .map(|(_, c)| c.trim().to_owned())
        .expect("a cursor");
    out.wait_for("heartbeat", Duration::from_secs(10));

    let second = match_event("FAMILY", SCHOOL);
    assert_eq!(s.publish(second.clone()), 1);
    out.wait_for(&second.resource_id, Duration::from_secs(15));

    // the server dies with the stream open; the watch reconnects after its last cursor
    s.kill_server();
    err.wait_for("stream dropped", Duration::from_secs(15));
    s.start_server();
    err.wait_for("reconnected after cursor", Duration::from_secs(40));
    let third = match_event("CLIENT", SCHOOL);
    assert_eq!(s.publish(third.clone()), 1);
    out.wait_for(&third.resource_id, Duration::from_secs(15));

    let status = interrupt(&mut child);
    assert!(status.success(), "Ctrl-C ends the watch cleanly: {status}");
    let lines = out.rest();
    for event in [&first, &second, &third] {
        let n = lines
            .iter()
            .filter(|l| l.contains(&event.resource_id))
            .count();
        assert_eq!(n, 1, "each item once:\n{}", lines.join("\n"));
    }
    let notes = err.rest().join("\n");
    assert!(notes.contains("continue with --after"), "{notes}");

    // from a cursor on, without --verbose: only what came after it, and no heartbeats
    let mut watch = s.command(&school);
    watch.args(["inbox", "watch", "--after", &first_cursor]);
    let (mut child, mut out, err) = spawn(watch);
    out.wait_for(&third.resource_id, Duration::from_secs(15));
    // many heartbeat intervals, and longer than the server's request timeout
    std::thread::sleep(Duration::from_secs(4));
    assert!(interrupt(&mut child).success());
    let notes = err.rest().join("\n");
    assert!(!notes.contains("dropped"), "the stream stays open: {notes}");
    let lines = out.rest();
    assert!(
        lines.iter().all(|l| !l.contains(&first.resource_id)),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(&second.resource_id)),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("heartbeat")), "{lines:?}");
}

#[test]
fn webhook_sink_command_checks_signatures_and_prints_each_notification() {
    let err = zvv()
        .args([
            "webhook-sink",
            "--listen",
            "127.0.0.1:0",
            "--secret",
            "not-base64!",
        ])
        .output()
        .expect("zvv runs");
    assert!(!err.status.success());
    assert!(
        text(&err.stderr).contains("whsec_"),
        "{}",
        text(&err.stderr)
    );

    let key = [5u8; 32];
    let secret = zvv_notifications::domain::webhook::secret_text(&key);
    let mut cmd = zvv();
    cmd.env_remove("ZVV_WEBHOOK_SECRET").args([
        "webhook-sink",
        "--listen",
        "127.0.0.1:0",
        "--secret",
        &secret,
    ]);
    let (mut child, mut out, _err) = spawn(cmd);
    let listening = out.wait_for("listening on", Duration::from_secs(10));
    let url = listening
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the address")
        .trim_end_matches('/')
        .to_owned();

    let rt = runtime();
    let client = reqwest::Client::new();
    let body = br#"{"kanaal":"signalling.referrals","hoofdObject":"http://127.0.0.1:50054/signalling/v1/referrals/r-1","resource":"referral","resourceUrl":"http://127.0.0.1:50054/signalling/v1/referrals/r-1","actie":"create","aanmaakdatum":"2026-12-03T10:00:00.000Z","kenmerken":{"level":"RED","action":"submitted"}}"#;
    let post = |id: &str, sig: String| {
        let now = chrono::Utc::now().timestamp();
        let sig = if sig.is_empty() {
            signature(&key, id, now, body)
        } else {
            sig
        };
        let request = client
            .post(format!("{url}/zvv"))
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", sig)
            .body(body.to_vec());
        rt.block_on(async { request.send().await.expect("the sink answers").status() })
    };
    assert_eq!(post("evt-1", String::new()), 204);
    let line = out.wait_for("evt-1", Duration::from_secs(5));
    assert!(
        line.contains(
            "signalling.referrals create http://127.0.0.1:50054/signalling/v1/referrals/r-1 \
             kenmerken: action=submitted level=RED"
        ),
        "{line}"
    );
    assert!(line.contains("signature valid"), "{line}");
    assert_eq!(post("evt-2", "v1,AAAA".into()), 401);
    let line = out.wait_for("evt-2", Duration::from_secs(5));
    assert!(line.contains("rejected with 401"), "{line}");
    let status = rt.block_on(async {
        client
            .get(format!("{url}/zvv"))
            .send()
            .await
            .expect("the sink answers")
            .status()
    });
    assert_eq!(status, 405);

    assert!(interrupt(&mut child).success(), "Ctrl-C stops the sink");
    let lines = out.rest().join("\n");
    assert!(
        !lines.contains(&secret),
        "the secret is never printed:\n{lines}"
    );
}
