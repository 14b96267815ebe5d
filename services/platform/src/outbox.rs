//! The transactional outbox: events are written in the same transaction as the change that
//! produced them, and a relay publishes them later. Events carry ids and codes only, never
//! names, BSNs or free text; [`Event`] enforces that by type.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::Schema;

/// A domain event: a type, entity ids and short codes (`[A-Z0-9_]`, at most 64 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: Uuid,
    /// e.g. `intake.subject.registered`.
    pub event_type: &'static str,
    pub ids: BTreeMap<&'static str, Uuid>,
    pub codes: BTreeMap<&'static str, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The value is left out of the message: it may be exactly what must not be logged.
    #[error("event code {name} is not a code ([A-Z0-9_], 1-64 characters, not a BSN)")]
    NotACode { name: &'static str },
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

impl Event {
    pub fn new(event_type: &'static str) -> Self {
        Self {
            event_id: crate::ids::new_id(),
            event_type,
            ids: BTreeMap::new(),
            codes: BTreeMap::new(),
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

    fn check(&self) -> Result<(), OutboxError> {
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
        Ok(())
    }
}

/// Appends an event in the caller's transaction.
pub async fn append(
    conn: &mut PgConnection,
    schema: Schema,
    event: &Event,
    at: DateTime<Utc>,
) -> Result<(), OutboxError> {
    event.check()?;
    let ids: BTreeMap<&str, String> = event.ids.iter().map(|(k, v)| (*k, v.to_string())).collect();
    sqlx::query(schema.sql(
        "INSERT INTO {schema}.outbox (event_id, event_type, occurred_at, ids, codes, trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    ))
    .bind(event.event_id)
    .bind(event.event_type)
    .bind(at)
    .bind(sqlx::types::Json(&ids))
    .bind(sqlx::types::Json(&event.codes))
    .bind(crate::telemetry::current_trace_id())
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_must_be_codes() {
        assert!(Event::new("x").code("kind", "PARENT").check().is_ok());
        assert!(
            Event::new("x")
                .code("municipality", "GM0363")
                .check()
                .is_ok()
        );
        assert!(Event::new("x").code("name", "Jan Jansen").check().is_err());
        assert!(Event::new("x").code("empty", "").check().is_err());
        let err = Event::new("x")
            .code("ref", "123456782")
            .check()
            .unwrap_err();
        assert!(!err.to_string().contains("123456782"), "{err}");
    }
}
