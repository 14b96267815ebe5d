//! The channels of this release. They are part of the contract: a producer publishes only on
//! these, with attributes among the channel's filter keys, and a subscription names only these.

use zvv_platform::auth::{OrgType, Role};

/// One channel: its name, what it carries, the attribute keys its events may have and that a
/// filter may name, and the role a subscriber reached through a municipality audience needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub filter_keys: &'static [&'static str],
    pub required_role: Option<Role>,
    /// The organisation types a subscriber reached through a municipality audience must be of
    /// (`None`: any).
    pub required_org_types: Option<&'static [OrgType]>,
    /// Only suite services may subscribe (the events have no audience of organisations).
    pub suite_only: bool,
}

/// The filter key every channel has: the event's action (e.g. `found`, `deceased`).
pub const ACTION_KEY: &str = "action";

/// The channel of the notification a webhook must answer 204 to when it is created.
pub const TEST_CHANNEL: &str = "test";

pub const CHANNELS: &[ChannelSpec] = &[
    ChannelSpec {
        name: "signalling.signals",
        description: "Signals of the subscriber's own organisation: registered, closed, \
                      information duty recorded, expired",
        filter_keys: &[
            ACTION_KEY,
            "signal_id",
            "subject_id",
            "organisation_type",
            "reason",
            "information_duty",
        ],
        required_role: None,
        required_org_types: None,
        suite_only: false,
    },
    ChannelSpec {
        name: "signalling.matches",
        description: "Matches the subscriber's organisation is in: created, updated, closed, \
                      coordinator assigned, coordinated",
        filter_keys: &[ACTION_KEY, "match_id", "kind"],
        required_role: None,
        required_org_types: None,
        suite_only: false,
    },
    ChannelSpec {
        name: "signalling.referrals",
        description: "Referrals routed to the triage desks of a municipality: submitted, \
                      decided, overdue",
        filter_keys: &[
            ACTION_KEY,
            "referral_id",
            "subject_id",
            "level",
            "municipality_code",
            "decision",
        ],
        required_role: Some(Role::TriageOfficer),
        // the triage desks of signalling's policy
        required_org_types: Some(&[
            OrgType::Municipality,
            OrgType::VeiligThuis,
            OrgType::NeighbourhoodTeam,
        ]),
        suite_only: false,
    },
    ChannelSpec {
        name: "intake.subjects",
        description: "Subjects of the identity registry (suite services only): registered, \
                      updated, moved, deceased",
        filter_keys: &[
            ACTION_KEY,
            "subject_id",
            "origin",
            "municipality_code",
            "from_municipality_code",
            "to_municipality_code",
            "given_name",
            "family_name",
            "birth_date",
            "neighbourhood_code",
            "date_of_death",
        ],
        required_role: None,
        required_org_types: None,
        suite_only: true,
    },
    ChannelSpec {
        name: "intake.relations",
        description: "Parent and child relations of the identity registry (suite services \
                      only): linked, unlinked",
        filter_keys: &[
            ACTION_KEY,
            "relation_id",
            "parent_subject_id",
            "child_subject_id",
            "kind",
            "source",
            "reason",
        ],
        required_role: None,
        required_org_types: None,
        suite_only: true,
    },
];

/// The channel named `name`.
pub fn channel(name: &str) -> Option<&'static ChannelSpec> {
    CHANNELS.iter().find(|c| c.name == name)
}

impl ChannelSpec {
    pub fn has_key(&self, key: &str) -> bool {
        self.filter_keys.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_is_named_once_and_filters_on_its_action() {
        for (i, c) in CHANNELS.iter().enumerate() {
            assert!(c.has_key(ACTION_KEY), "{}", c.name);
            assert!(
                CHANNELS[i + 1..].iter().all(|d| d.name != c.name),
                "{} twice",
                c.name
            );
            assert_ne!(c.name, TEST_CHANNEL);
        }
        assert_eq!(
            channel("signalling.referrals").unwrap().required_role,
            Some(Role::TriageOfficer)
        );
        assert!(channel("nope").is_none());
    }
}
