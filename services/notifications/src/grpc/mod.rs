//! The thin gRPC adapter of NotificationService and the conversions between its messages and
//! the domain. Each RPC takes the call context, turns the request into domain input, calls the
//! logic and maps the result; a failure goes through `CallContext::fail`, so that the call layer
//! audits it with the error's result.

use std::{pin::Pin, sync::Arc};

use chrono::{DateTime, Utc};
use futures::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zvv_platform::{
    adapter::{call_context, timestamp},
    error::{ApiError, Violations},
};
use zvv_proto::{events::v1 as ev, notifications::v1 as pb};

use crate::{
    clients::Sinks,
    domain::{
        channels::CHANNELS,
        deliveries::{Delivery, DeliveryStatus},
        events::{
            Audience, Event, MAX_AUDIENCE, check_municipality, check_organisation,
            check_trace_parent, check_value, is_name,
        },
        subscriptions::{Delivery as SubscriptionDelivery, Subscription, SubscriptionStatus},
    },
    service::{ChannelInput, CreateInput, DeliveryInput, NotificationLogic, StreamItem},
    store::{DeliveryStore, EventStore, InboxItem, InboxKind, InboxStore, SubscriptionStore},
};

fn time_of(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|n| DateTime::from_timestamp(t.seconds, n))
}

/// The event of a Publish, checked field by field (names under `event.`).
pub fn parse_event(event: Option<ev::Event>) -> Result<Event, ApiError> {
    let Some(e) = event else {
        return Err(ApiError::invalid("event", "is required"));
    };
    let mut v = Violations::default();
    let id = v.check(
        "event.event_id",
        Uuid::parse_str(&e.event_id).map_err(|_| "must be a UUID"),
    );
    if !is_name(&e.source, 32) {
        v.add("event.source", "must be a suite service name (lowercase)");
    }
    if e.channel.is_empty() || e.channel.len() > 64 {
        v.add("event.channel", "is required (at most 64 characters)");
    }
    if !is_name(&e.resource, 40) {
        v.add("event.resource", "must be a resource name (lowercase)");
    }
    v.check("event.resource_id", check_value(&e.resource_id));
    if !is_name(&e.action, 64) {
        v.add("event.action", "must be an action name (lowercase)");
    }
    let occurred_at = match e.occurred_at.as_ref().map(time_of) {
        Some(Some(t)) => Some(t),
        Some(None) => {
            v.add("event.occurred_at", "is not a valid time");
            None
        }
        None => {
            v.add("event.occurred_at", "is required");
            None
        }
    };
    if e.attributes.len() > 40 {
        v.add("event.attributes", "must have at most 40 entries");
    } else {
        for (key, value) in &e.attributes {
            let field = format!("event.attributes[{}]", zvv_platform::error::quote(key));
            if !is_name(key, 64) {
                v.add(&field, "must be a lowercase key");
            } else {
                v.check(&field, check_value(value));
            }
        }
    }
    let audience = e.audience.unwrap_or_default();
    if audience.organisations.len() > MAX_AUDIENCE
        || audience.municipality_codes.len() > MAX_AUDIENCE
    {
        v.add(
            "event.audience",
            format!("may name at most {MAX_AUDIENCE} organisations and municipalities"),
        );
    } else {
        for (i, org) in audience.organisations.iter().enumerate() {
            v.check(
                &format!("event.audience.organisations[{i}]"),
                check_organisation(org),
            );
        }
        for (i, code) in audience.municipality_codes.iter().enumerate() {
            v.check(
                &format!("event.audience.municipality_codes[{i}]"),
                check_municipality(code),
            );
        }
    }
    v.check("event.trace_parent", check_trace_parent(&e.trace_parent));
    v.into_result()?;
    let (Some(id), Some(occurred_at)) = (id, occurred_at) else {
        return Err(ApiError::invalid("event", "is incomplete"));
    };
    Ok(Event {
        id,
        source: e.source,
        channel: e.channel,
        resource: e.resource,
        resource_id: e.resource_id,
        action: e.action,
        occurred_at,
        attributes: e.attributes.into_iter().collect(),
        audience: Audience {
            organisations: audience.organisations.into_iter().collect(),
            municipalities: audience.municipality_codes.into_iter().collect(),
        },
        trace_parent: e.trace_parent,
    })
}

/// The wire form of an event (for inbox items and service deliveries).
pub fn event_to_proto(e: &Event) -> ev::Event {
    ev::Event {
        event_id: e.id.to_string(),
        source: e.source.clone(),
        channel: e.channel.clone(),
        resource: e.resource.clone(),
        resource_id: e.resource_id.clone(),
        action: e.action.clone(),
        occurred_at: Some(timestamp(e.occurred_at)),
        attributes: e.attributes.clone().into_iter().collect(),
        audience: Some(ev::Audience {
            organisations: e.audience.organisations.iter().cloned().collect(),
            municipality_codes: e.audience.municipalities.iter().cloned().collect(),
        }),
        trace_parent: e.trace_parent.clone(),
    }
}

fn subscription_pb(s: Subscription) -> pb::Subscription {
    let delivery = match s.delivery {
        SubscriptionDelivery::Inbox => pb::subscription::Delivery::Inbox(pb::InboxDelivery {}),
        SubscriptionDelivery::Webhook { url } => {
            pb::subscription::Delivery::Webhook(pb::WebhookDelivery {
                url,
                authorization: String::new(),
            })
        }
        SubscriptionDelivery::Service { name } => {
            pb::subscription::Delivery::Service(pb::ServiceDelivery { name })
        }
    };
    pb::Subscription {
        subscription_id: s.id.to_string(),
        organisation: s.subscriber.organisation,
        channels: s
            .channels
            .into_iter()
            .map(|c| pb::ChannelFilter {
                channel: c.channel,
                filters: c.filters.into_iter().collect(),
            })
            .collect(),
        delivery: Some(delivery),
        status: match s.status {
            SubscriptionStatus::Active => pb::SubscriptionStatus::Active,
            SubscriptionStatus::Disabled | SubscriptionStatus::Deleted => {
                pb::SubscriptionStatus::Disabled
            }
        } as i32,
        created_at: Some(timestamp(s.created_at)),
        municipality_codes: s.subscriber.municipalities.unwrap_or_default(),
    }
}

fn item_pb(i: InboxItem) -> pb::InboxItem {
    // the reader learns what happened, not who else was told, nor the producer's trace
    let mut event = event_to_proto(&i.event);
    event.audience = None;
    event.trace_parent = String::new();
    pb::InboxItem {
        notification_id: i.id.to_string(),
        cursor: i.cursor.encode(),
        kind: match i.kind {
            InboxKind::Notification => pb::InboxItemKind::Notification,
            InboxKind::DeadLetter => pb::InboxItemKind::DeadLetter,
        } as i32,
        event: Some(event),
        subscription_id: i.subscription_id.to_string(),
        delivery_id: i.delivery_id.map(|d| d.to_string()).unwrap_or_default(),
        created_at: Some(timestamp(i.created_at)),
        read_at: i.read_at.map(timestamp),
    }
}

fn delivery_status_pb(s: DeliveryStatus) -> pb::DeliveryStatus {
    match s {
        DeliveryStatus::Pending => pb::DeliveryStatus::Pending,
        DeliveryStatus::Retrying => pb::DeliveryStatus::Retrying,
        DeliveryStatus::Delivered => pb::DeliveryStatus::Delivered,
        DeliveryStatus::DeadLettered => pb::DeliveryStatus::DeadLettered,
    }
}

fn delivery_pb(d: Delivery) -> pb::Delivery {
    pb::Delivery {
        delivery_id: d.id.to_string(),
        subscription_id: d.subscription_id.to_string(),
        event_id: d.event_id.to_string(),
        channel: d.channel,
        status: delivery_status_pb(d.status) as i32,
        attempts: i32::try_from(d.attempts).unwrap_or(i32::MAX),
        last_http_status: i32::from(d.last_http_status),
        last_error: d.last_error,
        created_at: Some(timestamp(d.created_at)),
        next_attempt_at: d.next_attempt_at.map(timestamp),
        delivered_at: d.delivered_at.map(timestamp),
    }
}

fn delivery_input(d: Option<pb::create_subscription_request::Delivery>) -> DeliveryInput {
    use pb::create_subscription_request::Delivery as D;
    match d {
        None => DeliveryInput::Missing,
        Some(D::Inbox(_)) => DeliveryInput::Inbox,
        Some(D::Webhook(w)) => DeliveryInput::Webhook {
            url: w.url,
            authorization: w.authorization,
        },
        Some(D::Service(s)) => DeliveryInput::Service { name: s.name },
    }
}

/// NotificationService over the logic.
pub struct NotificationApi<S, K> {
    logic: Arc<NotificationLogic<S, K>>,
}

impl<S, K> NotificationApi<S, K> {
    pub fn new(logic: Arc<NotificationLogic<S, K>>) -> Self {
        Self { logic }
    }
}

type InboxStreamOut = Pin<Box<dyn Stream<Item = Result<pb::StreamInboxResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S, K> pb::notification_service_server::NotificationService for NotificationApi<S, K>
where
    S: EventStore + SubscriptionStore + InboxStore + DeliveryStore,
    K: Sinks,
{
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let ctx = call_context(&request)?;
        let event = parse_event(request.into_inner().event).map_err(|e| ctx.fail(e))?;
        let published = self
            .logic
            .publish(&ctx, event)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::PublishResponse {
            duplicate: published.duplicate,
            routed: i32::try_from(published.routed).unwrap_or(i32::MAX),
        }))
    }

    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let ctx = call_context(&request)?;
        self.logic.audit_call(&ctx).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListChannelsResponse {
            channels: CHANNELS
                .iter()
                .map(|c| pb::Channel {
                    name: c.name.to_owned(),
                    description: c.description.to_owned(),
                    filter_keys: c.filter_keys.iter().map(|k| (*k).to_owned()).collect(),
                    #[allow(deprecated)]
                    required_role: c.required_roles_text(),
                    suite_only: c.suite_only,
                    required_roles: c
                        .required_roles
                        .unwrap_or_default()
                        .iter()
                        .map(|r| r.as_str().to_owned())
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::CreateSubscriptionResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let input = CreateInput {
            request_id: r.request_id,
            channels: r
                .channels
                .into_iter()
                .map(|c| ChannelInput {
                    channel: c.channel,
                    filters: c.filters.into_iter().collect(),
                })
                .collect(),
            delivery: delivery_input(r.delivery),
        };
        let created = self
            .logic
            .create_subscription(&ctx, input)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::CreateSubscriptionResponse {
            subscription: Some(subscription_pb(created.subscription)),
            signing_secret: created.signing_secret.unwrap_or_default(),
        }))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::GetSubscriptionResponse>, Status> {
        let ctx = call_context(&request)?;
        let s = self
            .logic
            .get_subscription(&ctx, &request.into_inner().subscription_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetSubscriptionResponse {
            subscription: Some(subscription_pb(s)),
        }))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let page = self
            .logic
            .list_subscriptions(&ctx, r.page_size, &r.page_token)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListSubscriptionsResponse {
            subscriptions: page.items.into_iter().map(subscription_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        self.logic
            .delete_subscription(&ctx, &r.request_id, &r.subscription_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::DeleteSubscriptionResponse {}))
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let page = self
            .logic
            .list_inbox(&ctx, r.page_size, &r.page_token, r.unread_only)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListInboxResponse {
            items: page.items.into_iter().map(item_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let marked = self
            .logic
            .mark_read(&ctx, &r.request_id, &r.notification_ids)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::MarkReadResponse {
            marked: i32::try_from(marked).unwrap_or(i32::MAX),
        }))
    }

    type StreamInboxStream = InboxStreamOut;

    async fn stream_inbox(
        &self,
        request: Request<pb::StreamInboxRequest>,
    ) -> Result<Response<Self::StreamInboxStream>, Status> {
        let ctx = call_context(&request)?;
        let rx = self
            .logic
            .stream_inbox(&ctx, &request.into_inner().after_cursor)
            .await
            .map_err(|e| ctx.fail(e))?;
        use futures::StreamExt;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| match item {
            StreamItem::Item(item) => Ok(pb::StreamInboxResponse {
                message: Some(pb::stream_inbox_response::Message::Item(item_pb(*item))),
            }),
            StreamItem::Heartbeat(at) => Ok(pb::StreamInboxResponse {
                message: Some(pb::stream_inbox_response::Message::Heartbeat(
                    pb::Heartbeat {
                        at: Some(timestamp(at)),
                    },
                )),
            }),
            StreamItem::Failed(e) => Err(e.into_status()),
        });
        let stream: Self::StreamInboxStream = Box::pin(stream);
        Ok(Response::new(stream))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let status = match pb::DeliveryStatus::try_from(r.status) {
            Ok(pb::DeliveryStatus::Unspecified) => None,
            Ok(pb::DeliveryStatus::Pending) => Some(DeliveryStatus::Pending),
            Ok(pb::DeliveryStatus::Retrying) => Some(DeliveryStatus::Retrying),
            Ok(pb::DeliveryStatus::Delivered) => Some(DeliveryStatus::Delivered),
            Ok(pb::DeliveryStatus::DeadLettered) => Some(DeliveryStatus::DeadLettered),
            Err(_) => {
                return Err(ctx.fail(ApiError::invalid("status", "is not a delivery status")));
            }
        };
        let page = self
            .logic
            .list_deliveries(&ctx, &r.subscription_id, status, r.page_size, &r.page_token)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: page.items.into_iter().map(delivery_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn redeliver(
        &self,
        request: Request<pb::RedeliverRequest>,
    ) -> Result<Response<pb::RedeliverResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let scheduled = self
            .logic
            .redeliver(&ctx, &r.request_id, &r.delivery_ids)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::RedeliverResponse {
            scheduled: i32::try_from(scheduled).unwrap_or(i32::MAX),
        }))
    }
}
