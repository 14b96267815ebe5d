//! `zvv`: runs the suite on this machine, mints development tokens, and calls the services.

mod audit;
mod bench;
mod client;
mod datadir;
mod deliveries;
mod detention;
mod inbox;
mod keys;
mod matches;
mod output;
mod plan;
mod referral;
mod roles;
mod signal;
mod subject;
mod subscription;
mod tasks;
mod token;
mod up;
mod webhook_sink;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "zvv",
    version,
    about = "Run and call the zvv Zorg voor Veiligheid suite"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start every service on 127.0.0.1 (with a private PostgreSQL unless DATABASE_URL is set).
    Up(up::UpArgs),
    /// Print a development token that `zvv up` (same data folder) accepts.
    Token(token::TokenArgs),
    /// Identity registry: register, resolve, get, update, link, unlink, relations, family.
    #[command(subcommand)]
    Subject(subject::SubjectCommand),
    /// Signals of your organisation: register, close, list, show, inform; statistics (analysts).
    #[command(subcommand)]
    Signal(signal::SignalCommand),
    /// Matches your organisation is in: list, show, assign a coordinator, mark coordinated.
    #[command(subcommand)]
    Match(matches::MatchCommand),
    /// Referrals into triage: submit (police), list and decide (triage officers).
    #[command(subcommand)]
    Referral(referral::ReferralCommand),
    /// Detention episodes: record the prison's events, list, show; release statistics
    /// (analysts).
    #[command(subcommand)]
    Detention(detention::DetentionCommand),
    /// Continuity plans of detention episodes: show, update a condition, assign it to a
    /// partner, readiness for release, replan.
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    /// Continuity tasks of your organisation: list, complete.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// Notification subscriptions of your organisation: channels, create, list, show, delete.
    #[command(subcommand)]
    Subscription(subscription::SubscriptionCommand),
    /// Your organisation's notification inbox: list, watch live, mark read.
    #[command(subcommand)]
    Inbox(inbox::InboxCommand),
    /// Webhook deliveries of a subscription: list, redeliver.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// A local HTTP receiver that checks and prints signed notification webhooks.
    WebhookSink(webhook_sink::WebhookSinkArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Key ids of the data folder and the database; rotate and re-encrypt the BSN keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Measure a running suite.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Token(args) => token::run(args),
        Command::Subject(cmd) => subject::run(cmd).await,
        Command::Signal(cmd) => signal::run(cmd).await,
        Command::Match(cmd) => matches::run(cmd).await,
        Command::Referral(cmd) => referral::run(cmd).await,
        Command::Detention(cmd) => detention::run(cmd).await,
        Command::Plan(cmd) => plan::run(cmd).await,
        Command::Tasks(cmd) => tasks::run(cmd).await,
        Command::Subscription(cmd) => subscription::run(cmd).await,
        Command::Inbox(cmd) => inbox::run(cmd).await,
        Command::Deliveries(cmd) => deliveries::run(cmd).await,
        Command::WebhookSink(args) => webhook_sink::run(args).await,
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::Keys(cmd) => keys::run(cmd).await,
        Command::Bench(cmd) => bench::run(cmd).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
