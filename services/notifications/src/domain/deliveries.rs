//! Deliveries to webhooks and suite services: their states and when to try again.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Retrying,
    Delivered,
    DeadLettered,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Retrying => "RETRYING",
            Self::Delivered => "DELIVERED",
            Self::DeadLettered => "DEAD_LETTERED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PENDING" => Some(Self::Pending),
            "RETRYING" => Some(Self::Retrying),
            "DELIVERED" => Some(Self::Delivered),
            "DEAD_LETTERED" => Some(Self::DeadLettered),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub event_id: Uuid,
    pub channel: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_http_status: u16,
    pub last_error: String,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure; it doubles with every further one.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub cap: Duration,
    /// How long after its creation a delivery is tried before it is dead-lettered.
    pub window: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::seconds(1),
            cap: Duration::minutes(10),
            window: Duration::hours(72),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(DateTime<Utc>),
    /// The retention window is over.
    DeadLetter,
}

impl Backoff {
    /// After the `attempts`-th failed attempt at `now`: the capped exponential wait with up to
    /// 20 % jitter, or a dead letter when the next attempt would fall after `give_up_at`.
    pub fn after_failure(
        &self,
        attempts: u32,
        now: DateTime<Utc>,
        give_up_at: DateTime<Utc>,
    ) -> AfterFailure {
        if now >= give_up_at {
            return AfterFailure::DeadLetter;
        }
        let exp = attempts.saturating_sub(1).min(30);
        let wait_ms = self
            .base
            .num_milliseconds()
            .saturating_mul(1i64 << exp)
            .min(self.cap.num_milliseconds())
            .max(1);
        let jitter = rand::thread_rng().gen_range(0..=wait_ms / 5);
        let next = now + Duration::milliseconds(wait_ms + jitter);
        // one last attempt at the end of the window rather than none
        AfterFailure::RetryAt(next.min(give_up_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_end_with_the_window() {
        let b = Backoff::default();
        let now = Utc::now();
        let end = now + b.window;
        let wait = |n| match b.after_failure(n, now, end) {
            AfterFailure::RetryAt(t) => (t - now).num_milliseconds(),
            AfterFailure::DeadLetter => -1,
        };
        assert!((1000..=1200).contains(&wait(1)));
        assert!((2000..=2400).contains(&wait(2)));
        assert!((8000..=9600).contains(&wait(4)));
        assert!((600_000..=720_000).contains(&wait(20)));
        assert!((600_000..=720_000).contains(&wait(1000)));
        // the last attempt falls on the end of the window, then the delivery is given up
        assert_eq!(
            b.after_failure(3, end - Duration::milliseconds(10), end),
            AfterFailure::RetryAt(end)
        );
        assert_eq!(b.after_failure(3, end, end), AfterFailure::DeadLetter);
    }
}
