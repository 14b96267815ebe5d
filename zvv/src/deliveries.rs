//! `zvv deliveries …`: the webhook and service deliveries of a subscription of the caller's
//! organisation: listed by status, and scheduled again (dead-lettered ones included).

use zvv_proto::notifications::v1::{
    Delivery, DeliveryStatus, ListDeliveriesRequest, RedeliverRequest,
};

use crate::client::check;
use crate::output::{RequestIdArg, or_dash, print_next_page, print_table, timestamp};
use crate::subscription::NotifyConn;

/// The `zvv deliveries` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DeliveriesCommand {
    /// List the deliveries of a subscription of your organisation, oldest first.
    List(ListArgs),
    /// Schedule deliveries again now: dead-lettered ones, failing ones, or delivered ones (sent
    /// once more).
    Redeliver(RedeliverArgs),
}

/// A delivery status to filter on.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Status {
    /// Not yet attempted.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Failed so far; retried with backoff.
    Retrying,
    /// Given up after the retention window (or 410 Gone); see `zvv deliveries redeliver`.
    DeadLettered,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: NotifyConn,
    /// The subscription (see `zvv subscription list`).
    #[arg(long, value_name = "SUBSCRIPTION_ID")]
    subscription: String,
    /// Only deliveries with this status; default all.
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// At most 100; default 50.
    #[arg(long, default_value_t = 0)]
    page_size: i32,
    /// The next_page_token printed by the previous page.
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Debug, clap::Args)]
pub struct RedeliverArgs {
    #[command(flatten)]
    conn: NotifyConn,
    #[command(flatten)]
    request: RequestIdArg,
    /// The delivery_id of each delivery (at most 100).
    #[arg(required = true, value_name = "DELIVERY_ID")]
    delivery_ids: Vec<String>,
}

/// Runs one subcommand and prints its result.
pub async fn run(cmd: DeliveriesCommand) -> anyhow::Result<()> {
    match cmd {
        DeliveriesCommand::List(a) => {
            let status = match a.status {
                None => DeliveryStatus::Unspecified,
                Some(Status::Pending) => DeliveryStatus::Pending,
                Some(Status::Delivered) => DeliveryStatus::Delivered,
                Some(Status::Retrying) => DeliveryStatus::Retrying,
                Some(Status::DeadLettered) => DeliveryStatus::DeadLettered,
            };
            let r = check(
                a.conn
                    .client()?
                    .list_deliveries(ListDeliveriesRequest {
                        subscription_id: a.subscription,
                        status: status.into(),
                        page_size: a.page_size,
                        page_token: a.page_token,
                    })
                    .await,
            )?;
            if r.deliveries.is_empty() {
                println!("no deliveries");
            } else {
                print_table(
                    &[
                        "DELIVERY_ID",
                        "CHANNEL",
                        "STATUS",
                        "ATTEMPTS",
                        "LAST_HTTP",
                        "CREATED",
                        "NEXT_ATTEMPT",
                        "DELIVERED",
                        "EVENT_ID",
                        "LAST_ERROR",
                    ],
                    r.deliveries.iter().map(row).collect(),
                );
            }
            print_next_page("deliveries", &r.next_page_token);
        }
        DeliveriesCommand::Redeliver(a) => {
            let asked = a.delivery_ids.len();
            let r = check(
                a.conn
                    .client()?
                    .redeliver(RedeliverRequest {
                        request_id: a.request.value(),
                        delivery_ids: a.delivery_ids,
                    })
                    .await,
            )?;
            println!("scheduled {} of {asked} deliveries again", r.scheduled);
        }
    }
    Ok(())
}

fn status_text(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Retrying => "retrying",
        DeliveryStatus::DeadLettered => "dead-lettered",
        DeliveryStatus::Unspecified => "unspecified",
    }
}

fn row(d: &Delivery) -> Vec<String> {
    let http = if d.last_http_status == 0 {
        "-".to_owned()
    } else {
        d.last_http_status.to_string()
    };
    vec![
        d.delivery_id.clone(),
        or_dash(d.channel.clone()),
        status_text(d.status()).to_owned(),
        d.attempts.to_string(),
        http,
        timestamp(d.created_at.as_ref()),
        timestamp(d.next_attempt_at.as_ref()),
        timestamp(d.delivered_at.as_ref()),
        or_dash(d.event_id.clone()),
        or_dash(d.last_error.clone()),
    ]
}
