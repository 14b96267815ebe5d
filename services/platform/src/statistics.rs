//! What every statistics request shares: a municipality in the caller's jurisdiction and a
//! period of whole calendar months that have begun, so that two periods a day apart cannot be
//! subtracted to expose one person.

use chrono::NaiveDate;

use crate::{
    audit::CallContext,
    calendar::parse_period,
    codes::MunicipalityCode,
    error::{ApiError, Violations, checked},
};

/// A checked statistics request: the municipality and the first and last day of the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub municipality: MunicipalityCode,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Checks `municipality_code` and the months `from_month`..=`to_month` (each error naming its
/// field) and that the municipality is in the jurisdiction of the caller of `ctx` (else
/// PERMISSION_DENIED).
pub fn scope(
    ctx: &CallContext,
    municipality_code: &str,
    from_month: &str,
    to_month: &str,
    today: NaiveDate,
) -> Result<Scope, ApiError> {
    let mut v = Violations::default();
    let municipality = v.check(
        "municipality_code",
        MunicipalityCode::parse(municipality_code),
    );
    let period = match parse_period(from_month, to_month, today) {
        Ok(p) => Some(p),
        Err((field, why)) => {
            v.add(field, why);
            None
        }
    };
    let (municipality, (from, to)) = checked(v, municipality.zip(period))?;
    if !ctx.principal().jurisdiction().covers(municipality.as_str()) {
        return Err(ApiError::PermissionDenied(format!(
            "municipality {municipality} is not in your organisation's jurisdiction (the \
             municipalities claim of your token)"
        )));
    }
    Ok(Scope {
        municipality,
        from,
        to,
    })
}
