//! The delivery worker: leases due deliveries in batches, sends them (webhooks signed, suite
//! services over gRPC), and records each attempt: delivered, retried with capped exponential
//! backoff and jitter, dead-lettered when the retention window is over, or — on 410 Gone — the
//! subscription disabled. Any number of workers may run (leases are taken with
//! `FOR UPDATE SKIP LOCKED`); a worker that dies leaves its leases to expire.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::Notify;
use zvv_platform::{clock::SharedClock, error::ApiError};

use crate::{
    clients::{Sinks, WebhookAnswer, WebhookRequest, Webhooks},
    domain::{deliveries::Backoff, webhook},
    secrets::{Sealed, Secrets},
    store::{Attempt, Claimed, DeliveryStore, Target},
};

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub backoff: Backoff,
    /// The longest wait for a receiver's answer.
    pub attempt_timeout: Duration,
    /// How often workers look for due deliveries when nothing wakes them.
    pub poll_interval: Duration,
    /// Deliveries leased per round, and sent at once.
    pub batch: u32,
    pub concurrency: usize,
    /// Worker loops per replica (each leases its own rounds, so sending and recording overlap).
    pub workers: usize,
    /// The suite's public base URL, for `hoofdObject` and `resourceUrl`.
    pub public_base_url: String,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            attempt_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(250),
            batch: 100,
            concurrency: 32,
            workers: 2,
            public_base_url: "http://127.0.0.1:50054".into(),
        }
    }
}

static DEAD_LETTERS: AtomicU64 = AtomicU64::new(0);

/// Counts dead letters (metric `zvv.notifications.dead_letters`).
pub fn count_dead_letters(n: usize) {
    if n == 0 {
        return;
    }
    let n = n as u64;
    DEAD_LETTERS.fetch_add(n, Ordering::Relaxed);
    static COUNTER: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> =
        std::sync::OnceLock::new();
    COUNTER
        .get_or_init(|| {
            opentelemetry::global::meter("zvv")
                .u64_counter("zvv.notifications.dead_letters")
                .with_description("deliveries given up after their retention window or a 410 Gone")
                .build()
        })
        .add(n, &[]);
}

/// Dead letters in this process since it started.
pub fn dead_letters_total() -> u64 {
    DEAD_LETTERS.load(Ordering::Relaxed)
}

/// The POST of one delivery: the ZGW body signed for the subscription.
pub fn webhook_request(
    secrets: &Secrets,
    claimed: &Claimed,
    base_url: &str,
    timestamp: i64,
) -> Result<WebhookRequest, ApiError> {
    let Target::Webhook {
        url,
        authorization_sealed,
        secret_sealed,
    } = &claimed.target
    else {
        return Err(ApiError::internal("not a webhook delivery"));
    };
    let secret = secrets
        .open(
            Sealed::SigningSecret,
            claimed.subscription_id,
            secret_sealed,
        )
        .map_err(ApiError::internal)?;
    let authorization = authorization_sealed
        .as_deref()
        .map(|sealed| {
            secrets
                .open(Sealed::Authorization, claimed.subscription_id, sealed)
                .map_err(ApiError::internal)
                .and_then(|bytes| String::from_utf8(bytes).map_err(ApiError::internal))
        })
        .transpose()?;
    let body = serde_json::to_vec(&webhook::zgw_body(base_url, &claimed.event))
        .map_err(ApiError::internal)?;
    let webhook_id = claimed.event.id.to_string();
    Ok(WebhookRequest {
        url: url.clone(),
        authorization,
        signature: webhook::signature(&secret, &webhook_id, timestamp, &body),
        webhook_id,
        timestamp,
        body,
    })
}

/// The worker's parts.
pub struct Worker<S, W, K> {
    pub store: Arc<S>,
    pub webhooks: Arc<W>,
    pub sinks: Arc<K>,
    pub secrets: Arc<Secrets>,
    pub clock: SharedClock,
    pub settings: DeliverySettings,
}

impl<S: DeliveryStore, W: Webhooks, K: Sinks> Worker<S, W, K> {
    fn failed(&self, claimed: &Claimed, http_status: u16, error: String) -> Attempt {
        Attempt::Failed {
            http_status,
            error,
            then: self.settings.backoff.after_failure(
                claimed.attempts + 1,
                self.clock.now(),
                claimed.give_up_at,
            ),
        }
    }

    /// One attempt at one delivery.
    pub async fn attempt(&self, claimed: &Claimed) -> Attempt {
        let (http_status, error) = match &claimed.target {
            Target::Webhook { .. } => {
                let request = webhook_request(
                    &self.secrets,
                    claimed,
                    &self.settings.public_base_url,
                    self.clock.now().timestamp(),
                );
                match request {
                    Err(e) => {
                        tracing::error!(delivery_id = %claimed.delivery_id, error = %e,
                            "cannot build the webhook request");
                        (0, "the delivery could not be prepared".to_owned())
                    }
                    Ok(request) => {
                        match self
                            .webhooks
                            .post(request, self.settings.attempt_timeout)
                            .await
                        {
                            WebhookAnswer::Status(s) if (200..300).contains(&s) => {
                                return Attempt::Delivered { http_status: s };
                            }
                            WebhookAnswer::Status(410) => return Attempt::Gone,
                            WebhookAnswer::Status(s) => {
                                (s, format!("the receiver answered HTTP {s}"))
                            }
                            WebhookAnswer::NoAnswer(why) => (0, why),
                        }
                    }
                }
            }
            Target::Service { name } => {
                match self
                    .sinks
                    .deliver(name, claimed.subscription_id, &claimed.event)
                    .await
                {
                    Ok(()) => return Attempt::Delivered { http_status: 0 },
                    Err(why) => (0, why),
                }
            }
        };
        self.failed(claimed, http_status, error)
    }

    /// One round: leases what is due, sends it, records every attempt. Returns how many
    /// deliveries were attempted.
    pub async fn run_once(&self) -> Result<usize, ApiError> {
        let now = self.clock.now();
        // long enough for every wave of the batch, so that no other worker takes a row over
        // while its attempt may still run (a stale worker could not record it anyway)
        let waves = self
            .settings
            .batch
            .div_ceil(self.settings.concurrency.max(1) as u32)
            + 1;
        let lease = chrono::Duration::from_std(self.settings.attempt_timeout * waves)
            .unwrap_or(chrono::Duration::minutes(10))
            + chrono::Duration::seconds(10);
        let claimed = self
            .store
            .claim_due(now, now + lease, self.settings.batch)
            .await?;
        let n = claimed.len();
        let attempts: Vec<(Claimed, Attempt)> = futures::stream::iter(claimed)
            .map(|c| async move {
                let attempt = self.attempt(&c).await;
                (c, attempt)
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        // what was delivered is recorded in one statement, every other outcome on its own
        let mut delivered = Vec::new();
        let mut first_error = None;
        for (c, attempt) in attempts {
            match attempt {
                Attempt::Delivered { http_status } => {
                    delivered.push((c.delivery_id, c.lease_id, http_status));
                }
                other => {
                    if let Attempt::Failed { error, then, .. } = &other {
                        tracing::info!(delivery_id = %c.delivery_id, subscription_id = %c.subscription_id,
                            event_id = %c.event.id, error = %error, then = ?then, "delivery failed");
                    }
                    if let Err(e) = self.store.record_attempt(&c, other, self.clock.now()).await {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.store
            .record_delivered(&delivered, self.clock.now())
            .await?;
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(n)
    }
}

/// Runs the worker loops until dropped: a round at every poll interval and at once when `wake`
/// is notified (after a Publish commits), each round draining what is due batch by batch.
pub fn start<S: DeliveryStore, W: Webhooks, K: Sinks>(
    worker: Worker<S, W, K>,
    wake: Arc<Notify>,
) -> Vec<zvv_platform::jobs::Job> {
    let worker = Arc::new(worker);
    (0..worker.settings.workers.max(1))
        .map(|_| {
            let worker = worker.clone();
            zvv_platform::jobs::every_or_woken(
                "notifications.deliveries",
                worker.settings.poll_interval,
                wake.clone(),
                move || {
                    let worker = worker.clone();
                    async move {
                        while worker.run_once().await? == worker.settings.batch as usize {}
                        Ok::<(), ApiError>(())
                    }
                },
            )
        })
        .collect()
}
