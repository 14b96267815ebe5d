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
use zvv_platform::{
    audit::CallContext,
    error::{ApiError, Violations},
    idempotency::{self, FingerprintKey, Key},
};

pub use events::{EventLogic, SUBSCRIBED};
pub use referrals::{ReferralLogic, SubmitInput};
pub use signals::{RegisterInput, SignalLogic, SignalSettings};
/// How the request names the child, unchecked.
pub use zvv_platform::intake::SubjectInput;

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
