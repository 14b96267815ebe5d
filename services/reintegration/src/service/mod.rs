//! Reintegration's logic: checks requests, asks intake about the person (once per event that
//! names one), applies the domain rules and turns store outcomes into results. Failures are
//! returned as [`ApiError`]s with the ids they concern attached to the call context, for the call
//! layer's audit record. Knows neither tonic nor sqlx.

mod continuity;
mod detentions;

use uuid::Uuid;
use zvv_platform::{audit::CallContext, auth::OrgType, error::ApiError};

use crate::store::{Outcome, Viewer};

pub use continuity::{ContinuityLogic, UpdateInput};
pub use detentions::{DetentionLogic, RecordInput};

/// The settings the logic needs beside the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The continuity policy of new plans (and of re-planning).
    pub policy: crate::domain::ContinuityPolicy,
    /// Months the plan stays open after release for the conditions not in place.
    pub follow_up_months: u32,
    /// Statistics numbers resting on fewer people are suppressed.
    pub statistics_threshold: u32,
}

/// Who is asking, as the store sees it: a municipality's professionals see their
/// municipalities' episodes whole; everyone sees what its organisation holds tasks in.
fn viewer(ctx: &CallContext) -> Viewer {
    let p = ctx.principal();
    Viewer {
        municipalities: if p.org_type == OrgType::Municipality {
            p.municipalities
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect()
        } else {
            Vec::new()
        },
        org: p.org,
    }
}

/// The result of an outcome about `what` `id`: an unknown one and one outside the caller's
/// reach are answered alike (only the audit tells them apart).
fn found<T>(outcome: Outcome<T>, what: &str, id: Uuid) -> Result<T, ApiError> {
    let unknown = || format!("{what} {id} not found");
    match outcome {
        Outcome::Done(value) => Ok(value),
        Outcome::NotFound => Err(ApiError::NotFound(unknown())),
        Outcome::OutsideJurisdiction => Err(ApiError::OutsideJurisdiction(unknown())),
        Outcome::Refused(why) => Err(ApiError::FailedPrecondition(why)),
    }
}
