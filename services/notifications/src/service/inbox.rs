//! The inbox: listed, marked read, and streamed — first what is waiting after the caller's
//! cursor, then live, with heartbeats while idle. Each stream has its own task and a small
//! buffer: a slow reader fills only its own buffer and holds up nobody else.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};
use zvv_platform::{
    audit::CallContext,
    error::{ApiError, Violations},
    idempotency::{self, Key},
    paging,
};

use super::{NotificationLogic, parse_ids};
use crate::{
    clients::Sinks,
    domain::channels::CHANNELS,
    store::{Cursor, InboxItem, InboxReader, InboxStore, Page},
};

/// Most items one MarkRead may name.
pub const MAX_MARK: usize = 100;

/// How streams behave.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// A heartbeat after this long without an item.
    pub heartbeat: Duration,
    /// One watcher per replica looks for newly settled items (also those written by other
    /// replicas) at this interval and wakes the streams of their organisations; a Publish of
    /// this replica wakes them at once. Idle streams cost no query of their own.
    pub poll: Duration,
    /// Items buffered per stream before the stream's task waits for its reader.
    pub buffer: usize,
    /// Streams one organisation may have open on one replica.
    pub max_per_organisation: usize,
    /// A stream ends after this long (the client reconnects with its cursor, and its token is
    /// checked again).
    pub max_duration: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            buffer: 32,
            max_per_organisation: 50,
            max_duration: Duration::from_secs(3600),
        }
    }
}

/// What a stream sends.
#[derive(Debug)]
pub enum StreamItem {
    Item(Box<InboxItem>),
    Heartbeat(DateTime<Utc>),
    /// The stream ends with this error (the client reconnects with its last cursor).
    Failed(ApiError),
}

/// The receiving end of a stream.
pub type InboxStream = mpsc::Receiver<StreamItem>;

fn parse_cursor(field: &str, text: &str) -> Result<Option<Cursor>, ApiError> {
    if text.is_empty() {
        return Ok(None);
    }
    Cursor::decode(text)
        .map(Some)
        .ok_or_else(|| ApiError::invalid(field, "is not a cursor this service returned"))
}

/// One open stream of an organisation on this replica; dropping it frees the slot.
pub struct StreamSlot {
    open: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    organisation: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.organisation) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.organisation);
            }
        }
    }
}

/// The caller's view of its organisation's inbox: without the channels whose required roles it
/// lacks (it has none of them).
fn reader(ctx: &CallContext) -> InboxReader {
    let caller = ctx.principal();
    let current = crate::domain::events::Subscriber {
        organisation: caller.org.clone(),
        organisation_type: caller.org_type,
        roles: caller.roles.clone(),
        municipalities: match caller.jurisdiction() {
            zvv_platform::auth::Jurisdiction::Unlimited => None,
            zvv_platform::auth::Jurisdiction::Municipalities(codes) => {
                Some(codes.iter().map(|c| c.as_str().to_owned()).collect())
            }
        },
    };
    InboxReader {
        caller: current,
        hidden_channels: CHANNELS
            .iter()
            .filter(|c| !caller.is_suite_service() && !c.admits_roles(&caller.roles))
            .map(|c| c.name.to_owned())
            .collect(),
        organisation: caller.org,
    }
}

/// A stream reads on its own at least this often, even when nobody woke it.
const SAFETY_POLL: Duration = Duration::from_secs(30);

/// Items read per round of a stream.
const STREAM_BATCH: u32 = 100;

impl<S: InboxStore, K: Sinks> NotificationLogic<S, K> {
    pub async fn list_inbox(
        &self,
        ctx: &CallContext,
        page_size: i32,
        page_token: &str,
        unread_only: bool,
    ) -> Result<Page<InboxItem>, ApiError> {
        let mut v = Violations::default();
        let size = v.take("page_size", paging::page_size(page_size));
        let token = v
            .take("page_token", paging::decode_token(page_token))
            .flatten();
        let after = match token {
            Some(text) => v
                .take("page_token", parse_cursor("page_token", &text))
                .flatten(),
            None => None,
        };
        v.into_result()?;
        let page = self
            .store
            .list_inbox(
                ctx,
                &reader(ctx),
                after,
                unread_only,
                size.unwrap_or(paging::DEFAULT_PAGE_SIZE),
                self.clock.now(),
            )
            .await?;
        Ok(Page {
            items: page.items,
            next: page.next.map(|c| paging::encode_token(&c)),
        })
    }

    pub async fn mark_read(
        &self,
        ctx: &CallContext,
        request_id: &str,
        ids: &[String],
    ) -> Result<u32, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let ids = parse_ids("notification_ids", ids, MAX_MARK, &mut v);
        v.into_result()?;
        ctx.attach(ids.iter().copied());
        let mut sorted: Vec<String> = ids.iter().map(uuid::Uuid::to_string).collect();
        sorted.sort();
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "MarkRead",
            request_id,
            &[&sorted.join(",")],
        );
        self.store
            .mark_read(ctx, &reader(ctx), &ids, &key, self.clock.now())
            .await
    }
}

impl<S: InboxStore, K: Sinks> NotificationLogic<S, K> {
    fn take_stream_slot(&self, organisation: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open_streams.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(organisation.to_owned()).or_default();
        if *n >= self.stream.max_per_organisation {
            return Err(ApiError::ResourceExhausted(format!(
                "the organisation has {} inbox streams open here, the most there may be",
                *n
            )));
        }
        *n += 1;
        Ok(StreamSlot {
            open: self.open_streams.clone(),
            organisation: organisation.to_owned(),
        })
    }

    /// Starts this replica's watcher with the first stream; it runs as long as the logic.
    fn ensure_watcher(self: &Arc<Self>) {
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if watcher.is_some() {
            return;
        }
        let store = self.store.clone();
        let news = self.inbox_news.clone();
        let high_water: Arc<tokio::sync::Mutex<Option<Cursor>>> = Arc::default();
        *watcher = Some(zvv_platform::jobs::every(
            "notifications.inbox-watcher",
            self.stream.poll,
            move || {
                let store = store.clone();
                let news = news.clone();
                let high_water = high_water.clone();
                async move {
                    let mut hw = high_water.lock().await;
                    let after = match *hw {
                        Some(c) => c,
                        None => store
                            .settled_since(None)
                            .await?
                            .1
                            .unwrap_or(Cursor { txid: 0, seq: 0 }),
                    };
                    let (orgs, last) = store.settled_since(Some(after)).await?;
                    *hw = last.or(Some(after));
                    if !orgs.is_empty() {
                        let _ = news.send(Arc::from(orgs));
                    }
                    Ok::<(), ApiError>(())
                }
            },
        ));
    }

    /// Audits a call that reads no stored data.
    pub async fn audit_call(&self, ctx: &CallContext) -> Result<(), ApiError> {
        self.store.audit_call(ctx, self.clock.now()).await
    }

    /// Opens a stream of the caller's organisation's inbox after `after_cursor` (audited now).
    pub async fn stream_inbox(
        self: &Arc<Self>,
        ctx: &CallContext,
        after_cursor: &str,
    ) -> Result<InboxStream, ApiError> {
        let mut cursor = parse_cursor("after_cursor", after_cursor)?;
        let reader = reader(ctx);
        let org = reader.organisation.clone();
        let slot = self.take_stream_slot(&org)?;
        self.store.audit_call(ctx, self.clock.now()).await?;
        let stream_ctx = ctx.clone();
        let (tx, rx) = mpsc::channel(self.stream.buffer.max(1));
        let mut news = self.inbox_news.subscribe();
        self.ensure_watcher();
        let logic = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let settings = logic.stream;
            let ends_at = tokio::time::Instant::now() + settings.max_duration;
            let mut idle_since = tokio::time::Instant::now();
            // after a wake-up that found nothing (the writer's transaction is not yet below
            // every running one), look again soon
            let mut soon: u8 = 0;
            loop {
                let batch = match logic.store.inbox_after(&reader, cursor, STREAM_BATCH).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        let _ = tx.send(StreamItem::Failed(e)).await;
                        return;
                    }
                };
                let (items, full) = (batch.items, batch.full);
                if !items.is_empty() {
                    soon = 0;
                    idle_since = tokio::time::Instant::now();
                    // what this stream gave, audited as the stream's call
                    let ids = crate::store::item_ids(&items);
                    if let Err(e) = logic
                        .store
                        .audit_items(&stream_ctx, ids, logic.clock.now())
                        .await
                    {
                        let _ = tx.send(StreamItem::Failed(e)).await;
                        return;
                    }
                }
                for item in items {
                    cursor = Some(item.cursor);
                    if tx.send(StreamItem::Item(Box::new(item))).await.is_err() {
                        return; // the reader is gone
                    }
                }
                // past what this reader may not see, too
                cursor = batch.read_up_to.max(cursor);
                if full {
                    continue;
                }
                let wait = if soon > 0 {
                    soon -= 1;
                    Duration::from_millis(50)
                } else {
                    // the watcher wakes this stream; this is only a safety net
                    SAFETY_POLL
                };
                let heartbeat_at = idle_since + settings.heartbeat;
                let woke = tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep_until(ends_at) => return,
                    () = tokio::time::sleep(wait) => false,
                    () = tokio::time::sleep_until(heartbeat_at) => {
                        if tx.send(StreamItem::Heartbeat(logic.clock.now())).await.is_err() {
                            return;
                        }
                        idle_since = tokio::time::Instant::now();
                        false
                    }
                    news = wait_for(&mut news, &org) => news,
                };
                if woke {
                    // the watcher wakes it again once the item is readable
                    soon = 3;
                }
            }
        });
        Ok(rx)
    }
}

/// Waits until a Publish of this replica gave `org` an inbox item (true), or news were lost
/// because this stream lagged (true as well: look).
async fn wait_for(news: &mut broadcast::Receiver<Arc<[String]>>, org: &str) -> bool {
    loop {
        match news.recv().await {
            Ok(orgs) if orgs.iter().any(|o| o == org) => return true,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return true,
            Err(broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await;
            }
        }
    }
}
