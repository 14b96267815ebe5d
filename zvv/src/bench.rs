//! `zvv bench`: load against a running suite, measured from the outside over real gRPC.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use zvv_proto::intake::v1::ResolveSubjectRequest;

use crate::client::{ConnArgs, describe};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// ResolveSubject throughput and latency (needs a SERVICE token).
    Resolve(ResolveArgs),
    /// RegisterSignal throughput and latency on unique subjects (needs a signalling
    /// professional's token, and a registrar's token to register the subjects first).
    Signal(SignalArgs),
}

#[derive(Debug, clap::Args)]
pub struct SignalArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Token of a MUNICIPALITY professional, to register the bench subjects in intake.
    #[arg(long, env = "ZVV_REGISTRAR_TOKEN", hide_env_values = true)]
    registrar_token: String,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Subjects to register first; each gets one signal (the run ends early when they run out).
    #[arg(long, default_value_t = 8000)]
    subjects: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Print one JSON line with the results as well.
    #[arg(long)]
    json: bool,
    /// Allow a non-loopback address (never against real people's data).
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Distinct subjects to register first and then resolve at random.
    #[arg(long, default_value_t = 2000)]
    subjects: usize,
    /// Seconds of measured load (after a short warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Print one JSON line with the results as well.
    #[arg(long)]
    json: bool,
    /// Allow a non-loopback intake address. The bench registers subjects for thousands of
    /// valid-looking BSNs: never point it at a registry with real people in it.
    #[arg(long)]
    allow_remote: bool,
}

/// True for addresses on this machine.
fn is_loopback(addr: &str) -> bool {
    let Ok(uri) = addr.parse::<tonic::codegen::http::Uri>() else {
        return false;
    };
    match uri.host() {
        Some(host) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Resolve(args) => resolve(args).await,
        BenchCommand::Signal(args) => signal(args).await,
    }
}

/// Seconds of load before the measurement starts (caches, connections, plans warm).
const WARMUP_SECS: u64 = 2;

/// Throughput and latency of a run, printed as one line (and JSON when asked).
struct Measured<'a> {
    rpc: &'a str,
    latencies: Vec<u32>,
    errors: u64,
    seconds: f64,
    concurrency: usize,
    connections: usize,
    /// Every call made, warm-up included (each leaves one audit entry).
    total_calls: u64,
}

impl Measured<'_> {
    fn print(mut self, json: bool) -> anyhow::Result<()> {
        self.latencies.sort_unstable();
        let rps = self.latencies.len() as f64 / self.seconds;
        let (p50, p99) = (
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.99),
        );
        println!(
            "{}: {} calls in {:.1}s at concurrency {} over {} connections: \
             {rps:.0} calls/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {} errors",
            self.rpc,
            self.latencies.len(),
            self.seconds,
            self.concurrency,
            self.connections,
            self.errors
        );
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "rpc": self.rpc,
                    "calls": self.latencies.len(),
                    "seconds": self.seconds,
                    "concurrency": self.concurrency,
                    "connections": self.connections,
                    "calls_per_second": rps,
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "errors": self.errors,
                    "total_calls": self.total_calls,
                    "client_cpu_s": own_cpu_seconds(),
                })
            );
        }
        if self.errors > 0 {
            anyhow::bail!("{} calls failed", self.errors);
        }
        Ok(())
    }
}

/// User and system CPU seconds this process (the load generator) used so far, from
/// `/proc/self/stat` (Linux; `null` elsewhere).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // the fields after the command name, which is in parentheses and may hold spaces
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // clock ticks per second: 100 on every Linux this runs on
    Some((utime + stime) / 100.0)
}

fn require_local(conn: &ConnArgs, allow_remote: bool) -> anyhow::Result<()> {
    for addr in [&conn.intake_addr, &conn.signalling_addr] {
        if !allow_remote && !is_loopback(addr) {
            anyhow::bail!(
                "{addr} is not on this machine: the bench registers test subjects, so it only runs \
                 against a local suite (pass --allow-remote for a test environment you own)"
            );
        }
    }
    Ok(())
}

async fn signal(args: SignalArgs) -> anyhow::Result<()> {
    use zvv_proto::{
        intake::v1::RegisterSubjectRequest,
        signalling::v1::{Contact, RegisterSignalRequest, register_signal_request::Subject},
    };
    require_local(&args.conn, args.allow_remote)?;
    let connections = args.connections.max(1);
    let registrar = ConnArgs {
        token: Some(args.registrar_token.clone()),
        ..args.conn.clone()
    };
    let intake = (0..connections)
        .map(|_| registrar.intake())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let clients = (0..connections)
        .map(|_| args.conn.signalling())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();

    let seed_start = Instant::now();
    let bsns: Vec<String> = (0..)
        .filter_map(|i| bsn_from(52_000_000 + i * 11))
        .take(args.subjects.max(1))
        .collect();
    let mut subject_ids = Vec::with_capacity(bsns.len());
    {
        let mut seeded = futures::stream::iter(bsns.iter().enumerate().map(|(i, bsn)| {
            let mut client = intake[i % connections].clone();
            let request = RegisterSubjectRequest {
                request_id: format!("bench-{run_id}-{i}"),
                bsn: bsn.clone(),
                given_name: "Bench".into(),
                family_name: format!("Subject {i}"),
                birth_date: "2015-06-01".into(),
                municipality_code: "GM0363".into(),
                neighbourhood_code: "WK036305".into(),
            };
            async move { client.register_subject(request).await }
        }))
        .buffer_unordered(args.concurrency.max(1));
        while let Some(r) = seeded.next().await {
            let subject = r
                .map_err(|s| anyhow::anyhow!(describe(&s)))
                .context("registering bench subjects (run against a fresh suite)")?
                .into_inner()
                .subject
                .context("no subject in the response")?;
            subject_ids.push(subject.subject_id);
        }
    }
    println!(
        "registered {} subjects in {:.1}s",
        subject_ids.len(),
        seed_start.elapsed().as_secs_f64()
    );

    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let subject_ids = std::sync::Arc::new(subject_ids);
    let start = Instant::now();
    let warmup = Duration::from_secs(WARMUP_SECS);
    let measure = Duration::from_secs(args.duration.max(1));
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let mut client = clients[worker % connections].clone();
        let (next, subject_ids, run_id) = (next.clone(), subject_ids.clone(), run_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                if start.elapsed() >= warmup + measure {
                    break;
                }
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(subject) = subject_ids.get(i) else {
                    break;
                };
                let t0 = Instant::now();
                let r = client
                    .register_signal(RegisterSignalRequest {
                        request_id: format!("bench-{run_id}-signal-{i}"),
                        subject: Some(Subject::SubjectId(subject.clone())),
                        contact: Some(Contact {
                            name: "Bench".into(),
                            phone: "+31 20 555 0100".into(),
                            email: "bench@example.nl".into(),
                        }),
                        duration_months: 0,
                    })
                    .await;
                if t0.duration_since(start) < warmup {
                    if r.is_err() {
                        errors += 1;
                    }
                    continue;
                }
                match r {
                    Ok(_) => {
                        latencies.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32)
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.context("bench worker")?;
        all.extend(l);
        errors += e;
    }
    let seconds = (start.elapsed().as_secs_f64() - warmup.as_secs_f64())
        .min(measure.as_secs_f64())
        .max(0.001);
    let made = next
        .load(std::sync::atomic::Ordering::Relaxed)
        .min(subject_ids.len());
    if made >= subject_ids.len() {
        println!("note: ran out of subjects before the duration ended; pass a larger --subjects");
    }
    Measured {
        rpc: "RegisterSignal",
        latencies: all,
        errors,
        seconds,
        concurrency: args.concurrency,
        connections,
        total_calls: made as u64,
    }
    .print(args.json)
}

/// A valid BSN made from a number (8 digits plus the elfproef check digit), or `None` when no
/// check digit fits.
pub fn bsn_from(n: u32) -> Option<String> {
    let body = format!("{:08}", n % 100_000_000);
    let sum: u32 = body
        .bytes()
        .zip((2..=9).rev())
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = sum % 11;
    (check < 10).then(|| format!("{body}{check}"))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)]) / 1000.0
}

async fn resolve(args: ResolveArgs) -> anyhow::Result<()> {
    if !args.allow_remote && !is_loopback(&args.conn.intake_addr) {
        anyhow::bail!(
            "{} is not on this machine: the bench registers test subjects, so it only runs against \
             a local suite (pass --allow-remote for a test environment you own)",
            args.conn.intake_addr
        );
    }
    let connections = args.connections.max(1);
    let clients = (0..connections)
        .map(|_| args.conn.intake())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bsns: Vec<String> = (0..)
        .filter_map(|i| bsn_from(71_000_000 + i * 7))
        .take(args.subjects.max(1))
        .collect();

    // register the subjects (idempotent: an existing BSN just resolves)
    let seed_start = Instant::now();
    {
        let mut seeded = futures::stream::iter(bsns.iter().enumerate().map(|(i, bsn)| {
            let mut client = clients[i % connections].clone();
            let bsn = bsn.clone();
            async move {
                client
                    .resolve_subject(ResolveSubjectRequest {
                        bsn,
                        create_if_missing: true,
                        ..Default::default()
                    })
                    .await
            }
        }))
        .buffer_unordered(args.concurrency.max(1));
        while let Some(r) = seeded.next().await {
            r.map_err(|s| anyhow::anyhow!(describe(&s)))
                .context("registering bench subjects")?;
        }
    }
    println!(
        "seeded {} subjects in {:.1}s",
        bsns.len(),
        seed_start.elapsed().as_secs_f64()
    );

    let warmup = Duration::from_secs(WARMUP_SECS);
    let measure = Duration::from_secs(args.duration.max(1));
    let start = Instant::now();
    let bsns = std::sync::Arc::new(bsns);
    // the seeding calls are ResolveSubject calls too: each left an audit entry
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(bsns.len() as u64));
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let mut client = clients[worker % connections].clone();
        let (bsns, total) = (bsns.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = worker * 7919;
            loop {
                let t0 = Instant::now();
                if t0.duration_since(start) >= warmup + measure {
                    break;
                }
                i = (i + 104_729) % bsns.len();
                total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let r = client
                    .resolve_subject(ResolveSubjectRequest {
                        bsn: bsns[i].clone(),
                        create_if_missing: false,
                        ..Default::default()
                    })
                    .await;
                match r {
                    Err(_) => errors += 1,
                    Ok(_) if t0.duration_since(start) >= warmup => {
                        latencies.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32)
                    }
                    Ok(_) => {}
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.context("bench worker")?;
        all.extend(l);
        errors += e;
    }
    Measured {
        rpc: "ResolveSubject",
        latencies: all,
        errors,
        seconds: measure.as_secs_f64(),
        concurrency: args.concurrency,
        connections,
        total_calls: total.load(std::sync::atomic::Ordering::Relaxed),
    }
    .print(args.json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zvv_platform::bsn::Bsn;

    #[test]
    fn generated_bsns_pass_the_elfproef() {
        let made: Vec<String> = (0..500)
            .filter_map(|i| bsn_from(71_000_000 + i * 7))
            .collect();
        assert!(made.len() > 400);
        for b in &made {
            assert!(Bsn::parse(b).is_ok(), "{b}");
        }
    }

    #[test]
    fn only_loopback_by_default() {
        assert!(is_loopback("http://127.0.0.1:50051"));
        assert!(is_loopback("http://localhost:50051"));
        assert!(is_loopback("http://[::1]:50051"));
        assert!(!is_loopback("http://10.0.0.5:50051"));
        assert!(!is_loopback("https://intake.gemeente.example:443"));
        assert!(!is_loopback("not a uri"));
    }

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
    }
}
