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
    }
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

    let warmup = Duration::from_secs(2);
    let measure = Duration::from_secs(args.duration.max(1));
    let start = Instant::now();
    let bsns = std::sync::Arc::new(bsns);
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let mut client = clients[worker % connections].clone();
        let bsns = bsns.clone();
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
                let r = client
                    .resolve_subject(ResolveSubjectRequest {
                        bsn: bsns[i].clone(),
                        create_if_missing: false,
                    })
                    .await;
                if t0.duration_since(start) >= warmup {
                    match r {
                        Ok(_) => latencies
                            .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                        Err(_) => errors += 1,
                    }
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
    all.sort_unstable();
    let secs = measure.as_secs_f64();
    let rps = all.len() as f64 / secs;
    let (p50, p99) = (percentile(&all, 0.50), percentile(&all, 0.99));
    println!(
        "ResolveSubject: {} calls in {secs:.0}s at concurrency {} over {connections} connections: \
         {rps:.0} calls/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {errors} errors",
        all.len(),
        args.concurrency
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "rpc": "ResolveSubject",
                "calls": all.len(),
                "seconds": secs,
                "concurrency": args.concurrency,
                "connections": connections,
                "calls_per_second": rps,
                "p50_ms": p50,
                "p99_ms": p99,
                "errors": errors,
            })
        );
    }
    if errors > 0 {
        anyhow::bail!("{errors} calls failed");
    }
    Ok(())
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
