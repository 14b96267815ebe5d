//! Who may call which RPC of NotificationService. Deny by default; a test fails when an RPC has
//! no entry.
//!
//! On top of this table, everything is limited to the caller's own organisation (its
//! subscriptions, inbox and deliveries), and routing gives an event only to the organisations in
//! its audience (see `domain::events::may_receive`).

use zvv_platform::{
    auth::Role,
    policy::{Grant, Policy, Rule},
};

/// Professionals of any organisation of the suite may subscribe their organisation; what they
/// then receive is decided by each event's audience.
const SUBSCRIBERS: Grant = Grant {
    roles: &[Role::Professional, Role::Coordinator, Role::TriageOfficer],
    org_types: None,
};

const BASIS_PUBLISH: &str =
    "AVG art. 6(1)(e), 25: references to events of the suite, routed on a need-to-know basis";
const BASIS_NOTIFY: &str = "Jeugdwet art. 7.1.3.1; AVG art. 6(1)(e): informing the organisations \
    concerned of changes they must act on";

const fn rule(method: &'static str, grants: &'static [Grant], legal_basis: &'static str) -> Rule {
    Rule {
        method,
        grants,
        legal_basis,
    }
}

const EVERYONE: &[Grant] = &[SUBSCRIBERS, Grant::SERVICE];

pub static NOTIFICATION_SERVICE: Policy = Policy {
    service: "zvv.notifications.v1.NotificationService",
    rules: &[
        rule("Publish", &[Grant::SERVICE], BASIS_PUBLISH),
        rule("ListChannels", EVERYONE, BASIS_NOTIFY),
        rule("CreateSubscription", EVERYONE, BASIS_NOTIFY),
        rule("GetSubscription", EVERYONE, BASIS_NOTIFY),
        rule("ListSubscriptions", EVERYONE, BASIS_NOTIFY),
        rule("DeleteSubscription", EVERYONE, BASIS_NOTIFY),
        rule("ListInbox", EVERYONE, BASIS_NOTIFY),
        rule("MarkRead", EVERYONE, BASIS_NOTIFY),
        rule("StreamInbox", EVERYONE, BASIS_NOTIFY),
        rule("ListDeliveries", EVERYONE, BASIS_NOTIFY),
        rule("Redeliver", EVERYONE, BASIS_NOTIFY),
    ],
};

pub static POLICIES: &[Policy] = &[NOTIFICATION_SERVICE];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_a_rule() {
        let missing = NOTIFICATION_SERVICE
            .uncovered_methods(zvv_proto::FILE_DESCRIPTOR_SET)
            .unwrap();
        assert!(
            missing.is_empty(),
            "RPCs without a policy entry: {missing:?}"
        );
    }
}
