//! Signalling's logic: checks requests, asks intake about the child (once per request that needs
//! it), applies the domain rules and turns store outcomes into results. Failures are returned
//! as [`ApiError`]s with the ids they concern attached to the call context, for the call layer's
//! audit record. Knows neither tonic nor sqlx.

mod events;
mod matches;
mod referrals;
mod signals;
mod statistics;

use uuid::Uuid;
use zvv_platform::error::ApiError;

pub use events::{EventLogic, SUBSCRIBED};
pub use referrals::{ReferralLogic, SubmitInput};
pub use signals::{RegisterInput, SignalLogic, SignalSettings};
/// How the request names the child, unchecked.
pub use zvv_platform::intake::SubjectInput;

/// Why a request about a subject intake does not know cannot proceed.
fn unknown_subject(what: &str) -> ApiError {
    ApiError::FailedPrecondition(format!("intake does not know this subject: {what}"))
}

fn not_found(what: &str, id: Uuid) -> ApiError {
    ApiError::NotFound(format!("{what} {id} not found"))
}
