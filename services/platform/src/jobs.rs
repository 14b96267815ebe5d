//! Interval jobs: retention, monitors, the audit sealer, purges and relays all run the same way,
//! on every replica, claiming their rows with `FOR UPDATE SKIP LOCKED` (or a try-lock) so that any
//! number of replicas may run them at once.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use tokio::sync::Notify;

/// A running job; dropping it stops the job.
#[derive(Debug)]
pub struct Job(tokio::task::JoinHandle<()>);

impl Drop for Job {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `run` every `interval` (the first time at once). A run that reports anything but the
/// default ("nothing to do") is logged at info, a failed one at warn; a failure never stops the
/// job.
pub fn every<F, Fut, T, E>(name: &'static str, interval: Duration, run: F) -> Job
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: fmt::Debug + Default + PartialEq,
    E: fmt::Display,
{
    every_or_woken(name, interval, Arc::new(Notify::new()), run)
}

/// Like [`every`], but the first run is one interval after the start: for a job whose work is
/// driven by the clock (a deadline monitor), so that a replica that has just started does not
/// run it before its first interval, and tests on a moved clock run it themselves.
pub fn every_from_next<F, Fut, T, E>(name: &'static str, interval: Duration, run: F) -> Job
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: fmt::Debug + Default + PartialEq,
    E: fmt::Display,
{
    spawn(
        name,
        tokio::time::Instant::now() + interval,
        interval,
        Arc::new(Notify::new()),
        run,
    )
}

/// Like [`every`], and also at once when `wake` is notified (e.g. after a commit that has work
/// for the job); wake-ups during a run make one more run after it.
pub fn every_or_woken<F, Fut, T, E>(
    name: &'static str,
    interval: Duration,
    wake: Arc<Notify>,
    run: F,
) -> Job
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: fmt::Debug + Default + PartialEq,
    E: fmt::Display,
{
    spawn(name, tokio::time::Instant::now(), interval, wake, run)
}

fn spawn<F, Fut, T, E>(
    name: &'static str,
    first: tokio::time::Instant,
    interval: Duration,
    wake: Arc<Notify>,
    mut run: F,
) -> Job
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: fmt::Debug + Default + PartialEq,
    E: fmt::Display,
{
    Job(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(first, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = wake.notified() => tick.reset(),
            }
            match run().await {
                Ok(report) if report == T::default() => {}
                Ok(report) => tracing::info!(job = name, report = ?report, "job run"),
                Err(e) => tracing::warn!(job = name, error = %e, "job run failed"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn runs_at_each_interval_survives_failures_and_stops_when_dropped() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let job = every("test", Duration::from_millis(10), move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n.is_multiple_of(2) {
                    Err("odd failure")
                } else {
                    Ok(n)
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(job);
        let seen = runs.load(Ordering::SeqCst);
        assert!(seen >= 3, "{seen} runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), seen, "stopped");
    }

    #[tokio::test]
    async fn a_wake_up_runs_the_job_before_its_interval() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let wake = Arc::new(Notify::new());
        let _job = every_or_woken("test", Duration::from_secs(3600), wake.clone(), move || {
            let counter = counter.clone();
            async move { Ok::<_, String>(u32::from(counter.fetch_add(1, Ordering::SeqCst) > 99)) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the first run at once");
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "woken");
    }

    #[tokio::test(start_paused = true)]
    async fn from_next_waits_one_interval_before_the_first_run() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let _job = every_from_next("test", Duration::from_secs(60), move || {
            let counter = counter.clone();
            async move { Ok::<_, String>(u32::from(counter.fetch_add(1, Ordering::SeqCst) > 99)) }
        });
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not at the start");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "after one interval");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "then every interval");
    }
}
