//! The outbox relay: publishes the events a service wrote into its outbox
//! ([`crate::outbox`]) to `zvv.notifications.v1.NotificationService/Publish`, in
//! `(occurred_at, event_id)` order, without any change to the service's write paths.
//!
//! Every replica runs it; one at a time per schema does the work: a round holds a
//! transaction-scoped advisory lock on the schema's relay key (the others skip their turn, as
//! the audit sealer does) and reads the oldest unpublished rows (no row locks: the round holds
//! no transaction id while it publishes, which would hold back the snapshot horizon of the
//! cluster that the audit sealer and the notification inboxes wait for). It publishes them one after the other and marks a row published only after Publish answered
//! OK, in the round's transaction. A failure stops the round there, so that no later event
//! overtakes it: the row's attempts, next attempt (capped exponential backoff with jitter) and
//! last error are recorded, and the whole stream waits for that row. A relay that dies between a
//! publish and the commit of its mark publishes the row again in the next round: Publish is
//! idempotent by event id, so an event may be published twice but is never skipped.
//!
//! Published rows are purged after a retention period; [`lag`] tells how far the relay is behind
//! (also exported as the gauges `zvv.outbox.unpublished` and `zvv.outbox.lag_seconds`).

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rand::Rng;
use sqlx::{PgPool, Row, postgres::PgRow};
use tokio::sync::Notify;
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;
use zvv_proto::{
    events::v1 as events,
    notifications::v1::{PublishRequest, notification_service_client::NotificationServiceClient},
};

use crate::{
    client::{Outgoing, TokenSource},
    db::Schema,
    jobs::Job,
    outbox::{resource_id_name, split_type},
};

/// One outbox row as the relay reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub ids: BTreeMap<String, String>,
    pub codes: BTreeMap<String, String>,
    /// The trace id (32 hex digits) of the change that wrote it, or empty.
    pub trace_id: String,
    pub audience_organisations: Vec<String>,
    pub audience_municipalities: Vec<String>,
}

/// Why an outbox row cannot be published as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("event type {0:?} is not <source>.<resource>.<action>")]
    Type(String),
    #[error("event {event_type} has no resource id {name}")]
    NoResourceId { event_type: String, name: String },
    #[error("event {event_type} names {name} both as an id and as a code")]
    Ambiguous { event_type: String, name: String },
}

/// The plural of a resource name as channels use it: `match` → `matches`, `signal` →
/// `signals`, `subject` → `subjects`.
fn plural(word: &str) -> String {
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| word.ends_with(end))
    {
        return format!("{word}es");
    }
    if let Some(stem) = word.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    format!("{word}s")
}

/// The channel of events about `resource` from `source`: `<source>.<resource plural>`, e.g.
/// `signalling.matches`.
pub fn channel(source: &str, resource: &str) -> String {
    format!("{source}.{}", plural(resource))
}

/// The W3C `traceparent` of a change whose trace id was stored: version 00, that trace id,
/// `span_id` as the parent span and the sampled flag; empty when no (valid) trace id was stored.
pub fn trace_parent(trace_id: &str, mut span_id: [u8; 8]) -> String {
    let valid = trace_id.len() == 32
        && trace_id.bytes().all(|b| b.is_ascii_hexdigit())
        && trace_id.bytes().any(|b| b != b'0');
    if !valid {
        return String::new();
    }
    if span_id == [0; 8] {
        // an all-zero span id is invalid
        span_id[7] = 1;
    }
    format!(
        "00-{}-{}-01",
        trace_id.to_ascii_lowercase(),
        hex::encode(span_id)
    )
}

/// The event of an outbox row, with `span_id` in its trace parent: source, channel, resource
/// and action from the type `<source>.<resource>.<action>`, the resource id from the id named
/// `<resource>_id`, every id and code as an attribute, the audience from the row.
pub fn event_with_span(row: &OutboxRow, span_id: [u8; 8]) -> Result<events::Event, MappingError> {
    let (source, resource, action) =
        split_type(&row.event_type).ok_or_else(|| MappingError::Type(row.event_type.clone()))?;
    let name = resource_id_name(resource);
    let resource_id = row
        .ids
        .get(&name)
        .cloned()
        .ok_or_else(|| MappingError::NoResourceId {
            event_type: row.event_type.clone(),
            name,
        })?;
    let mut attributes = std::collections::HashMap::new();
    for (key, value) in row.ids.iter().chain(&row.codes) {
        if attributes.insert(key.clone(), value.clone()).is_some() {
            return Err(MappingError::Ambiguous {
                event_type: row.event_type.clone(),
                name: key.clone(),
            });
        }
    }
    Ok(events::Event {
        event_id: row.event_id.to_string(),
        source: source.to_owned(),
        channel: channel(source, resource),
        resource: resource.to_owned(),
        resource_id,
        action: action.to_owned(),
        occurred_at: Some(crate::adapter::timestamp(row.occurred_at)),
        attributes,
        audience: Some(events::Audience {
            organisations: row.audience_organisations.clone(),
            municipality_codes: row.audience_municipalities.clone(),
        }),
        trace_parent: trace_parent(&row.trace_id, span_id),
    })
}

/// [`event_with_span`] with a fresh random span id.
pub fn to_event(row: &OutboxRow) -> Result<events::Event, MappingError> {
    event_with_span(row, rand::random())
}

/// What Publish answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// The event had been published before.
    pub duplicate: bool,
    /// Deliveries and inbox items it made.
    pub routed: i32,
}

/// Why a publish failed (a short description, kept as the row's `last_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// Where the relay publishes: NotificationService in a deployment ([`GrpcPublisher`]),
/// anything else in tests. Must be idempotent by event id.
pub trait Publisher: Send + Sync + 'static {
    fn publish(&self, event: events::Event) -> BoxFuture<'_, Result<Published, PublishError>>;
}

/// A NotificationService client with this service's SERVICE token for notifications.
pub type NotificationsClient = NotificationServiceClient<InterceptedService<Channel, Outgoing>>;

/// [`Publisher`] over `NotificationService/Publish`.
#[derive(Clone)]
pub struct GrpcPublisher {
    client: NotificationsClient,
}

impl fmt::Debug for GrpcPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcPublisher").finish_non_exhaustive()
    }
}

impl GrpcPublisher {
    pub fn new(client: NotificationsClient) -> Self {
        Self { client }
    }

    /// A publisher to NotificationService at `url` (connects lazily) calling with `token`, a
    /// SERVICE token minted for `notifications`.
    pub fn connect(url: &str, token: TokenSource) -> Result<Self, tonic::transport::Error> {
        Ok(Self::new(NotificationServiceClient::new(
            crate::client::channel(url, token)?,
        )))
    }
}

impl Publisher for GrpcPublisher {
    fn publish(&self, event: events::Event) -> BoxFuture<'_, Result<Published, PublishError>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            match client.publish(PublishRequest { event: Some(event) }).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    Ok(Published {
                        duplicate: answer.duplicate,
                        routed: answer.routed,
                    })
                }
                Err(status) => Err(PublishError(format!(
                    "{}: {}",
                    crate::layer::code_name(status.code()),
                    crate::error::truncate(status.message(), 300)
                ))),
            }
        })
    }
}

/// How the relay of one service runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows published per round (per transaction).
    pub batch_size: u32,
    /// Pause between rounds when there is nothing to publish.
    pub interval: Duration,
    /// How long published rows are kept before they are purged.
    pub retention: Duration,
    /// The backoff after the first failure of a row; it doubles with each attempt...
    pub backoff_base: Duration,
    /// ...up to this.
    pub backoff_cap: Duration,
    /// The longest one Publish may take before it counts as failed.
    pub publish_timeout: Duration,
    /// How often published rows past the retention are purged.
    pub purge_interval: Duration,
    /// How often the lag is measured for the metrics.
    pub lag_interval: Duration,
}

/// The default of [`RelaySettings::retention`]: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 100,
            interval: Duration::from_millis(250),
            retention: DEFAULT_RETENTION,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(300),
            publish_timeout: Duration::from_secs(10),
            purge_interval: Duration::from_secs(600),
            lag_interval: Duration::from_secs(10),
        }
    }
}

/// The wait before attempt `attempt + 1` of a row that failed `attempt` times (from 1): the
/// base doubled per earlier failure, capped, then a random part of it (between half and all of
/// it), so that replicas and services do not retry in step.
pub fn backoff(settings: &RelaySettings, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(30);
    let full = settings
        .backoff_base
        .saturating_mul(1 << doublings)
        .min(settings.backoff_cap);
    let millis = u64::try_from(full.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::thread_rng().gen_range(millis.div_ceil(2)..=millis))
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    pub published: u64,
    /// A publish failed: the round stopped at that row, which waits for its next attempt.
    pub failed: bool,
    /// The oldest unpublished row is waiting for its next attempt: nothing was published.
    pub waiting: bool,
    /// False when another replica held the schema's relay lock.
    pub had_the_lock: bool,
}

fn row_from(row: &PgRow) -> Result<OutboxRow, sqlx::Error> {
    let ids: sqlx::types::Json<BTreeMap<String, String>> = row.try_get("ids")?;
    let codes: sqlx::types::Json<BTreeMap<String, String>> = row.try_get("codes")?;
    Ok(OutboxRow {
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        occurred_at: row.try_get("occurred_at")?,
        ids: ids.0,
        codes: codes.0,
        trace_id: row.try_get("trace_id")?,
        audience_organisations: row.try_get("audience_organisations")?,
        audience_municipalities: row.try_get("audience_municipalities")?,
    })
}

/// Publishes one batch of `schema`'s oldest unpublished events (see the module docs). A round
/// is skipped while another replica relays the schema.
pub async fn relay_batch(
    pool: &PgPool,
    schema: Schema,
    publisher: &dyn Publisher,
    settings: &RelaySettings,
) -> Result<RelayReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
        .bind(format!("zvv.outbox.relay.{}", schema.name()))
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        tx.rollback().await?;
        return Ok(RelayReport::default());
    }
    // The advisory lock makes this the only relay of the schema; the rows are read without
    // row locks, so that the round holds no transaction id while it publishes (one would hold
    // back the snapshot horizon of the whole cluster, which the audit sealer and the
    // notification inboxes wait for). It gets one only for the final UPDATE.
    let rows = sqlx::query(schema.sql(
        "SELECT event_id, event_type, occurred_at, ids, codes, trace_id, \
         audience_organisations, audience_municipalities, attempts, \
         next_attempt_at <= clock_timestamp() AS due \
         FROM {schema}.outbox WHERE published_at IS NULL \
         ORDER BY occurred_at, event_id LIMIT $1",
    ))
    .bind(i64::from(settings.batch_size.max(1)))
    .fetch_all(&mut *tx)
    .await?;
    let mut report = RelayReport {
        had_the_lock: true,
        ..RelayReport::default()
    };
    let mut published = Vec::with_capacity(rows.len());
    for row in &rows {
        if !row.try_get::<bool, _>("due")? {
            report.waiting = published.is_empty();
            break;
        }
        let outbox_row = row_from(row)?;
        let outcome = match to_event(&outbox_row) {
            Ok(event) => {
                match tokio::time::timeout(settings.publish_timeout, publisher.publish(event)).await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.0),
                    Err(_) => Err(format!(
                        "no answer within {} ms",
                        settings.publish_timeout.as_millis()
                    )),
                }
            }
            Err(e) => Err(format!("cannot be published: {e}")),
        };
        match outcome {
            Ok(()) => published.push(outbox_row.event_id),
            Err(why) => {
                let attempts: i32 = row.try_get("attempts")?;
                let attempt = u32::try_from(attempts).unwrap_or(0).saturating_add(1);
                let wait = backoff(settings, attempt);
                tracing::warn!(
                    schema = schema.name(),
                    event_id = %outbox_row.event_id,
                    event_type = %outbox_row.event_type,
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %why,
                    "publishing an outbox event failed: the outbox waits for it"
                );
                sqlx::query(schema.sql(
                    "UPDATE {schema}.outbox SET attempts = attempts + 1, \
                     next_attempt_at = clock_timestamp() + make_interval(secs => $2), last_error = $3 \
                     WHERE event_id = $1",
                ))
                .bind(outbox_row.event_id)
                .bind(wait.as_secs_f64())
                .bind(crate::error::truncate(&why, 500))
                .execute(&mut *tx)
                .await?;
                report.failed = true;
                break;
            }
        }
    }
    if !published.is_empty() {
        sqlx::query(schema.sql(
            "UPDATE {schema}.outbox SET published_at = now(), last_error = NULL \
             WHERE event_id = ANY($1)",
        ))
        .bind(&published)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    report.published = published.len() as u64;
    Ok(report)
}

/// Publishes batches until the outbox is drained, a publish fails or the head waits for its
/// next attempt. The counts of every round are added up.
pub async fn relay_all(
    pool: &PgPool,
    schema: Schema,
    publisher: &dyn Publisher,
    settings: &RelaySettings,
) -> Result<RelayReport, sqlx::Error> {
    let mut total = RelayReport::default();
    loop {
        let round = relay_batch(pool, schema, publisher, settings).await?;
        total.published += round.published;
        total.failed |= round.failed;
        total.waiting |= round.waiting;
        total.had_the_lock |= round.had_the_lock;
        if round.failed
            || round.waiting
            || !round.had_the_lock
            || round.published < u64::from(settings.batch_size.max(1))
        {
            return Ok(total);
        }
    }
}

/// Deletes the published rows of `schema`'s outbox published more than `older_than` ago, in
/// batches; returns how many.
pub async fn purge_published(
    pool: &PgPool,
    schema: Schema,
    older_than: Duration,
) -> Result<u64, sqlx::Error> {
    const PURGE_BATCH: i64 = 1000;
    let mut total = 0;
    loop {
        let n = sqlx::query(schema.sql(
            "DELETE FROM {schema}.outbox WHERE event_id IN ( \
                 SELECT event_id FROM {schema}.outbox \
                 WHERE published_at < now() - make_interval(secs => $1) LIMIT $2)",
        ))
        .bind(older_than.as_secs_f64())
        .bind(PURGE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        total += n;
        if n < PURGE_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// How far the relay of a schema is behind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Rows not yet published.
    pub unpublished: u64,
    /// When the oldest of them occurred.
    pub oldest: Option<DateTime<Utc>>,
    /// Its age by the database's clock (zero when there is none).
    pub age: Duration,
}

/// The lag of `schema`'s relay: the unpublished rows and the age of the oldest.
pub async fn lag(pool: &PgPool, schema: Schema) -> Result<Lag, sqlx::Error> {
    let (count, oldest, age): (i64, Option<DateTime<Utc>>, f64) = sqlx::query_as(schema.sql(
        "SELECT count(*), min(occurred_at), \
                coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8 \
         FROM {schema}.outbox WHERE published_at IS NULL",
    ))
    .fetch_one(pool)
    .await?;
    Ok(Lag {
        unpublished: u64::try_from(count).unwrap_or(0),
        oldest,
        age: Duration::try_from_secs_f64(age.max(0.0)).unwrap_or_default(),
    })
}

/// Pokes a relay so that it runs at once (e.g. after a commit that wrote events) instead of at
/// its next interval.
#[derive(Debug, Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// A relay of one service: where it publishes and how it runs.
#[derive(Clone)]
pub struct Relay {
    publisher: Arc<dyn Publisher>,
    pub settings: RelaySettings,
    waker: RelayWaker,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Relay {
    pub fn new(publisher: Arc<dyn Publisher>, settings: RelaySettings) -> Self {
        Self {
            publisher,
            settings,
            waker: RelayWaker::default(),
        }
    }

    /// What services may poke after a commit to have the relay run at once.
    pub fn waker(&self) -> RelayWaker {
        self.waker.clone()
    }

    /// Starts the relay of `schema` on `pool`, the purge of published rows and the lag metrics,
    /// as interval jobs that run until the returned jobs are dropped.
    pub fn start(&self, pool: PgPool, schema: Schema) -> Vec<Job> {
        let settings = self.settings.clone();
        let relay = {
            let (pool, publisher, settings) =
                (pool.clone(), self.publisher.clone(), settings.clone());
            crate::jobs::every_or_woken(
                "outbox-relay",
                settings.interval,
                self.waker.0.clone(),
                move || {
                    let (pool, publisher, settings) =
                        (pool.clone(), publisher.clone(), settings.clone());
                    async move {
                        // four rounds a second: the counts go to debug, not to an info line each
                        relay_all(&pool, schema, &*publisher, &settings)
                            .await
                            .map(|report| {
                                if report.published > 0 {
                                    tracing::debug!(
                                        schema = schema.name(),
                                        published = report.published,
                                        "relayed outbox events"
                                    );
                                }
                            })
                    }
                },
            )
        };
        let purge = {
            let (pool, retention) = (pool.clone(), settings.retention);
            crate::jobs::every("outbox-purge", settings.purge_interval, move || {
                let pool = pool.clone();
                async move { purge_published(&pool, schema, retention).await }
            })
        };
        let metrics = crate::jobs::every("outbox-lag", settings.lag_interval, move || {
            let pool = pool.clone();
            async move {
                lag(&pool, schema).await.map(|lag| {
                    crate::telemetry::record_outbox_lag(
                        schema.name(),
                        lag.unpublished,
                        lag.age.as_secs_f64(),
                    );
                })
            }
        });
        tracing::info!(
            schema = schema.name(),
            batch_size = settings.batch_size,
            interval_ms = settings.interval.as_millis() as u64,
            "relaying the outbox to notifications"
        );
        vec![relay, purge, metrics]
    }
}

/// Starts `relay` for `schema` (see [`Relay::start`]); without one the outbox is not relayed,
/// which is logged as a warning.
pub fn start(pool: PgPool, schema: Schema, relay: Option<&Relay>) -> Vec<Job> {
    match relay {
        Some(relay) => relay.start(pool, schema),
        None => {
            tracing::warn!(
                schema = schema.name(),
                "no ZVV_NOTIFICATIONS_ADDR: the outbox is not relayed; its events stay unpublished \
                 until a relay runs"
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_type: &str, ids: &[(&str, &str)], codes: &[(&str, &str)]) -> OutboxRow {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        OutboxRow {
            event_id: Uuid::from_u128(7),
            event_type: event_type.to_owned(),
            occurred_at: DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
            ids: map(ids),
            codes: map(codes),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            audience_organisations: vec!["ggd-jgz".into(), "school-1".into()],
            audience_municipalities: vec!["GM0363".into()],
        }
    }

    const MATCH: &str = "0190a000-0000-7000-8000-000000000001";
    const SUBJECT: &str = "0190a000-0000-7000-8000-000000000002";

    #[test]
    fn a_row_maps_to_an_event_of_its_type() {
        let r = row(
            "signalling.match.closed",
            &[("match_id", MATCH)],
            &[("kind", "FAMILY")],
        );
        let e = event_with_span(&r, [0xab; 8]).unwrap();
        assert_eq!(e.event_id, Uuid::from_u128(7).to_string());
        assert_eq!(e.source, "signalling");
        assert_eq!(e.channel, "signalling.matches");
        assert_eq!(e.resource, "match");
        assert_eq!(e.action, "closed");
        assert_eq!(e.resource_id, MATCH);
        assert_eq!(e.attributes.len(), 2);
        assert_eq!(e.attributes["match_id"], MATCH);
        assert_eq!(e.attributes["kind"], "FAMILY");
        let audience = e.audience.unwrap();
        assert_eq!(audience.organisations, ["ggd-jgz", "school-1"]);
        assert_eq!(audience.municipality_codes, ["GM0363"]);
        assert_eq!(e.occurred_at.unwrap().seconds, 1_780_000_000);
        assert_eq!(
            e.trace_parent,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01"
        );
    }

    #[test]
    fn channels_are_the_plural_of_the_resource() {
        for (event_type, resource_id, channel_name) in [
            (
                "signalling.signal.registered",
                "signal_id",
                "signalling.signals",
            ),
            ("signalling.match.created", "match_id", "signalling.matches"),
            (
                "signalling.referral.overdue",
                "referral_id",
                "signalling.referrals",
            ),
            ("intake.subject.deceased", "subject_id", "intake.subjects"),
            ("intake.relation.linked", "relation_id", "intake.relations"),
            (
                "reintegration.detention.ended",
                "detention_id",
                "reintegration.detentions",
            ),
            ("x.category.y", "category_id", "x.categories"),
            ("x.day.y", "day_id", "x.days"),
        ] {
            let r = row(event_type, &[(resource_id, SUBJECT)], &[]);
            let e = to_event(&r).unwrap();
            assert_eq!(e.channel, channel_name, "{event_type}");
            assert_eq!(e.resource_id, SUBJECT, "{event_type}");
        }
    }

    #[test]
    fn rows_that_are_no_event_are_refused() {
        assert_eq!(
            to_event(&row("signalling.match", &[("match_id", MATCH)], &[])),
            Err(MappingError::Type("signalling.match".into()))
        );
        assert!(matches!(
            to_event(&row("intake.relation.linked", &[("parent_subject_id", SUBJECT)], &[])),
            Err(MappingError::NoResourceId { name, .. }) if name == "relation_id"
        ));
        assert!(matches!(
            to_event(&row(
                "signalling.match.closed",
                &[("match_id", MATCH)],
                &[("match_id", "X")]
            )),
            Err(MappingError::Ambiguous { .. })
        ));
    }

    #[test]
    fn trace_parents_need_a_stored_trace_id() {
        let mut r = row("signalling.match.closed", &[("match_id", MATCH)], &[]);
        r.trace_id = String::new();
        assert_eq!(to_event(&r).unwrap().trace_parent, "");
        assert_eq!(trace_parent(&"0".repeat(32), [1; 8]), "");
        assert_eq!(trace_parent("xyz", [1; 8]), "");
        let a = trace_parent("4bf92f3577b34da6a3ce929d0e0e4736", rand::random());
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[0], parts[3]), ("00", "01"));
        assert_eq!(parts[2].len(), 16);
        assert_ne!(parts[2], "0000000000000000");
        assert_eq!(
            trace_parent("4bf92f3577b34da6a3ce929d0e0e4736", [0; 8]),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-01"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let settings = RelaySettings {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(2),
            ..RelaySettings::default()
        };
        for _ in 0..50 {
            let first = backoff(&settings, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&settings, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff(&settings, 40);
            assert!(late >= Duration::from_secs(1) && late <= Duration::from_secs(2));
        }
    }
}
