//! `zvv signal …`: the signals of the caller's organisation (signalling's SignalService), and the
//! small printing helpers that `zvv match` and `zvv referral` share.

use zvv_proto::signalling::v1::{
    AgeBand, CloseReason, CloseSignalRequest, Contact, GetSignalRequest,
    GetSignalStatisticsRequest, GetSignalStatisticsResponse, InformationDuty, ListSignalsRequest,
    Match, MatchKind, MatchStatus, RecordInformationDutyRequest, RegisterSignalRequest, Signal,
    SignalStatus, register_signal_request,
};

use crate::client::{ConnArgs, check};
use crate::output::{
    bsn_arg, date_arg, fresh_request_id, month_arg, municipality_arg, or_dash, print_fields,
    print_next_page, print_table, timestamp, yes_no,
};

/// The `zvv signal` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SignalCommand {
    /// Register that your organisation is involved with a child and worried (never why); shows
    /// the matches the signal is in.
    Register(RegisterArgs),
    /// Close a signal of your organisation.
    Close(CloseArgs),
    /// List the signals of your organisation.
    List(ListArgs),
    /// Show a signal of your organisation.
    Show(ShowArgs),
    /// Record whether parents and child were informed of a signal, or why that is postponed.
    Inform(InformArgs),
    /// Count the children with signals in a municipality of your jurisdiction per neighbourhood,
    /// age band and organisation type, over whole months (ANALYST of a municipality); cells
    /// below the threshold are left out.
    Stats(StatsArgs),
}

/// The child a signal or referral is about: exactly one of `--subject-id` and `--bsn`.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SubjectArgs {
    /// The child's intake subject_id.
    #[arg(long)]
    pub(crate) subject_id: Option<String>,
    /// The child's citizen service number (9 digits); `-` reads it from standard input, which
    /// keeps it out of the process list and the shell history.
    #[arg(long)]
    pub(crate) bsn: Option<String>,
}

/// Which of the two a request names the child by.
pub(crate) enum SubjectChoice {
    Bsn(String),
    SubjectId(String),
}

impl SubjectArgs {
    /// The subject given, reading the BSN from standard input for `-`.
    pub(crate) fn resolve(self) -> anyhow::Result<SubjectChoice> {
        match (self.subject_id, self.bsn) {
            (Some(id), None) => Ok(SubjectChoice::SubjectId(id)),
            (None, Some(bsn)) => Ok(SubjectChoice::Bsn(bsn_arg(bsn)?)),
            _ => anyhow::bail!("pass exactly one of --subject-id and --bsn"),
        }
    }
}

/// How to reach the professional: `--contact-name`, `--contact-phone`, `--contact-email`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ContactArgs {
    /// Name of the professional to contact.
    #[arg(long)]
    pub(crate) contact_name: String,
    /// Phone number, e.g. "+31 20 123 4567".
    #[arg(long)]
    pub(crate) contact_phone: String,
    /// E-mail address.
    #[arg(long)]
    pub(crate) contact_email: String,
}

impl From<ContactArgs> for Contact {
    fn from(c: ContactArgs) -> Self {
        Contact {
            name: c.contact_name,
            phone: c.contact_phone,
            email: c.contact_email,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    subject: SubjectArgs,
    #[command(flatten)]
    contact: ContactArgs,
    /// How long the signal stays active, 1-24 months; default 12.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=24))]
    months: Option<i32>,
    /// Idempotency key; default a fresh UUID. Repeat a call with the same key to retry it safely.
    #[arg(long)]
    request_id: Option<String>,
}

/// Why a signal is closed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Reason {
    /// The worry turned out to be unjustified.
    Unjustified,
    /// The risk is gone.
    RiskGone,
}

#[derive(Debug, clap::Args)]
pub struct CloseArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    request: crate::output::RequestIdArg,
    signal_id: String,
    #[arg(long, value_enum)]
    reason: Reason,
}

/// A signal status to filter on.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Status {
    Active,
    Closed,
    Expired,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Only signals with this status; default all.
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
pub struct ShowArgs {
    #[command(flatten)]
    conn: ConnArgs,
    signal_id: String,
}

#[derive(Debug, clap::Args)]
pub struct InformArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    request: crate::output::RequestIdArg,
    signal_id: String,
    #[command(flatten)]
    duty: DutyArgs,
}

/// What was done about informing parents and child; at least one of them.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = true)]
struct DutyArgs {
    /// YYYY-MM-DD: the day the parents were informed.
    #[arg(long, value_parser = date_arg)]
    parents_informed_on: Option<String>,
    /// YYYY-MM-DD: the day the child was informed.
    #[arg(long, value_parser = date_arg)]
    child_informed_on: Option<String>,
    /// Why informing is postponed (required when someone who must be informed was not).
    #[arg(long)]
    postponement_reason: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The municipality (CBS code, e.g. GM0363); it must be in your token's jurisdiction.
    #[arg(long, value_name = "GM0000", value_parser = municipality_arg)]
    municipality: String,
    /// YYYY-MM: the first month of the period.
    #[arg(long, value_name = "YYYY-MM", value_parser = month_arg)]
    from: String,
    /// YYYY-MM: the last month of the period (included); it must have begun.
    #[arg(long, value_name = "YYYY-MM", value_parser = month_arg)]
    to: String,
}

/// Runs one subcommand and prints its result.
pub async fn run(cmd: SignalCommand) -> anyhow::Result<()> {
    match cmd {
        SignalCommand::Register(a) => {
            let subject = match a.subject.resolve()? {
                SubjectChoice::Bsn(b) => register_signal_request::Subject::Bsn(b),
                SubjectChoice::SubjectId(id) => register_signal_request::Subject::SubjectId(id),
            };
            let r = check(
                a.conn
                    .signalling()?
                    .register_signal(RegisterSignalRequest {
                        request_id: a.request_id.unwrap_or_else(fresh_request_id),
                        subject: Some(subject),
                        contact: Some(a.contact.into()),
                        duration_months: a.months.unwrap_or(0),
                    })
                    .await,
            )?;
            print_signal(r.signal.as_ref());
            if r.matches.is_empty() {
                println!(
                    "\nno matches: no other organisation has an active signal on this child or family"
                );
            }
            for m in &r.matches {
                println!();
                print_match(m);
            }
        }
        SignalCommand::Close(a) => {
            let reason = match a.reason {
                Reason::Unjustified => CloseReason::Unjustified,
                Reason::RiskGone => CloseReason::RiskGone,
            };
            let r = check(
                a.conn
                    .signalling()?
                    .close_signal(CloseSignalRequest {
                        request_id: a.request.clone().value(),
                        signal_id: a.signal_id,
                        reason: reason.into(),
                    })
                    .await,
            )?;
            print_signal(r.signal.as_ref());
        }
        SignalCommand::List(a) => {
            let status = match a.status {
                None => SignalStatus::Unspecified,
                Some(Status::Active) => SignalStatus::Active,
                Some(Status::Closed) => SignalStatus::Closed,
                Some(Status::Expired) => SignalStatus::Expired,
            };
            let r = check(
                a.conn
                    .signalling()?
                    .list_signals(ListSignalsRequest {
                        page_size: a.page_size,
                        page_token: a.page_token,
                        status: status.into(),
                    })
                    .await,
            )?;
            if r.signals.is_empty() {
                println!("no signals");
            } else {
                print_table(
                    &[
                        "SIGNAL_ID",
                        "SUBJECT_ID",
                        "STATUS",
                        "REGISTERED_ON",
                        "EXPIRES_ON",
                    ],
                    r.signals
                        .iter()
                        .map(|s| {
                            vec![
                                s.signal_id.clone(),
                                s.subject_id.clone(),
                                signal_status(s.status()).to_owned(),
                                or_dash(s.registered_on.clone()),
                                or_dash(s.expires_on.clone()),
                            ]
                        })
                        .collect(),
                );
            }
            print_next_page("signals", &r.next_page_token);
        }
        SignalCommand::Show(a) => {
            let r = check(
                a.conn
                    .signalling()?
                    .get_signal(GetSignalRequest {
                        signal_id: a.signal_id,
                    })
                    .await,
            )?;
            print_signal(r.signal.as_ref());
        }
        SignalCommand::Inform(a) => {
            let r = check(
                a.conn
                    .signalling()?
                    .record_information_duty(RecordInformationDutyRequest {
                        request_id: a.request.clone().value(),
                        signal_id: a.signal_id,
                        parents_informed_on: a.duty.parents_informed_on.unwrap_or_default(),
                        child_informed_on: a.duty.child_informed_on.unwrap_or_default(),
                        postponement_reason: a.duty.postponement_reason.unwrap_or_default(),
                    })
                    .await,
            )?;
            print_signal(r.signal.as_ref());
        }
        SignalCommand::Stats(a) => {
            let r = check(
                a.conn
                    .signalling()?
                    .get_signal_statistics(GetSignalStatisticsRequest {
                        municipality_code: a.municipality.clone(),
                        from_month: a.from.clone(),
                        to_month: a.to.clone(),
                    })
                    .await,
            )?;
            print_statistics(&a.municipality, &a.from, &a.to, &r);
        }
    }
    Ok(())
}

/// Prints the cells as a table, then the threshold and what it means for the missing cells.
fn print_statistics(municipality: &str, from: &str, to: &str, r: &GetSignalStatisticsResponse) {
    print_fields(&[
        ("municipality", municipality.to_owned()),
        ("period", format!("{from} to {to} (whole months)")),
    ]);
    println!();
    if r.cells.is_empty() {
        println!("no cells at or above the threshold");
    } else {
        print_table(
            &["NEIGHBOURHOOD", "AGE_BAND", "ORGANISATION_TYPE", "SUBJECTS"],
            r.cells
                .iter()
                .map(|c| {
                    vec![
                        or_dash(c.neighbourhood_code.clone()),
                        age_band(c.age_band()).to_owned(),
                        or_dash(c.organisation_type.clone()),
                        c.subjects.to_string(),
                    ]
                })
                .collect(),
        );
    }
    println!();
    print_fields(&[("threshold", r.threshold.to_string())]);
    if r.threshold > 1 {
        println!(
            "(cells with fewer than {} subjects are left out, exactly as empty cells are: a \
             combination that is not listed has 0 to {} subjects)",
            r.threshold,
            r.threshold - 1
        );
    } else {
        println!("(empty cells are left out)");
    }
}

/// The age band as years, on the last day of the period.
fn age_band(band: AgeBand) -> &'static str {
    match band {
        AgeBand::AgeBand03 => "0-3",
        AgeBand::AgeBand411 => "4-11",
        AgeBand::AgeBand1215 => "12-15",
        AgeBand::AgeBand1617 => "16-17",
        AgeBand::AgeBand1822 => "18-22",
        AgeBand::Unspecified => "-",
    }
}

fn print_signal(signal: Option<&Signal>) {
    let Some(s) = signal else {
        println!("(no signal in the response)");
        return;
    };
    let duty = s.information_duty.clone().unwrap_or_default();
    let mut fields = vec![
        ("signal_id", s.signal_id.clone()),
        ("subject_id", s.subject_id.clone()),
        (
            "organisation",
            organisation(&s.organisation, &s.organisation_type),
        ),
        ("contact", contact(s.contact.as_ref())),
        ("status", signal_status(s.status()).to_owned()),
        ("registered_on", or_dash(s.registered_on.clone())),
        ("duration", format!("{} months", s.duration_months)),
        ("expires_on", or_dash(s.expires_on.clone())),
    ];
    if s.status() == SignalStatus::Closed {
        fields.push(("close_reason", close_reason(s.close_reason()).to_owned()));
        fields.push(("closed", timestamp(s.close_time.as_ref())));
    }
    fields.extend(duty_fields(&duty));
    fields.push(("created", timestamp(s.create_time.as_ref())));
    print_fields(&fields);
}

fn duty_fields(duty: &InformationDuty) -> [(&'static str, String); 4] {
    [
        (
            "parents_informed_on",
            or_dash(duty.parents_informed_on.clone()),
        ),
        ("child_informed_on", or_dash(duty.child_informed_on.clone())),
        (
            "postponement_reason",
            or_dash(duty.postponement_reason.clone()),
        ),
        (
            "information_duty",
            if duty.met { "met" } else { "not met" }.to_owned(),
        ),
    ]
}

/// Prints a match: its fields, then each participant with its contact.
pub(crate) fn print_match(m: &Match) {
    let coordinator = match &m.coordinator {
        Some(c) => format!(
            "{}: {} (assigned {})",
            c.organisation,
            contact(c.contact.as_ref()),
            timestamp(c.assign_time.as_ref())
        ),
        None => "(none yet)".to_owned(),
    };
    print_fields(&[
        ("match_id", m.match_id.clone()),
        ("kind", match_kind(m.kind()).to_owned()),
        ("status", match_status(m.status()).to_owned()),
        ("subjects", m.subject_ids.join(", ")),
        ("coordinator", coordinator),
        ("coordinated", yes_no(m.coordinated)),
        ("created", timestamp(m.create_time.as_ref())),
        ("updated", timestamp(m.update_time.as_ref())),
    ]);
    println!("participants:");
    if m.participants.is_empty() {
        println!("  none");
    }
    for p in &m.participants {
        println!("  {}", organisation(&p.organisation, &p.organisation_type));
        let c = p.contact.clone().unwrap_or_default();
        println!("    name:    {}", or_dash(c.name));
        println!("    phone:   {}", or_dash(c.phone));
        println!("    email:   {}", or_dash(c.email));
        println!("    signals: {}", or_dash(p.signal_ids.join(", ")));
    }
}

pub(crate) fn organisation(org: &str, org_type: &str) -> String {
    match (org.is_empty(), org_type.is_empty()) {
        (true, _) => "-".to_owned(),
        (false, true) => org.to_owned(),
        (false, false) => format!("{org} ({org_type})"),
    }
}

/// A contact on one line: name, phone, e-mail.
pub(crate) fn contact(c: Option<&Contact>) -> String {
    match c {
        Some(c) => [c.name.as_str(), c.phone.as_str(), c.email.as_str()]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
        None => "-".to_owned(),
    }
}

pub(crate) fn signal_status(status: SignalStatus) -> &'static str {
    match status {
        SignalStatus::Active => "active",
        SignalStatus::Closed => "closed",
        SignalStatus::Expired => "expired",
        SignalStatus::Unspecified => "unspecified",
    }
}

fn close_reason(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Unjustified => "unjustified",
        CloseReason::RiskGone => "risk-gone",
        CloseReason::Unspecified => "-",
    }
}

pub(crate) fn match_kind(kind: MatchKind) -> &'static str {
    match kind {
        MatchKind::Client => "client",
        MatchKind::Family => "family",
        MatchKind::Unspecified => "unspecified",
    }
}

pub(crate) fn match_status(status: MatchStatus) -> &'static str {
    match status {
        MatchStatus::Open => "open",
        MatchStatus::Closed => "closed",
        MatchStatus::Unspecified => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked() {
        assert_eq!(date_arg("2024-02-29").as_deref(), Ok("2024-02-29"));
        assert!(date_arg("2023-02-29").is_err());
        assert!(date_arg("2024-2-1").is_err());
        assert!(date_arg("yesterday").is_err());
    }

    #[test]
    fn contacts_and_organisations_read_well() {
        let c = Contact {
            name: "A. de Vries".into(),
            phone: "+31 20 123 4567".into(),
            email: "a@school.nl".into(),
        };
        assert_eq!(
            contact(Some(&c)),
            "A. de Vries, +31 20 123 4567, a@school.nl"
        );
        assert_eq!(contact(None), "-");
        assert_eq!(organisation("school-1", "SCHOOL"), "school-1 (SCHOOL)");
        assert_eq!(organisation("", ""), "-");
    }
}
