//! Signalling's logic: checks requests, asks intake about the child (once per request that needs
//! it), applies the domain rules and turns store outcomes into results. Failures are returned
//! as [`ApiError`]s with the ids they concern attached to the call context, for the call layer's
//! audit record. Knows neither tonic nor sqlx.

mod events;
mod matches;
mod referrals;
mod signals;
mod statistics;

use chrono::NaiveDate;
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext,
    error::{ApiError, Violations},
    idempotency::{self, FingerprintKey, Key},
    paging,
};

use crate::domain::{Contact, parse_contact_name, parse_email, parse_phone};

pub use events::{EventLogic, SUBSCRIBED};
pub use referrals::{ReferralLogic, SubmitInput};
pub use signals::{RegisterInput, SignalLogic, SignalSettings};
/// How the request names the child, unchecked.
pub use zvv_platform::intake::SubjectInput;

/// A page of results and the cursor of the next one.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Uuid>,
}

/// The page size and cursor of a list request (both checked, violations named).
fn page_request(page_size: i32, page_token: &str) -> Result<(u32, Option<Uuid>), ApiError> {
    let mut v = Violations::default();
    let size = v.take("page_size", paging::page_size(page_size));
    let after = v.take("page_token", paging::id_cursor::<1>(page_token));
    v.into_result()?;
    match (size, after) {
        (Some(size), Some(after)) => Ok((size, after.map(|[id]| id))),
        _ => Err(ApiError::internal("validation passed with a missing field")),
    }
}

/// The page out of `items` fetched with one more than `size`.
fn page_of<T>(items: Vec<T>, size: u32, id: impl Fn(&T) -> Uuid) -> Page<T> {
    let (items, next) = paging::page(items, size, id);
    Page { items, next }
}

/// Checks a `request_id`, naming it.
fn check_request_id(v: &mut Violations, request_id: &str) {
    v.take(
        "request_id",
        idempotency::check_request_id("request_id", request_id),
    );
}

/// The idempotency key of a call to `rpc`: scoped to the caller's organisation and the RPC,
/// with a keyed fingerprint of the request's canonical form (`parts` joined by US).
fn request_key(
    fingerprints: &FingerprintKey,
    ctx: &CallContext,
    rpc: &str,
    request_id: &str,
    parts: &[&str],
) -> Key {
    Key::for_call(fingerprints, &ctx.principal().org, rpc, request_id, parts)
}

/// Why a request about a subject intake does not know cannot proceed.
fn unknown_subject(what: &str) -> ApiError {
    ApiError::FailedPrecondition(format!("intake does not know this subject: {what}"))
}

fn not_found(what: &str, id: Uuid) -> ApiError {
    ApiError::NotFound(format!("{what} {id} not found"))
}

/// Checks a contact, naming fields under `prefix` (e.g. `contact.name`).
fn parse_contact(prefix: &str, contact: Option<&Contact>, v: &mut Violations) -> Option<Contact> {
    let Some(c) = contact else {
        v.add(prefix, "is required");
        return None;
    };
    let name = v.check(&format!("{prefix}.name"), parse_contact_name(&c.name));
    let phone = v.check(&format!("{prefix}.phone"), parse_phone(&c.phone));
    let email = v.check(&format!("{prefix}.email"), parse_email(&c.email));
    Some(Contact {
        name: name?,
        phone: phone?,
        email: email?,
    })
}

/// An optional date: empty is none; otherwise a real date not after `today` (else a violation
/// naming `field`).
fn optional_past_date(
    field: &str,
    value: &str,
    today: NaiveDate,
    v: &mut Violations,
) -> Option<NaiveDate> {
    if value.is_empty() {
        return None;
    }
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(d) if value.len() == 10 && d <= today => Some(d),
        Ok(d) if d > today => {
            v.add(field, "must not be in the future");
            None
        }
        _ => {
            v.add(field, "must be a real date as YYYY-MM-DD");
            None
        }
    }
}

/// The value of a checked request once its violations are empty.
fn checked<T>(v: Violations, value: Option<T>) -> Result<T, ApiError> {
    v.into_result()?;
    value.ok_or_else(|| ApiError::internal("validation passed with a missing field"))
}
