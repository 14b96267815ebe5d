//! PostgreSQL stopped the hard way (`pg_ctl stop -m immediate`) under write load, and started
//! again: callers get retryable statuses (UNAVAILABLE, or DEADLINE_EXCEEDED at the request
//! timeout) and never INTERNAL, no answer comes later than the request timeout allows,
//! readiness follows the database while liveness stays up, and nothing acknowledged is lost or
//! doubled when the callers retry with the same `request_id`.
//!
//! Each test runs its own durable cluster, so that stopping it touches no other test.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;
use zvv_devkit::{
    devdb::{ClusterOptions, LocalCluster},
    testkit::{TestDb, passes_elfproef},
};
use zvv_e2e::Harness;
use zvv_platform::{
    auth::{OrgType, Role},
    db::PoolSettings,
    layer::unrecorded_total,
    server::ServerSettings,
};
use zvv_proto::intake::v1::RegisterSubjectRequest;

const WRITERS: usize = 8;
/// Extra time an answer may take beyond the request timeout: scheduling on a loaded two-core
/// machine.
const SLACK: Duration = Duration::from_millis(750);
/// How soon readiness must be back after the database is: the target is one second, which
/// `bench/db-outage.sh` checks on an optimised build; a debug build on a loaded two-core
/// machine, beside the other tests, can spend seconds on its first logins (SCRAM) after the
/// restart, so here it only has to come back.
const READY_AGAIN_DEBUG: Duration = Duration::from_secs(10);

/// How soon readiness must be back in the production-timeout measurement.
const READY_AGAIN: Duration = Duration::from_secs(1);

/// One RegisterSubject call as its caller saw it.
#[derive(Debug, Clone)]
struct Call {
    bsn: usize,
    request_id: String,
    started: Instant,
    took: Duration,
    code: Code,
    message: String,
    retry_hint: bool,
    subject_id: Option<String>,
}

/// Valid BSNs, computed once (the elfproef holds for about one number in eleven).
fn bsns(n: usize) -> Vec<String> {
    (100_000_000u32..)
        .map(|v| v.to_string())
        .filter(|s| passes_elfproef(s))
        .take(n)
        .collect()
}

fn register(bsn: &str, request_id: &str) -> RegisterSubjectRequest {
    RegisterSubjectRequest {
        request_id: request_id.to_owned(),
        bsn: bsn.to_owned(),
        given_name: "Noor".into(),
        family_name: "de Vries".into(),
        birth_date: "2016-05-04".into(),
        municipality_code: "GM0363".into(),
        neighbourhood_code: "WK036305".into(),
    }
}

/// Health as polled every 50 ms: (when, intake readiness, signalling readiness, liveness).
type Timeline = Vec<(
    Instant,
    Option<ServingStatus>,
    Option<ServingStatus>,
    Option<ServingStatus>,
)>;

async fn health(channel: &tonic::transport::Channel, service: &str) -> Option<ServingStatus> {
    let mut client = HealthClient::new(channel.clone());
    let answer = tokio::time::timeout(
        Duration::from_millis(500),
        client.check(HealthCheckRequest {
            service: service.to_owned(),
        }),
    )
    .await
    .ok()?
    .ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

/// What one outage did.
struct Outcome {
    calls: Vec<Call>,
    timeline: Timeline,
    crashed_at: Instant,
    back_at: Instant,
    unrecorded: u64,
}

/// Runs `WRITERS` writers against the suite, crashes the cluster after a second, starts it
/// again after `outage`, and lets the writers go on for two more seconds.
async fn outage(
    cluster: &mut LocalCluster,
    app: &Harness,
    numbers: Arc<Vec<String>>,
    outage: Duration,
) -> Outcome {
    let professional = app.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let mut client = app.intake(&professional).expect("client");
        let (stop, next, calls, numbers) =
            (stop.clone(), next.clone(), calls.clone(), numbers.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let bsn = next.fetch_add(1, Ordering::Relaxed);
                let request_id = format!("outage-{bsn}");
                let started = Instant::now();
                let result = client
                    .register_subject(register(&numbers[bsn], &request_id))
                    .await;
                let took = started.elapsed();
                let call = match result {
                    Ok(answer) => Call {
                        bsn,
                        request_id,
                        started,
                        took,
                        code: Code::Ok,
                        message: String::new(),
                        retry_hint: false,
                        subject_id: answer.into_inner().subject.map(|s| s.subject_id),
                    },
                    Err(status) => Call {
                        bsn,
                        request_id,
                        started,
                        took,
                        code: status.code(),
                        message: status.message().to_owned(),
                        retry_hint: status.get_error_details().retry_info().is_some(),
                        subject_id: None,
                    },
                };
                calls.lock().unwrap().push(call);
            }
        }));
    }

    let channels = [app.intake_url.clone(), app.signalling_url.clone()].map(|url| {
        tonic::transport::Channel::from_shared(url)
            .expect("url")
            .connect_lazy()
    });
    let timeline = Arc::new(Mutex::new(Timeline::new()));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (stop, timeline) = (watching.clone(), timeline.clone());
        tokio::spawn(async move {
            while stop.load(Ordering::Relaxed) {
                let intake = health(&channels[0], "zvv.intake.v1.SubjectService").await;
                let signalling = health(&channels[1], "zvv.signalling.v1.SignalService").await;
                let live = health(&channels[0], "").await;
                timeline
                    .lock()
                    .unwrap()
                    .push((Instant::now(), intake, signalling, live));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let unrecorded_before = unrecorded_total();
    let crashed_at = Instant::now();
    cluster.crash().expect("stop the cluster (immediate)");
    tokio::time::sleep(outage).await;
    cluster
        .start_again()
        .await
        .expect("start the cluster again");
    // back: the services' database accepts a connection again (the first one after crash
    // recovery can take a while: it rebuilds the catalog caches)
    let first = Instant::now();
    {
        use sqlx::Connection;
        let conn = sqlx::PgConnection::connect_with(&app.db.options)
            .await
            .expect("connect after the restart");
        conn.close().await.expect("close");
    }
    let back_at = Instant::now();
    tracing::info!(after = ?crashed_at.elapsed(), first_connection = ?first.elapsed(), "the database is back");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    // watch until both services are ready again (or long past any target)
    let give_up = back_at + READY_AGAIN_DEBUG + Duration::from_secs(2);
    while Instant::now() < give_up {
        let ready = timeline
            .lock()
            .unwrap()
            .iter()
            .any(|(at, intake, signalling, _)| {
                *at > back_at
                    && *intake == Some(ServingStatus::Serving)
                    && *signalling == Some(ServingStatus::Serving)
            });
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watching.store(false, Ordering::Relaxed);
    watcher.await.expect("health watcher");
    let unrecorded = unrecorded_total() - unrecorded_before;
    let calls = calls.lock().unwrap().clone();
    let timeline = timeline.lock().unwrap().clone();
    Outcome {
        calls,
        timeline,
        crashed_at,
        back_at,
        unrecorded,
    }
}

/// Retries every call that was not acknowledged, with its request_id, until it is; then checks
/// that each BSN tried is registered exactly once and each acknowledged subject exists.
async fn nothing_lost_or_doubled(app: &Harness, numbers: &[String], outcome: &Outcome) -> usize {
    // the test's own pool has connections the stopped server dropped, too
    zvv_platform::db::sweep_idle(&app.pool).await;
    let professional = app.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    let mut client = app.intake(&professional).expect("client");
    let mut acknowledged: BTreeMap<usize, String> = BTreeMap::new();
    let mut retried = 0;
    for call in &outcome.calls {
        match &call.subject_id {
            Some(id) => {
                acknowledged.insert(call.bsn, id.clone());
            }
            None => {
                retried += 1;
                let answer = client
                    .register_subject(register(&numbers[call.bsn], &call.request_id))
                    .await
                    .unwrap_or_else(|s| {
                        panic!("retry of {} after the outage: {s:?}", call.request_id)
                    });
                let id = answer.into_inner().subject.expect("subject").subject_id;
                acknowledged.insert(call.bsn, id);
            }
        }
    }
    let ids: Vec<uuid::Uuid> = acknowledged
        .values()
        .map(|id| id.parse().expect("uuid"))
        .collect();
    let found: i64 =
        sqlx::query_scalar("SELECT count(*) FROM intake.subjects WHERE subject_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&app.pool)
            .await
            .expect("count acknowledged subjects");
    assert_eq!(
        found as usize,
        ids.len(),
        "an acknowledged subject is missing"
    );
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.subjects")
        .fetch_one(&app.pool)
        .await
        .expect("count subjects");
    assert_eq!(
        total as usize,
        acknowledged.len(),
        "a person exists twice, or a stray row"
    );
    retried
}

/// Prints what callers saw per status: count and slowest answer.
fn report(name: &str, outcome: &Outcome) {
    let mut by_code: BTreeMap<String, (usize, Duration)> = BTreeMap::new();
    for call in &outcome.calls {
        let e = by_code.entry(format!("{:?}", call.code)).or_default();
        e.0 += 1;
        e.1 = e.1.max(call.took);
    }
    let not_serving = first_after(outcome, outcome.crashed_at, ServingStatus::NotServing);
    let serving = first_after(outcome, outcome.back_at, ServingStatus::Serving);
    eprintln!(
        "{name}: {} calls; {}; readiness NOT_SERVING {:?} after the stop, SERVING {:?} after the start; {} calls unaudited",
        outcome.calls.len(),
        by_code
            .iter()
            .map(|(code, (n, max))| format!("{code} {n} (slowest {:.2} s)", max.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        not_serving,
        serving,
        outcome.unrecorded,
    );
}

/// How long after `since` both services first reported `status`.
fn first_after(outcome: &Outcome, since: Instant, status: ServingStatus) -> Option<Duration> {
    outcome
        .timeline
        .iter()
        .find(|(at, intake, signalling, _)| {
            *at > since && *intake == Some(status) && *signalling == Some(status)
        })
        .map(|(at, ..)| *at - since)
}

/// The checks every outage must pass; `expect` is the retryable code calls in the outage get.
async fn check(
    name: &str,
    app: &Harness,
    numbers: &[String],
    outcome: &Outcome,
    settings: &ServerSettings,
    expect: Code,
    ready_again: Duration,
) {
    report(name, outcome);
    // the answer comes by the request timeout, audit write included
    let limit = settings.request_timeout + SLACK;
    let mut wrong = Vec::new();
    for call in &outcome.calls {
        if !matches!(
            call.code,
            Code::Ok | Code::Unavailable | Code::DeadlineExceeded
        ) {
            wrong.push(format!(
                "{}: {:?} {}",
                call.request_id, call.code, call.message
            ));
        }
        if call.took > limit {
            wrong.push(format!(
                "{} answered after {:?} ({:?})",
                call.request_id, call.took, call.code
            ));
        }
        if call.code == Code::Unavailable
            && (!call.retry_hint || !call.message.contains("request_id"))
        {
            wrong.push(format!(
                "{}: UNAVAILABLE without retry hint: {}",
                call.request_id, call.message
            ));
        }
        if call.code == Code::DeadlineExceeded && !call.message.contains("request_id") {
            wrong.push(format!("{}: {}", call.request_id, call.message));
        }
    }
    assert!(wrong.is_empty(), "{name}:\n{}", wrong.join("\n"));
    let during = outcome
        .calls
        .iter()
        .filter(|c| c.started >= outcome.crashed_at && c.started < outcome.back_at)
        .filter(|c| c.code == expect)
        .count();
    assert!(
        during > 0,
        "{name}: no call in the outage answered {expect:?}"
    );
    assert!(
        outcome
            .calls
            .iter()
            .any(|c| c.code == Code::Ok && c.started > outcome.back_at),
        "{name}: no call succeeded after the database came back"
    );
    assert!(
        outcome.unrecorded > 0,
        "{name}: calls failed in the outage, yet none was counted unaudited"
    );

    // readiness follows the database, liveness stays up
    let not_serving = first_after(outcome, outcome.crashed_at, ServingStatus::NotServing)
        .unwrap_or_else(|| panic!("{name}: readiness never went NOT_SERVING"));
    assert!(
        not_serving <= Duration::from_secs(2),
        "{name}: NOT_SERVING only after {not_serving:?}"
    );
    let serving = first_after(outcome, outcome.back_at, ServingStatus::Serving)
        .unwrap_or_else(|| panic!("{name}: readiness never came back"));
    assert!(
        serving <= ready_again,
        "{name}: SERVING only {serving:?} after the database was back"
    );
    assert!(
        outcome
            .timeline
            .iter()
            .all(|(.., live)| *live == Some(ServingStatus::Serving)),
        "{name}: liveness left SERVING"
    );

    let retried = nothing_lost_or_doubled(app, numbers, outcome).await;
    eprintln!(
        "{name}: {retried} unacknowledged calls retried with their request_id: all registered once"
    );

    for schema in [zvv_intake::SCHEMA, zvv_signalling::SCHEMA] {
        let report = app
            .keys
            .verify_audit(&app.pool, schema)
            .await
            .expect("verify");
        assert!(
            report.is_intact(),
            "{name}: {}: {:?}",
            schema.name(),
            report.problems
        );
    }
}

async fn cluster() -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::tempdir().expect("temp dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // the postgres OS user (when tests run as root) must be able to enter it
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("mode");
    }
    let cluster = LocalCluster::start(
        &dir.path().join("pg"),
        // durable: an immediate stop must not lose what was committed
        ClusterOptions {
            port: None,
            durable: true,
        },
    )
    .await
    .expect("cluster");
    (dir, cluster)
}

fn settings(request_timeout: Duration) -> ServerSettings {
    ServerSettings {
        request_timeout,
        ..ServerSettings::default()
    }
}

/// A short outage, with a pool that gives up on a connection before the request timeout:
/// calls in the outage are answered UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_outage_is_answered_unavailable_and_loses_nothing() {
    let _serial = zvv_e2e::HEAVY.lock().await;
    let (_dir, mut cluster) = cluster().await;
    let db = TestDb::on_cluster(&cluster).await.expect("database");
    let settings = settings(Duration::from_secs(3));
    let pools = PoolSettings {
        max_connections: 10,
        acquire_timeout: Duration::from_secs(1),
    };
    let app = Harness::start_on(db, settings.clone(), pools)
        .await
        .expect("suite");
    let numbers = Arc::new(bsns(20_000));
    let outcome = outage(&mut cluster, &app, numbers.clone(), Duration::from_secs(3)).await;
    check(
        "3 s outage",
        &app,
        &numbers,
        &outcome,
        &settings,
        Code::Unavailable,
        READY_AGAIN_DEBUG,
    )
    .await;
    app.stop().await;
}

/// A long outage, with a pool that would wait for a connection longer than the request
/// timeout: calls are answered DEADLINE_EXCEEDED at the request timeout, not when the
/// database comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_keeps_the_request_timeout() {
    let _serial = zvv_e2e::HEAVY.lock().await;
    let (_dir, mut cluster) = cluster().await;
    let db = TestDb::on_cluster(&cluster).await.expect("database");
    let settings = settings(Duration::from_secs(3));
    let pools = PoolSettings {
        max_connections: 10,
        acquire_timeout: Duration::from_secs(10),
    };
    let app = Harness::start_on(db, settings.clone(), pools)
        .await
        .expect("suite");
    let numbers = Arc::new(bsns(20_000));
    let outcome = outage(&mut cluster, &app, numbers.clone(), Duration::from_secs(12)).await;
    check(
        "12 s outage",
        &app,
        &numbers,
        &outcome,
        &settings,
        Code::DeadlineExceeded,
        READY_AGAIN_DEBUG,
    )
    .await;
    app.stop().await;
}

/// The production defaults (10 s request timeout, 5 s to get a connection) through outages of
/// 3 s and 12 s; run by `bench/db-outage.sh`, which prints what callers saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement with production timeouts, run by bench/db-outage.sh"]
async fn outages_with_production_timeouts() {
    let _serial = zvv_e2e::HEAVY.lock().await;
    let settings = ServerSettings::default();
    let pools = PoolSettings::default();
    for (name, seconds) in [("3 s outage, defaults", 3), ("12 s outage, defaults", 12)] {
        let (_dir, mut cluster) = cluster().await;
        let db = TestDb::on_cluster(&cluster).await.expect("database");
        let app = Harness::start_on(db, settings.clone(), pools.clone())
            .await
            .expect("suite");
        let numbers = Arc::new(bsns(40_000));
        let outcome = outage(
            &mut cluster,
            &app,
            numbers.clone(),
            Duration::from_secs(seconds),
        )
        .await;
        check(
            name,
            &app,
            &numbers,
            &outcome,
            &settings,
            Code::Unavailable,
            READY_AGAIN,
        )
        .await;
        app.stop().await;
    }
}
