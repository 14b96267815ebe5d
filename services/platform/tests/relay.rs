//! The outbox relay against a real PostgreSQL database (a fresh one per test), running as a
//! service's runtime role: order, marking only after an answer, backoff, a relay killed between
//! publish and mark, relays of many replicas at once, the purge and the lag.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;
use zvv_devkit::testkit::{TestDb, service_pool};
use zvv_platform::{
    db::Schema,
    outbox::{self, Event},
    relay::{self, PublishError, Published, Publisher, Relay, RelaySettings},
};
use zvv_proto::events::v1 as pb;

const SCHEMA: Schema = Schema::new("relaytest");

/// What a test publisher does with the `n`th publish (from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Ok,
    Fail,
    /// Never answers (the relay is killed while it waits).
    Hang,
}

/// Records every event it is given, in order, and answers by its script.
struct Recorder {
    seen: Mutex<Vec<pb::Event>>,
    calls: AtomicUsize,
    script: Box<dyn Fn(usize) -> Act + Send + Sync>,
    delay: Duration,
}

impl Recorder {
    fn new(script: impl Fn(usize) -> Act + Send + Sync + 'static) -> Arc<Self> {
        Self::slow(Duration::ZERO, script)
    }

    fn slow(delay: Duration, script: impl Fn(usize) -> Act + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            script: Box::new(script),
            delay,
        })
    }

    fn ids(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.event_id.clone())
            .collect()
    }
}

impl Publisher for Recorder {
    fn publish(&self, event: pb::Event) -> BoxFuture<'_, Result<Published, PublishError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            match (self.script)(n) {
                Act::Ok => {
                    self.seen.lock().unwrap().push(event);
                    Ok(Published::default())
                }
                Act::Fail => Err(PublishError("UNAVAILABLE: notifications is away".into())),
                Act::Hang => {
                    self.seen.lock().unwrap().push(event);
                    futures::future::pending().await
                }
            }
        })
    }
}

struct Setup {
    pool: PgPool,
    /// The test's superuser pool, for what the runtime role may not do.
    admin: PgPool,
    _db: TestDb,
}

async fn setup() -> Setup {
    let db = TestDb::create().await.expect("test database");
    let (pool, _roles) = service_pool(&db, SCHEMA, 8, |owner| async move {
        zvv_platform::db::migrate(
            &owner,
            SCHEMA,
            sqlx::migrate::Migrator::with_migrations(vec![]),
        )
        .await
    })
    .await
    .expect("migrated pool");
    let admin = zvv_platform::db::connect(db.options.clone(), &Default::default())
        .await
        .expect("admin pool");
    Setup {
        pool,
        admin,
        _db: db,
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + seconds, 0).expect("time")
}

/// Appends `n` events, the `i`th occurring at `at(i)`, written in the order of `order` (a
/// permutation of 0..n); returns their ids in occurrence order.
async fn append(pool: &PgPool, n: usize, order: impl Fn(usize) -> usize) -> Vec<String> {
    let events: Vec<Event> = (0..n)
        .map(|_| {
            Event::new("relaytest.thing.happened")
                .id("thing_id", Uuid::now_v7())
                .code("kind", "PLAIN")
                .to_organisation("school-1")
                .to_municipality("GM0363")
        })
        .collect();
    let mut tx = pool.begin().await.expect("begin");
    for i in 0..n {
        let k = order(i);
        outbox::append(&mut tx, SCHEMA, &events[k], at(k as i64))
            .await
            .expect("append");
    }
    tx.commit().await.expect("commit");
    events.iter().map(|e| e.event_id.to_string()).collect()
}

async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM relaytest.outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .expect("count")
}

fn settings(batch_size: u32) -> RelaySettings {
    RelaySettings {
        batch_size,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(40),
        ..RelaySettings::default()
    }
}

/// Relays until nothing is left unpublished (or panics after 20 s).
async fn drain(pool: &PgPool, publisher: &dyn Publisher, settings: &RelaySettings) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while unpublished(pool).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox drains within 20 s"
        );
        relay::relay_all(pool, SCHEMA, publisher, settings)
            .await
            .expect("relay");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn batches_are_published_in_occurrence_order_with_their_audience() {
    let s = setup().await;
    // written in reverse: the relay follows occurred_at, not the insert order
    let ids = append(&s.pool, 25, |i| 24 - i).await;
    let publisher = Recorder::new(|_| Act::Ok);
    let settings = settings(10);

    let first = relay::relay_batch(&s.pool, SCHEMA, &*publisher, &settings)
        .await
        .expect("one batch");
    assert_eq!(first.published, 10, "{first:?}");
    assert!(first.had_the_lock && !first.failed);
    assert_eq!(unpublished(&s.pool).await, 15, "one batch is marked");
    assert_eq!(publisher.ids(), ids[..10]);

    let rest = relay::relay_all(&s.pool, SCHEMA, &*publisher, &settings)
        .await
        .expect("the rest");
    assert_eq!(rest.published, 15, "{rest:?}");
    assert_eq!(publisher.ids(), ids, "in occurrence order, each once");
    assert_eq!(unpublished(&s.pool).await, 0);
    let again = relay::relay_all(&s.pool, SCHEMA, &*publisher, &settings)
        .await
        .expect("nothing left");
    assert_eq!(again.published, 0);

    let seen = publisher.seen.lock().unwrap().clone();
    let e = &seen[0];
    assert_eq!(e.source, "relaytest");
    assert_eq!(e.channel, "relaytest.things");
    assert_eq!(e.resource, "thing");
    assert_eq!(e.action, "happened");
    assert_eq!(e.resource_id, e.attributes["thing_id"]);
    assert_eq!(e.attributes["kind"], "PLAIN");
    let audience = e.audience.clone().expect("audience");
    assert_eq!(audience.organisations, ["school-1"]);
    assert_eq!(audience.municipality_codes, ["GM0363"]);
    assert_eq!(e.occurred_at.expect("time").seconds, at(0).timestamp());
    assert_eq!(e.trace_parent, "", "written outside a trace");
}

#[tokio::test]
async fn a_failed_publish_stops_the_stream_marks_nothing_after_it_and_is_retried_later() {
    let s = setup().await;
    let ids = append(&s.pool, 5, |i| i).await;
    // the third publish fails once
    let publisher = Recorder::new(|n| if n == 2 { Act::Fail } else { Act::Ok });
    let settings = RelaySettings {
        backoff_base: Duration::from_millis(300),
        backoff_cap: Duration::from_millis(300),
        ..settings(100)
    };

    let report = relay::relay_all(&s.pool, SCHEMA, &*publisher, &settings)
        .await
        .expect("relay");
    assert_eq!(report.published, 2, "{report:?}");
    assert!(report.failed);
    assert_eq!(publisher.ids(), ids[..2], "nothing after the failure");
    /// event id, published at, attempts, last error, waiting for its next attempt
    type State = (String, Option<DateTime<Utc>>, i32, Option<String>, bool);
    let rows: Vec<State> = sqlx::query_as(
        "SELECT event_id::text, published_at, attempts, last_error, next_attempt_at > now() \
         FROM relaytest.outbox ORDER BY occurred_at",
    )
    .fetch_all(&s.pool)
    .await
    .expect("rows");
    assert!(
        rows[0].1.is_some() && rows[1].1.is_some(),
        "acknowledged ones are marked"
    );
    let failed = &rows[2];
    assert!(failed.1.is_none(), "the failed one is not marked");
    assert_eq!(failed.2, 1, "one attempt");
    assert!(
        failed
            .3
            .as_deref()
            .is_some_and(|e| e.contains("UNAVAILABLE")),
        "{failed:?}"
    );
    assert!(failed.4, "its next attempt is later");
    assert!(rows[3..].iter().all(|r| r.1.is_none() && r.2 == 0));

    // during the backoff nothing overtakes the failed event
    let waiting = relay::relay_all(&s.pool, SCHEMA, &*publisher, &settings)
        .await
        .expect("relay");
    assert_eq!(waiting.published, 0, "{waiting:?}");
    assert!(waiting.waiting);
    assert_eq!(publisher.ids(), ids[..2]);

    tokio::time::sleep(Duration::from_millis(350)).await;
    drain(&s.pool, &*publisher, &settings).await;
    assert_eq!(publisher.ids(), ids, "delivered later, in order, each once");
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM relaytest.outbox WHERE last_error IS NOT NULL")
            .fetch_one(&s.pool)
            .await
            .expect("errors");
    assert_eq!(errors, 0, "the error is cleared once published");
}

#[tokio::test]
async fn a_relay_killed_between_publish_and_mark_publishes_again_and_skips_nothing() {
    let s = setup().await;
    let ids = append(&s.pool, 4, |i| i).await;
    // the first publish is answered, the second never: the relay dies waiting for it
    let dying = Recorder::new(|n| if n == 0 { Act::Ok } else { Act::Hang });
    let round = {
        let (pool, dying) = (s.pool.clone(), dying.clone());
        tokio::spawn(
            async move { relay::relay_batch(&pool, SCHEMA, &*dying, &settings(100)).await },
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dying.ids().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay publishes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    round.abort();
    let _ = round.await;
    assert_eq!(dying.ids(), ids[..2]);
    assert_eq!(
        unpublished(&s.pool).await,
        4,
        "the round's marks went with its transaction"
    );

    let next = Recorder::new(|_| Act::Ok);
    drain(&s.pool, &*next, &settings(100)).await;
    assert_eq!(
        next.ids(),
        ids,
        "the answered event is published again, then the rest in order"
    );
}

#[tokio::test]
async fn relays_of_many_replicas_at_once_publish_in_order_and_once() {
    let s = setup().await;
    let ids = append(&s.pool, 60, |i| (i * 7) % 60).await;
    let publisher = Recorder::slow(Duration::from_millis(2), |_| Act::Ok);
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let (pool, publisher) = (s.pool.clone(), publisher.clone());
        replicas.push(tokio::spawn(async move {
            drain(&pool, &*publisher, &settings(7)).await;
        }));
    }
    for replica in replicas {
        replica.await.expect("replica");
    }
    assert_eq!(publisher.ids(), ids, "one order, no event twice");
}

#[tokio::test]
async fn the_purge_removes_only_published_rows_past_the_retention() {
    let s = setup().await;
    let ids = append(&s.pool, 3, |i| i).await;
    let publisher = Recorder::new(|_| Act::Ok);
    relay::relay_all(&s.pool, SCHEMA, &*publisher, &settings(100))
        .await
        .expect("relay");
    // the first published 8 days ago, the second just now, the third never
    sqlx::query(
        "UPDATE relaytest.outbox SET published_at = now() - interval '8 days' WHERE event_id = $1::uuid",
    )
    .bind(&ids[0])
    .execute(&s.admin)
    .await
    .expect("age one");
    sqlx::query("UPDATE relaytest.outbox SET published_at = NULL WHERE event_id = $1::uuid")
        .bind(&ids[2])
        .execute(&s.admin)
        .await
        .expect("unpublish one");
    // old and unpublished: kept until published
    sqlx::query(
        "UPDATE relaytest.outbox SET occurred_at = now() - interval '30 days' WHERE event_id = $1::uuid",
    )
    .bind(&ids[2])
    .execute(&s.admin)
    .await
    .expect("age the unpublished one");

    let purged = relay::purge_published(&s.pool, SCHEMA, relay::DEFAULT_RETENTION)
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    let mut left: Vec<String> = sqlx::query_scalar("SELECT event_id::text FROM relaytest.outbox")
        .fetch_all(&s.pool)
        .await
        .expect("left");
    left.sort();
    let mut expected = vec![ids[1].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(
        left, expected,
        "the recent published one and the unpublished one stay"
    );
}

#[tokio::test]
async fn lag_reports_the_unpublished_rows_and_the_age_of_the_oldest() {
    let s = setup().await;
    let none = relay::lag(&s.pool, SCHEMA).await.expect("lag");
    assert_eq!(
        (none.unpublished, none.oldest, none.age),
        (0, None, Duration::ZERO)
    );

    let mut tx = s.pool.begin().await.expect("begin");
    let a_minute_ago = Utc::now() - chrono::Duration::seconds(60);
    for k in 0..3 {
        let e = Event::new("relaytest.thing.happened").id("thing_id", Uuid::now_v7());
        outbox::append(
            &mut tx,
            SCHEMA,
            &e,
            a_minute_ago + chrono::Duration::seconds(k),
        )
        .await
        .expect("append");
    }
    tx.commit().await.expect("commit");
    let lag = relay::lag(&s.pool, SCHEMA).await.expect("lag");
    assert_eq!(lag.unpublished, 3);
    assert!(lag.oldest.is_some());
    assert!(
        lag.age >= Duration::from_secs(59) && lag.age < Duration::from_secs(120),
        "{lag:?}"
    );
    let publisher = Recorder::new(|_| Act::Ok);
    relay::relay_all(&s.pool, SCHEMA, &*publisher, &settings(100))
        .await
        .expect("relay");
    assert_eq!(
        relay::lag(&s.pool, SCHEMA).await.expect("lag").unpublished,
        0
    );
}

#[tokio::test]
async fn the_started_relay_publishes_when_woken() {
    let s = setup().await;
    let publisher = Recorder::new(|_| Act::Ok);
    let relay = Relay::new(
        publisher.clone(),
        RelaySettings {
            interval: Duration::from_secs(3600),
            ..settings(100)
        },
    );
    let jobs = zvv_platform::relay::start(s.pool.clone(), SCHEMA, Some(&relay));
    // the first round runs at once on nothing; then only a wake-up runs one before the hour
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ids = append(&s.pool, 2, |i| i).await;
    relay.waker().wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while unpublished(&s.pool).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "woken within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(publisher.ids(), ids);
    drop(jobs);
    assert!(zvv_platform::relay::start(s.pool.clone(), SCHEMA, None).is_empty());
}
