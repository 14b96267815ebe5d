//! Statistics: the subjects with a signal active in a period, for the logic to count.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError};

use super::{PgStore, commit};
use crate::{domain::StatisticsRow, store::StatisticsStore};

impl StatisticsStore for PgStore {
    async fn statistics(
        &self,
        ctx: &CallContext,
        municipality: &str,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<StatisticsRow>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(String, Uuid, NaiveDate, String)> = sqlx::query_as(
            "SELECT DISTINCT coalesce(neighbourhood_code, 'UNKNOWN'), subject_id, birth_date, organisation_type \
             FROM signalling.signals \
             WHERE municipality_code = $1 AND registered_on <= $3 AND expires_on >= $2 \
               AND (closed_at IS NULL OR closed_at::date >= $2)",
        )
        .bind(municipality)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        // aggregated figures, no person is returned: the record names no subject
        commit(tx, ctx, Vec::new(), now).await?;
        Ok(rows
            .into_iter()
            .map(
                |(neighbourhood_code, subject_id, birth_date, organisation_type)| StatisticsRow {
                    neighbourhood_code,
                    subject_id,
                    birth_date,
                    organisation_type,
                },
            )
            .collect())
    }
}
