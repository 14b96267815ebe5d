//! The jurisdiction matrix of NotificationService, generated from its policy table: every RPC
//! called by a caller of its organisation working for the data's municipality, for another
//! municipality and for none, by another organisation (the only other type the table leaves is
//! SUITE without the SERVICE role), by a role the table does not grant, and by a suite service.
//! Subscriptions, inboxes and deliveries belong to an organisation whatever its jurisdiction
//! (jurisdiction decides routing, see routing.rs); others find nothing. A new RPC without its
//! row fails.

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Status;
use zvv_devkit::testkit::matrix::{self, Caller, Column, DENIED, HIDDEN, NOT_FOUND, OK, Row};
use zvv_notifications::policy::NOTIFICATION_SERVICE;
use zvv_proto::notifications::v1::{self as pb, create_subscription_request::Delivery};

use crate::helpers::*;

const OWN: &str = "GM0363";
const OTHER: &str = "GM0758";
/// The organisation of the allowed callers (their subscriptions and inbox belong to it).
const ORG: &str = "org-under-test";

/// Columns: own municipality, other municipality, no jurisdiction, wrong org type, wrong role,
/// suite service.
const ROWS: &[Row] = &[
    Row {
        method: "Publish",
        expect: [DENIED, DENIED, DENIED, DENIED, DENIED, OK],
    },
    Row {
        method: "ListChannels",
        expect: [OK, OK, OK, OK, DENIED, OK],
    },
    // a suite service may only subscribe its own EventSink, not an inbox
    Row {
        method: "CreateSubscription",
        expect: [OK, OK, OK, OK, DENIED, DENIED],
    },
    Row {
        method: "GetSubscription",
        expect: [OK, OK, OK, NOT_FOUND, DENIED, NOT_FOUND],
    },
    Row {
        method: "ListSubscriptions",
        expect: [OK, OK, OK, HIDDEN, DENIED, HIDDEN],
    },
    Row {
        method: "DeleteSubscription",
        expect: [OK, OK, OK, NOT_FOUND, DENIED, NOT_FOUND],
    },
    Row {
        method: "ListInbox",
        expect: [OK, OK, OK, HIDDEN, DENIED, HIDDEN],
    },
    Row {
        method: "MarkRead",
        expect: [OK, OK, OK, NOT_FOUND, DENIED, NOT_FOUND],
    },
    Row {
        method: "StreamInbox",
        expect: [OK, OK, OK, HIDDEN, DENIED, HIDDEN],
    },
    Row {
        method: "ListDeliveries",
        expect: [OK, OK, OK, NOT_FOUND, DENIED, NOT_FOUND],
    },
    Row {
        method: "Redeliver",
        expect: [OK, OK, OK, NOT_FOUND, DENIED, NOT_FOUND],
    },
];

struct Fixture {
    app: TestApp,
    /// ORG's webhook subscription, with one delivered delivery.
    webhook: String,
    delivery: String,
    /// An item in ORG's inbox (a match ORG is in).
    item: String,
    event: String,
}

const OWNER: Org = Org {
    name: ORG,
    org_type: zvv_platform::auth::OrgType::Municipality,
    role: zvv_platform::auth::Role::Professional,
    municipalities: &[OWN],
};

impl Fixture {
    async fn fresh_subscription(&self) -> String {
        subscribe_inbox(
            &mut self.app.client(OWNER),
            vec![channel("signalling.signals", &[])],
        )
        .await
    }

    async fn call(&self, method: &str, caller: &Caller, token: &str) -> Result<bool, Status> {
        let mut client = self.app.client_with(token.to_owned());
        match method {
            "Publish" => {
                // the suite column publishes as a producer (its own events only)
                let mut client = if caller.column == Column::SuiteService {
                    self.app.service("signalling")
                } else {
                    client
                };
                Ok(!client
                    .publish(pb::PublishRequest {
                        event: Some(match_event("CLIENT", &[ORG])),
                    })
                    .await?
                    .into_inner()
                    .duplicate)
            }
            "ListChannels" => Ok(!client
                .list_channels(pb::ListChannelsRequest {})
                .await?
                .into_inner()
                .channels
                .is_empty()),
            "CreateSubscription" => Ok(client
                .create_subscription(pb::CreateSubscriptionRequest {
                    request_id: request_id(),
                    channels: vec![channel("signalling.matches", &[])],
                    delivery: Some(Delivery::Inbox(pb::InboxDelivery {})),
                })
                .await?
                .into_inner()
                .subscription
                .is_some()),
            "GetSubscription" => Ok(client
                .get_subscription(pb::GetSubscriptionRequest {
                    subscription_id: self.webhook.clone(),
                })
                .await?
                .into_inner()
                .subscription
                .is_some_and(|s| s.subscription_id == self.webhook)),
            "ListSubscriptions" => Ok(client
                .list_subscriptions(pb::ListSubscriptionsRequest::default())
                .await?
                .into_inner()
                .subscriptions
                .iter()
                .any(|s| s.subscription_id == self.webhook)),
            "DeleteSubscription" => {
                let id = self.fresh_subscription().await;
                client
                    .delete_subscription(pb::DeleteSubscriptionRequest {
                        request_id: request_id(),
                        subscription_id: id,
                    })
                    .await?;
                Ok(true)
            }
            "ListInbox" => Ok(client
                .list_inbox(pb::ListInboxRequest::default())
                .await?
                .into_inner()
                .items
                .iter()
                .any(|i| i.notification_id == self.item)),
            "MarkRead" => {
                client
                    .mark_read(pb::MarkReadRequest {
                        request_id: request_id(),
                        notification_ids: vec![self.item.clone()],
                    })
                    .await?;
                Ok(true)
            }
            "StreamInbox" => {
                let mut stream = client
                    .stream_inbox(pb::StreamInboxRequest::default())
                    .await?
                    .into_inner();
                // the first message: ORG's item, or (for anyone else) a heartbeat
                let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
                    .await
                    .map_err(|_| Status::deadline_exceeded("no message within 10 s"))?
                    .ok_or_else(|| Status::aborted("the stream ended"))??;
                Ok(matches!(
                    first.message,
                    Some(pb::stream_inbox_response::Message::Item(i))
                        if i.event.as_ref().is_some_and(|e| e.event_id == self.event)
                ))
            }
            "ListDeliveries" => Ok(client
                .list_deliveries(pb::ListDeliveriesRequest {
                    subscription_id: self.webhook.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .deliveries
                .iter()
                .any(|d| d.delivery_id == self.delivery)),
            "Redeliver" => Ok(client
                .redeliver(pb::RedeliverRequest {
                    request_id: request_id(),
                    delivery_ids: vec![self.delivery.clone()],
                })
                .await?
                .into_inner()
                .scheduled
                == 1),
            other => panic!("the matrix has no call for {other}: add one"),
        }
    }
}

#[test]
fn every_rpc_has_rows_in_the_matrix() {
    matrix::check_coverage(&NOTIFICATION_SERVICE, ROWS).expect("matrix covers the policy table");
}

#[tokio::test]
async fn jurisdiction_matrix() {
    let app = TestApp::spawn().await;
    let mut owner = app.client(OWNER);
    let webhook = subscribe_webhook(
        &app,
        &mut owner,
        vec![channel("signalling.matches", &[])],
        "",
    )
    .await;
    subscribe_inbox(&mut owner, vec![channel("signalling.matches", &[])]).await;
    let e = match_event("CLIENT", &[ORG]);
    publish(&app, e.clone()).await;
    assert_eq!(app.deliver().await, 1);
    let delivery = owner
        .list_deliveries(pb::ListDeliveriesRequest {
            subscription_id: webhook.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries[0]
        .delivery_id
        .clone();
    let item = inbox_with(&mut owner, 1).await[0].notification_id.clone();
    let fixture = Fixture {
        app,
        webhook,
        delivery,
        item,
        event: e.event_id,
    };

    let setup = matrix::Setup {
        keys: &fixture.app.keys,
        service: zvv_notifications::SCHEMA.name(),
        org: ORG,
        own: OWN,
        other: OTHER,
    };
    matrix::run(
        setup,
        &[&NOTIFICATION_SERVICE],
        ROWS,
        async |method, caller, token| fixture.call(method, caller, token).await,
    )
    .await;
}
