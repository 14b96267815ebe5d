//! `zvv match …`: the matches the caller's organisation is in (signalling's SignalService).

use zvv_proto::signalling::v1::{
    AssignCoordinatorRequest, GetMatchRequest, ListMatchesRequest, MarkCoordinatedRequest, Match,
};

use crate::{
    client::{ConnArgs, check},
    output::{print_next_page, print_table, yes_no},
    signal::{ContactArgs, match_kind, match_status, print_match},
};

/// The `zvv match` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MatchCommand {
    /// List the matches your organisation is in.
    List(ListArgs),
    /// Show a match with every participant's contact.
    Show(ShowArgs),
    /// Assign the coordinator (regievoerder) of a match: one of its participating organisations.
    Assign(AssignArgs),
    /// Mark a match as coordinated.
    Coordinated(CoordinatedArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// At most 100; default 50.
    #[arg(long, default_value_t = 0)]
    page_size: i32,
    /// The next_page_token printed by the previous page.
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    conn: ConnArgs,
    match_id: String,
}

#[derive(Debug, clap::Args)]
pub struct AssignArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    request: crate::output::RequestIdArg,
    match_id: String,
    /// The coordinating organisation; it must take part in the match.
    #[arg(long)]
    organisation: String,
    #[command(flatten)]
    contact: ContactArgs,
}

#[derive(Debug, clap::Args)]
pub struct CoordinatedArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    request: crate::output::RequestIdArg,
    match_id: String,
}

/// Runs one subcommand and prints its result.
pub async fn run(cmd: MatchCommand) -> anyhow::Result<()> {
    match cmd {
        MatchCommand::List(a) => {
            let r = check(
                a.conn
                    .signalling()?
                    .list_matches(ListMatchesRequest {
                        page_size: a.page_size,
                        page_token: a.page_token,
                    })
                    .await,
            )?;
            if r.matches.is_empty() {
                println!("no matches");
            } else {
                print_table(
                    &["MATCH_ID", "KIND", "STATUS", "COORDINATED", "ORGANISATIONS"],
                    r.matches.iter().map(row).collect(),
                );
            }
            print_next_page("matches", &r.next_page_token);
        }
        MatchCommand::Show(a) => {
            let r = check(
                a.conn
                    .signalling()?
                    .get_match(GetMatchRequest {
                        match_id: a.match_id,
                    })
                    .await,
            )?;
            show(r.r#match.as_ref());
        }
        MatchCommand::Assign(a) => {
            let r = check(
                a.conn
                    .signalling()?
                    .assign_coordinator(AssignCoordinatorRequest {
                        request_id: a.request.clone().value(),
                        match_id: a.match_id,
                        organisation: a.organisation,
                        contact: Some(a.contact.into()),
                    })
                    .await,
            )?;
            show(r.r#match.as_ref());
        }
        MatchCommand::Coordinated(a) => {
            let r = check(
                a.conn
                    .signalling()?
                    .mark_coordinated(MarkCoordinatedRequest {
                        request_id: a.request.clone().value(),
                        match_id: a.match_id,
                    })
                    .await,
            )?;
            show(r.r#match.as_ref());
        }
    }
    Ok(())
}

fn row(m: &Match) -> Vec<String> {
    let organisations = m
        .participants
        .iter()
        .map(|p| p.organisation.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        m.match_id.clone(),
        match_kind(m.kind()).to_owned(),
        match_status(m.status()).to_owned(),
        yes_no(m.coordinated),
        if organisations.is_empty() {
            "-".to_owned()
        } else {
            organisations
        },
    ]
}

fn show(m: Option<&Match>) {
    match m {
        Some(m) => print_match(m),
        None => println!("(no match in the response)"),
    }
}
