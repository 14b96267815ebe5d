//! The anonymous release facts behind the statistics.

use chrono::{DateTime, NaiveDate, Utc};
use zvv_platform::{audit::CallContext, error::ApiError};

use super::{PgStore, commit};
use crate::{
    domain::{Condition, ReleaseFact},
    store::StatisticsStore,
};

impl StatisticsStore for PgStore {
    async fn release_facts(
        &self,
        ctx: &CallContext,
        municipality: &str,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<ReleaseFact>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(NaiveDate, bool, Vec<String>, Option<i32>)> = sqlx::query_as(
            "SELECT release_month, all_arranged, lapsed, redetained_within_months \
             FROM reintegration.release_facts WHERE municipality_code = $1 \
             AND release_month BETWEEN $2 AND $3",
        )
        .bind(municipality)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        commit(tx, ctx, Vec::new(), now).await?;
        Ok(rows
            .into_iter()
            .map(|(month, all_arranged, lapsed, re)| ReleaseFact {
                month,
                all_arranged,
                lapsed: lapsed.iter().filter_map(|c| Condition::parse(c)).collect(),
                redetained_within_months: re.and_then(|m| u32::try_from(m).ok()),
            })
            .collect())
    }
}
