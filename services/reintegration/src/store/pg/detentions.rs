//! Detention episodes: recording events (one episode per external reference, its state folded
//! from all its events by day), the plan opened with the first event and computed again when
//! its dates change, readiness and the anonymous release fact at release, re-detention.

use chrono::{DateTime, Datelike, Months, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext, error::ApiError, idempotency::Key, ids::new_id, outbox::Event,
};

use super::{
    DETENTION_COLUMNS, PgStore, Tx, abandon, commit, detention_from_row, emit, fetch_detention,
    lock_episode, plans, remember, replay, visible_to, whole,
};
use crate::{
    domain::{
        ContinuityPolicy, Detention, DetentionEvent, EpisodeStatus, EventKind, InstitutionType,
        PlanFacts, fold, redetained_within,
    },
    store::{
        Begun, DetentionStore, NewEvent, Outcome, PolicyError, RecordOutcome, RecordSettings,
        Recorded, Recording, Viewer, Visible,
    },
};

/// The events of an episode, as recorded.
async fn events_of(
    conn: &mut PgConnection,
    detention_id: Uuid,
) -> Result<Vec<DetentionEvent>, ApiError> {
    let rows = sqlx::query(
        "SELECT kind, occurred_on, institution_code, institution_type, expected_release_on, \
         received_at FROM reintegration.detention_events WHERE detention_id = $1",
    )
    .bind(detention_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            let institution: String = row.try_get("institution_type")?;
            Ok(DetentionEvent {
                kind: EventKind::parse(&kind)
                    .ok_or_else(|| ApiError::internal(format!("stored event kind {kind:?}")))?,
                occurred_on: row.try_get("occurred_on")?,
                institution_code: row.try_get("institution_code")?,
                institution_type: InstitutionType::parse(&institution).ok_or_else(|| {
                    ApiError::internal(format!("stored institution type {institution:?}"))
                })?,
                expected_release_on: row.try_get("expected_release_on")?,
                received_at: row.try_get("received_at")?,
            })
        })
        .collect()
}

/// The continuity policy of `version`, as recorded.
pub(super) async fn policy_of(
    conn: &mut PgConnection,
    version: u32,
) -> Result<ContinuityPolicy, ApiError> {
    let numbers: serde_json::Value =
        sqlx::query_scalar("SELECT numbers FROM reintegration.policies WHERE version = $1")
            .bind(i64::from(version))
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| ApiError::internal(format!("policy version {version} not recorded")))?;
    serde_json::from_value(numbers).map_err(ApiError::internal)
}

/// The plan facts of an episode: its start, its release (or the expected one), its institution.
pub(super) fn facts_of(d: &Detention) -> PlanFacts {
    PlanFacts {
        began_on: d.began_on,
        expected_release_on: d.release_on(),
        institution_type: InstitutionType::parse(&d.institution_type)
            .unwrap_or(InstitutionType::Pi),
    }
}

fn first_of_month(day: chrono::NaiveDate) -> chrono::NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// A RecordDetentionEvent transaction that holds its idempotency key.
pub struct PgRecording {
    tx: Tx,
}

impl PgRecording {
    /// The episode of `event.external_ref`, created when new (its plan follows once the
    /// event is folded in); the refusal when it is another person's or has no municipality.
    async fn episode(
        tx: &mut Tx,
        event: &NewEvent,
        policy: &ContinuityPolicy,
        now: DateTime<Utc>,
    ) -> Result<Result<(Detention, bool), RecordOutcome>, ApiError> {
        let sql = format!(
            "SELECT {DETENTION_COLUMNS} FROM reintegration.detentions d WHERE d.external_ref = $1 \
             FOR UPDATE"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&event.external_ref)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| detention_from_row(&r))
            .transpose()?;
        if let Some(d) = found {
            return Ok(if d.subject_id == event.subject_id {
                Ok((d, false))
            } else {
                Err(RecordOutcome::OtherSubject)
            });
        }
        let Some(municipality) = event.municipality_code.clone() else {
            return Ok(Err(RecordOutcome::MunicipalityRequired));
        };
        let e = &event.event;
        let mut d = Detention {
            id: new_id(),
            external_ref: event.external_ref.clone(),
            subject_id: event.subject_id,
            municipality_code: municipality,
            status: EpisodeStatus::Detained.as_str().to_owned(),
            began_on: e.occurred_on,
            begin_received: e.kind == EventKind::Begin,
            expected_release_on: e.expected_release_on,
            released_on: None,
            institution_code: e.institution_code.clone(),
            institution_type: e.institution_type.as_str().to_owned(),
            leaves: 0,
            policy_version: policy.version,
            short_stay: false,
            follow_up_until: None,
            redetained_within_months: None,
            ready_at_release: None,
            created_at: now,
            updated_at: now,
        };
        d.short_stay = policy.is_short_stay(&facts_of(&d));
        sqlx::query(
            "INSERT INTO reintegration.detentions (detention_id, external_ref, subject_id, \
             municipality_code, status, began_on, begin_received, expected_release_on, \
             institution_code, institution_type, policy_version, short_stay, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(d.id)
        .bind(&d.external_ref)
        .bind(d.subject_id)
        .bind(&d.municipality_code)
        .bind(&d.status)
        .bind(d.began_on)
        .bind(d.begin_received)
        .bind(d.expected_release_on)
        .bind(&d.institution_code)
        .bind(&d.institution_type)
        .bind(i64::from(d.policy_version))
        .bind(d.short_stay)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(Ok((d, true)))
    }

    /// Re-detention: the latest earlier release of the same person (by its mark) within 24
    /// months of this start, on the episode and on that release's fact.
    async fn mark_redetention(tx: &mut Tx, d: &mut Detention, mark: &[u8]) -> Result<(), ApiError> {
        let releases: Vec<(chrono::NaiveDate, Uuid)> = sqlx::query_as(
            "SELECT released_on, fact_id FROM reintegration.release_marks WHERE subject_mark = $1 \
             AND released_on < $2",
        )
        .bind(mark)
        .bind(d.began_on)
        .fetch_all(&mut **tx)
        .await?;
        let days: Vec<chrono::NaiveDate> = releases.iter().map(|(r, _)| *r).collect();
        let within = redetained_within(&days, d.began_on);
        if within == d.redetained_within_months {
            return Ok(());
        }
        d.redetained_within_months = within;
        if let (Some(months), Some((_, fact))) = (within, releases.iter().max_by_key(|(r, _)| *r)) {
            sqlx::query(
                "UPDATE reintegration.release_facts SET redetained_within_months = \
                 LEAST(COALESCE(redetained_within_months, $2), $2) WHERE fact_id = $1",
            )
            .bind(fact)
            .bind(i64::from(months))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// At release: readiness, the follow-up period, the anonymous release fact and the mark
    /// that lets a later detention of the same person be seen.
    async fn record_release(
        tx: &mut Tx,
        d: &mut Detention,
        mark: &[u8],
        settings: RecordSettings,
        previous_release: Option<chrono::NaiveDate>,
    ) -> Result<(), ApiError> {
        let Some(released) = d.released_on else {
            // detained again under the same reference: the release is over
            if previous_release.is_some() {
                d.follow_up_until = None;
                d.ready_at_release = None;
            }
            return Ok(());
        };
        d.follow_up_until = released.checked_add_months(Months::new(settings.follow_up_months));
        if previous_release == Some(released) {
            return Ok(());
        }
        let (ready, lapsed): (bool, Vec<String>) = sqlx::query_as(
            "SELECT COALESCE(bool_and(status IN ('IN_PLACE', 'ARRANGED', 'NOT_APPLICABLE')), true), \
             COALESCE(array_agg(kind) FILTER (WHERE lapsed_at IS NOT NULL), '{}') \
             FROM reintegration.conditions WHERE detention_id = $1",
        )
        .bind(d.id)
        .fetch_one(&mut **tx)
        .await?;
        d.ready_at_release = Some(ready);
        let fact: Option<Uuid> = sqlx::query_scalar(
            "SELECT release_fact_id FROM reintegration.detentions WHERE detention_id = $1",
        )
        .bind(d.id)
        .fetch_one(&mut **tx)
        .await?;
        match fact {
            // the END was corrected: the fact moves with it
            Some(fact) => {
                sqlx::query(
                    "UPDATE reintegration.release_facts SET release_month = $2, all_arranged = $3 \
                     WHERE fact_id = $1",
                )
                .bind(fact)
                .bind(first_of_month(released))
                .bind(ready)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE reintegration.release_marks SET released_on = $2 WHERE fact_id = $1",
                )
                .bind(fact)
                .bind(released)
                .execute(&mut **tx)
                .await?;
            }
            None => {
                let fact = new_id();
                sqlx::query(
                    "INSERT INTO reintegration.release_facts (fact_id, municipality_code, \
                     release_month, all_arranged, lapsed) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(fact)
                .bind(&d.municipality_code)
                .bind(first_of_month(released))
                .bind(ready)
                .bind(&lapsed)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO reintegration.release_marks (subject_mark, released_on, fact_id) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(mark)
                .bind(released)
                .bind(fact)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE reintegration.detentions SET release_fact_id = $2 WHERE detention_id = $1",
                )
                .bind(d.id)
                .bind(fact)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }
}

impl Recording for PgRecording {
    async fn record(
        self,
        ctx: &CallContext,
        event: NewEvent,
        policy: &ContinuityPolicy,
        settings: RecordSettings,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<RecordOutcome, ApiError> {
        let Self { mut tx } = self;
        lock_episode(&mut tx, &event.external_ref).await?;
        let (mut d, created) = match Self::episode(&mut tx, &event, policy, now).await? {
            Ok(found) => found,
            Err(refused) => {
                abandon(tx).await?;
                return Ok(refused);
            }
        };
        let e = &event.event;
        let inserted = sqlx::query(
            "INSERT INTO reintegration.detention_events (event_id, detention_id, kind, occurred_on, \
             institution_code, institution_type, expected_release_on, recorded_by, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (detention_id, kind, occurred_on) DO NOTHING",
        )
        .bind(new_id())
        .bind(d.id)
        .bind(e.kind.as_str())
        .bind(e.occurred_on)
        .bind(&e.institution_code)
        .bind(e.institution_type.as_str())
        .bind(e.expected_release_on)
        .bind(&event.recorded_by)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            // the same kind on the same day: the episode as it is
            let recorded = Recorded {
                detention: d,
                duplicate: true,
            };
            remember(&mut tx, key, &recorded, now).await?;
            let ids = vec![recorded.detention.id, recorded.detention.subject_id];
            commit(tx, ctx, ids, now).await?;
            return Ok(RecordOutcome::Recorded(Box::new(recorded)));
        }
        let before = d.clone();
        let episode = fold(&events_of(&mut tx, d.id).await?)
            .ok_or_else(|| ApiError::internal("an episode without events"))?;
        d.status = episode.status.as_str().to_owned();
        d.began_on = episode.began_on;
        d.begin_received = episode.begin_received;
        d.expected_release_on = episode.expected_release_on;
        d.released_on = episode.released_on;
        d.institution_code = episode.institution_code;
        d.institution_type = episode.institution_type.as_str().to_owned();
        d.leaves = episode.leaves;
        if let Some(m) = &event.municipality_code {
            d.municipality_code.clone_from(m);
        }
        let plan_policy = if d.policy_version == policy.version {
            policy.clone()
        } else {
            policy_of(&mut tx, d.policy_version).await?
        };
        d.short_stay = plan_policy.is_short_stay(&facts_of(&d));
        if created {
            // the plan of what all events say so far (the first may be any kind)
            plans::insert_plan(&mut tx, d.id, &plan_policy.plan(&facts_of(&d)), now).await?;
        } else if facts_of(&before) != facts_of(&d) {
            plans::recompute(&mut tx, d.id, &plan_policy.plan(&facts_of(&d)), now).await?;
        }
        if created || before.began_on != d.began_on {
            Self::mark_redetention(&mut tx, &mut d, &event.subject_mark).await?;
        }
        Self::record_release(
            &mut tx,
            &mut d,
            &event.subject_mark,
            settings,
            before.released_on.filter(|_| !created),
        )
        .await?;
        d.updated_at = now;
        sqlx::query(
            "UPDATE reintegration.detentions SET municipality_code = $2, status = $3, \
             began_on = $4, begin_received = $5, expected_release_on = $6, released_on = $7, \
             institution_code = $8, institution_type = $9, leaves = $10, short_stay = $11, \
             follow_up_until = $12, redetained_within_months = $13, ready_at_release = $14, \
             updated_at = $15 WHERE detention_id = $1",
        )
        .bind(d.id)
        .bind(&d.municipality_code)
        .bind(&d.status)
        .bind(d.began_on)
        .bind(d.begin_received)
        .bind(d.expected_release_on)
        .bind(d.released_on)
        .bind(&d.institution_code)
        .bind(&d.institution_type)
        .bind(i64::from(d.leaves))
        .bind(d.short_stay)
        .bind(d.follow_up_until)
        .bind(d.redetained_within_months.map(i64::from))
        .bind(d.ready_at_release)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let event_type = if created {
            "reintegration.detention.opened"
        } else if d.released_on.is_some() && before.released_on.is_none() {
            "reintegration.detention.released"
        } else {
            "reintegration.detention.updated"
        };
        emit(
            &mut tx,
            Event::new(event_type)
                .id("detention_id", d.id)
                .code("kind", e.kind.as_str())
                .code("status", d.status.clone())
                .code("municipality_code", d.municipality_code.clone())
                .to_municipality(d.municipality_code.clone()),
            now,
        )
        .await?;
        if before.municipality_code != d.municipality_code && !created {
            // the municipality that was responsible learns that it no longer is
            emit(
                &mut tx,
                Event::new("reintegration.detention.transferred")
                    .id("detention_id", d.id)
                    .code("municipality_code", d.municipality_code.clone())
                    .to_municipality(before.municipality_code.clone()),
                now,
            )
            .await?;
        }
        let recorded = Recorded {
            detention: d,
            duplicate: false,
        };
        remember(&mut tx, key, &recorded, now).await?;
        let ids = vec![recorded.detention.id, recorded.detention.subject_id];
        commit(tx, ctx, ids, now).await?;
        Ok(RecordOutcome::Recorded(Box::new(recorded)))
    }
}

impl DetentionStore for PgStore {
    type Recording = PgRecording;

    async fn begin_recording(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Begun<PgRecording, Recorded>, ApiError> {
        let ids = |r: &Recorded| vec![r.detention.id, r.detention.subject_id];
        Ok(
            match replay(self.pool.begin().await?, ctx, key, ids, now).await? {
                Ok(first) => Begun::Replayed(first),
                Err(tx) => Begun::Fresh(PgRecording { tx }),
            },
        )
    }

    async fn detention(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Outcome<Visible<Detention>>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {DETENTION_COLUMNS} FROM reintegration.detentions d WHERE d.detention_id = $1 \
             AND {}",
            visible_to(2, 3)
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(&viewer.municipalities)
            .bind(&viewer.org)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| detention_from_row(&r))
            .transpose()?;
        let Some(d) = found else {
            let exists = fetch_detention(&mut tx, id, false).await?.is_some();
            abandon(tx).await?;
            return Ok(if exists {
                Outcome::OutsideJurisdiction
            } else {
                Outcome::NotFound
            });
        };
        commit(tx, ctx, vec![d.id, d.subject_id], now).await?;
        Ok(Outcome::Done(Visible {
            whole: whole(viewer, &d),
            item: d,
        }))
    }

    async fn list_detentions(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        status: Option<EpisodeStatus>,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Visible<Detention>>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {DETENTION_COLUMNS} FROM reintegration.detentions d \
             WHERE ($1::text IS NULL OR d.status = $1) AND d.detention_id > $2 AND {} \
             ORDER BY d.detention_id LIMIT $3",
            visible_to(4, 5)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status.map(EpisodeStatus::as_str))
            .bind(after.unwrap_or_else(Uuid::nil))
            .bind(i64::from(limit))
            .bind(&viewer.municipalities)
            .bind(&viewer.org)
            .fetch_all(&mut *tx)
            .await?;
        let detentions = rows
            .iter()
            .map(detention_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids = detentions
            .iter()
            .flat_map(|d| [d.id, d.subject_id])
            .collect();
        commit(tx, ctx, ids, now).await?;
        Ok(detentions
            .into_iter()
            .map(|d| Visible {
                whole: whole(viewer, &d),
                item: d,
            })
            .collect())
    }

    async fn record_policy(
        &self,
        policy: &ContinuityPolicy,
        now: DateTime<Utc>,
    ) -> Result<(), PolicyError> {
        let numbers = serde_json::to_value(policy)
            .map_err(|e| PolicyError::Db(sqlx::Error::Decode(e.into())))?;
        sqlx::query(
            "INSERT INTO reintegration.policies (version, numbers, recorded_at) VALUES ($1, $2, $3) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(i64::from(policy.version))
        .bind(&numbers)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let recorded: serde_json::Value =
            sqlx::query_scalar("SELECT numbers FROM reintegration.policies WHERE version = $1")
                .bind(i64::from(policy.version))
                .fetch_one(&self.pool)
                .await?;
        if recorded != numbers {
            return Err(PolicyError::Changed(policy.version));
        }
        Ok(())
    }
}
