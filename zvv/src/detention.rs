//! `zvv detention …`: detention episodes (reintegration's DetentionService): the prison's events,
//! the episodes the caller may see, and the release statistics of a municipality (analysts).

use zvv_proto::reintegration::v1::{
    Detention, DetentionEventKind, DetentionStatus, GetDetentionRequest,
    GetReintegrationStatisticsRequest, GetReintegrationStatisticsResponse, InstitutionType,
    ListDetentionsRequest, RecordDetentionEventRequest, Share, record_detention_event_request,
};

use crate::client::{ReintegrationConn, check};
use crate::output::{
    RequestIdArg, bsn_arg, date_arg, fields_text, month_arg, municipality_arg, or_dash, table_text,
    timestamp, yes_no,
};
use crate::plan::condition_kind;

/// The `zvv detention` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DetentionCommand {
    /// Record one event of a detention episode (a prison's case manager, or the prison
    /// system's feed): begin, leave, transfer, end. The first event of an episode opens its
    /// continuity plan; an unknown BSN is registered with intake.
    Record(RecordArgs),
    /// List the episodes you may see (every page): your municipalities' episodes, or those
    /// in which your organisation holds a task.
    List(ListArgs),
    /// Show one episode.
    Show(ShowArgs),
    /// Releases per whole month of a municipality in your jurisdiction (ANALYST of a
    /// municipality): the share released with every condition in place, lapses per condition,
    /// re-detention within 12 and 24 months; small numbers are suppressed.
    Stats(StatsArgs),
}

/// The person an event is about: exactly one of `--subject-id` and `--bsn`.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct PersonArgs {
    /// The person's intake subject_id.
    #[arg(long)]
    subject_id: Option<String>,
    /// The person's citizen service number (9 digits); `-` reads it from standard input, which
    /// keeps it out of the process list and the shell history. Only intake keeps it.
    #[arg(long)]
    bsn: Option<String>,
}

/// What happened in the detention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// The detention began.
    Begin,
    /// A leave began.
    LeaveStart,
    /// The leave ended (back inside).
    LeaveEnd,
    /// Moved to another institution.
    Transfer,
    /// Released.
    End,
}

impl From<Kind> for DetentionEventKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Begin => Self::Begin,
            Kind::LeaveStart => Self::LeaveStart,
            Kind::LeaveEnd => Self::LeaveEnd,
            Kind::Transfer => Self::Transfer,
            Kind::End => Self::End,
        }
    }
}

/// The kind of institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Institution {
    /// Penitentiaire inrichting (adults).
    Pi,
    /// Justitiële jeugdinrichting (youth).
    Jji,
}

impl From<Institution> for InstitutionType {
    fn from(kind: Institution) -> Self {
        match kind {
            Institution::Pi => Self::Pi,
            Institution::Jji => Self::Jji,
        }
    }
}

const RECORD_HELP: &str = "\
Events may arrive in any order and more than once: the episode is computed from its events by \
day. A repeat (the same --request-id, or an event of the same --external-ref, kind and day) \
answers with the episode as it is and says `duplicate`.

Example (a short stay: begun 8 days ago, release expected in 2 days):
  echo 111222333 | zvv detention record --bsn - --external-ref DJI-2026-0001 --kind begin \\
      --institution PI-VUGHT --institution-type pi --on $(date -d '8 days ago' +%F) \\
      --expected-release $(date -d '2 days' +%F) --municipality GM0855";

#[derive(Debug, clap::Args)]
#[command(after_long_help = RECORD_HELP)]
pub struct RecordArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    /// The prison system's id of the episode; every event of one episode carries it.
    #[arg(long)]
    external_ref: String,
    #[command(flatten)]
    person: PersonArgs,
    /// YYYY-MM-DD: the person's birth date, recorded when this event registers the person
    /// with intake (an unknown BSN).
    #[arg(long, value_parser = date_arg)]
    birth_date: Option<String>,
    /// What happened.
    #[arg(long, value_enum)]
    kind: Kind,
    /// The institution's code, e.g. PI-VUGHT.
    #[arg(long, value_name = "CODE")]
    institution: String,
    #[arg(long, value_enum)]
    institution_type: Institution,
    /// YYYY-MM-DD: the day it happened; not in the future.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = date_arg)]
    on: String,
    /// YYYY-MM-DD: the expected release as of this event.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = date_arg)]
    expected_release: Option<String>,
    /// The responsible municipality (CBS code, e.g. GM0855): where the person lived before or
    /// wants to settle. Required on the first event of an episode.
    #[arg(long, value_name = "GM0000", value_parser = municipality_arg)]
    municipality: Option<String>,
    #[command(flatten)]
    request: RequestIdArg,
}

/// An episode status to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    Detained,
    OnLeave,
    Released,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    /// Only episodes with this status; default all.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    detention_id: String,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    conn: ReintegrationConn,
    /// The municipality (CBS code, e.g. GM0855); it must be in your token's jurisdiction.
    #[arg(long, value_name = "GM0000", value_parser = municipality_arg)]
    municipality: String,
    /// YYYY-MM: the first month of release.
    #[arg(long, value_name = "YYYY-MM", value_parser = month_arg)]
    from: String,
    /// YYYY-MM: the last month of release (included); it must have begun.
    #[arg(long, value_name = "YYYY-MM", value_parser = month_arg)]
    to: String,
}

/// Episodes per page when listing every page.
const PAGE_SIZE: i32 = 100;

/// Runs one subcommand and prints its result.
pub async fn run(cmd: DetentionCommand) -> anyhow::Result<()> {
    match cmd {
        DetentionCommand::Record(a) => {
            let subject = match (a.person.subject_id, a.person.bsn) {
                (Some(id), None) => record_detention_event_request::Subject::SubjectId(id),
                (None, Some(bsn)) => record_detention_event_request::Subject::Bsn(bsn_arg(bsn)?),
                _ => anyhow::bail!("pass exactly one of --subject-id and --bsn"),
            };
            let r = check(
                a.conn
                    .detentions()?
                    .record_detention_event(RecordDetentionEventRequest {
                        request_id: a.request.value(),
                        external_ref: a.external_ref,
                        subject: Some(subject),
                        birth_date: a.birth_date.unwrap_or_default(),
                        kind: DetentionEventKind::from(a.kind).into(),
                        institution_code: a.institution,
                        institution_type: InstitutionType::from(a.institution_type).into(),
                        occurred_on: a.on,
                        expected_release_on: a.expected_release.unwrap_or_default(),
                        municipality_code: a.municipality.unwrap_or_default(),
                    })
                    .await,
            )?;
            if r.duplicate {
                println!("duplicate: this event was recorded before; nothing changed\n");
            }
            print!("{}", detention_text(r.detention.as_ref()));
        }
        DetentionCommand::List(a) => {
            let status = a.status.map_or(DetentionStatus::Unspecified, status_pb);
            let mut client = a.conn.detentions()?;
            let mut detentions = Vec::new();
            let mut page_token = String::new();
            loop {
                let r = check(
                    client
                        .list_detentions(ListDetentionsRequest {
                            status: status.into(),
                            page_size: PAGE_SIZE,
                            page_token,
                        })
                        .await,
                )?;
                detentions.extend(r.detentions);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            print!("{}", detentions_text(&detentions));
        }
        DetentionCommand::Show(a) => {
            let r = check(
                a.conn
                    .detentions()?
                    .get_detention(GetDetentionRequest {
                        detention_id: a.detention_id,
                    })
                    .await,
            )?;
            print!("{}", detention_text(r.detention.as_ref()));
        }
        DetentionCommand::Stats(a) => {
            let r = check(
                a.conn
                    .continuity()?
                    .get_reintegration_statistics(GetReintegrationStatisticsRequest {
                        municipality_code: a.municipality.clone(),
                        from_month: a.from.clone(),
                        to_month: a.to.clone(),
                    })
                    .await,
            )?;
            print!("{}", statistics_text(&a.municipality, &a.from, &a.to, &r));
        }
    }
    Ok(())
}

fn status_pb(status: StatusArg) -> DetentionStatus {
    match status {
        StatusArg::Detained => DetentionStatus::Detained,
        StatusArg::OnLeave => DetentionStatus::OnLeave,
        StatusArg::Released => DetentionStatus::Released,
    }
}

pub(crate) fn detention_status(status: DetentionStatus) -> &'static str {
    match status {
        DetentionStatus::Detained => "detained",
        DetentionStatus::OnLeave => "on-leave",
        DetentionStatus::Released => "released",
        DetentionStatus::Unspecified => "unspecified",
    }
}

fn institution(d: &Detention) -> String {
    let kind = match d.institution_type() {
        InstitutionType::Pi => "PI",
        InstitutionType::Jji => "JJI",
        InstitutionType::Unspecified => "",
    };
    match (d.institution_code.is_empty(), kind.is_empty()) {
        (true, _) => "-".to_owned(),
        (false, true) => d.institution_code.clone(),
        (false, false) => format!("{} ({kind})", d.institution_code),
    }
}

/// An episode as `key: value` lines.
pub(crate) fn detention_text(detention: Option<&Detention>) -> String {
    let Some(d) = detention else {
        return "(no detention in the response)\n".to_owned();
    };
    let began = if d.begin_received {
        or_dash(d.began_on.clone())
    } else {
        format!(
            "{} (provisional: no BEGIN received yet, the earliest event's day)",
            or_dash(d.began_on.clone())
        )
    };
    let mut fields = vec![
        ("detention_id", d.detention_id.clone()),
        ("subject_id", d.subject_id.clone()),
        ("external_ref", d.external_ref.clone()),
        ("municipality", or_dash(d.municipality_code.clone())),
        ("status", detention_status(d.status()).to_owned()),
        ("began_on", began),
        (
            "expected_release_on",
            or_dash(d.expected_release_on.clone()),
        ),
        ("released_on", or_dash(d.released_on.clone())),
        ("institution", institution(d)),
        ("leaves", d.leaves.to_string()),
        ("short_stay", yes_no(d.short_stay)),
        ("policy_version", d.policy_version.to_string()),
        ("follow_up_until", or_dash(d.follow_up_until.clone())),
    ];
    // both are left out for a partner: the municipality's evaluation and the whole plan
    match d.redetained_within_months {
        None => {}
        Some(0) => fields.push(("redetained_within", "-".to_owned())),
        Some(months) => fields.push((
            "redetained_within",
            format!("{months} months of an earlier release"),
        )),
    }
    if let Some(ready) = d.ready_at_release {
        fields.push(("ready_at_release", yes_no(ready)));
    }
    fields.push(("created", timestamp(d.create_time.as_ref())));
    fields.push(("updated", timestamp(d.update_time.as_ref())));
    fields_text(&fields)
}

/// Episodes as a table, or a line saying there are none.
pub(crate) fn detentions_text(detentions: &[Detention]) -> String {
    if detentions.is_empty() {
        return "no detentions\n".to_owned();
    }
    table_text(
        &[
            "DETENTION_ID",
            "EXTERNAL_REF",
            "MUNICIPALITY",
            "STATUS",
            "BEGAN_ON",
            "EXPECTED_RELEASE",
            "RELEASED_ON",
            "INSTITUTION",
        ],
        &detentions
            .iter()
            .map(|d| {
                vec![
                    d.detention_id.clone(),
                    d.external_ref.clone(),
                    or_dash(d.municipality_code.clone()),
                    detention_status(d.status()).to_owned(),
                    or_dash(d.began_on.clone()),
                    or_dash(d.expected_release_on.clone()),
                    or_dash(d.released_on.clone()),
                    institution(d),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// A share of the month's releases: `suppressed`, or the count and its percentage.
pub(crate) fn share(s: Option<&Share>) -> String {
    match s {
        None => "suppressed".to_owned(),
        Some(s) if s.suppressed => "suppressed".to_owned(),
        Some(s) => format!("{} ({:.0}%)", s.count, s.rate * 100.0),
    }
}

/// The statistics as a table of months, then the lapses per condition, then the threshold.
pub(crate) fn statistics_text(
    municipality: &str,
    from: &str,
    to: &str,
    r: &GetReintegrationStatisticsResponse,
) -> String {
    let mut out = fields_text(&[
        ("municipality", municipality.to_owned()),
        (
            "period",
            format!("{from} to {to} (whole months of release)"),
        ),
        ("threshold", r.threshold.to_string()),
    ]);
    out.push('\n');
    if r.months.is_empty() {
        out.push_str("no months in the period\n");
        return out;
    }
    let months: Vec<Vec<String>> = r
        .months
        .iter()
        .map(|m| {
            if m.suppressed {
                let s = "suppressed".to_owned();
                vec![m.month.clone(), s.clone(), s.clone(), s.clone(), s]
            } else {
                vec![
                    m.month.clone(),
                    m.releases.to_string(),
                    share(m.all_arranged.as_ref()),
                    share(m.redetained_within_12_months.as_ref()),
                    share(m.redetained_within_24_months.as_ref()),
                ]
            }
        })
        .collect();
    out.push_str(&table_text(
        &[
            "MONTH",
            "RELEASES",
            "ALL_ARRANGED",
            "REDETAINED_12M",
            "REDETAINED_24M",
        ],
        &months,
    ));
    let lapses: Vec<Vec<String>> = r
        .months
        .iter()
        .filter(|m| !m.suppressed)
        .flat_map(|m| {
            m.lapses.iter().map(|l| {
                vec![
                    m.month.clone(),
                    condition_kind(l.kind()).to_owned(),
                    share(l.lapsed.as_ref()),
                ]
            })
        })
        .collect();
    if !lapses.is_empty() {
        out.push_str("\nlapses per condition:\n");
        out.push_str(&table_text(&["MONTH", "CONDITION", "LAPSED"], &lapses));
    }
    out.push_str(&format!(
        "\n(suppressed: fewer than {} people; a suppressed month shows no numbers at all)\n",
        r.threshold
    ));
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use zvv_proto::reintegration::v1::{ConditionKind, ConditionLapses, MonthStatistics};

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: DetentionCommand,
    }

    fn parse(args: &[&str]) -> Result<DetentionCommand, clap::Error> {
        Cli::try_parse_from(["detention"].iter().chain(args)).map(|c| c.command)
    }

    const RECORD: &[&str] = &[
        "record",
        "--external-ref",
        "DJI-1",
        "--kind",
        "leave-start",
        "--institution",
        "PI-VUGHT",
        "--institution-type",
        "pi",
        "--on",
        "2026-01-05",
    ];

    #[test]
    fn record_takes_one_person_and_checks_dates_and_codes() {
        let ok = parse(&[RECORD, &["--subject-id", "x", "--municipality", "gm0855"]].concat())
            .expect("parses");
        let DetentionCommand::Record(a) = ok else {
            panic!("record")
        };
        assert_eq!(a.kind, Kind::LeaveStart);
        assert_eq!(a.institution_type, Institution::Pi);
        assert_eq!(a.municipality.as_deref(), Some("GM0855"));
        assert!(a.expected_release.is_none());
        // neither, or both, of --bsn and --subject-id
        assert!(parse(RECORD).is_err());
        assert!(parse(&[RECORD, &["--bsn", "-", "--subject-id", "x"]].concat()).is_err());
        for bad in [
            &["--bsn", "-", "--expected-release", "soon"][..],
            &["--bsn", "-", "--municipality", "Vught"],
            &["--bsn", "-", "--birth-date", "1990-02-30"],
        ] {
            assert!(parse(&[RECORD, bad].concat()).is_err(), "{bad:?}");
        }
        let err = parse(&[&RECORD[..3], &["--kind", "escape"], &RECORD[5..]].concat())
            .expect_err("unknown kind");
        assert!(err.to_string().contains("leave-start"), "{err}");
    }

    #[test]
    fn list_filters_on_a_status() {
        let DetentionCommand::List(a) = parse(&["list", "--status", "on-leave"]).expect("parses")
        else {
            panic!("list")
        };
        assert_eq!(a.status, Some(StatusArg::OnLeave));
        assert_eq!(status_pb(StatusArg::OnLeave), DetentionStatus::OnLeave);
        assert!(parse(&["list", "--status", "escaped"]).is_err());
    }

    #[test]
    fn stats_needs_a_municipality_and_months() {
        let ok = parse(&[
            "stats",
            "--municipality",
            "GM0855",
            "--from",
            "2026-01",
            "--to",
            "2026-11",
        ]);
        assert!(ok.is_ok(), "{ok:?}");
        assert!(
            parse(&[
                "stats",
                "--municipality",
                "GM0855",
                "--from",
                "2026-1",
                "--to",
                "2026-11"
            ])
            .is_err()
        );
        assert!(parse(&["stats", "--from", "2026-01", "--to", "2026-11"]).is_err());
    }

    fn episode() -> Detention {
        Detention {
            detention_id: "d-1".into(),
            subject_id: "s-1".into(),
            external_ref: "DJI-1".into(),
            municipality_code: "GM0855".into(),
            status: DetentionStatus::Detained.into(),
            began_on: "2026-01-05".into(),
            begin_received: true,
            expected_release_on: "2026-01-15".into(),
            institution_code: "PI-VUGHT".into(),
            institution_type: InstitutionType::Pi.into(),
            policy_version: 1,
            short_stay: true,
            ..Default::default()
        }
    }

    #[test]
    fn an_episode_reads_with_its_ids_and_dates() {
        let text = detention_text(Some(&episode()));
        for line in [
            "detention_id:        d-1",
            "status:              detained",
            "began_on:            2026-01-05",
            "expected_release_on: 2026-01-15",
            "released_on:         -",
            "institution:         PI-VUGHT (PI)",
            "short_stay:          yes",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("ready_at_release"), "{text}");
        let mut d = episode();
        d.begin_received = false;
        d.status = DetentionStatus::Released.into();
        d.released_on = "2026-01-14".into();
        d.redetained_within_months = Some(12);
        d.ready_at_release = Some(false);
        let text = detention_text(Some(&d));
        assert!(text.contains("2026-01-05 (provisional"), "{text}");
        assert!(text.contains("status:              released"), "{text}");
        assert!(text.contains("ready_at_release:    no"), "{text}");
        assert!(text.contains("12 months of an earlier release"), "{text}");
        // a partner's view has neither
        d.redetained_within_months = None;
        d.ready_at_release = None;
        let text = detention_text(Some(&d));
        assert!(
            !text.contains("redetained") && !text.contains("ready_at_release"),
            "{text}"
        );
        assert_eq!(detentions_text(&[]), "no detentions\n");
        let table = detentions_text(&[episode()]);
        assert!(table.starts_with("DETENTION_ID  EXTERNAL_REF"), "{table}");
        assert!(table.contains("d-1           DJI-1"), "{table}");
    }

    #[test]
    fn suppressed_numbers_say_so() {
        let shown = |count, rate| Share {
            suppressed: false,
            count,
            rate,
        };
        let r = GetReintegrationStatisticsResponse {
            threshold: 5,
            months: vec![
                MonthStatistics {
                    month: "2026-01".into(),
                    suppressed: true,
                    ..Default::default()
                },
                MonthStatistics {
                    month: "2026-02".into(),
                    suppressed: false,
                    releases: 8,
                    all_arranged: Some(shown(6, 0.75)),
                    lapses: vec![ConditionLapses {
                        kind: ConditionKind::IdentityDocument.into(),
                        lapsed: Some(Share {
                            suppressed: true,
                            count: 0,
                            rate: 0.0,
                        }),
                    }],
                    redetained_within_12_months: Some(Share {
                        suppressed: true,
                        count: 0,
                        rate: 0.0,
                    }),
                    redetained_within_24_months: Some(shown(0, 0.0)),
                },
            ],
        };
        let text = statistics_text("GM0855", "2026-01", "2026-02", &r);
        assert!(
            text.contains("2026-01  suppressed  suppressed    suppressed      suppressed"),
            "{text}"
        );
        assert!(
            text.contains("2026-02  8           6 (75%)       suppressed      0 (0%)"),
            "{text}"
        );
        assert!(
            text.contains("2026-02  identity-document  suppressed"),
            "{text}"
        );
        assert!(text.contains("threshold:    5"), "{text}");
        assert!(text.contains("fewer than 5 people"), "{text}");
    }
}
