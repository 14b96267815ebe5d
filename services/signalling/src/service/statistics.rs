//! Target-group statistics for analysts of a municipality.

use zvv_platform::{
    audit::CallContext,
    codes::MunicipalityCode,
    error::{ApiError, Violations, checked},
};

use super::SignalLogic;
use crate::{
    clients::Intake,
    domain::{StatisticsCell, cells, parse_period},
    store::{MatchStore, SignalStore, StatisticsStore},
};

impl<S, I> SignalLogic<S, I>
where
    S: SignalStore + MatchStore + StatisticsStore,
    I: Intake,
{
    /// Target-group statistics: distinct subjects per neighbourhood × age band (on the last day
    /// of the period) × organisation type, for a municipality in the analyst's jurisdiction.
    /// The period is whole calendar months that have begun, so that two periods a day apart
    /// cannot be subtracted to expose one child; cells below the threshold are left out, exactly
    /// as empty cells are.
    pub async fn statistics(
        &self,
        ctx: &CallContext,
        municipality_code: &str,
        from_month: &str,
        to_month: &str,
    ) -> Result<Vec<StatisticsCell>, ApiError> {
        let today = self.clock.today();
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
        let rows = self
            .store
            .statistics(ctx, municipality.as_str(), from, to, self.now())
            .await?;
        Ok(cells(rows, to, self.settings.statistics_threshold))
    }
}
