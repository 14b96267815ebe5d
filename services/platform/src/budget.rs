//! A token bucket per peer address for calls that fail authentication.
//!
//! Every refused call is audited, and an audit record is a database write. A caller without a
//! valid token could otherwise turn a flood of garbage tokens into a flood of writes. Each peer
//! address (the IP, not the port) gets `burst` audited refusals, refilled at `per_minute`; past
//! that, the call layer answers RESOURCE_EXHAUSTED without touching the database, logs it and
//! counts it. Authenticated calls never draw from a bucket.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The budget of audited authentication failures per peer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// Refusals a peer may cause at once (the bucket's size); 0 audits none.
    pub burst: u32,
    /// Refusals the bucket refills per minute.
    pub per_minute: u32,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            burst: 30,
            per_minute: 60,
        }
    }
}

/// How many peers are tracked one by one; beyond it, new peers share one bucket, so that a
/// spray of source addresses cannot grow the table without bound.
const MAX_PEERS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// The last call from this peer was shed.
    shedding: bool,
}

/// Shed refusals of every budget in this process, for logs and tests.
static SHED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// The number of unauthenticated calls answered RESOURCE_EXHAUSTED (not audited) by any budget
/// in this process since it started.
pub fn shed_total() -> u64 {
    SHED_TOTAL.load(Ordering::Relaxed)
}

/// Token buckets keyed by peer address.
#[derive(Debug)]
pub struct PeerBudget {
    settings: BudgetSettings,
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

/// The outcome of [`PeerBudget::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Within the budget: audit the refusal.
    Allowed,
    /// Over the budget: answer without a database write. `first` is true for the first shed call
    /// since the bucket last had tokens (log that one loudly, the rest quietly).
    Shed { first: bool },
}

impl PeerBudget {
    pub fn new(settings: BudgetSettings) -> Self {
        Self {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill_rate(&self) -> f64 {
        f64::from(self.settings.per_minute) / 60.0
    }

    /// Draws one token for a refusal from `peer` (None when the address is unknown) at `now`.
    pub fn take(&self, peer: Option<IpAddr>, now: Instant) -> Take {
        let burst = f64::from(self.settings.burst);
        let rate = self.refill_rate();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_PEERS && !buckets.contains_key(&peer) {
            // forget the peers whose buckets are full again: they owe nothing
            buckets.retain(|_, b| {
                b.tokens + rate * now.saturating_duration_since(b.updated).as_secs_f64() < burst
            });
        }
        let key = if buckets.len() >= MAX_PEERS && !buckets.contains_key(&peer) {
            None
        } else {
            peer
        };
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
            shedding: false,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + rate * elapsed).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.shedding = false;
            Take::Allowed
        } else {
            SHED_TOTAL.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::count_shed_refusal();
            let first = !bucket.shedding;
            bucket.shedding = true;
            Take::Shed { first }
        }
    }

    /// How long until `peer` may cause another audited refusal (for the retry hint).
    pub fn retry_after(&self) -> Duration {
        if self.settings.per_minute == 0 {
            Duration::from_secs(60)
        } else {
            Duration::from_secs_f64(1.0 / self.refill_rate()).max(Duration::from_secs(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn each_peer_has_its_own_burst_and_refills() {
        let budget = PeerBudget::new(BudgetSettings {
            burst: 3,
            per_minute: 60,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(budget.take(ip(1), t0), Take::Allowed);
        }
        assert_eq!(budget.take(ip(1), t0), Take::Shed { first: true });
        assert_eq!(budget.take(ip(1), t0), Take::Shed { first: false });
        // another peer is not affected
        assert_eq!(budget.take(ip(2), t0), Take::Allowed);
        // one token a second comes back
        assert_eq!(
            budget.take(ip(1), t0 + Duration::from_millis(1100)),
            Take::Allowed
        );
        assert!(matches!(
            budget.take(ip(1), t0 + Duration::from_millis(1200)),
            Take::Shed { .. }
        ));
        // never more than the burst, however long the pause
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(budget.take(ip(1), later), Take::Allowed);
        }
        assert!(matches!(budget.take(ip(1), later), Take::Shed { .. }));
    }

    #[test]
    fn a_zero_burst_audits_nothing_and_the_table_is_bounded() {
        let none = PeerBudget::new(BudgetSettings {
            burst: 0,
            per_minute: 0,
        });
        assert!(matches!(
            none.take(ip(1), Instant::now()),
            Take::Shed { .. }
        ));
        let budget = PeerBudget::new(BudgetSettings {
            burst: 1,
            per_minute: 1,
        });
        let now = Instant::now();
        for n in 0..(MAX_PEERS as u32 + 50) {
            let addr = Some(IpAddr::from(n.to_be_bytes()));
            budget.take(addr, now);
        }
        let size = budget.buckets.lock().unwrap().len();
        assert!(size <= MAX_PEERS + 1, "{size} buckets");
    }
}
