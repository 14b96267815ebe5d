//! Events as notifications takes them from a producer, checked at the boundary, and the rule
//! that decides which subscription receives which event (need-to-know).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zvv_platform::{
    auth::{OrgType, Role},
    bsn::Bsn,
    codes::MunicipalityCode,
};

use super::channels::{ACTION_KEY, ChannelSpec};

/// Most organisations or municipalities one event may be addressed to.
pub const MAX_AUDIENCE: usize = 200;

/// Who may receive an event. Empty: only suite services' subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Audience {
    pub organisations: BTreeSet<String>,
    pub municipalities: BTreeSet<String>,
}

/// A published event: ids and codes only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub id: Uuid,
    pub source: String,
    pub channel: String,
    pub resource: String,
    pub resource_id: String,
    pub action: String,
    pub occurred_at: DateTime<Utc>,
    pub attributes: BTreeMap<String, String>,
    pub audience: Audience,
    pub trace_parent: String,
}

/// A lowercase name: `[a-z][a-z0-9_]*`, at most `max` characters.
pub fn is_name(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value.as_bytes()[0].is_ascii_lowercase()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// An id or a code: a UUID, or `[A-Z0-9_]`, 1-64 characters; never a valid BSN.
pub fn check_value(value: &str) -> Result<(), &'static str> {
    if Uuid::parse_str(value).is_ok() {
        return Ok(());
    }
    let code = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !code {
        return Err("must be an id (UUID) or a code ([A-Z0-9_], 1-64 characters)");
    }
    if Bsn::parse(value).is_ok() {
        return Err("looks like a BSN; events carry ids and codes only");
    }
    Ok(())
}

/// An organisation id as tokens carry it in `org`: 1-128 printable characters.
pub fn check_organisation(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || value.len() > 128 || value.chars().any(|c| c.is_control()) {
        Err("must be an organisation id (1-128 printable characters)")
    } else if Bsn::parse(value).is_ok() {
        Err("looks like a BSN; an audience names organisations")
    } else {
        Ok(())
    }
}

/// A W3C `traceparent`, or empty.
pub fn check_trace_parent(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Ok(());
    }
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
    {
        Ok(())
    } else {
        Err("must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>) or empty")
    }
}

/// A CBS municipality code.
pub fn check_municipality(value: &str) -> Result<(), &'static str> {
    MunicipalityCode::parse(value).map(drop)
}

/// A subscription's filters on one channel: key → value, or `*` for any value or none.
pub type Filters = BTreeMap<String, String>;

/// The wildcard filter value.
pub const ANY: &str = "*";

/// True when every filter holds for the event. A key the filter does not name is not filtered
/// on; `*` holds whether the event has the key or not; any other value must equal the event's.
pub fn filters_hold(filters: &Filters, event: &Event) -> bool {
    filters.iter().all(|(key, wanted)| {
        if wanted == ANY {
            return true;
        }
        let actual = if key == ACTION_KEY {
            Some(&event.action)
        } else {
            event.attributes.get(key)
        };
        actual == Some(wanted)
    })
}

/// Who a subscription receives for: its organisation and, as they were when it was created,
/// the creator's organisation type, roles and jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub organisation: String,
    pub organisation_type: OrgType,
    pub roles: Vec<Role>,
    /// `None`: not limited (a suite service).
    pub municipalities: Option<Vec<String>>,
}

impl Subscriber {
    pub fn is_suite_service(&self) -> bool {
        self.organisation_type == OrgType::Suite && self.roles.contains(&Role::Service)
    }
}

/// Need-to-know: whether an event on `channel` may reach `subscriber` at all (filters apart).
/// Suite services receive every event; an organisation receives an event whose audience names
/// it, or names a municipality of its jurisdiction when it has a role and the type the channel
/// requires for that. An event without an audience reaches only suite services.
pub fn may_receive(event: &Event, channel: &ChannelSpec, subscriber: &Subscriber) -> bool {
    if subscriber.is_suite_service() {
        return true;
    }
    if event
        .audience
        .organisations
        .contains(&subscriber.organisation)
    {
        return true;
    }
    let Some(jurisdiction) = &subscriber.municipalities else {
        return false;
    };
    let role_ok = channel.admits_roles(&subscriber.roles);
    let type_ok = channel
        .required_org_types
        .is_none_or(|types| types.contains(&subscriber.organisation_type));
    role_ok
        && type_ok
        && jurisdiction
            .iter()
            .any(|code| event.audience.municipalities.contains(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::channels::channel;

    fn event(audience: Audience) -> Event {
        Event {
            id: Uuid::nil(),
            source: "signalling".into(),
            channel: "signalling.referrals".into(),
            resource: "referral".into(),
            resource_id: Uuid::nil().to_string(),
            action: "submitted".into(),
            occurred_at: Utc::now(),
            attributes: BTreeMap::from([("level".into(), "RED".into())]),
            audience,
            trace_parent: String::new(),
        }
    }

    fn subscriber(org: &str, org_type: OrgType, roles: &[Role], codes: &[&str]) -> Subscriber {
        Subscriber {
            organisation: org.into(),
            organisation_type: org_type,
            roles: roles.to_vec(),
            municipalities: Some(codes.iter().map(|c| (*c).to_owned()).collect()),
        }
    }

    #[test]
    fn filters_with_values_wildcards_and_absent_keys() {
        let e = event(Audience::default());
        let f = |pairs: &[(&str, &str)]| -> Filters {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(filters_hold(&f(&[]), &e));
        assert!(filters_hold(&f(&[("level", "RED")]), &e));
        assert!(!filters_hold(&f(&[("level", "YELLOW")]), &e));
        assert!(filters_hold(&f(&[("level", "*")]), &e));
        // the event has no decision: a wildcard holds, a value does not
        assert!(filters_hold(&f(&[("decision", "*")]), &e));
        assert!(!filters_hold(&f(&[("decision", "NO_ACTION")]), &e));
        assert!(filters_hold(&f(&[("action", "submitted")]), &e));
        assert!(!filters_hold(&f(&[("action", "decided")]), &e));
    }

    #[test]
    fn audience_decides_who_receives() {
        let referrals = channel("signalling.referrals").unwrap();
        let e = event(Audience {
            organisations: BTreeSet::from(["school-1".to_owned()]),
            municipalities: BTreeSet::from(["GM0363".to_owned()]),
        });
        let triage = subscriber(
            "gm0363",
            OrgType::Municipality,
            &[Role::TriageOfficer],
            &["GM0363"],
        );
        assert!(may_receive(&e, referrals, &triage));
        // another municipality's desk
        let other = subscriber(
            "gm0599",
            OrgType::Municipality,
            &[Role::TriageOfficer],
            &["GM0599"],
        );
        assert!(!may_receive(&e, referrals, &other));
        // the right municipality without the role the channel requires
        let clerk = subscriber(
            "gm0363",
            OrgType::Municipality,
            &[Role::Professional],
            &["GM0363"],
        );
        assert!(!may_receive(&e, referrals, &clerk));
        // the role, the municipality, but not a triage desk
        let police = subscriber(
            "pol-1",
            OrgType::Police,
            &[Role::TriageOfficer],
            &["GM0363"],
        );
        assert!(!may_receive(&e, referrals, &police));
        // named as an organisation
        let school = subscriber("school-1", OrgType::School, &[Role::Professional], &[]);
        assert!(may_receive(&e, referrals, &school));
        // suite services receive everything, also events without an audience
        let service = Subscriber {
            organisation: "zvv-signalling".into(),
            organisation_type: OrgType::Suite,
            roles: vec![Role::Service],
            municipalities: None,
        };
        let silent = event(Audience::default());
        assert!(may_receive(&silent, referrals, &service));
        assert!(!may_receive(&silent, referrals, &triage));
        // an organisation of type SUITE without the SERVICE role is no suite service
        let fake = Subscriber {
            roles: vec![Role::Professional],
            ..service
        };
        assert!(!may_receive(&silent, referrals, &fake));
    }

    #[test]
    fn values_are_ids_or_codes_never_bsns() {
        assert!(check_value(&Uuid::new_v4().to_string()).is_ok());
        assert!(check_value("RED").is_ok());
        assert!(check_value("123456782").is_err());
        assert!(check_value("Jan Jansen").is_err());
        assert!(check_value("").is_err());
        assert!(
            check_trace_parent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_ok()
        );
        assert!(check_trace_parent("00-xyz").is_err());
        assert!(is_name("signalling", 32) && !is_name("Signalling", 32) && !is_name("", 3));
    }
}
