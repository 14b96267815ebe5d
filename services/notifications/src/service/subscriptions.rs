//! Subscriptions: made for the caller's organisation with its jurisdiction; a webhook must answer
//! a signed test notification with 204 before it is accepted.

use std::{collections::BTreeMap, time::Duration};

use uuid::Uuid;
use zvv_platform::{
    audit::CallContext,
    auth::Jurisdiction,
    error::{ApiError, Violations, quote},
    idempotency::{self, Key},
    paging,
};

use super::{NotificationLogic, not_found};
use crate::{
    clients::{Sinks, WebhookAnswer, WebhookRequest, Webhooks},
    domain::{
        channels::{self, TEST_CHANNEL},
        events::{ANY, Audience, Event, Subscriber, check_value, is_name},
        subscriptions::{
            ChannelFilter, Delivery, MAX_CHANNELS, MAX_FILTERS, Subscription, SubscriptionStatus,
        },
        webhook,
    },
    secrets::Sealed,
    store::{Created, NewSubscription, Page, SubscriptionStore},
};

/// The longest wait for a webhook's answer to the test notification (well within the request
/// timeout of the call).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most subscriptions one organisation may have (each costs every Publish on its channels).
pub const MAX_SUBSCRIPTIONS: i64 = 100;

/// Longest Authorization value.
pub const MAX_AUTHORIZATION: usize = 4096;

#[derive(Debug, Clone)]
pub struct ChannelInput {
    pub channel: String,
    pub filters: BTreeMap<String, String>,
}

#[derive(Clone)]
pub enum DeliveryInput {
    Missing,
    Inbox,
    Webhook { url: String, authorization: String },
    Service { name: String },
}

impl std::fmt::Debug for DeliveryInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("Missing"),
            Self::Inbox => f.write_str("Inbox"),
            Self::Webhook { url, .. } => write!(f, "Webhook {{ url: {url:?}, authorization: .. }}"),
            Self::Service { name } => write!(f, "Service {{ name: {name:?} }}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CreateInput {
    pub request_id: String,
    pub channels: Vec<ChannelInput>,
    pub delivery: DeliveryInput,
}

/// A new subscription and, for a webhook made now (not on a replay), its signing secret.
#[derive(Debug, Clone)]
pub struct CreatedSubscription {
    pub subscription: Subscription,
    pub signing_secret: Option<String>,
}

fn parse_channels(input: &[ChannelInput], v: &mut Violations) -> Vec<ChannelFilter> {
    if input.is_empty() {
        v.add("channels", "must name at least one channel");
    }
    if input.len() > MAX_CHANNELS {
        v.add(
            "channels",
            format!("must name at most {MAX_CHANNELS} channels"),
        );
        return Vec::new();
    }
    let mut out: Vec<ChannelFilter> = Vec::new();
    for (i, c) in input.iter().enumerate() {
        let field = format!("channels[{i}].channel");
        let Some(spec) = channels::channel(&c.channel) else {
            v.add(
                &field,
                format!("{} is not a channel (see ListChannels)", quote(&c.channel)),
            );
            continue;
        };
        if out.iter().any(|o| o.channel == c.channel) {
            v.add(&field, "is named twice");
            continue;
        }
        if c.filters.len() > MAX_FILTERS {
            v.add(
                &format!("channels[{i}].filters"),
                format!("must have at most {MAX_FILTERS} keys"),
            );
            continue;
        }
        for (key, value) in &c.filters {
            let field = format!("channels[{i}].filters[{}]", quote(key));
            if !spec.has_key(key) {
                v.add(&field, "is not a filter key of the channel");
            } else if key == channels::ACTION_KEY {
                if value != ANY && !is_name(value, 64) {
                    v.add(&field, "must be an action (lowercase) or *");
                }
            } else if value != ANY
                && let Err(why) = check_value(value)
            {
                v.add(&field, why);
            }
        }
        out.push(ChannelFilter {
            channel: c.channel.clone(),
            filters: c.filters.clone(),
        });
    }
    out
}

fn canonical_channels(channels: &[ChannelFilter]) -> String {
    let mut parts: Vec<String> = channels
        .iter()
        .map(|c| {
            let filters: Vec<String> = c.filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}[{}]", c.channel, filters.join(","))
        })
        .collect();
    parts.sort();
    parts.join(";")
}

impl<S: SubscriptionStore, K: Sinks> NotificationLogic<S, K> {
    /// Sends the signed test notification; Ok when the webhook answered 204.
    async fn verify_webhook(
        &self,
        id: Uuid,
        url: &str,
        authorization: Option<&str>,
        secret: &[u8],
    ) -> Result<(), ApiError> {
        let now = self.clock.now();
        let test = Event {
            id: zvv_platform::ids::new_id(),
            source: "notifications".into(),
            channel: TEST_CHANNEL.into(),
            resource: "subscription".into(),
            resource_id: id.to_string(),
            action: "test".into(),
            occurred_at: now,
            attributes: BTreeMap::new(),
            audience: Audience::default(),
            trace_parent: String::new(),
        };
        let mut body = webhook::zgw_body(&self.settings.public_base_url, &test);
        body["kanaal"] = serde_json::Value::String(TEST_CHANNEL.into());
        let body = serde_json::to_vec(&body).map_err(ApiError::internal)?;
        let webhook_id = test.id.to_string();
        let request = WebhookRequest {
            url: url.to_owned(),
            authorization: authorization.map(str::to_owned),
            signature: webhook::signature(secret, &webhook_id, now.timestamp(), &body),
            webhook_id,
            timestamp: now.timestamp(),
            body,
        };
        match self.webhooks.post(request, VERIFY_TIMEOUT).await {
            WebhookAnswer::Status(204) => Ok(()),
            WebhookAnswer::Status(s) => Err(ApiError::FailedPrecondition(format!(
                "the webhook answered HTTP {s} to the test notification; it must answer 204"
            ))),
            WebhookAnswer::NoAnswer(why) => Err(ApiError::FailedPrecondition(format!(
                "the webhook did not answer the test notification: {why}"
            ))),
        }
    }

    pub async fn create_subscription(
        &self,
        ctx: &CallContext,
        input: CreateInput,
    ) -> Result<CreatedSubscription, ApiError> {
        let caller = ctx.principal();
        if caller.is_suite_service() {
            // a leaked SERVICE token must not turn into a copy of every event elsewhere
            let own = super::publish::service_of(&caller.org);
            if !matches!(&input.delivery, DeliveryInput::Service { name } if name == own) {
                return Err(ApiError::PermissionDenied(format!(
                    "a suite service subscribes its own EventSink only (delivery.service.name {})",
                    quote(own)
                )));
            }
        } else if let Some(c) = input
            .channels
            .iter()
            .find(|c| channels::channel(&c.channel).is_some_and(|spec| spec.suite_only))
        {
            return Err(ApiError::PermissionDenied(format!(
                "channel {} is for suite services only",
                quote(&c.channel)
            )));
        }
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, &input.request_id);
        let channels = parse_channels(&input.channels, &mut v);
        let mut url_checked = None;
        match &input.delivery {
            DeliveryInput::Missing => v.add("delivery", "is required: inbox, webhook or service"),
            DeliveryInput::Inbox => {}
            DeliveryInput::Webhook { url, authorization } => {
                url_checked = v.check("delivery.webhook.url", self.webhooks.check(url));
                if authorization.len() > MAX_AUTHORIZATION
                    || !authorization
                        .bytes()
                        .all(|b| b == b' ' || b.is_ascii_graphic())
                {
                    v.add(
                        "delivery.webhook.authorization",
                        format!("must be at most {MAX_AUTHORIZATION} visible ASCII characters"),
                    );
                }
            }
            DeliveryInput::Service { name } => {
                if !caller.is_suite_service() {
                    return Err(ApiError::PermissionDenied(
                        "delivery.service is for suite services only".into(),
                    ));
                }
                if !is_name(name, 32) || !self.sinks.knows(name) {
                    v.add(
                        "delivery.service.name",
                        format!(
                            "{} is not a suite service this deployment delivers to",
                            quote(name)
                        ),
                    );
                }
            }
        }
        v.into_result()?;
        if let Some(url) = &url_checked {
            self.webhooks
                .check_resolved(url)
                .await
                .map_err(|why| ApiError::invalid("delivery.webhook.url", why))?;
        }
        let delivery = match &input.delivery {
            DeliveryInput::Webhook { url, .. } => Delivery::Webhook { url: url.clone() },
            DeliveryInput::Service { name } => Delivery::Service { name: name.clone() },
            _ => Delivery::Inbox,
        };
        let (url, authorization) = match &input.delivery {
            DeliveryInput::Webhook { url, authorization } => (url.as_str(), authorization.as_str()),
            _ => ("", ""),
        };
        let service = match &input.delivery {
            DeliveryInput::Service { name } => name.as_str(),
            _ => "",
        };
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "CreateSubscription",
            &input.request_id,
            &[
                &canonical_channels(&channels),
                delivery.kind(),
                url,
                authorization,
                service,
            ],
        );
        let now = self.clock.now();
        if let Some(first) = self
            .store
            .replayed_subscription(ctx, &caller.org, &key, now)
            .await?
        {
            return Ok(CreatedSubscription {
                subscription: first,
                signing_secret: None,
            });
        }
        let count = self.store.count_subscriptions(&caller.org).await?;
        if count >= MAX_SUBSCRIPTIONS {
            return Err(ApiError::FailedPrecondition(format!(
                "the organisation has {count} subscriptions, the most there may be; delete one first"
            )));
        }
        let id = zvv_platform::ids::new_id();
        ctx.attach([id]);
        let municipalities = match caller.jurisdiction() {
            Jurisdiction::Unlimited => None,
            Jurisdiction::Municipalities(codes) => {
                Some(codes.iter().map(|c| c.as_str().to_owned()).collect())
            }
        };
        let subscription = Subscription {
            id,
            subscriber: Subscriber {
                organisation: caller.org.clone(),
                organisation_type: caller.org_type,
                roles: caller.roles.clone(),
                municipalities,
            },
            created_by: caller.sub.clone(),
            channels,
            delivery,
            status: SubscriptionStatus::Active,
            created_at: now,
        };
        let mut new = NewSubscription {
            subscription,
            webhook_url: None,
            authorization_sealed: None,
            secret_sealed: None,
        };
        let mut secret_text = None;
        if let DeliveryInput::Webhook { url, authorization } = &input.delivery {
            let secret = webhook::new_secret();
            let authorization = (!authorization.is_empty()).then_some(authorization.as_str());
            self.verify_webhook(id, url, authorization, &secret).await?;
            new.webhook_url = Some(url.clone());
            new.authorization_sealed =
                authorization.map(|a| self.secrets.seal(Sealed::Authorization, id, a.as_bytes()));
            new.secret_sealed = Some(self.secrets.seal(Sealed::SigningSecret, id, &secret));
            secret_text = Some(webhook::secret_text(&secret));
        }
        match self.store.create_subscription(ctx, new, &key).await? {
            Created::Fresh(subscription) => Ok(CreatedSubscription {
                subscription,
                signing_secret: secret_text,
            }),
            Created::Replayed(subscription) => Ok(CreatedSubscription {
                subscription,
                signing_secret: None,
            }),
        }
    }

    pub async fn get_subscription(
        &self,
        ctx: &CallContext,
        id: &str,
    ) -> Result<Subscription, ApiError> {
        let id = Uuid::parse_str(id)
            .map_err(|_| ApiError::invalid("subscription_id", "must be a UUID"))?;
        ctx.attach([id]);
        let org = ctx.principal().org;
        self.store
            .get_subscription(ctx, &org, id, self.clock.now())
            .await?
            .ok_or_else(|| not_found("subscription", id))
    }

    pub async fn list_subscriptions(
        &self,
        ctx: &CallContext,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Subscription>, ApiError> {
        let (size, after) = paging::page_request(page_size, page_token)?;
        let org = ctx.principal().org;
        self.store
            .list_subscriptions(ctx, &org, after, size, self.clock.now())
            .await
    }

    pub async fn delete_subscription(
        &self,
        ctx: &CallContext,
        request_id: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.check(
            "subscription_id",
            Uuid::parse_str(id).map_err(|_| "must be a UUID"),
        );
        v.into_result()?;
        let Some(id) = id else {
            return Err(ApiError::invalid("subscription_id", "must be a UUID"));
        };
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "DeleteSubscription",
            request_id,
            &[&id.to_string()],
        );
        let org = ctx.principal().org;
        if self
            .store
            .delete_subscription(ctx, &org, id, &key, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(not_found("subscription", id))
        }
    }
}
