//! `zvv subscription …`: the notification subscriptions of the caller's organisation
//! (notifications' NotificationService), and the connection that `zvv inbox` and
//! `zvv deliveries` share.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, error::ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use zvv_platform::client::{Outgoing, TokenSource, channel};
use zvv_proto::notifications::v1::{
    ChannelFilter, CreateSubscriptionRequest, DeleteSubscriptionRequest, GetSubscriptionRequest,
    InboxDelivery, ListChannelsRequest, ListSubscriptionsRequest, ServiceDelivery, Subscription,
    SubscriptionStatus, WebhookDelivery, create_subscription_request,
    notification_service_client::NotificationServiceClient, subscription,
};

use crate::client::check;
use crate::output::{RequestIdArg, or_dash, print_fields, print_next_page, print_table, timestamp};

pub type Notifications = NotificationServiceClient<InterceptedService<Channel, Outgoing>>;

/// How to reach the notifications service, and as whom.
#[derive(Debug, Clone, clap::Args)]
pub struct NotifyConn {
    /// Address of the notifications service.
    #[arg(
        long = "notifications-addr",
        visible_alias = "addr",
        env = "ZVV_NOTIFICATIONS_ADDR",
        default_value = "http://127.0.0.1:50054"
    )]
    pub addr: String,
    /// Bearer token (see `zvv token`).
    #[arg(long, env = "ZVV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl NotifyConn {
    pub fn client(&self) -> anyhow::Result<Notifications> {
        let token = match &self.token {
            Some(t) if !t.trim().is_empty() => {
                TokenSource::Static(SecretString::from(t.trim().to_owned()))
            }
            _ => anyhow::bail!(
                "no token: pass --token or set ZVV_TOKEN, e.g. \
                 export ZVV_TOKEN=$(zvv token --org gm0363 --org-type MUNICIPALITY --role PROFESSIONAL | tail -n1)"
            ),
        };
        let channel = channel(&self.addr, token)
            .with_context(|| format!("invalid notifications address {}", self.addr))?;
        Ok(NotificationServiceClient::new(channel))
    }
}

/// The `zvv subscription` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SubscriptionCommand {
    /// The channels one can subscribe to, with the keys a --filter may name.
    Channels(ChannelsArgs),
    /// Subscribe your organisation to one or more channels: into its inbox, as a signed webhook,
    /// or (suite services) over gRPC.
    Create(CreateArgs),
    /// List the subscriptions of your organisation.
    List(ListArgs),
    /// Show a subscription of your organisation.
    Show(IdArgs),
    /// End a subscription of your organisation; what is pending for it is not delivered.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct ChannelsArgs {
    #[command(flatten)]
    conn: NotifyConn,
}

const CREATE_HELP: &str = "\
Channels and filters: each --filter KEY=VALUE applies to the --channel named before it, so \
the order matters:

  --channel signalling.matches --filter kind=CLIENT --channel signalling.signals

subscribes to client matches only and to every signal event. A value of * matches any value \
(or none); a key that is not named is not filtered on; `action` filters on what happened (e.g. \
found). `zvv subscription channels` lists each channel's keys.

A webhook gets a signed test notification (channel `test`) while the subscription is made and \
must answer it with 204 (try `zvv webhook-sink`). The signing secret is shown once, when the \
subscription is made; it cannot be read back later.

Examples:
  zvv subscription create --channel signalling.matches --filter kind=CLIENT --inbox
  zvv subscription create --channel signalling.matches \\
      --webhook https://receiver.example.nl/zvv --authorization-file receiver.auth";

#[derive(Debug, clap::Args)]
#[command(after_long_help = CREATE_HELP)]
pub struct CreateArgs {
    #[command(flatten)]
    conn: NotifyConn,
    #[command(flatten)]
    channels: ChannelArgs,
    #[command(flatten)]
    delivery: DeliveryArgs,
    /// The Authorization header value every webhook delivery carries (write-only: never shown
    /// again). Prefer --authorization-file, which keeps it out of the process list.
    #[arg(
        long,
        value_name = "VALUE",
        requires = "webhook",
        conflicts_with = "authorization_file"
    )]
    authorization: Option<SecretString>,
    /// File with the Authorization header value (trailing newline removed).
    #[arg(long, value_name = "FILE")]
    authorization_file: Option<PathBuf>,
    /// Write the webhook's signing secret to FILE (readable by you only) instead of printing
    /// it, e.g. the --secret-file of `zvv webhook-sink`.
    #[arg(long, value_name = "FILE")]
    signing_secret_file: Option<PathBuf>,
    #[command(flatten)]
    request: RequestIdArg,
}

/// Where notifications go: exactly one of `--inbox`, `--webhook`, `--service`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct DeliveryArgs {
    /// Into your organisation's inbox (`zvv inbox list`, `zvv inbox watch`).
    #[arg(long)]
    inbox: bool,
    /// POSTed to URL as a ZGW Notificatie with Standard Webhooks signatures (https; http to
    /// loopback only when the service runs in development mode, as under `zvv up`).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Suite services only: delivered to the EventSink of the suite service NAME.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
}

/// The `--channel` and `--filter` flags, in command-line order: each filter belongs to the
/// channel named before it (clap's derive cannot see the order, hence by hand).
#[derive(Debug, Clone, Default)]
pub struct ChannelArgs {
    pub channels: Vec<ChannelFilter>,
}

const CHANNEL_ID: &str = "channel";
const FILTER_ID: &str = "filter";

/// A `--filter` value: `KEY=VALUE`, both non-empty.
fn filter_arg(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, val)) if !key.trim().is_empty() && !val.trim().is_empty() => {
            Ok((key.trim().to_owned(), val.trim().to_owned()))
        }
        _ => Err(format!(
            "`{value}` is not KEY=VALUE, e.g. kind=CLIENT (or kind=* for any value)"
        )),
    }
}

impl ChannelArgs {
    /// Pairs each filter with the channel before it on the command line.
    fn from_ordered(
        channels: Vec<(usize, String)>,
        filters: Vec<(usize, (String, String))>,
    ) -> Result<Self, String> {
        let mut out: Vec<ChannelFilter> = channels
            .iter()
            .map(|(_, name)| ChannelFilter {
                channel: name.clone(),
                filters: Default::default(),
            })
            .collect();
        for (index, (key, value)) in filters {
            let Some(owner) = channels.iter().rposition(|(at, _)| *at < index) else {
                return Err(format!(
                    "--filter {key}={value} comes before any --channel: put each --filter after \
                     the --channel it applies to"
                ));
            };
            let channel = &mut out[owner];
            if channel.filters.contains_key(&key) {
                return Err(format!(
                    "--filter {key}=… is given twice for --channel {}",
                    channel.channel
                ));
            }
            channel.filters.insert(key, value);
        }
        Ok(Self { channels: out })
    }
}

impl clap::FromArgMatches for ChannelArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let channels: Vec<(usize, String)> = match (
            matches.indices_of(CHANNEL_ID),
            matches.get_many::<String>(CHANNEL_ID),
        ) {
            (Some(at), Some(values)) => at.zip(values.cloned()).collect(),
            _ => Vec::new(),
        };
        let filters: Vec<(usize, (String, String))> = match (
            matches.indices_of(FILTER_ID),
            matches.get_many::<(String, String)>(FILTER_ID),
        ) {
            (Some(at), Some(values)) => at.zip(values.cloned()).collect(),
            _ => Vec::new(),
        };
        Self::from_ordered(channels, filters)
            .map_err(|why| clap::Error::raw(ErrorKind::ArgumentConflict, format!("{why}\n")))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for ChannelArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            Arg::new(CHANNEL_ID)
                .long(CHANNEL_ID)
                .value_name("CHANNEL")
                .action(ArgAction::Append)
                .required(true)
                .help(
                    "A channel to subscribe to, e.g. signalling.matches; repeat for more \
                     (see `zvv subscription channels`)",
                ),
        )
        .arg(
            Arg::new(FILTER_ID)
                .long(FILTER_ID)
                .value_name("KEY=VALUE")
                .action(ArgAction::Append)
                .value_parser(filter_arg)
                .help(
                    "Only events whose KEY is VALUE (* for any), on the --channel named before \
                     this flag; repeat for more keys",
                ),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: NotifyConn,
    /// At most 100; default 50.
    #[arg(long, default_value_t = 0)]
    page_size: i32,
    /// The next_page_token printed by the previous page.
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    #[command(flatten)]
    conn: NotifyConn,
    subscription_id: String,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    conn: NotifyConn,
    #[command(flatten)]
    request: RequestIdArg,
    subscription_id: String,
}

/// Runs one subcommand and prints its result.
pub async fn run(cmd: SubscriptionCommand) -> anyhow::Result<()> {
    match cmd {
        SubscriptionCommand::Channels(a) => {
            let r = check(a.conn.client()?.list_channels(ListChannelsRequest {}).await)?;
            print_table(
                &["CHANNEL", "FILTER_KEYS", "REQUIRED_ROLE", "DESCRIPTION"],
                r.channels
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            or_dash(c.filter_keys.join(",")),
                            or_dash(c.required_roles.join(",")),
                            c.description.clone(),
                        ]
                    })
                    .collect(),
            );
        }
        SubscriptionCommand::Create(a) => create(a).await?,
        SubscriptionCommand::List(a) => {
            let r = check(
                a.conn
                    .client()?
                    .list_subscriptions(ListSubscriptionsRequest {
                        page_size: a.page_size,
                        page_token: a.page_token,
                    })
                    .await,
            )?;
            if r.subscriptions.is_empty() {
                println!("no subscriptions");
            } else {
                print_table(
                    &[
                        "SUBSCRIPTION_ID",
                        "STATUS",
                        "CREATED",
                        "DELIVERY",
                        "CHANNELS",
                    ],
                    r.subscriptions
                        .iter()
                        .map(|s| {
                            vec![
                                s.subscription_id.clone(),
                                status(s.status()).to_owned(),
                                timestamp(s.created_at.as_ref()),
                                delivery(s),
                                s.channels
                                    .iter()
                                    .map(channel_text)
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            ]
                        })
                        .collect(),
                );
            }
            print_next_page("subscriptions", &r.next_page_token);
        }
        SubscriptionCommand::Show(a) => {
            let r = check(
                a.conn
                    .client()?
                    .get_subscription(GetSubscriptionRequest {
                        subscription_id: a.subscription_id,
                    })
                    .await,
            )?;
            print_subscription(r.subscription.as_ref());
        }
        SubscriptionCommand::Delete(a) => {
            check(
                a.conn
                    .client()?
                    .delete_subscription(DeleteSubscriptionRequest {
                        request_id: a.request.value(),
                        subscription_id: a.subscription_id.clone(),
                    })
                    .await,
            )?;
            println!(
                "subscription {} deleted: nothing more is routed to it, and what was pending is \
                 not delivered",
                a.subscription_id
            );
        }
    }
    Ok(())
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    // (clap's `requires` is not enforced against a member of a group another member is in)
    let webhook_only = a.authorization.is_some()
        || a.authorization_file.is_some()
        || a.signing_secret_file.is_some();
    if webhook_only && a.delivery.webhook.is_none() {
        anyhow::bail!(
            "--authorization, --authorization-file and --signing-secret-file are for a --webhook"
        );
    }
    let authorization = match (a.authorization, &a.authorization_file) {
        (Some(value), _) => Some(value),
        (None, Some(path)) => Some(crate::webhook_sink::read_value_file(path)?),
        (None, None) => None,
    };
    let delivery = match (a.delivery.inbox, a.delivery.webhook, a.delivery.service) {
        (true, _, _) => create_subscription_request::Delivery::Inbox(InboxDelivery {}),
        (_, Some(url), _) => create_subscription_request::Delivery::Webhook(WebhookDelivery {
            url,
            authorization: authorization
                .as_ref()
                .map(|s| s.expose_secret().to_owned())
                .unwrap_or_default(),
        }),
        (_, _, Some(name)) => {
            create_subscription_request::Delivery::Service(ServiceDelivery { name })
        }
        _ => anyhow::bail!("pass one of --inbox, --webhook and --service"),
    };
    let is_webhook = matches!(delivery, create_subscription_request::Delivery::Webhook(_));
    let r = check(
        a.conn
            .client()?
            .create_subscription(CreateSubscriptionRequest {
                request_id: a.request.value(),
                channels: a.channels.channels,
                delivery: Some(delivery),
            })
            .await,
    )?;
    print_subscription(r.subscription.as_ref());
    if !is_webhook {
        return Ok(());
    }
    println!();
    if r.signing_secret.is_empty() {
        println!(
            "signing_secret: not shown again (this repeated an earlier request with the same \
             --request-id; the secret was shown only then)"
        );
        return Ok(());
    }
    match &a.signing_secret_file {
        Some(path) => {
            crate::datadir::write_private(path, &format!("{}\n", r.signing_secret))
                .context("writing the signing secret")?;
            println!("signing_secret: written to {}", path.display());
            println!(
                "(the service shows it only now; verify the webhook-signature of every delivery \
                 with it, e.g. `zvv webhook-sink --secret-file {}`)",
                path.display()
            );
        }
        None => {
            println!("signing_secret: {}", r.signing_secret);
            println!(
                "(shown only now: store it with the receiver, which verifies the \
                 webhook-signature of every delivery with it; it cannot be read back, so if it \
                 is lost, delete the subscription and create a new one)"
            );
        }
    }
    Ok(())
}

/// A subscription's channel and filters on one line, e.g. `signalling.matches (kind=CLIENT)`.
pub(crate) fn channel_text(c: &ChannelFilter) -> String {
    if c.filters.is_empty() {
        return c.channel.clone();
    }
    let mut filters: Vec<String> = c.filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    filters.sort();
    format!("{} ({})", c.channel, filters.join(" "))
}

fn delivery(s: &Subscription) -> String {
    match &s.delivery {
        Some(subscription::Delivery::Inbox(_)) => "inbox".to_owned(),
        Some(subscription::Delivery::Webhook(w)) => format!("webhook {}", w.url),
        Some(subscription::Delivery::Service(svc)) => format!("service {}", svc.name),
        None => "-".to_owned(),
    }
}

fn status(s: SubscriptionStatus) -> &'static str {
    match s {
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::Disabled => "disabled (the receiver answered 410 Gone)",
        SubscriptionStatus::Unspecified => "unspecified",
    }
}

fn print_subscription(s: Option<&Subscription>) {
    let Some(s) = s else {
        println!("(no subscription in the response)");
        return;
    };
    let municipalities = if s.municipality_codes.is_empty() {
        "-".to_owned()
    } else {
        s.municipality_codes.join(", ")
    };
    print_fields(&[
        ("subscription_id", s.subscription_id.clone()),
        ("organisation", or_dash(s.organisation.clone())),
        ("status", status(s.status()).to_owned()),
        ("delivery", delivery(s)),
        ("municipalities", municipalities),
        ("created", timestamp(s.created_at.as_ref())),
    ]);
    println!("channels:");
    for c in &s.channels {
        println!("  {}", channel_text(c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn filters_belong_to_the_channel_before_them() {
        let parsed = ChannelArgs::from_ordered(
            vec![
                (1, "signalling.matches".into()),
                (5, "signalling.signals".into()),
            ],
            vec![(3, pair("kind", "CLIENT")), (7, pair("action", "*"))],
        )
        .unwrap();
        assert_eq!(parsed.channels.len(), 2);
        assert_eq!(
            channel_text(&parsed.channels[0]),
            "signalling.matches (kind=CLIENT)"
        );
        assert_eq!(
            channel_text(&parsed.channels[1]),
            "signalling.signals (action=*)"
        );
        let early = ChannelArgs::from_ordered(
            vec![(3, "signalling.matches".into())],
            vec![(1, pair("kind", "CLIENT"))],
        )
        .unwrap_err();
        assert!(early.contains("before any --channel"), "{early}");
        let twice = ChannelArgs::from_ordered(
            vec![(1, "signalling.matches".into())],
            vec![(3, pair("kind", "CLIENT")), (5, pair("kind", "FAMILY"))],
        )
        .unwrap_err();
        assert!(twice.contains("twice"), "{twice}");
    }

    #[test]
    fn filter_values_are_key_value_pairs() {
        assert_eq!(filter_arg("kind=CLIENT"), Ok(pair("kind", "CLIENT")));
        assert_eq!(filter_arg(" kind = * "), Ok(pair("kind", "*")));
        for bad in ["kind", "=CLIENT", "kind=", ""] {
            assert!(filter_arg(bad).is_err(), "{bad:?}");
        }
    }
}
