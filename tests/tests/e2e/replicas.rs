//! Replicas: every background job does its work exactly once when two replicas of a service run
//! it at the same time against one database. A replica here is what a second process of the
//! service has: a pool of its own as the service's runtime role (and, for the jobs driven by the
//! clock, a clock of its own, so that the suite's own servers see nothing due); the two run the
//! job side by side, round after round. Every count is exact: a job run twice over the same rows
//! fails these tests.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::StatusCode, http::Uri, routing::post};
use chrono::{DateTime, NaiveDate, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;
use zvv_devkit::testkit::valid_bsn;
use zvv_e2e::{Harness, Options};
use zvv_platform::{
    audit::{CallContext, seal},
    auth::{OrgType, Role},
    client::{TokenSource, channel},
    clock::{Clock, ManualClock, SharedClock},
    db::Schema,
    outbox::Event as OutboxEvent,
    relay::{self, GrpcPublisher, PublishError, Published, Publisher, RelaySettings},
};
use zvv_proto::{
    events::v1 as epb,
    intake::v1::RegisterSubjectRequest,
    notifications::v1::{self as npb, create_subscription_request::Delivery},
    reintegration::v1::{self as rpb, record_detention_event_request::Subject as DetentionSubject},
    signalling::v1::{
        Contact, ReferralLevel, RegisterSignalRequest, SubmitReferralRequest,
        referral_service_client::ReferralServiceClient, register_signal_request,
        submit_referral_request,
    },
};

/// Two runtime pools of the service of `schema`: two replicas of it.
async fn replicas(suite: &Harness, schema: Schema) -> (PgPool, PgPool) {
    (
        suite.replica_pool(schema).await.expect("replica a"),
        suite.replica_pool(schema).await.expect("replica b"),
    )
}

/// A clock of the replicas, standing at `at`.
fn clock_at(at: DateTime<Utc>) -> SharedClock {
    Arc::new(ManualClock::new(at))
}

fn day(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Rows of `(key, n)` as a map.
async fn counts_by(pool: &PgPool, sql: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .collect()
}

/// The ids every audit record of `action` in `schema` names, each with the number of records
/// that name it.
async fn audited_ids(pool: &PgPool, schema: &str, action: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(format!(
        "SELECT u.id::text, count(*) FROM {schema}.audit_entries e, unnest(e.object_ids) AS u(id) \
         WHERE e.action = $1 GROUP BY 1"
    )))
    .bind(action)
    .fetch_all(pool)
    .await
    .expect("audited ids")
    .into_iter()
    .collect()
}

/// Runs `make(i)` for every `i` below `n`, `parallel` at a time; the results in order of `i`.
async fn each<T, F, Fut>(n: usize, parallel: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut running = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < n || !running.is_empty() {
        while next < n && running.len() < parallel {
            let work = make(next);
            running.spawn(async move { (next, work.await) });
            next += 1;
        }
        if let Some(done) = running.join_next().await {
            let (i, value) = done.expect("a task of the test");
            results[i] = Some(value);
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every task ran"))
        .collect()
}

/// Waits until `check` holds, for at most 60 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 60 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_each_once(what: &str, counts: &BTreeMap<String, i64>) {
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "{what} not exactly once: {twice:?}");
}

// ---------------------------------------------------------------------------------------------
// signalling: the overdue-referral monitor

/// The birth date of the referred children.
const REFERRED_BORN: &str = "2019-04-05";

/// Submits `n` orange referrals of children not yet known (BSNs from number `first`), born in
/// 2019 and observed today; their ids.
async fn submit_referrals(suite: &Harness, first: usize, n: usize) -> Vec<String> {
    let police = suite.token("politie-amsterdam", OrgType::Police, &[Role::Professional]);
    let today = day(suite.clock.today());
    each(n, 8, |i| {
        let mut client = ReferralServiceClient::new(
            channel(
                &suite.signalling_url,
                TokenSource::Static(SecretString::from(police.clone())),
            )
            .expect("channel"),
        );
        let request = SubmitReferralRequest {
            request_id: Uuid::new_v4().to_string(),
            subject: Some(submit_referral_request::Subject::Bsn(valid_bsn(first + i))),
            source_instrument: "ProKid 12-".into(),
            instrument_version: "2.1".into(),
            level: ReferralLevel::Orange as i32,
            observed_on: today.clone(),
            municipality_code: "GM0363".into(),
            birth_date: REFERRED_BORN.into(),
        };
        async move {
            client
                .submit_referral(request)
                .await
                .expect("referral submitted")
                .into_inner()
                .referral
                .expect("referral")
                .referral_id
        }
    })
    .await
}

const REFERRAL_ROUNDS: usize = 2;
/// More than the monitor's batch (100), so that each round takes several batches.
const REFERRALS_PER_ROUND: usize = 130;

/// Orange referrals left undecided past their deadline, round after round, with both replicas
/// running the monitor at once: one `signalling.referral.overdue` event per referral, and the
/// two replicas' counts add up to the referrals of the round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overdue_referrals_are_reported_once_by_two_replicas() {
    let _heavy = zvv_e2e::HEAVY.lock().await;
    let started = std::time::Instant::now();
    let suite = Harness::start().await.expect("suite starts");
    let (a, b) = replicas(&suite, zvv_signalling::SCHEMA).await;
    // eight days on for the replicas: five working days have passed
    let later = clock_at(suite.clock.now() + chrono::Duration::days(8));

    let mut submitted = BTreeSet::new();
    let (mut by_a, mut by_b) = (0, 0);
    for round in 0..REFERRAL_ROUNDS {
        let ids = submit_referrals(
            &suite,
            1000 + round * REFERRALS_PER_ROUND,
            REFERRALS_PER_ROUND,
        )
        .await;
        submitted.extend(ids);
        let (ra, rb) = tokio::join!(
            zvv_signalling::report_overdue_referrals(&a, later.clone()),
            zvv_signalling::report_overdue_referrals(&b, later.clone()),
        );
        let (ra, rb) = (ra.expect("replica a"), rb.expect("replica b"));
        assert_eq!(
            ra + rb,
            REFERRALS_PER_ROUND as u64,
            "round {round}: replica a reported {ra}, replica b {rb}"
        );
        by_a += ra;
        by_b += rb;
    }
    // nothing is left to report
    let (ra, rb) = tokio::join!(
        zvv_signalling::report_overdue_referrals(&a, later.clone()),
        zvv_signalling::report_overdue_referrals(&b, later.clone()),
    );
    assert_eq!((ra.expect("a"), rb.expect("b")), (0, 0));

    let events = counts_by(
        &suite.pool,
        "SELECT ids->>'referral_id', count(*) FROM signalling.outbox \
         WHERE event_type = 'signalling.referral.overdue' GROUP BY 1",
    )
    .await;
    assert_each_once("an overdue event per referral", &events);
    assert_eq!(
        events.keys().cloned().collect::<BTreeSet<_>>(),
        submitted,
        "every referral, and only those, reported"
    );
    assert_eq!(by_a + by_b, submitted.len() as u64);
    assert!(
        by_a > 0 && by_b > 0,
        "both replicas did part of the work: a {by_a}, b {by_b}"
    );
    assert_eq!(
        count(
            &suite.pool,
            "SELECT count(*) FROM signalling.referrals WHERE overdue_reported_at IS NULL"
        )
        .await,
        0
    );
    eprintln!(
        "overdue referrals: {} reported (a {by_a}, b {by_b}) in {:?}",
        submitted.len(),
        started.elapsed()
    );
    suite.stop().await;
}

// ---------------------------------------------------------------------------------------------
// reintegration: the deadline monitor

const EPISODES: usize = 16;
const MONITOR_DAYS: i64 = 70;

/// Episodes whose plans' deadlines come and pass while both replicas run the deadline monitor
/// every day: each action's warning (approaching, missed) is one event and one audit mention,
/// and the two replicas' reports add up to the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deadline_warnings_are_given_once_by_two_replicas() {
    let _heavy = zvv_e2e::HEAVY.lock().await;
    let started = std::time::Instant::now();
    let suite = Harness::start().await.expect("suite starts");
    let (a, b) = replicas(&suite, zvv_reintegration::SCHEMA).await;
    let prison = suite.token("pi-vught", OrgType::Prison, &[Role::Professional]);
    let today = suite.clock.today();
    let detentions = each(EPISODES, 4, |i| {
        let mut client = suite.detentions(&prison).expect("client");
        let request = rpb::RecordDetentionEventRequest {
            request_id: Uuid::new_v4().to_string(),
            external_ref: format!("PI-VUGHT-REPLICA-{i}"),
            subject: Some(DetentionSubject::Bsn(valid_bsn(3000 + i))),
            birth_date: "1990-03-14".into(),
            kind: rpb::DetentionEventKind::Begin.into(),
            institution_code: "PI-VUGHT".into(),
            institution_type: rpb::InstitutionType::Pi.into(),
            occurred_on: day(today),
            expected_release_on: day(today + chrono::Duration::days(30 + i as i64 * 2)),
            municipality_code: "GM0855".into(),
        };
        async move {
            client
                .record_detention_event(request)
                .await
                .expect("the start of a detention")
                .into_inner()
                .detention
                .expect("episode")
                .detention_id
        }
    })
    .await;
    assert_eq!(detentions.len(), EPISODES);

    let now = suite.clock.now();
    let (mut upcoming, mut missed) = ([0u64; 2], [0u64; 2]);
    for d in 1..=MONITOR_DAYS {
        let clock = clock_at(now + chrono::Duration::days(d));
        let (ra, rb) = tokio::join!(
            zvv_reintegration::run_deadline_monitor(
                &a,
                &clock,
                zvv_reintegration::DEFAULT_WARN_WORKING_DAYS
            ),
            zvv_reintegration::run_deadline_monitor(
                &b,
                &clock,
                zvv_reintegration::DEFAULT_WARN_WORKING_DAYS
            ),
        );
        for (i, r) in [ra, rb].into_iter().enumerate() {
            let r = r.unwrap_or_else(|e| panic!("day {d}: replica {i}: {e}"));
            upcoming[i] += r.upcoming;
            missed[i] += r.missed;
        }
    }

    let approaching = counts_by(
        &suite.pool,
        "SELECT ids->>'deadline_id', count(*) FROM reintegration.outbox \
         WHERE event_type = 'reintegration.deadline.approaching' GROUP BY 1",
    )
    .await;
    let lapsed = counts_by(
        &suite.pool,
        "SELECT ids->>'deadline_id', count(*) FROM reintegration.outbox \
         WHERE event_type = 'reintegration.deadline.missed' GROUP BY 1",
    )
    .await;
    assert_each_once("an approaching warning per action", &approaching);
    assert_each_once("a missed warning per action", &lapsed);
    assert!(
        !approaching.is_empty() && !lapsed.is_empty(),
        "the days passed warnings of both kinds: {} approaching, {} missed",
        approaching.len(),
        lapsed.len()
    );
    assert_eq!(
        upcoming[0] + upcoming[1],
        approaching.len() as u64,
        "approaching: a {} + b {}",
        upcoming[0],
        upcoming[1]
    );
    assert_eq!(
        missed[0] + missed[1],
        lapsed.len() as u64,
        "missed: a {} + b {}",
        missed[0],
        missed[1]
    );
    assert!(
        upcoming[0] + missed[0] > 0 && upcoming[1] + missed[1] > 0,
        "both replicas did part of the work: {upcoming:?} {missed:?}"
    );
    // the actions' marks agree with the events
    let warned = counts_by(
        &suite.pool,
        "SELECT action_id::text, 1::bigint FROM reintegration.actions WHERE warned_at IS NOT NULL",
    )
    .await;
    let marked_missed = counts_by(
        &suite.pool,
        "SELECT action_id::text, 1::bigint FROM reintegration.actions WHERE missed_at IS NOT NULL",
    )
    .await;
    assert_eq!(
        warned.keys().collect::<Vec<_>>(),
        approaching.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        marked_missed.keys().collect::<Vec<_>>(),
        lapsed.keys().collect::<Vec<_>>()
    );
    // each warning is in one audit record: an action is named as often as it was warned
    let audited = audited_ids(&suite.pool, "reintegration", "deadline-monitor").await;
    for (action, _) in approaching.iter().chain(&lapsed) {
        let expected =
            i64::from(approaching.contains_key(action)) + i64::from(lapsed.contains_key(action));
        assert_eq!(
            audited.get(action).copied().unwrap_or(0),
            expected,
            "audit records naming action {action}"
        );
    }
    eprintln!(
        "deadline monitor: {} approaching, {} missed (a {}/{}, b {}/{}) in {:?}",
        approaching.len(),
        lapsed.len(),
        upcoming[0],
        missed[0],
        upcoming[1],
        missed[1],
        started.elapsed()
    );
    suite.stop().await;
}

// ---------------------------------------------------------------------------------------------
// the audit sealer

const WRITERS: usize = 6;
const WRITES_PER_WRITER: usize = 40;

fn job_context(action: &str) -> CallContext {
    CallContext::for_job(
        action,
        "",
        "replica-test",
        "zvv-signalling",
        "test of the audit sealer",
    )
}

/// Two replicas seal signalling's audit log while writers commit entries in overlapping
/// transactions (one of them open across many rounds, one rolled back): every committed entry
/// is sealed exactly once, the replicas' counts add up to the entries, the seals are one
/// unbroken sequence and the chain verifies as `zvv audit verify` verifies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_log_is_sealed_once_by_two_replicas() {
    let _heavy = zvv_e2e::HEAVY.lock().await;
    let started = std::time::Instant::now();
    // the servers seal once at start: the replicas are the sealers
    let suite = Harness::start_with_options(Options {
        sealers: false,
        ..Options::default()
    })
    .await
    .expect("suite starts");
    let schema = zvv_signalling::SCHEMA;
    let (a, b) = replicas(&suite, schema).await;
    let writers = suite.replica_pool(schema).await.expect("writers' pool");
    let sealed_before = count(&suite.pool, "SELECT count(*) FROM signalling.audit_seals").await;

    let writing = Arc::new(AtomicBool::new(true));
    let sealer = |pool: PgPool| {
        let writing = writing.clone();
        tokio::spawn(async move {
            let mut sealed = 0;
            let mut rounds_with_the_lock = 0;
            while writing.load(Ordering::SeqCst) {
                let round = seal::seal_batch(&pool, schema, false)
                    .await
                    .expect("a sealing round");
                sealed += round.sealed;
                rounds_with_the_lock += u64::from(round.had_the_lock && round.sealed > 0);
                if round.sealed == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            // what is left, waiting for the lock
            sealed += seal::seal_all(&pool, schema)
                .await
                .expect("sealing the rest");
            (sealed, rounds_with_the_lock)
        })
    };
    let (seal_a, seal_b) = (sealer(a.clone()), sealer(b.clone()));

    // a transaction that stays open while everything else is written and sealed
    let mut long = writers.begin().await.expect("long transaction");
    zvv_platform::audit::append(
        &mut long,
        schema,
        &job_context("replicas/long").record(vec![Uuid::new_v4()], "OK", Utc::now()),
    )
    .await
    .expect("entry of the long transaction");
    // one that never commits
    let mut rolled_back = writers.begin().await.expect("transaction");
    zvv_platform::audit::append(
        &mut rolled_back,
        schema,
        &job_context("replicas/rolled-back").record(vec![], "OK", Utc::now()),
    )
    .await
    .expect("entry");
    let written: Vec<usize> = each(WRITERS, WRITERS, |w| {
        let pool = writers.clone();
        async move {
            let mut entries = 0;
            for i in 0..WRITES_PER_WRITER {
                let mut tx = pool.begin().await.expect("begin");
                // one to three entries (the last with the commit), with pauses between: the
                // writers' transactions overlap each other and the sealing rounds
                let n = 1 + (w + i) % 3;
                for k in 1..n {
                    zvv_platform::audit::append(
                        &mut tx,
                        schema,
                        &job_context("replicas/write").record(
                            vec![Uuid::new_v4()],
                            "OK",
                            Utc::now(),
                        ),
                    )
                    .await
                    .expect("entry");
                    tokio::time::sleep(Duration::from_millis(((w * 7 + i + k) % 5) as u64)).await;
                }
                tokio::time::sleep(Duration::from_millis(((w + i) % 3) as u64)).await;
                zvv_platform::audit::commit(
                    tx,
                    schema,
                    &job_context("replicas/write"),
                    vec![Uuid::new_v4()],
                    "OK",
                    Utc::now(),
                )
                .await
                .expect("commit with its entry");
                entries += n;
            }
            entries
        }
    })
    .await;
    rolled_back.rollback().await.expect("rollback");
    long.commit()
        .await
        .expect("the long transaction commits last");
    writing.store(false, Ordering::SeqCst);
    let (a_sealed, a_rounds) = seal_a.await.expect("replica a");
    let (b_sealed, b_rounds) = seal_b.await.expect("replica b");

    let entries = count(&suite.pool, "SELECT count(*) FROM signalling.audit_entries").await;
    let written: usize = written.iter().sum();
    assert_eq!(
        count(
            &suite.pool,
            "SELECT count(*) FROM signalling.audit_entries WHERE action LIKE 'replicas/%'"
        )
        .await,
        written as i64 + 1,
        "every committed entry is there, the rolled-back one is not"
    );
    assert_eq!(
        sealed_before + (a_sealed + b_sealed) as i64,
        entries,
        "the replicas sealed every entry once: a {a_sealed}, b {b_sealed}, {sealed_before} at start"
    );
    assert_eq!(
        count(&suite.pool, "SELECT count(*) FROM signalling.audit_seals").await,
        entries
    );
    assert_eq!(
        count(
            &suite.pool,
            "SELECT count(DISTINCT entry_id) FROM signalling.audit_seals"
        )
        .await,
        entries,
        "no entry sealed twice"
    );
    assert_eq!(
        count(
            &suite.pool,
            "SELECT coalesce(max(seq), 0) FROM signalling.audit_seals"
        )
        .await,
        entries,
        "the seals are numbered 1..n without a gap"
    );
    assert_eq!(
        count(
            &suite.pool,
            "SELECT count(*) FROM signalling.audit_entries e WHERE NOT EXISTS \
             (SELECT 1 FROM signalling.audit_seals s WHERE s.entry_id = e.entry_id)"
        )
        .await,
        0,
        "every entry is sealed, the long transaction's too"
    );
    assert!(
        a_rounds > 0 && b_rounds > 0,
        "both replicas sealed: a in {a_rounds} rounds, b in {b_rounds}"
    );
    let report = suite
        .keys
        .verify_audit(&suite.pool, schema)
        .await
        .expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries, entries as u64, "{report:?}");
    assert_eq!(report.seals, entries as u64, "{report:?}");
    assert_eq!(report.pending, 0, "{report:?}");
    eprintln!(
        "sealer: {entries} entries (a {a_sealed} in {a_rounds} rounds, b {b_sealed} in {b_rounds}) \
         in {:?}",
        started.elapsed()
    );
    suite.stop().await;
}

// ---------------------------------------------------------------------------------------------
// the outbox relay

/// Publishes through NotificationService and counts every call per event id.
struct Counting {
    inner: GrpcPublisher,
    calls: Mutex<HashMap<String, u32>>,
}

impl Publisher for Counting {
    fn publish(
        &self,
        event: epb::Event,
    ) -> Pin<Box<dyn Future<Output = Result<Published, PublishError>> + Send + '_>> {
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(event.event_id.clone())
            .or_default() += 1;
        self.inner.publish(event)
    }
}

const RELAY_TRANSACTIONS: usize = 30;
const EVENTS_PER_TRANSACTION: usize = 8;

/// Two relays of signalling's outbox, each as a replica of signalling with its own pool,
/// publish to notifications while signalling writes events: each event is published once —
/// one Publish call in all (counted by each relay's publisher), one Publish audit entry in
/// notifications, one event there — and every row is marked published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbox_is_relayed_once_by_two_replicas() {
    let _heavy = zvv_e2e::HEAVY.lock().await;
    let started = std::time::Instant::now();
    // the servers relay nothing: the replicas are the relays
    let suite = Harness::start_with_options(Options {
        relays: false,
        ..Options::default()
    })
    .await
    .expect("suite starts");
    let schema = zvv_signalling::SCHEMA;
    let (a, b) = replicas(&suite, schema).await;
    let writer = suite.replica_pool(schema).await.expect("writer's pool");
    let publisher = || {
        Arc::new(Counting {
            inner: GrpcPublisher::connect(
                &suite.notifications_url,
                TokenSource::Static(SecretString::from(
                    suite.keys.service_token("zvv-signalling", "notifications"),
                )),
            )
            .expect("publisher"),
            calls: Mutex::default(),
        })
    };
    let (pub_a, pub_b) = (publisher(), publisher());
    let settings = RelaySettings {
        // small rounds: the lock changes hands often
        batch_size: 3,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        ..RelaySettings::default()
    };
    let writing = Arc::new(AtomicBool::new(true));
    let relay_on = |pool: PgPool, publisher: Arc<Counting>| {
        let (writing, settings) = (writing.clone(), settings.clone());
        tokio::spawn(async move {
            let mut rounds_with_the_lock = 0u64;
            loop {
                let last = !writing.load(Ordering::SeqCst);
                let round = relay::relay_batch(&pool, schema, &*publisher, &settings)
                    .await
                    .expect("a relay round");
                assert!(!round.failed, "a publish failed");
                rounds_with_the_lock += u64::from(round.published > 0);
                if last
                    && round.had_the_lock
                    && round.published == 0
                    && relay::lag(&pool, schema).await.expect("lag").unpublished == 0
                {
                    return rounds_with_the_lock;
                }
                if round.published == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    let (relay_a, relay_b) = (
        relay_on(a.clone(), pub_a.clone()),
        relay_on(b.clone(), pub_b.clone()),
    );

    let mut written = BTreeSet::new();
    for _ in 0..RELAY_TRANSACTIONS {
        let mut tx = writer.begin().await.expect("begin");
        for _ in 0..EVENTS_PER_TRANSACTION {
            let event = OutboxEvent::new("signalling.match.updated")
                .id("match_id", Uuid::new_v4())
                .code("kind", "CLIENT")
                .to_organisation("school-7");
            zvv_platform::outbox::append(&mut tx, schema, &event, Utc::now())
                .await
                .expect("event");
            written.insert(event.event_id.to_string());
        }
        tx.commit().await.expect("commit");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    writing.store(false, Ordering::SeqCst);
    let a_rounds = relay_a.await.expect("relay a");
    let b_rounds = relay_b.await.expect("relay b");

    let calls = |p: &Counting| p.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (calls_a, calls_b) = (calls(&pub_a), calls(&pub_b));
    let mut all: BTreeMap<String, i64> = BTreeMap::new();
    for (id, n) in calls_a.iter().chain(&calls_b) {
        *all.entry(id.clone()).or_default() += i64::from(*n);
    }
    assert_each_once("a Publish call per event", &all);
    let outbox: BTreeSet<String> = counts_by(
        &suite.pool,
        "SELECT event_id::text, 1::bigint FROM signalling.outbox",
    )
    .await
    .into_keys()
    .collect();
    assert!(written.is_subset(&outbox));
    assert_eq!(
        all.keys().cloned().collect::<BTreeSet<_>>(),
        outbox,
        "every event of the outbox, and nothing else, published"
    );
    assert_eq!(
        count(
            &suite.pool,
            "SELECT count(*) FROM signalling.outbox WHERE published_at IS NULL"
        )
        .await,
        0
    );
    assert!(
        !calls_a.is_empty() && !calls_b.is_empty(),
        "both relays published: a {} events in {a_rounds} rounds, b {} in {b_rounds}",
        calls_a.len(),
        calls_b.len()
    );
    // notifications saw each event once: one Publish (a second one is audited too) and one row
    let published: BTreeMap<String, i64> = audited_ids(
        &suite.pool,
        "notifications",
        "zvv.notifications.v1.NotificationService/Publish",
    )
    .await
    .into_iter()
    .filter(|(id, _)| outbox.contains(id))
    .collect();
    assert_each_once("a Publish audited in notifications per event", &published);
    assert_eq!(published.len(), outbox.len());
    let stored = counts_by(
        &suite.pool,
        "SELECT event_id::text, count(*) FROM notifications.events WHERE source = 'signalling' \
         GROUP BY 1",
    )
    .await;
    assert_eq!(stored.keys().cloned().collect::<BTreeSet<_>>(), outbox);
    eprintln!(
        "relay: {} events (a {} in {a_rounds} rounds, b {} in {b_rounds}) in {:?}",
        outbox.len(),
        calls_a.len(),
        calls_b.len(),
        started.elapsed()
    );
    suite.stop().await;
}

// ---------------------------------------------------------------------------------------------
// notifications: the delivery workers

/// What a webhook receiver got: per (path, webhook id) the base URLs of the replicas that sent
/// it.
type Hits = Arc<Mutex<BTreeMap<(String, String), Vec<String>>>>;

/// A webhook receiver on loopback under `/hook/{n}`: 204 to everything, keeps who sent what.
async fn receiver() -> (String, Hits) {
    let hits: Hits = Arc::default();
    async fn take(
        State(hits): State<Hits>,
        uri: Uri,
        headers: axum::http::HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let sender = body["hoofdObject"].as_str().unwrap_or_default().to_owned();
        hits.lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((uri.path().to_owned(), id))
            .or_default()
            .push(sender);
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/hook/{n}", post(take))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits)
}

const SUBSCRIPTIONS: usize = 3;
const DELIVERED_EVENTS: usize = 60;

/// Two replicas of notifications' delivery workers (each two worker loops, small batches, its
/// own pool) deliver the events published for three webhook subscriptions: every (event,
/// subscription) reaches its webhook exactly once, recorded as delivered after one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_are_delivered_once_by_two_replicas() {
    let _heavy = zvv_e2e::HEAVY.lock().await;
    let started = std::time::Instant::now();
    // the server runs no workers: the replicas are the workers
    let suite = Harness::start_with_options(Options {
        delivery_workers: false,
        ..Options::default()
    })
    .await
    .expect("suite starts");
    let (url, hits) = receiver().await;
    let school = suite.token("school-7", OrgType::School, &[Role::Professional]);
    let mut notifications = suite.notifications(&school).expect("client");
    let mut paths = Vec::new();
    for n in 0..SUBSCRIPTIONS {
        notifications
            .create_subscription(npb::CreateSubscriptionRequest {
                request_id: format!("webhook-{n}"),
                channels: vec![npb::ChannelFilter {
                    channel: "signalling.matches".into(),
                    filters: Default::default(),
                }],
                delivery: Some(Delivery::Webhook(npb::WebhookDelivery {
                    url: format!("{url}/hook/{n}"),
                    authorization: String::new(),
                })),
            })
            .await
            .expect("webhook subscription");
        paths.push(format!("/hook/{n}"));
    }

    let (a, b) = replicas(&suite, zvv_notifications::SCHEMA).await;
    let clock: SharedClock = Arc::new(suite.clock.clone());
    let workers = |pool: PgPool, name: &str| {
        let mut sinks = zvv_notifications::SinkEndpoints::new();
        sinks.insert(
            "signalling".to_owned(),
            channel(
                &suite.signalling_url,
                TokenSource::Static(SecretString::from(
                    suite.keys.service_token("zvv-notifications", "signalling"),
                )),
            )
            .expect("channel"),
        );
        let worker = zvv_notifications::worker(
            pool,
            suite.notifications_secrets.clone(),
            clock.clone(),
            zvv_notifications::domain::target::TargetPolicy {
                development: true,
                allowed: Vec::new(),
            },
            sinks,
            zvv_notifications::DeliverySettings {
                poll_interval: Duration::from_millis(10),
                batch: 4,
                concurrency: 4,
                workers: 2,
                // the body names the replica that sent it
                public_base_url: format!("http://{name}.replica.test"),
                ..Default::default()
            },
        )
        .expect("worker");
        zvv_notifications::jobs::delivery::start(worker, Arc::new(tokio::sync::Notify::new()))
    };
    let jobs_a = workers(a, "a");
    let jobs_b = workers(b, "b");

    let service = suite.keys.service_token("zvv-signalling", "notifications");
    let events = each(DELIVERED_EVENTS, 6, |_| {
        let mut client = suite.notifications(&service).expect("client");
        let id = Uuid::new_v4();
        let event = epb::Event {
            event_id: id.to_string(),
            source: "signalling".into(),
            channel: "signalling.matches".into(),
            resource: "match".into(),
            resource_id: Uuid::new_v4().to_string(),
            action: "updated".into(),
            occurred_at: Some(zvv_platform::adapter::timestamp(Utc::now())),
            attributes: [("kind".to_owned(), "CLIENT".to_owned())].into(),
            audience: Some(epb::Audience {
                organisations: vec!["school-7".into()],
                municipality_codes: Vec::new(),
            }),
            trace_parent: String::new(),
        };
        async move {
            let published = client
                .publish(npb::PublishRequest { event: Some(event) })
                .await
                .expect("published")
                .into_inner();
            assert_eq!(published.routed, SUBSCRIPTIONS as i32, "{published:?}");
            id.to_string()
        }
    })
    .await;
    let expected = DELIVERED_EVENTS * SUBSCRIPTIONS;
    let ours = |hits: &Hits| -> usize {
        hits.lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((_, id), _)| events.contains(id))
            .map(|(_, senders)| senders.len())
            .sum()
    };
    eventually("every delivery reaches its webhook", || {
        let n = ours(&hits);
        async move { n >= expected }
    })
    .await;
    eventually("every delivery is recorded as delivered", || async {
        count(
            &suite.pool,
            "SELECT count(*) FROM notifications.deliveries WHERE status <> 'DELIVERED'",
        )
        .await
            == 0
    })
    .await;
    // time for a second attempt, had anything been leased twice
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(jobs_a);
    drop(jobs_b);

    let hits = hits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut by_replica: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        for path in &paths {
            let senders = hits
                .get(&(path.clone(), event.clone()))
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                senders.len(),
                1,
                "event {event} at {path}: delivered by {senders:?}"
            );
            let replica = senders[0].split('/').nth(2).unwrap_or_default().to_owned();
            *by_replica.entry(replica).or_default() += 1;
        }
    }
    let delivered_ours: usize = hits
        .iter()
        .filter(|((_, id), _)| events.contains(id))
        .map(|(_, s)| s.len())
        .sum();
    assert_eq!(delivered_ours, expected);
    assert_eq!(
        by_replica.len(),
        2,
        "both replicas delivered: {by_replica:?}"
    );
    assert_eq!(
        count(
            &suite.pool,
            "SELECT count(*) FROM notifications.deliveries WHERE attempts <> 1"
        )
        .await,
        0,
        "one attempt per delivery"
    );
    assert_eq!(
        count(&suite.pool, "SELECT count(*) FROM notifications.deliveries").await,
        expected as i64
    );
    eprintln!(
        "deliveries: {expected} webhooks ({by_replica:?}) in {:?}",
        started.elapsed()
    );
    suite.stop().await;
}

// ---------------------------------------------------------------------------------------------
// retention

/// Signals that expire, and more referrals than retention's batch (200) that are destroyed when
/// their children turn 23.
const RETAINED_SIGNALS: usize = 40;
const RETAINED_REFERRALS: usize = 230;

fn signal(bsn: String, months: i32) -> RegisterSignalRequest {
    RegisterSignalRequest {
        request_id: Uuid::new_v4().to_string(),
        subject: Some(register_signal_request::Subject::Bsn(bsn)),
        contact: Some(Contact {
            name: "Contact".into(),
            phone: "+31 20 555 0100".into(),
            email: "c@example.nl".into(),
        }),
        duration_months: months,
    }
}

async fn register_children(suite: &Harness, first: usize, n: usize) {
    let muni = suite.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    each(n, 8, |i| {
        let mut intake = suite.intake(&muni).expect("client");
        let request = RegisterSubjectRequest {
            request_id: Uuid::new_v4().to_string(),
            bsn: valid_bsn(first + i),
            given_name: "X".into(),
            family_name: "Y".into(),
            birth_date: "2016-05-04".into(),
            municipality_code: "GM0363".into(),
            neighbourhood_code: "WK036305".into(),
        };
        async move {
            intake
                .register_subject(request)
                .await
                .expect("child registered");
        }
    })
    .await;
}

/// The ids of `ids` each audit record of `action` in signalling names, with the number of
/// records naming each.
async fn audited_among(
    suite: &Harness,
    action: &str,
    ids: &BTreeSet<String>,
) -> BTreeMap<String, i64> {
    audited_ids(&suite.pool, "signalling", action)
        .await
        .into_iter()
        .filter(|(id, _)| ids.contains(id))
        .collect()
}

/// Both replicas run signalling's retention at once, twice: signals expire (one event each) and
/// are later destroyed from the archive, referrals are destroyed when their children turn 23
/// (in more than one batch). Each row is handled once, the replicas' counts add up, and every
/// id is named in exactly one audit record of its rule (one record per batch, none doubled,
/// none empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signalling_retention_destroys_once_with_two_replicas() {
    let _heavy = zvv_e2e::HEAVY.lock().await;
    let started = std::time::Instant::now();
    let suite = Harness::start().await.expect("suite starts");
    let (a, b) = replicas(&suite, zvv_signalling::SCHEMA).await;
    register_children(&suite, 5000, RETAINED_SIGNALS).await;
    // one organisation's signal per child: no matches
    let school = suite.token("school-3", OrgType::School, &[Role::Professional]);
    let signals: BTreeSet<String> = each(RETAINED_SIGNALS, 8, |i| {
        let mut client = suite.signalling(&school).expect("client");
        let request = signal(valid_bsn(5000 + i), 1);
        async move {
            client
                .register_signal(request)
                .await
                .expect("signal")
                .into_inner()
                .signal
                .expect("signal")
                .signal_id
        }
    })
    .await
    .into_iter()
    .collect();
    let referrals: BTreeSet<String> = submit_referrals(&suite, 6000, RETAINED_REFERRALS)
        .await
        .into_iter()
        .collect();
    let rules = zvv_signalling::retention::RetentionRules::default();
    let run_both = |at: DateTime<Utc>| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let today = at.date_naive();
            let (ra, rb) = tokio::join!(
                zvv_signalling::retention::run(&a, &rules, today, at),
                zvv_signalling::retention::run(&b, &rules, today, at),
            );
            (ra.expect("replica a"), rb.expect("replica b"))
        }
    };

    // two months on: the signals have expired
    let (ra, rb) = run_both(suite.clock.now() + chrono::Duration::days(62)).await;
    assert_eq!(
        ra.expired + rb.expired,
        RETAINED_SIGNALS as u64,
        "{ra:?} {rb:?}"
    );
    let expired = counts_by(
        &suite.pool,
        "SELECT ids->>'signal_id', count(*) FROM signalling.outbox \
         WHERE event_type = 'signalling.signal.expired' GROUP BY 1",
    )
    .await;
    assert_each_once("an expired event per signal", &expired);
    assert_eq!(expired.keys().cloned().collect::<BTreeSet<_>>(), signals);
    let audited = audited_among(&suite, "retention/expire-signals", &signals).await;
    assert_each_once("a signal in the audit records of expiry", &audited);
    assert_eq!(audited.len(), signals.len());

    // when the referred children are 23, the archived signals are long past their five years
    let born: NaiveDate = REFERRED_BORN.parse().expect("date");
    let at = (born + chrono::Months::new(23 * 12) + chrono::Duration::days(1))
        .and_time(suite.clock.now().time())
        .and_utc();
    let (rc, rd) = run_both(at).await;
    // (a signal is destroyed from the archive or, were it not there, at 23: once)
    assert_eq!(
        rc.archive_destroyed
            + rd.archive_destroyed
            + rc.signals_destroyed_at_23
            + rd.signals_destroyed_at_23,
        RETAINED_SIGNALS as u64,
        "{rc:?} {rd:?}"
    );
    assert_eq!(
        rc.referrals_destroyed_at_23 + rd.referrals_destroyed_at_23,
        RETAINED_REFERRALS as u64,
        "{rc:?} {rd:?}"
    );
    assert_eq!(rc.expired + rd.expired, 0);
    let mut destroyed = audited_among(&suite, "retention/destroy-archived-signals", &signals).await;
    for (id, n) in audited_among(&suite, "retention/destroy-at-23", &signals).await {
        *destroyed.entry(id).or_default() += n;
    }
    assert_each_once("a signal in the audit records of destruction", &destroyed);
    assert_eq!(destroyed.len(), signals.len());
    let at_23 = audited_among(&suite, "retention/destroy-at-23", &referrals).await;
    assert_each_once(
        "a referral in the audit records of destruction at 23",
        &at_23,
    );
    assert_eq!(at_23.len(), referrals.len());
    for table in ["signals", "referrals"] {
        assert_eq!(
            count(
                &suite.pool,
                &format!("SELECT count(*) FROM signalling.{table}")
            )
            .await,
            0,
            "{table} left"
        );
    }
    // a batch holds at most 200: at least two records for the referrals, and no empty one
    let records = counts_by(
        &suite.pool,
        "SELECT action, count(*) FROM signalling.audit_entries \
         WHERE action LIKE 'retention/%' GROUP BY 1",
    )
    .await;
    assert!(
        records.get("retention/destroy-at-23").copied().unwrap_or(0) >= 2,
        "{records:?}"
    );
    assert_eq!(
        count(
            &suite.pool,
            "SELECT count(*) FROM signalling.audit_entries \
             WHERE action LIKE 'retention/%' AND cardinality(object_ids) = 0"
        )
        .await,
        0
    );
    eprintln!(
        "signalling retention: {} signals expired (a {}, b {}) and destroyed (a {}, b {}), \
         {} referrals destroyed at 23 (a {}, b {}), audit records {records:?}, in {:?}",
        signals.len(),
        ra.expired,
        rb.expired,
        rc.archive_destroyed,
        rd.archive_destroyed,
        referrals.len(),
        rc.referrals_destroyed_at_23,
        rd.referrals_destroyed_at_23,
        started.elapsed()
    );
    suite.stop().await;
}

const RELEASED: usize = 24;

/// Released episodes past their retention, with both replicas running reintegration's
/// retention at once: each episode and each release mark is destroyed once (one event per
/// episode), the replicas' counts add up, and each id is in exactly one audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reintegration_retention_destroys_once_with_two_replicas() {
    let _heavy = zvv_e2e::HEAVY.lock().await;
    let started = std::time::Instant::now();
    let suite = Harness::start().await.expect("suite starts");
    let (a, b) = replicas(&suite, zvv_reintegration::SCHEMA).await;
    let prison = suite.token("pi-vught", OrgType::Prison, &[Role::Professional]);
    let today = suite.clock.today();
    let record = |i: usize, kind: rpb::DetentionEventKind, on: NaiveDate, release: String| {
        let mut client = suite.detentions(&prison).expect("client");
        let request = rpb::RecordDetentionEventRequest {
            request_id: Uuid::new_v4().to_string(),
            external_ref: format!("PI-VUGHT-KEPT-{i}"),
            subject: Some(DetentionSubject::Bsn(valid_bsn(7000 + i))),
            birth_date: "1990-03-14".into(),
            kind: kind.into(),
            institution_code: "PI-VUGHT".into(),
            institution_type: rpb::InstitutionType::Pi.into(),
            occurred_on: day(on),
            expected_release_on: release,
            municipality_code: "GM0855".into(),
        };
        async move {
            client
                .record_detention_event(request)
                .await
                .expect("detention event")
                .into_inner()
                .detention
                .expect("episode")
                .detention_id
        }
    };
    let begun = today - chrono::Duration::days(40);
    let released = today - chrono::Duration::days(10);
    let detentions: BTreeSet<String> = each(RELEASED, 4, |i| {
        record(i, rpb::DetentionEventKind::Begin, begun, day(released))
    })
    .await
    .into_iter()
    .collect();
    each(RELEASED, 4, |i| {
        record(i, rpb::DetentionEventKind::End, released, String::new())
    })
    .await;
    let marks = count(
        &suite.pool,
        "SELECT count(*) FROM reintegration.release_marks",
    )
    .await;
    assert_eq!(marks, RELEASED as i64, "a release mark per episode");

    // three years on: past the follow-up, the retention and the marks' 24 months
    let clock = clock_at(suite.clock.now() + chrono::Duration::days(3 * 366));
    let months = zvv_reintegration::DEFAULT_RETENTION_MONTHS;
    let (ra, rb) = tokio::join!(
        zvv_reintegration::run_retention(&a, &clock, months),
        zvv_reintegration::run_retention(&b, &clock, months),
    );
    let (ra, rb) = (ra.expect("replica a"), rb.expect("replica b"));
    assert_eq!(
        ra.detentions_destroyed + rb.detentions_destroyed,
        RELEASED as u64,
        "{ra:?} {rb:?}"
    );
    assert_eq!(
        ra.release_marks_destroyed + rb.release_marks_destroyed,
        RELEASED as u64,
        "{ra:?} {rb:?}"
    );
    let (rc, rd) = tokio::join!(
        zvv_reintegration::run_retention(&a, &clock, months),
        zvv_reintegration::run_retention(&b, &clock, months),
    );
    assert_eq!(
        rc.expect("a").detentions_destroyed + rd.expect("b").detentions_destroyed,
        0
    );
    assert_eq!(
        count(&suite.pool, "SELECT count(*) FROM reintegration.detentions").await,
        0
    );
    assert_eq!(
        count(
            &suite.pool,
            "SELECT count(*) FROM reintegration.release_marks"
        )
        .await,
        0
    );
    let events = counts_by(
        &suite.pool,
        "SELECT ids->>'detention_id', count(*) FROM reintegration.outbox \
         WHERE event_type = 'reintegration.detention.destroyed' GROUP BY 1",
    )
    .await;
    assert_each_once("a destroyed event per episode", &events);
    assert_eq!(events.keys().cloned().collect::<BTreeSet<_>>(), detentions);
    let audited = audited_ids(&suite.pool, "reintegration", "retention").await;
    for id in &detentions {
        assert_eq!(
            audited.get(id),
            Some(&1),
            "audit records naming episode {id}"
        );
    }
    let facts: Vec<String> =
        sqlx::query_scalar("SELECT fact_id::text FROM reintegration.release_facts")
            .fetch_all(&suite.pool)
            .await
            .expect("release facts");
    assert_eq!(facts.len(), RELEASED, "the anonymous release facts stay");
    for fact in &facts {
        assert_eq!(
            audited.get(fact),
            Some(&1),
            "audit records naming the release mark of fact {fact}"
        );
    }
    eprintln!(
        "reintegration retention: {RELEASED} episodes (a {}, b {}), marks (a {}, b {}) in {:?}",
        ra.detentions_destroyed,
        rb.detentions_destroyed,
        ra.release_marks_destroyed,
        rb.release_marks_destroyed,
        started.elapsed()
    );
    suite.stop().await;
}

/// Waits (at most 20 s) until `n` backends other than the test's wait for a lock on a statement
/// of signalling; false if they never do.
async fn waiting_for_locks(pool: &PgPool, n: i64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let waiting = count(
            pool,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' \
             AND query ILIKE '%signalling.%'",
        )
        .await;
        if waiting >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Two signals of one match of three organisations expire on the same day and the two replicas
/// of retention take one each, in batches that overlap. Leaving a match locks it first, so the
/// second replica waits for the first and then sees who is left: the first signal to go shrinks
/// the match, the second closes it, each once. (The locks the test holds only pin down an
/// interleaving that two replicas can hit by themselves; without the match lock both replicas
/// "shrank" the match from a stale view and nobody closed it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_retention_replicas_leaving_one_match_close_it() {
    let _heavy = zvv_e2e::HEAVY.lock().await;
    let suite = Harness::start().await.expect("suite starts");
    let (a, b) = replicas(&suite, zvv_signalling::SCHEMA).await;
    register_children(&suite, 9000, 1).await;
    let orgs = [
        ("school-5", OrgType::School, 1),
        ("jeugdzorg-5", OrgType::YouthCare, 1),
        ("ggd-jgz-5", OrgType::YouthHealth, 24),
    ];
    let mut ids = Vec::new();
    let mut match_id = String::new();
    for (org, org_type, months) in orgs {
        let token = suite.token(org, org_type, &[Role::Professional]);
        let registered = suite
            .signalling(&token)
            .expect("client")
            .register_signal(signal(valid_bsn(9000), months))
            .await
            .expect("signal")
            .into_inner();
        ids.push(registered.signal.expect("signal").signal_id);
        if let Some(m) = registered.matches.first() {
            match_id = m.match_id.clone();
        }
    }
    assert!(!match_id.is_empty(), "the three signals match");
    let members = || count(&suite.pool, "SELECT count(*) FROM signalling.match_signals");
    assert_eq!(members().await, 3);

    let at = suite.clock.now() + chrono::Duration::days(62);
    let rules = zvv_signalling::retention::RetentionRules::default();
    let run = |pool: PgPool| {
        tokio::spawn(async move {
            zvv_signalling::retention::run(&pool, &rules, at.date_naive(), at).await
        })
    };
    // replica a takes the school's signal while the youth care's is busy elsewhere, and is
    // held before it writes the match
    let mut busy_signal = suite.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM signalling.signals WHERE signal_id = $1::uuid FOR UPDATE")
        .bind(&ids[1])
        .execute(&mut *busy_signal)
        .await
        .expect("lock a signal");
    let mut busy_match = suite.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM signalling.matches WHERE match_id = $1::uuid FOR UPDATE")
        .bind(&match_id)
        .execute(&mut *busy_match)
        .await
        .expect("lock the match");
    let replica_a = run(a);
    let a_waits = waiting_for_locks(&suite.pool, 1).await;
    // replica b takes the youth care's signal
    busy_signal.rollback().await.expect("release the signal");
    let replica_b = run(b);
    let both_wait = waiting_for_locks(&suite.pool, 2).await;
    busy_match.rollback().await.expect("release the match");
    let ra = replica_a.await.expect("task").expect("replica a");
    let rb = replica_b.await.expect("task").expect("replica b");
    assert_eq!(ra.expired + rb.expired, 2, "{ra:?} {rb:?}");
    assert!(a_waits, "replica a waited for the match");

    let status: String =
        sqlx::query_scalar("SELECT status FROM signalling.matches WHERE match_id = $1::uuid")
            .bind(&match_id)
            .fetch_one(&suite.pool)
            .await
            .expect("the match");
    let events = counts_by(
        &suite.pool,
        &format!(
            "SELECT event_type, count(*) FROM signalling.outbox \
             WHERE ids->>'match_id' = '{match_id}' GROUP BY 1"
        ),
    )
    .await;
    // as when one replica leaves it after the other: the first signal to go shrinks it, the
    // second closes it (each once)
    let expected: BTreeMap<String, i64> = [
        ("signalling.match.created", 1),
        ("signalling.match.updated", 2),
        ("signalling.match.closed", 1),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_owned(), n))
    .collect();
    assert_eq!(
        (status.as_str(), &events),
        ("CLOSED", &expected),
        "with one organisation's signal left the match is closed, once (both replicas were \
         held: {both_wait})"
    );
    suite.stop().await;
}
