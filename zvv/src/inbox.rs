//! `zvv inbox …`: the inbox of the caller's organisation: listed, watched live (StreamInbox,
//! reconnecting after its last cursor), and marked read.

use std::time::Duration;

use tonic::Code;
use zvv_proto::notifications::v1::{
    InboxItem, InboxItemKind, ListInboxRequest, MarkReadRequest, StreamInboxRequest,
    StreamInboxResponse, stream_inbox_response,
};

use crate::client::{check, describe};
use crate::output::{RequestIdArg, or_dash, print_next_page, print_table, timestamp};
use crate::subscription::NotifyConn;

/// The first wait before reconnecting a dropped stream; doubled after each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A stream that sent nothing, not even a heartbeat, for this long is taken as dropped.
const SILENT_LIMIT: Duration = Duration::from_secs(60);

/// The `zvv inbox` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum InboxCommand {
    /// List your organisation's inbox, oldest first.
    List(ListArgs),
    /// Print what arrives in your organisation's inbox as it comes, each item with its cursor,
    /// until Ctrl-C.
    Watch(WatchArgs),
    /// Mark inbox items read.
    Read(ReadArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: NotifyConn,
    /// Only items not yet marked read.
    #[arg(long)]
    unread: bool,
    /// At most 100; default 50.
    #[arg(long, default_value_t = 0)]
    page_size: i32,
    /// The next_page_token printed by the previous page.
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = WATCH_HELP)]
pub struct WatchArgs {
    #[command(flatten)]
    conn: NotifyConn,
    /// Start after this cursor (as printed with an item); default the whole inbox.
    #[arg(long, value_name = "CURSOR")]
    after: Option<String>,
    /// Also print the heartbeats the service sends while nothing arrives.
    #[arg(long, short)]
    verbose: bool,
}

const WATCH_HELP: &str = "\
Items go to standard output, one line each, ending in `cursor <CURSOR>`; connection notes go \
to standard error. When the stream drops (the service restarts, the network fails, or nothing \
arrives for 60 s, not even a heartbeat), the command reconnects after the last cursor it \
printed, waiting 0.5 s and then up to 30 s between attempts, so nothing is missed or repeated. \
Ctrl-C ends it and prints the cursor to continue from with --after.";

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    #[command(flatten)]
    conn: NotifyConn,
    #[command(flatten)]
    request: RequestIdArg,
    /// The notification_id of each item (at most 100).
    #[arg(required = true, value_name = "NOTIFICATION_ID")]
    notification_ids: Vec<String>,
}

/// Runs one subcommand and prints its result.
pub async fn run(cmd: InboxCommand) -> anyhow::Result<()> {
    match cmd {
        InboxCommand::List(a) => {
            let r = check(
                a.conn
                    .client()?
                    .list_inbox(ListInboxRequest {
                        page_size: a.page_size,
                        page_token: a.page_token,
                        unread_only: a.unread,
                    })
                    .await,
            )?;
            if r.items.is_empty() {
                println!(
                    "{}",
                    if a.unread {
                        "no unread items"
                    } else {
                        "the inbox is empty"
                    }
                );
            } else {
                print_table(
                    &[
                        "NOTIFICATION_ID",
                        "CURSOR",
                        "CREATED",
                        "READ",
                        "CHANNEL",
                        "ACTION",
                        "RESOURCE",
                        "ATTRIBUTES",
                    ],
                    r.items.iter().map(row).collect(),
                );
            }
            print_next_page("items", &r.next_page_token);
        }
        InboxCommand::Watch(a) => watch(a).await?,
        InboxCommand::Read(a) => {
            let asked = a.notification_ids.len();
            let r = check(
                a.conn
                    .client()?
                    .mark_read(MarkReadRequest {
                        request_id: a.request.value(),
                        notification_ids: a.notification_ids,
                    })
                    .await,
            )?;
            println!("marked {} of {asked} read", r.marked);
            if usize::try_from(r.marked).unwrap_or(0) < asked {
                println!("(the others were read already)");
            }
        }
    }
    Ok(())
}

/// The event's attributes as `key=value …`, sorted.
fn attributes(item: &InboxItem) -> String {
    let mut pairs: Vec<String> = item
        .event
        .as_ref()
        .map(|e| {
            e.attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    or_dash(pairs.join(" "))
}

fn row(item: &InboxItem) -> Vec<String> {
    let e = item.event.clone().unwrap_or_default();
    let channel = match item.kind() {
        InboxItemKind::DeadLetter => format!("{} (dead letter)", or_dash(e.channel)),
        _ => or_dash(e.channel),
    };
    vec![
        item.notification_id.clone(),
        item.cursor.clone(),
        timestamp(item.created_at.as_ref()),
        timestamp(item.read_at.as_ref()),
        channel,
        or_dash(e.action),
        format!("{}/{}", or_dash(e.resource), or_dash(e.resource_id)),
        attributes(item),
    ]
}

/// One streamed item on one line.
fn item_line(item: &InboxItem) -> String {
    let e = item.event.clone().unwrap_or_default();
    let what = format!(
        "{} {} {}/{} {}",
        or_dash(e.channel),
        or_dash(e.action),
        or_dash(e.resource),
        or_dash(e.resource_id),
        attributes(item)
    );
    let what = match item.kind() {
        InboxItemKind::DeadLetter => format!(
            "dead letter: delivery {} of subscription {} was given up ({what})",
            or_dash(item.delivery_id.clone()),
            or_dash(item.subscription_id.clone())
        ),
        _ => what,
    };
    format!(
        "[{}] {what} notification {} cursor {}",
        timestamp(item.created_at.as_ref()),
        item.notification_id,
        item.cursor
    )
}

/// Whether a stream that ended with `status` is worth opening again.
fn retryable(status: &tonic::Status) -> bool {
    !matches!(
        status.code(),
        Code::InvalidArgument
            | Code::Unauthenticated
            | Code::PermissionDenied
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::Unimplemented
            | Code::OutOfRange
    )
}

/// Why one stream ended.
enum Ended {
    /// The service ended it or it failed in a way worth retrying.
    Dropped(String),
    /// A failure that reconnecting does not fix.
    Fatal(tonic::Status),
}

async fn watch(a: WatchArgs) -> anyhow::Result<()> {
    let shutdown = zvv_platform::server::shutdown_signal();
    tokio::pin!(shutdown);
    let mut client = a.conn.client()?;
    let mut cursor = a.after.as_deref().unwrap_or_default().trim().to_owned();
    let mut backoff = FIRST_BACKOFF;
    let mut connected_before = false;
    loop {
        let opened = tokio::select! {
            () = &mut shutdown => break,
            r = client.stream_inbox(StreamInboxRequest { after_cursor: cursor.clone() }) => r,
        };
        let ended = match opened {
            Err(status) if !connected_before || !retryable(&status) => {
                anyhow::bail!("{}", describe(&status));
            }
            Err(status) => Ended::Dropped(describe(&status)),
            Ok(response) => {
                if connected_before {
                    eprintln!("reconnected{}", after_text(&cursor));
                } else {
                    eprintln!(
                        "watching your organisation's inbox{} (Ctrl-C stops)",
                        after_text(&cursor)
                    );
                }
                connected_before = true;
                let mut stream = response.into_inner();
                loop {
                    let next = tokio::select! {
                        () = &mut shutdown => {
                            stopped(&cursor);
                            return Ok(());
                        }
                        next = tokio::time::timeout(SILENT_LIMIT, stream.message()) => next,
                    };
                    match next {
                        Err(_) => {
                            break Ended::Dropped(format!(
                                "nothing, not even a heartbeat, for {}s",
                                SILENT_LIMIT.as_secs()
                            ));
                        }
                        Ok(Ok(Some(message))) => {
                            backoff = FIRST_BACKOFF;
                            show(message, a.verbose, &mut cursor);
                        }
                        Ok(Ok(None)) => {
                            break Ended::Dropped("the service ended the stream".into());
                        }
                        Ok(Err(status)) if retryable(&status) => {
                            break Ended::Dropped(describe(&status));
                        }
                        Ok(Err(status)) => break Ended::Fatal(status),
                    }
                }
            }
        };
        match ended {
            Ended::Fatal(status) => anyhow::bail!("{}", describe(&status)),
            Ended::Dropped(why) => {
                eprintln!(
                    "stream dropped ({}); reconnecting in {:.1}s{}",
                    why.lines().next().unwrap_or_default(),
                    backoff.as_secs_f32(),
                    after_text(&cursor)
                );
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    stopped(&cursor);
    Ok(())
}

/// Prints one message of the stream; an item moves the cursor on.
fn show(message: StreamInboxResponse, verbose: bool, cursor: &mut String) {
    match message.message {
        Some(stream_inbox_response::Message::Item(item)) => {
            println!("{}", item_line(&item));
            if !item.cursor.is_empty() {
                *cursor = item.cursor;
            }
        }
        Some(stream_inbox_response::Message::Heartbeat(h)) if verbose => {
            println!("[{}] heartbeat", timestamp(h.at.as_ref()));
        }
        _ => {}
    }
}

fn after_text(cursor: &str) -> String {
    if cursor.is_empty() {
        String::new()
    } else {
        format!(" after cursor {cursor}")
    }
}

fn stopped(cursor: &str) {
    if cursor.is_empty() {
        eprintln!("stopped");
    } else {
        eprintln!("stopped; continue with --after {cursor}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zvv_proto::events::v1::Event;

    #[test]
    fn items_read_on_one_line_with_their_cursor() {
        let item = InboxItem {
            notification_id: "n-1".into(),
            cursor: "812.3".into(),
            kind: InboxItemKind::Notification as i32,
            event: Some(Event {
                channel: "signalling.matches".into(),
                action: "found".into(),
                resource: "match".into(),
                resource_id: "m-1".into(),
                attributes: [("kind".to_owned(), "CLIENT".to_owned())].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            item_line(&item),
            "[-] signalling.matches found match/m-1 kind=CLIENT notification n-1 cursor 812.3"
        );
        assert!(retryable(&tonic::Status::unavailable("gone")));
        assert!(retryable(&tonic::Status::unknown("h2 protocol error")));
        assert!(!retryable(&tonic::Status::unauthenticated("expired")));
        assert!(!retryable(&tonic::Status::invalid_argument("cursor")));
    }
}
