//! Events delivered to signalling's EventSink: each in one transaction with its record in
//! `signalling.consumed_events` (a redelivery changes nothing), the change it makes and the
//! call's audit record.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, sink};

use super::{PgStore, SCHEMA, Tx, commit, lock_subjects, matches, retention};
use crate::store::{Begun, Delivery, EventStore, SubjectDestroyed};

/// The transaction of a delivered event, which has recorded it as taken.
pub struct PgDelivery {
    tx: Tx,
}

impl Delivery for PgDelivery {
    async fn destroy_subject(
        self,
        ctx: &CallContext,
        subject: Uuid,
        now: DateTime<Utc>,
    ) -> Result<SubjectDestroyed, ApiError> {
        let Self { mut tx } = self;
        let destroyed = retention::destroy_subject(&mut tx, subject, now).await?;
        commit(tx, ctx, destroyed.audited(subject), now).await?;
        Ok(destroyed)
    }

    async fn refamily(
        self,
        ctx: &CallContext,
        parent: Uuid,
        child: Uuid,
        children: Option<Vec<Uuid>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, ApiError> {
        let Self { mut tx } = self;
        // the family's matches change under the parent's lock, as registrations change them
        lock_subjects(&mut tx, &[parent]).await?;
        let changed =
            matches::reconcile_family(&mut tx, parent, child, children.as_deref(), now).await?;
        let mut ids = vec![parent, child];
        ids.extend(&changed);
        commit(tx, ctx, ids, now).await?;
        Ok(changed)
    }

    async fn acknowledge(
        self,
        ctx: &CallContext,
        ids: Vec<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        commit(self.tx, ctx, ids, now).await
    }
}

impl EventStore for PgStore {
    type Delivery = PgDelivery;

    async fn begin_delivery(
        &self,
        ctx: &CallContext,
        event_id: Uuid,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<Begun<PgDelivery, ()>, ApiError> {
        let mut tx = self.pool.begin().await?;
        if sink::first_delivery(&mut tx, SCHEMA, event_id).await? {
            Ok(Begun::Fresh(PgDelivery { tx }))
        } else {
            commit(tx, ctx, ids.to_vec(), now).await?;
            Ok(Begun::Replayed(()))
        }
    }
}
