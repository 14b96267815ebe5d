//! The inbox of an organisation: list, stream, mark read.
//!
//! Items are ordered by (writing transaction id, sequence) and read only below the snapshot's
//! xmin: every transaction with a smaller id has ended, so no item can later appear before one a
//! reader has already passed (no gap), and a cursor is never given twice (no duplicate).

use chrono::{DateTime, Utc};
use sqlx::{Row, postgres::PgRow};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, idempotency::Key};

use super::{EVENT_COLUMNS, PgStore, abandon, commit, event_from_row, first_response, remember};
use crate::store::{Cursor, InboxBatch, InboxItem, InboxKind, InboxReader, InboxStore, Page};

const ITEM_COLUMNS: &str = "i.notification_id, i.txid::text::bigint AS txid, i.seq, i.kind, \
    i.subscription_id, i.delivery_id, i.created_at, i.read_at";

fn item_from_row(row: &PgRow) -> Result<InboxItem, ApiError> {
    let kind: String = row.try_get("kind")?;
    Ok(InboxItem {
        id: row.try_get("notification_id")?,
        cursor: Cursor {
            txid: row.try_get("txid")?,
            seq: row.try_get("seq")?,
        },
        kind: match kind.as_str() {
            "DEAD_LETTER" => InboxKind::DeadLetter,
            _ => InboxKind::Notification,
        },
        event: event_from_row(row)?,
        subscription_id: row.try_get("subscription_id")?,
        delivery_id: row.try_get("delivery_id")?,
        created_at: row.try_get("created_at")?,
        read_at: row.try_get("read_at")?,
    })
}

/// Items of `$1` after the cursor ($2, $3; NULL for the start), settled, in order, at most $4,
/// none of the channels in $5.
fn settled_query(unread_only: bool) -> String {
    format!(
        "SELECT {ITEM_COLUMNS}, {EVENT_COLUMNS} \
         FROM notifications.inbox i JOIN notifications.events e USING (event_id) \
         WHERE i.organisation = $1 \
           AND i.txid < pg_snapshot_xmin(pg_current_snapshot()) \
           AND ($2::bigint IS NULL OR (i.txid, i.seq) > ($2::bigint::text::xid8, $3::bigint)) \
           AND NOT (e.channel = ANY($5::text[])) \
           {} \
         ORDER BY i.txid, i.seq LIMIT $4",
        if unread_only {
            "AND i.read_at IS NULL"
        } else {
            ""
        }
    )
}

impl InboxStore for PgStore {
    async fn list_inbox(
        &self,
        ctx: &CallContext,
        reader: &InboxReader,
        after: Option<Cursor>,
        unread_only: bool,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Page<InboxItem>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(settled_query(unread_only)))
            .bind(&reader.organisation)
            .bind(after.map(|c| c.txid))
            .bind(after.map(|c| c.seq))
            .bind(i64::from(limit) + 1)
            .bind(&reader.hidden_channels)
            .fetch_all(&mut *tx)
            .await?;
        let items = rows
            .iter()
            .map(item_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let (items, next) = zvv_platform::paging::page(items, limit, |i| i.cursor);
        // a page may come out shorter than asked; its token still continues after it
        let items: Vec<InboxItem> = items.into_iter().filter(|i| reader.may_see(i)).collect();
        commit(tx, ctx, crate::store::item_ids(&items), now).await?;
        Ok(Page {
            items,
            next: next.map(Cursor::encode),
        })
    }

    async fn inbox_after(
        &self,
        reader: &InboxReader,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<InboxBatch, ApiError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(settled_query(false)))
            .bind(&reader.organisation)
            .bind(after.map(|c| c.txid))
            .bind(after.map(|c| c.seq))
            .bind(i64::from(limit))
            .bind(&reader.hidden_channels)
            .fetch_all(&mut *conn)
            .await?;
        let items = rows
            .iter()
            .map(item_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InboxBatch {
            full: items.len() == limit as usize,
            read_up_to: items.last().map(|i| i.cursor).or(after),
            items: items.into_iter().filter(|i| reader.may_see(i)).collect(),
        })
    }

    async fn settled_since(
        &self,
        after: Option<Cursor>,
    ) -> Result<(Vec<String>, Option<Cursor>), ApiError> {
        let mut conn = self.pool.acquire().await?;
        let Some(after) = after else {
            let newest: Option<(i64, i64)> = sqlx::query_as(
                "SELECT txid::text::bigint, seq FROM notifications.inbox \
                 WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY txid DESC, seq DESC LIMIT 1",
            )
            .fetch_optional(&mut *conn)
            .await?;
            return Ok((Vec::new(), newest.map(|(txid, seq)| Cursor { txid, seq })));
        };
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT organisation, txid::text::bigint, seq FROM notifications.inbox \
             WHERE (txid, seq) > ($1::bigint::text::xid8, $2::bigint) \
               AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY txid, seq LIMIT 10000",
        )
        .bind(after.txid)
        .bind(after.seq)
        .fetch_all(&mut *conn)
        .await?;
        let last = rows.last().map(|(_, txid, seq)| Cursor {
            txid: *txid,
            seq: *seq,
        });
        let mut orgs: Vec<String> = rows.into_iter().map(|(o, _, _)| o).collect();
        orgs.sort();
        orgs.dedup();
        Ok((orgs, last.or(Some(after))))
    }

    async fn audit_items(
        &self,
        ctx: &CallContext,
        ids: Vec<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let mut conn = self.pool.acquire().await?;
        zvv_platform::audit::append(&mut conn, super::SCHEMA, &ctx.record(ids, "OK", now)).await?;
        Ok(())
    }

    async fn audit_call(&self, ctx: &CallContext, now: DateTime<Utc>) -> Result<(), ApiError> {
        let tx = self.pool.begin().await?;
        commit(tx, ctx, Vec::new(), now).await
    }

    async fn mark_read(
        &self,
        ctx: &CallContext,
        reader: &InboxReader,
        ids: &[Uuid],
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<u32, ApiError> {
        let mut tx = self.pool.begin().await?;
        if let Some(first) = first_response::<u32>(&mut tx, key).await? {
            commit(tx, ctx, ids.to_vec(), now).await?;
            return Ok(first);
        }
        let sql = format!(
            "SELECT {ITEM_COLUMNS}, {EVENT_COLUMNS} \
             FROM notifications.inbox i JOIN notifications.events e USING (event_id) \
             WHERE i.organisation = $1 AND i.notification_id = ANY($2) \
               AND NOT (e.channel = ANY($3::text[]))"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&reader.organisation)
            .bind(ids)
            .bind(&reader.hidden_channels)
            .fetch_all(&mut *tx)
            .await?;
        let mut visible = 0;
        for row in &found {
            if reader.may_see(&item_from_row(row)?) {
                visible += 1;
            }
        }
        if visible != ids.len() {
            abandon(tx).await?;
            return Err(ApiError::NotFound(
                "one or more notification_ids are not in this organisation's inbox".into(),
            ));
        }
        let marked = sqlx::query(
            "UPDATE notifications.inbox SET read_at = $3 \
             WHERE organisation = $1 AND notification_id = ANY($2) AND read_at IS NULL",
        )
        .bind(&reader.organisation)
        .bind(ids)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let marked = u32::try_from(marked).unwrap_or(u32::MAX);
        remember(&mut tx, key, &marked, now).await?;
        commit(tx, ctx, ids.to_vec(), now).await?;
        Ok(marked)
    }
}
