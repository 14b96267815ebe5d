//! Target-group statistics for analysts of a municipality.

use zvv_platform::{
    audit::CallContext,
    error::ApiError,
    statistics::{self, Scope},
};

use super::SignalLogic;
use crate::{
    clients::Intake,
    domain::{StatisticsCell, cells},
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
        let Scope {
            municipality,
            from,
            to,
        } = statistics::scope(
            ctx,
            municipality_code,
            from_month,
            to_month,
            self.clock.today(),
        )?;
        let rows = self
            .store
            .statistics(ctx, municipality.as_str(), from, to, self.now())
            .await?;
        Ok(cells(rows, to, self.settings.statistics_threshold))
    }
}
