//! The transactional outbox: events are written in the same transaction as the change that
//! produced them, and a relay ([`crate::relay`]) publishes them later. Events carry ids and codes
//! only, never names, BSNs or free text; [`Event`] enforces that by type and by check.
//!
//! An event's type is `<source>.<resource>.<action>` (e.g. `signalling.match.closed`) and it
//! carries the id of its resource as `<resource>_id`; its audience names who may receive it:
//! organisations (by the id their tokens carry) and municipalities (by CBS code).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::Schema;

/// Who may receive an event: organisation ids and municipality CBS codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    pub organisations: BTreeSet<String>,
    pub municipalities: BTreeSet<String>,
}

impl Audience {
    pub fn is_empty(&self) -> bool {
        self.organisations.is_empty() && self.municipalities.is_empty()
    }
}

/// A domain event: a type, entity ids, short codes (`[A-Z0-9_]`, at most 64 characters) and
/// its audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: Uuid,
    /// e.g. `intake.subject.registered`.
    pub event_type: &'static str,
    pub ids: BTreeMap<&'static str, Uuid>,
    pub codes: BTreeMap<&'static str, String>,
    pub audience: Audience,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The value is left out of the message: it may be exactly what must not be logged.
    #[error(
        "event attribute {name} is reserved: `action` is the event's own action on every channel"
    )]
    Reserved { name: &'static str },
    #[error("event code {name} is not a code ([A-Z0-9_], 1-64 characters, not a BSN)")]
    NotACode { name: &'static str },
    #[error(
        "event type {event_type} is not <source>.<resource>.<action> (lowercase letters, digits, _)"
    )]
    NotAType { event_type: &'static str },
    #[error("event {event_type} has no resource id {name}")]
    NoResourceId {
        event_type: &'static str,
        name: String,
    },
    #[error(
        "an audience organisation of {event_type} is not an organisation id (the org claim shape)"
    )]
    NotAnOrganisation { event_type: &'static str },
    #[error("an audience municipality of {event_type} is not a CBS code (GM + 4 digits)")]
    NotAMunicipality { event_type: &'static str },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<OutboxError> for crate::error::ApiError {
    fn from(err: OutboxError) -> Self {
        match err {
            OutboxError::Db(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

/// The parts of an event type `<source>.<resource>.<action>`, each lowercase letters, digits and
/// `_` starting with a letter; `None` for anything else.
pub fn split_type(event_type: &str) -> Option<(&str, &str, &str)> {
    let mut parts = event_type.split('.');
    let (source, resource, action) = (parts.next()?, parts.next()?, parts.next()?);
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.as_bytes()[0].is_ascii_lowercase()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    (parts.next().is_none() && part(source) && part(resource) && part(action))
        .then_some((source, resource, action))
}

/// The name of the id an event of `resource` carries its resource in, e.g. `match_id`.
pub fn resource_id_name(resource: &str) -> String {
    format!("{resource}_id")
}

impl Event {
    pub fn new(event_type: &'static str) -> Self {
        Self {
            event_id: crate::ids::new_id(),
            event_type,
            ids: BTreeMap::new(),
            codes: BTreeMap::new(),
            audience: Audience::default(),
        }
    }

    pub fn id(mut self, name: &'static str, id: Uuid) -> Self {
        self.ids.insert(name, id);
        self
    }

    pub fn code(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.codes.insert(name, value.into());
        self
    }

    /// Adds an organisation (the id its tokens carry in `org`) to the audience.
    pub fn to_organisation(mut self, org: impl Into<String>) -> Self {
        self.audience.organisations.insert(org.into());
        self
    }

    /// Adds organisations to the audience.
    pub fn to_organisations<I, S>(mut self, orgs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audience
            .organisations
            .extend(orgs.into_iter().map(Into::into));
        self
    }

    /// Adds a municipality (CBS code, e.g. `GM0363`) to the audience.
    pub fn to_municipality(mut self, code: impl Into<String>) -> Self {
        self.audience.municipalities.insert(code.into());
        self
    }

    fn check(&self) -> Result<(), OutboxError> {
        let event_type = self.event_type;
        let (_, resource, _) =
            split_type(event_type).ok_or(OutboxError::NotAType { event_type })?;
        let name = resource_id_name(resource);
        if !self.ids.contains_key(name.as_str()) {
            return Err(OutboxError::NoResourceId { event_type, name });
        }
        if let Some(name) = self
            .ids
            .keys()
            .chain(self.codes.keys())
            .find(|n| **n == ACTION_ATTRIBUTE)
        {
            return Err(OutboxError::Reserved { name });
        }
        for (name, value) in &self.codes {
            let ok = !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && crate::bsn::Bsn::parse(value).is_err();
            if !ok {
                return Err(OutboxError::NotACode { name });
            }
        }
        if !self
            .audience
            .organisations
            .iter()
            .all(|o| crate::auth::is_organisation_id(o))
        {
            return Err(OutboxError::NotAnOrganisation { event_type });
        }
        if !self
            .audience
            .municipalities
            .iter()
            .all(|m| crate::codes::MunicipalityCode::parse(m).is_ok())
        {
            return Err(OutboxError::NotAMunicipality { event_type });
        }
        Ok(())
    }
}

/// The attribute every published event carries for the action of its type (`found`,
/// `approaching`): no id or code of an event may take this name.
pub const ACTION_ATTRIBUTE: &str = "action";

/// Appends an event in the caller's transaction.
pub async fn append(
    conn: &mut PgConnection,
    schema: Schema,
    event: &Event,
    at: DateTime<Utc>,
) -> Result<(), OutboxError> {
    event.check()?;
    let ids: BTreeMap<&str, String> = event.ids.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let organisations: Vec<&str> = event
        .audience
        .organisations
        .iter()
        .map(String::as_str)
        .collect();
    let municipalities: Vec<&str> = event
        .audience
        .municipalities
        .iter()
        .map(String::as_str)
        .collect();
    sqlx::query(schema.sql(
        "INSERT INTO {schema}.outbox (event_id, event_type, occurred_at, ids, codes, trace_id, \
         audience_organisations, audience_municipalities) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    ))
    .bind(event.event_id)
    .bind(event.event_type)
    .bind(at)
    .bind(sqlx::types::Json(&ids))
    .bind(sqlx::types::Json(&event.codes))
    .bind(crate::telemetry::current_trace_id())
    .bind(&organisations)
    .bind(&municipalities)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event::new("test.thing.done").id("thing_id", Uuid::nil())
    }

    #[test]
    fn codes_must_be_codes() {
        assert!(event().code("kind", "PARENT").check().is_ok());
        assert!(event().code("municipality", "GM0363").check().is_ok());
        assert!(event().code("name", "Jan Jansen").check().is_err());
        assert!(event().code("empty", "").check().is_err());
        let err = event().code("ref", "123456782").check().unwrap_err();
        assert!(!err.to_string().contains("123456782"), "{err}");
    }

    #[test]
    fn no_attribute_takes_the_name_of_the_events_action() {
        assert!(matches!(
            event().code("action", "SUSPEND_BENEFIT").check(),
            Err(OutboxError::Reserved { name: "action" })
        ));
        assert!(matches!(
            event().id("action", Uuid::nil()).check(),
            Err(OutboxError::Reserved { .. })
        ));
        assert!(
            event()
                .code("due_action", "SUSPEND_BENEFIT")
                .check()
                .is_ok()
        );
    }

    #[test]
    fn types_name_source_resource_and_action_and_carry_the_resource_id() {
        assert_eq!(
            split_type("signalling.match.closed"),
            Some(("signalling", "match", "closed"))
        );
        for bad in [
            "", "x", "a.b", "a.b.c.d", "A.b.c", "a..c", "a.b.c ", "1a.b.c",
        ] {
            assert_eq!(split_type(bad), None, "{bad}");
        }
        assert!(matches!(
            Event::new("x").check(),
            Err(OutboxError::NotAType { .. })
        ));
        let err = Event::new("test.thing.done")
            .id("other_id", Uuid::nil())
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("thing_id"), "{err}");
    }

    #[test]
    fn audiences_are_organisation_ids_and_cbs_codes() {
        let e = event()
            .to_organisation("school-1")
            .to_organisation("school-1")
            .to_organisations(["ggd-jgz"])
            .to_municipality("GM0363");
        assert!(e.check().is_ok());
        assert_eq!(e.audience.organisations.len(), 2, "deduplicated");
        for bad in ["", "Jan Jansen", "a/b", &"x".repeat(129)] {
            let err = event().to_organisation(bad).check().unwrap_err();
            assert!(
                matches!(err, OutboxError::NotAnOrganisation { .. }),
                "{bad}"
            );
        }
        for bad in ["gm0363", "GM363", "0363", "Amsterdam"] {
            let err = event().to_municipality(bad).check().unwrap_err();
            assert!(matches!(err, OutboxError::NotAMunicipality { .. }), "{bad}");
            assert!(!err.to_string().contains(bad) || bad.is_empty(), "{err}");
        }
    }
}
