//! The receiving end of events: `zvv.events.v1.EventSink`, which notifications calls for every
//! event of a subscription with a `service` delivery.
//!
//! A service implements [`EventHandler`]; [`EventSinkApi`] is the tonic adapter that parses the
//! request (INVALID_ARGUMENT naming the field) and hands the handler a [`ReceivedEvent`]. Delivery
//! is at least once: a handler takes each event in one transaction of its own together with
//! [`first_delivery`], which records the event id in `<schema>.consumed_events`, so that a
//! redelivery is answered as a duplicate and changes nothing. Only suite SERVICE tokens may
//! deliver ([`POLICY`]); a service adds that policy to its set and the adapter to its routes,
//! and subscribes its sink to the channels it takes ([`keep_subscribed`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zvv_proto::{
    events::v1::{
        self as pb,
        event_sink_server::{EventSink, EventSinkServer},
    },
    notifications::v1 as nb,
};

use crate::{
    adapter::call_context,
    audit::CallContext,
    db::Schema,
    error::{ApiError, Violations, checked},
    policy::{Grant, Policy, Rule},
};

/// The full name of the gRPC service.
pub const SERVICE_NAME: &str = "zvv.events.v1.EventSink";

/// Who may deliver events: suite services with their SERVICE token for this service.
pub static POLICY: Policy = Policy {
    service: SERVICE_NAME,
    rules: &[Rule {
        method: "Deliver",
        grants: &[Grant::SERVICE],
        legal_basis: "AVG art. 5(1)(d)-(e), 6(1)(e): suite services keep their records accurate \
                      and no longer than needed by the events of the service that owns the facts",
    }],
};

/// Most attributes an event may carry.
pub const MAX_ATTRIBUTES: usize = 64;

/// An event as delivered, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEvent {
    pub event_id: Uuid,
    pub source: String,
    pub channel: String,
    pub resource: String,
    pub resource_id: String,
    pub action: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub attributes: BTreeMap<String, String>,
    pub audience_organisations: BTreeSet<String>,
    pub audience_municipalities: BTreeSet<String>,
    pub trace_parent: String,
}

/// A part of an event type: lowercase letters, digits and `_`, starting with a letter.
fn type_part(value: &str) -> Result<(), &'static str> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.as_bytes()[0].is_ascii_lowercase()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("must be 1-64 lowercase letters, digits and _, starting with a letter")
    }
}

fn bounded(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        Err("is required".to_owned())
    } else if value.chars().count() > max || value.chars().any(char::is_control) {
        Err(format!(
            "must be at most {max} characters without control characters"
        ))
    } else {
        Ok(())
    }
}

impl ReceivedEvent {
    /// Checks a delivered event; every violation names its field (`event.event_id`,
    /// `event.attributes`, ...).
    pub fn parse(event: Option<pb::Event>) -> Result<Self, ApiError> {
        let Some(e) = event else {
            return Err(ApiError::invalid("event", "is required"));
        };
        let mut v = Violations::default();
        let event_id = v.take(
            "event.event_id",
            crate::ids::parse_id("event.event_id", &e.event_id),
        );
        v.check("event.source", type_part(&e.source));
        v.check("event.resource", type_part(&e.resource));
        v.check("event.action", type_part(&e.action));
        v.check("event.channel", bounded(&e.channel, 128));
        v.check("event.resource_id", bounded(&e.resource_id, 128));
        if e.attributes.len() > MAX_ATTRIBUTES {
            v.add(
                "event.attributes",
                format!("must hold at most {MAX_ATTRIBUTES} entries"),
            );
        }
        let mut attributes = BTreeMap::new();
        for (key, value) in e.attributes.into_iter().take(MAX_ATTRIBUTES) {
            if type_part(&key).is_err() {
                v.add(
                    "event.attributes",
                    format!(
                        "key {} must be lowercase letters, digits and _",
                        crate::error::quote(&key)
                    ),
                );
            } else if let Err(why) = bounded(&value, 128) {
                v.add(&format!("event.attributes.{key}"), why);
            } else {
                attributes.insert(key, value);
            }
        }
        let audience = e.audience.unwrap_or_default();
        let organisations: BTreeSet<String> = audience.organisations.into_iter().collect();
        if !organisations
            .iter()
            .all(|o| crate::auth::is_organisation_id(o))
        {
            v.add(
                "event.audience.organisations",
                "must be organisation ids (letters, digits, '-', '_', '.', ':')",
            );
        }
        let municipalities: BTreeSet<String> = audience.municipality_codes.into_iter().collect();
        if !municipalities
            .iter()
            .all(|m| crate::codes::MunicipalityCode::parse(m).is_ok())
        {
            v.add(
                "event.audience.municipality_codes",
                "must be CBS codes: GM followed by 4 digits",
            );
        }
        let occurred_at = match e.occurred_at {
            None => None,
            Some(t) => {
                let at = u32::try_from(t.nanos)
                    .ok()
                    .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos));
                if at.is_none() {
                    v.add("event.occurred_at", "is not a valid timestamp");
                }
                at
            }
        };
        if e.trace_parent.len() > 55 {
            v.add("event.trace_parent", "must be a W3C traceparent");
        }
        let event_id = checked(v, event_id)?;
        Ok(Self {
            event_id,
            source: e.source,
            channel: e.channel,
            resource: e.resource,
            resource_id: e.resource_id,
            action: e.action,
            occurred_at,
            attributes,
            audience_organisations: organisations,
            audience_municipalities: municipalities,
            trace_parent: e.trace_parent,
        })
    }

    /// `<source>.<resource>.<action>`, as the producer's outbox named it.
    pub fn event_type(&self) -> String {
        format!("{}.{}.{}", self.source, self.resource, self.action)
    }

    /// The id attribute `key`; INVALID_ARGUMENT naming `event.attributes.<key>` when it is
    /// missing or no UUID.
    pub fn id(&self, key: &str) -> Result<Uuid, ApiError> {
        let field = format!("event.attributes.{key}");
        match self.attributes.get(key) {
            None => Err(ApiError::invalid(field, "is required for this event type")),
            Some(value) => crate::ids::parse_id(&field, value),
        }
    }
}

/// What a handler did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Taken now (acted on, or of a type this service does nothing with).
    Taken,
    /// Taken before: nothing was done again.
    Duplicate,
}

/// What a service does with the events delivered to it. Each call must leave the call's audit
/// record (in its transaction, with [`first_delivery`]), as every RPC does.
pub trait EventHandler: Send + Sync + 'static {
    fn handle(
        &self,
        ctx: &CallContext,
        subscription_id: &str,
        event: ReceivedEvent,
    ) -> impl Future<Output = Result<Handled, ApiError>> + Send;
}

/// The tonic adapter of `EventSink` over a handler.
pub struct EventSinkApi<H> {
    handler: Arc<H>,
}

impl<H> EventSinkApi<H> {
    pub fn new(handler: Arc<H>) -> Self {
        Self { handler }
    }
}

/// The generated server of `EventSink` over `handler`, taking requests up to `max_message_bytes`.
pub fn server<H: EventHandler>(
    handler: Arc<H>,
    max_message_bytes: usize,
) -> EventSinkServer<EventSinkApi<H>> {
    EventSinkServer::new(EventSinkApi::new(handler)).max_decoding_message_size(max_message_bytes)
}

#[tonic::async_trait]
impl<H: EventHandler> EventSink for EventSinkApi<H> {
    async fn deliver(
        &self,
        request: Request<pb::DeliverRequest>,
    ) -> Result<Response<pb::DeliverResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        if r.subscription_id.chars().count() > 128 {
            v.add("subscription_id", "must be at most 128 characters");
        }
        v.into_result().map_err(|e| ctx.fail(e))?;
        let event = ReceivedEvent::parse(r.event).map_err(|e| ctx.fail(e))?;
        let handled = self
            .handler
            .handle(&ctx, &r.subscription_id, event)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::DeliverResponse {
            duplicate: handled == Handled::Duplicate,
        }))
    }
}

/// Records in the caller's transaction that `event_id` was taken: true the first time, false
/// for a redelivery (which then must change nothing). A concurrent delivery of the same event
/// waits for the first transaction and then sees it.
pub async fn first_delivery(
    conn: &mut PgConnection,
    schema: Schema,
    event_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let inserted =
        sqlx::query(schema.sql(
            "INSERT INTO {schema}.consumed_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING",
        ))
        .bind(event_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(inserted == 1)
}

/// Forgets the events taken more than `older_than` ago (a redelivery after that would be taken
/// again, so keep them longer than notifications redelivers); returns how many.
pub async fn purge_consumed(
    pool: &PgPool,
    schema: Schema,
    older_than: Duration,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(schema.sql(
        "DELETE FROM {schema}.consumed_events WHERE consumed_at < now() - make_interval(secs => $1)",
    ))
    .bind(older_than.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}

/// One channel a service subscribes its EventSink to, with its filters (key → value; a key not
/// named is not filtered on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub channel: &'static str,
    pub filters: &'static [(&'static str, &'static str)],
}

fn channel_filters(channels: &[Wanted]) -> Vec<nb::ChannelFilter> {
    channels
        .iter()
        .map(|w| nb::ChannelFilter {
            channel: w.channel.to_owned(),
            filters: w
                .filters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
        .collect()
}

/// A channel list in a canonical form, to compare subscriptions by.
fn canonical(channels: &[nb::ChannelFilter]) -> BTreeSet<(String, BTreeMap<String, String>)> {
    channels
        .iter()
        .map(|c| {
            (
                c.channel.clone(),
                c.filters
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        })
        .collect()
}

/// Makes sure this service (`service`, e.g. `signalling`, calling with its SERVICE token for
/// notifications) has an active subscription on exactly `channels` delivered to its EventSink;
/// creates it when there is none. Safe on every replica at once: the request id is derived from
/// what is asked for, so concurrent creations are one. Returns the subscription id.
pub async fn ensure_subscription(
    client: &mut crate::relay::NotificationsClient,
    service: &str,
    channels: &[Wanted],
) -> Result<String, Status> {
    use sha2::{Digest, Sha256};
    let wanted = channel_filters(channels);
    let key = canonical(&wanted);
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = client
            .list_subscriptions(nb::ListSubscriptionsRequest {
                page_size: 100,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        let found = page.subscriptions.iter().find(|s| {
            matches!(&s.delivery, Some(nb::subscription::Delivery::Service(d)) if d.name == service)
                && s.status == nb::SubscriptionStatus::Active as i32
                && canonical(&s.channels) == key
        });
        if let Some(found) = found {
            return Ok(found.subscription_id.clone());
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let digest = Sha256::digest(format!("{service}\u{1f}{key:?}").as_bytes());
    let created = client
        .create_subscription(nb::CreateSubscriptionRequest {
            request_id: format!("{service}-events-{}", hex::encode(&digest[..12])),
            channels: wanted,
            delivery: Some(nb::create_subscription_request::Delivery::Service(
                nb::ServiceDelivery {
                    name: service.to_owned(),
                },
            )),
        })
        .await?
        .into_inner();
    let id = created
        .subscription
        .map(|s| s.subscription_id)
        .unwrap_or_default();
    tracing::info!(service, subscription_id = %id, "subscribed the EventSink to its channels");
    Ok(id)
}

/// Keeps this service subscribed ([`ensure_subscription`]): at once, and again every
/// `interval` (so a subscription deleted by mistake comes back); failures are logged and
/// retried at the next interval. Runs until the returned job is dropped.
pub fn keep_subscribed(
    client: crate::relay::NotificationsClient,
    service: &'static str,
    channels: &'static [Wanted],
    interval: Duration,
) -> crate::jobs::Job {
    crate::jobs::every("event-subscription", interval, move || {
        let mut client = client.clone();
        async move {
            ensure_subscription(&mut client, service, channels)
                .await
                .map(drop)
                .map_err(|s| {
                    format!(
                        "cannot subscribe {service}'s EventSink: {}: {}",
                        crate::layer::code_name(s.code()),
                        crate::error::truncate(s.message(), 200)
                    )
                })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> pb::Event {
        pb::Event {
            event_id: crate::ids::new_id().to_string(),
            source: "intake".into(),
            channel: "intake.subjects".into(),
            resource: "subject".into(),
            resource_id: Uuid::from_u128(5).to_string(),
            action: "deceased".into(),
            occurred_at: Some(crate::adapter::timestamp(Utc::now())),
            attributes: [("subject_id".to_owned(), Uuid::from_u128(5).to_string())].into(),
            audience: Some(pb::Audience {
                organisations: vec!["school-1".into()],
                municipality_codes: vec!["GM0363".into()],
            }),
            trace_parent: String::new(),
        }
    }

    fn fields(err: &ApiError) -> Vec<String> {
        err.violations().iter().map(|(f, _)| f.clone()).collect()
    }

    #[test]
    fn a_good_event_parses() {
        let e = ReceivedEvent::parse(Some(event())).unwrap();
        assert_eq!(e.event_type(), "intake.subject.deceased");
        assert_eq!(e.id("subject_id").unwrap(), Uuid::from_u128(5));
        assert_eq!(
            fields(&e.id("match_id").unwrap_err()),
            ["event.attributes.match_id"]
        );
        assert!(e.audience_municipalities.contains("GM0363"));
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(fields(&ReceivedEvent::parse(None).unwrap_err()), ["event"]);
        type Spoil = fn(&mut pb::Event);
        let cases: [(&str, Spoil); 8] = [
            ("event.event_id", |e| e.event_id = "nope".into()),
            ("event.source", |e| e.source = "Intake".into()),
            ("event.resource", |e| e.resource = String::new()),
            ("event.action", |e| e.action = "a.b".into()),
            ("event.resource_id", |e| e.resource_id = String::new()),
            ("event.attributes.subject_id", |e| {
                e.attributes.insert("subject_id".into(), String::new());
            }),
            ("event.audience.organisations", |e| {
                e.audience.as_mut().unwrap().organisations = vec!["Jan Jansen".into()];
            }),
            ("event.audience.municipality_codes", |e| {
                e.audience.as_mut().unwrap().municipality_codes = vec!["Breda".into()];
            }),
        ];
        for (field, spoil) in cases {
            let mut e = event();
            spoil(&mut e);
            let err = ReceivedEvent::parse(Some(e)).unwrap_err();
            assert_eq!(fields(&err), [field], "{err}");
        }
        let mut e = event();
        e.attributes.insert("subject_id".into(), "x".into());
        let parsed = ReceivedEvent::parse(Some(e)).unwrap();
        assert_eq!(
            fields(&parsed.id("subject_id").unwrap_err()),
            ["event.attributes.subject_id"]
        );
    }

    #[test]
    fn only_suite_services_may_deliver() {
        use crate::auth::{OrgType, Principal, Role};
        let set = crate::policy::PolicySet(std::slice::from_ref(&POLICY));
        let who = |org_type, roles: &[Role]| Principal {
            sub: "s".into(),
            org: "o".into(),
            org_type,
            roles: roles.to_vec(),
            municipalities: Vec::new(),
        };
        let path = "/zvv.events.v1.EventSink/Deliver";
        assert!(matches!(
            set.decide(path, &who(OrgType::Suite, &[Role::Service])),
            crate::policy::Decision::Allowed(_)
        ));
        for caller in [
            who(
                OrgType::Municipality,
                &[Role::Professional, Role::Coordinator],
            ),
            who(OrgType::School, &[Role::Service]),
        ] {
            assert!(matches!(
                set.decide(path, &caller),
                crate::policy::Decision::Denied(_)
            ));
        }
        assert_eq!(
            POLICY.uncovered_methods(zvv_proto::FILE_DESCRIPTOR_SET),
            Ok(vec![])
        );
    }
}
