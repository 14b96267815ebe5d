//! `zvv referral …`: referrals into human triage (signalling's ReferralService). Police submit;
//! triage officers list and decide. The source's colour is provenance, never a score.

use zvv_proto::signalling::v1::{
    DecideReferralRequest, ListReferralsRequest, Referral, ReferralDecision, ReferralLevel,
    ReferralStatus, SubmitReferralRequest, submit_referral_request,
};

use crate::{
    client::{ConnArgs, check},
    output::{
        date_arg, fresh_request_id, municipality_arg, or_dash, print_fields, print_next_page,
        print_table, timestamp, yes_no,
    },
    signal::{SubjectArgs, SubjectChoice},
};

/// The `zvv referral` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReferralCommand {
    /// Submit a referral about a child (police); an unknown BSN is registered with intake.
    Submit(SubmitArgs),
    /// List the referrals routed to your jurisdiction, overdue ones marked (triage officers).
    List(ListArgs),
    /// Record a triage decision and its rationale (triage officers of the referral's
    /// municipality).
    Decide(DecideArgs),
}

/// The colour the source instrument gave.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Level {
    White,
    Yellow,
    Orange,
    Red,
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    subject: SubjectArgs,
    /// The source instrument, e.g. "ProKid 12-".
    #[arg(long)]
    instrument: String,
    /// The instrument's version, e.g. 2.1.
    #[arg(long)]
    instrument_version: String,
    /// The colour the instrument gave (provenance only).
    #[arg(long, value_enum)]
    level: Level,
    /// YYYY-MM-DD: the day of the observation; not in the future.
    #[arg(long, value_parser = date_arg)]
    observed_on: String,
    /// The municipality where the child lives, as far as you know (CBS code, e.g. GM0363): the
    /// referral goes to that municipality's triage desks. When intake knows the child's
    /// municipality, intake's is used instead.
    #[arg(long, value_name = "GM0000", value_parser = municipality_arg)]
    municipality: String,
    /// YYYY-MM-DD: the child's birth date, recorded when this referral registers the child with
    /// intake (an unknown BSN).
    #[arg(long, value_parser = date_arg)]
    birth_date: Option<String>,
    /// Idempotency key; default a fresh UUID. Repeat a call with the same key to retry it safely.
    #[arg(long)]
    request_id: Option<String>,
}

/// A referral status to filter on.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Status {
    /// Awaiting triage.
    Awaiting,
    Decided,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Only referrals with this status; default all.
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Only referrals awaiting triage past their deadline.
    #[arg(long)]
    overdue: bool,
    /// At most 100; default 50.
    #[arg(long, default_value_t = 0)]
    page_size: i32,
    /// The next_page_token printed by the previous page.
    #[arg(long, default_value = "")]
    page_token: String,
}

/// A triage decision.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Decision {
    OpenFamilyApproach,
    ForwardToVeiligThuis,
    NoAction,
}

#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    request: crate::output::RequestIdArg,
    referral_id: String,
    #[arg(long, value_enum)]
    decision: Decision,
    /// Why; required.
    #[arg(long)]
    rationale: String,
}

/// Runs one subcommand and prints its result.
pub async fn run(cmd: ReferralCommand) -> anyhow::Result<()> {
    match cmd {
        ReferralCommand::Submit(a) => {
            let subject = match a.subject.resolve()? {
                SubjectChoice::Bsn(b) => submit_referral_request::Subject::Bsn(b),
                SubjectChoice::SubjectId(id) => submit_referral_request::Subject::SubjectId(id),
            };
            let level = match a.level {
                Level::White => ReferralLevel::White,
                Level::Yellow => ReferralLevel::Yellow,
                Level::Orange => ReferralLevel::Orange,
                Level::Red => ReferralLevel::Red,
            };
            let r = check(
                a.conn
                    .referrals()?
                    .submit_referral(SubmitReferralRequest {
                        request_id: a.request_id.unwrap_or_else(fresh_request_id),
                        subject: Some(subject),
                        source_instrument: a.instrument,
                        instrument_version: a.instrument_version,
                        level: level.into(),
                        observed_on: a.observed_on,
                        municipality_code: a.municipality,
                        birth_date: a.birth_date.unwrap_or_default(),
                    })
                    .await,
            )?;
            print_referral(r.referral.as_ref());
        }
        ReferralCommand::List(a) => {
            let status = match a.status {
                None => ReferralStatus::Unspecified,
                Some(Status::Awaiting) => ReferralStatus::AwaitingTriage,
                Some(Status::Decided) => ReferralStatus::Decided,
            };
            let r = check(
                a.conn
                    .referrals()?
                    .list_referrals(ListReferralsRequest {
                        status: status.into(),
                        overdue_only: a.overdue,
                        page_size: a.page_size,
                        page_token: a.page_token,
                    })
                    .await,
            )?;
            if r.referrals.is_empty() {
                println!("no referrals");
            } else {
                print_table(
                    &[
                        "REFERRAL_ID",
                        "SUBJECT_ID",
                        "LEVEL",
                        "STATUS",
                        "DECIDE_BY",
                        "OVERDUE",
                        "MUNICIPALITY",
                        "ORGANISATION",
                    ],
                    r.referrals
                        .iter()
                        .map(|x| {
                            vec![
                                x.referral_id.clone(),
                                x.subject_id.clone(),
                                level_name(x.level()).to_owned(),
                                status_name(x.status()).to_owned(),
                                or_dash(x.decide_by.clone()),
                                if x.overdue { "OVERDUE" } else { "-" }.to_owned(),
                                or_dash(x.municipality_code.clone()),
                                or_dash(x.organisation.clone()),
                            ]
                        })
                        .collect(),
                );
            }
            print_next_page("referrals", &r.next_page_token);
        }
        ReferralCommand::Decide(a) => {
            let decision = match a.decision {
                Decision::OpenFamilyApproach => ReferralDecision::OpenFamilyApproach,
                Decision::ForwardToVeiligThuis => ReferralDecision::ForwardToVeiligThuis,
                Decision::NoAction => ReferralDecision::NoAction,
            };
            let r = check(
                a.conn
                    .referrals()?
                    .decide_referral(DecideReferralRequest {
                        request_id: a.request.clone().value(),
                        referral_id: a.referral_id,
                        decision: decision.into(),
                        rationale: a.rationale,
                    })
                    .await,
            )?;
            print_referral(r.referral.as_ref());
        }
    }
    Ok(())
}

fn print_referral(referral: Option<&Referral>) {
    let Some(r) = referral else {
        println!("(no referral in the response)");
        return;
    };
    let mut fields = vec![
        ("referral_id", r.referral_id.clone()),
        ("subject_id", r.subject_id.clone()),
    ];
    // the submitter is not told where intake routed the referral
    if !r.municipality_code.is_empty() {
        fields.push(("municipality", r.municipality_code.clone()));
    }
    fields.extend([
        ("organisation", or_dash(r.organisation.clone())),
        (
            "instrument",
            format!("{} {}", r.source_instrument, r.instrument_version)
                .trim()
                .to_owned(),
        ),
        ("level", level_name(r.level()).to_owned()),
        ("observed_on", or_dash(r.observed_on.clone())),
        ("status", status_name(r.status()).to_owned()),
        ("decide_by", or_dash(r.decide_by.clone())),
        ("overdue", yes_no(r.overdue)),
    ]);
    if r.status() == ReferralStatus::Decided {
        fields.extend([
            ("decision", decision_name(r.decision()).to_owned()),
            ("rationale", or_dash(r.rationale.clone())),
            ("decided_by", or_dash(r.decided_by.clone())),
            ("decided", timestamp(r.decide_time.as_ref())),
        ]);
    }
    fields.push(("created", timestamp(r.create_time.as_ref())));
    print_fields(&fields);
}

fn level_name(level: ReferralLevel) -> &'static str {
    match level {
        ReferralLevel::White => "white",
        ReferralLevel::Yellow => "yellow",
        ReferralLevel::Orange => "orange",
        ReferralLevel::Red => "red",
        ReferralLevel::Unspecified => "unspecified",
    }
}

fn status_name(status: ReferralStatus) -> &'static str {
    match status {
        ReferralStatus::AwaitingTriage => "awaiting",
        ReferralStatus::Decided => "decided",
        ReferralStatus::Unspecified => "unspecified",
    }
}

fn decision_name(decision: ReferralDecision) -> &'static str {
    match decision {
        ReferralDecision::OpenFamilyApproach => "open-family-approach",
        ReferralDecision::ForwardToVeiligThuis => "forward-to-veilig-thuis",
        ReferralDecision::NoAction => "no-action",
        ReferralDecision::Unspecified => "-",
    }
}
