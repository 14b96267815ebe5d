//! Subscriptions: what an organisation asked for and how it is delivered.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::events::{Filters, Subscriber};

/// How a subscription's notifications are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Inbox,
    /// `url` only: the Authorization value and the signing secret are kept sealed.
    Webhook {
        url: String,
    },
    /// A suite service's EventSink.
    Service {
        name: String,
    },
}

impl Delivery {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Inbox => "INBOX",
            Self::Webhook { .. } => "WEBHOOK",
            Self::Service { .. } => "SERVICE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Active,
    /// The receiver answered 410 Gone.
    Disabled,
    Deleted,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Disabled => "DISABLED",
            Self::Deleted => "DELETED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ACTIVE" => Some(Self::Active),
            "DISABLED" => Some(Self::Disabled),
            "DELETED" => Some(Self::Deleted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFilter {
    pub channel: String,
    pub filters: Filters,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: Uuid,
    pub subscriber: Subscriber,
    pub created_by: String,
    pub channels: Vec<ChannelFilter>,
    pub delivery: Delivery,
    pub status: SubscriptionStatus,
    pub created_at: DateTime<Utc>,
}

/// Most channels one subscription may name, and most filters per channel.
pub const MAX_CHANNELS: usize = 20;
pub const MAX_FILTERS: usize = 20;
