//! Deliveries of a subscription: listed for its organisation, scheduled again on request.

use uuid::Uuid;
use zvv_platform::{
    audit::CallContext,
    error::{ApiError, Violations},
    idempotency::{self, Key},
    paging,
};

use super::{NotificationLogic, not_found, parse_ids};
use crate::{
    clients::Sinks,
    domain::deliveries::{Delivery, DeliveryStatus},
    store::{DeliveryStore, Page},
};

/// Most deliveries one Redeliver may name.
pub const MAX_REDELIVER: usize = 100;

impl<S: DeliveryStore, K: Sinks> NotificationLogic<S, K> {
    pub async fn list_deliveries(
        &self,
        ctx: &CallContext,
        subscription_id: &str,
        status: Option<DeliveryStatus>,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Delivery>, ApiError> {
        let mut v = Violations::default();
        let id = v.check(
            "subscription_id",
            Uuid::parse_str(subscription_id).map_err(|_| "must be a UUID"),
        );
        let size = v.take("page_size", paging::page_size(page_size));
        let after = v
            .take("page_token", paging::decode_token(page_token))
            .flatten()
            .map(|t| {
                t.parse::<i64>().map_err(|_| {
                    ApiError::invalid("page_token", "is not a token returned by this RPC")
                })
            });
        let after = match after {
            Some(r) => v.take("page_token", r),
            None => None,
        };
        v.into_result()?;
        let Some(id) = id else {
            return Err(ApiError::invalid("subscription_id", "must be a UUID"));
        };
        ctx.attach([id]);
        let org = ctx.principal().org;
        self.store
            .list_deliveries(
                ctx,
                &org,
                id,
                status,
                after,
                size.unwrap_or(paging::DEFAULT_PAGE_SIZE),
                self.clock.now(),
            )
            .await?
            .ok_or_else(|| not_found("subscription", id))
    }

    pub async fn redeliver(
        &self,
        ctx: &CallContext,
        request_id: &str,
        delivery_ids: &[String],
    ) -> Result<u32, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let ids = parse_ids("delivery_ids", delivery_ids, MAX_REDELIVER, &mut v);
        v.into_result()?;
        ctx.attach(ids.iter().copied());
        let mut sorted: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        sorted.sort();
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "Redeliver",
            request_id,
            &[&sorted.join(",")],
        );
        let org = ctx.principal().org;
        let scheduled = self
            .store
            .redeliver(ctx, &org, &ids, &key, self.clock.now())
            .await?;
        self.wake_workers.notify_one();
        Ok(scheduled)
    }
}
