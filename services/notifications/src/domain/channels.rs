//! The channels of this release. They are part of the contract: a producer publishes only on
//! these, with attributes among the channel's filter keys, and a subscription names only these.

use zvv_platform::auth::{OrgType, Role};

/// One channel: its name, what it carries, the attribute keys its events may have and that a
/// filter may name, and the roles and organisation types a subscriber reached through a
/// municipality audience needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub filter_keys: &'static [&'static str],
    /// The roles a subscriber reached through a municipality audience must have one of (`None`:
    /// any).
    pub required_roles: Option<&'static [Role]>,
    /// The organisation types a subscriber reached through a municipality audience must be of
    /// (`None`: any).
    pub required_org_types: Option<&'static [OrgType]>,
    /// Only suite services may subscribe (the events have no audience of organisations).
    pub suite_only: bool,
}

/// The filter key every channel has: the event's action (e.g. `found`, `deceased`).
pub const ACTION_KEY: &str = zvv_platform::outbox::ACTION_ATTRIBUTE;

/// The channel of the notification a webhook must answer 204 to when it is created.
pub const TEST_CHANNEL: &str = "test";

/// The key of a deadline warning's action code (e.g. `SUSPEND_BENEFIT`); `action` is the
/// event's own action (`approaching`, `missed`) on every channel.
pub const DUE_ACTION_KEY: &str = "due_action";

/// Reintegration's events reach a municipality's professionals and coordinators (those who
/// steer its continuity plans, as reintegration's policy has it), not its analysts or desks.
const REINTEGRATION_ROLES: &[Role] = &[Role::Professional, Role::Coordinator];

/// Through a municipality audience, reintegration's events reach the municipality itself; a
/// partner (probation, housing, ...) receives only what names it as an organisation.
const REINTEGRATION_ORG_TYPES: &[OrgType] = &[OrgType::Municipality];

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
        required_roles: None,
        required_org_types: None,
        suite_only: false,
    },
    ChannelSpec {
        name: "signalling.matches",
        description: "Matches the subscriber's organisation is in: created, updated, closed, \
                      coordinator assigned, coordinated",
        filter_keys: &[ACTION_KEY, "match_id", "kind"],
        required_roles: None,
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
        required_roles: Some(&[Role::TriageOfficer]),
        // the triage desks of signalling's policy
        required_org_types: Some(&[
            OrgType::Municipality,
            OrgType::VeiligThuis,
            OrgType::NeighbourhoodTeam,
        ]),
        suite_only: false,
    },
    ChannelSpec {
        name: "reintegration.detentions",
        description: "Detention episodes of a municipality's residents, to its professionals \
                      and coordinators: opened, updated, released, transferred (to the \
                      municipality that was responsible), replanned, destroyed",
        filter_keys: &[
            ACTION_KEY,
            "detention_id",
            "kind",
            "status",
            "municipality_code",
            "policy_version",
        ],
        required_roles: Some(REINTEGRATION_ROLES),
        required_org_types: Some(REINTEGRATION_ORG_TYPES),
        suite_only: false,
    },
    ChannelSpec {
        name: "reintegration.conditions",
        description: "Basic conditions of a continuity plan, to the responsible municipality's \
                      professionals and coordinators: updated",
        filter_keys: &[
            ACTION_KEY,
            "condition_id",
            "detention_id",
            "condition",
            "status",
        ],
        required_roles: Some(REINTEGRATION_ROLES),
        required_org_types: Some(REINTEGRATION_ORG_TYPES),
        suite_only: false,
    },
    ChannelSpec {
        name: "reintegration.tasks",
        description: "Partner tasks of a continuity plan: assigned and withdrawn to the partner \
                      organisation, completed and progressed to the responsible municipality",
        filter_keys: &[
            ACTION_KEY,
            "task_id",
            "detention_id",
            "condition_id",
            "condition",
        ],
        required_roles: Some(REINTEGRATION_ROLES),
        required_org_types: Some(REINTEGRATION_ORG_TYPES),
        suite_only: false,
    },
    ChannelSpec {
        name: "reintegration.deadlines",
        description: "Deadline warnings of a continuity plan, to the organisation that has the \
                      task or, while nobody has it, the responsible municipality (a miss always \
                      to the municipality too): approaching, missed",
        filter_keys: &[
            ACTION_KEY,
            "deadline_id",
            "detention_id",
            "condition_id",
            "task_id",
            "condition",
            DUE_ACTION_KEY,
            "municipality_code",
        ],
        required_roles: Some(REINTEGRATION_ROLES),
        required_org_types: Some(REINTEGRATION_ORG_TYPES),
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
        required_roles: None,
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
        required_roles: None,
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

    /// Whether `roles` hold one of the roles the channel requires (always, when it requires
    /// none).
    pub fn admits_roles(&self, roles: &[Role]) -> bool {
        self.required_roles
            .is_none_or(|required| required.iter().any(|r| roles.contains(r)))
    }

    /// The required roles as ListChannels shows them: comma-separated, empty for none.
    pub fn required_roles_text(&self) -> String {
        self.required_roles
            .unwrap_or_default()
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
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
        let referrals = channel("signalling.referrals").unwrap();
        assert!(referrals.admits_roles(&[Role::Analyst, Role::TriageOfficer]));
        assert!(!referrals.admits_roles(&[Role::Professional]));
        assert_eq!(referrals.required_roles_text(), "TRIAGE_OFFICER");
        assert_eq!(
            channel("signalling.matches").unwrap().required_roles_text(),
            ""
        );
        assert!(channel("signalling.matches").unwrap().admits_roles(&[]));
        assert!(channel("nope").is_none());
    }

    #[test]
    fn reintegration_reaches_municipal_professionals_and_coordinators() {
        for name in [
            "reintegration.detentions",
            "reintegration.conditions",
            "reintegration.tasks",
            "reintegration.deadlines",
        ] {
            let c = channel(name).unwrap();
            assert!(!c.suite_only, "{name}");
            assert_eq!(c.required_org_types, Some(&[OrgType::Municipality][..]));
            assert!(c.admits_roles(&[Role::Professional]), "{name}");
            assert!(c.admits_roles(&[Role::Coordinator]), "{name}");
            assert!(
                !c.admits_roles(&[Role::Analyst, Role::TriageOfficer]),
                "{name}"
            );
            assert_eq!(c.required_roles_text(), "PROFESSIONAL,COORDINATOR");
            assert!(c.has_key("detention_id"), "{name}");
        }
        let deadlines = channel("reintegration.deadlines").unwrap();
        for key in [
            "deadline_id",
            "task_id",
            "condition",
            DUE_ACTION_KEY,
            "municipality_code",
        ] {
            assert!(deadlines.has_key(key), "{key}");
        }
    }
}
