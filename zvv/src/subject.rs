//! `zvv subject …`: the identity registry (intake's SubjectService) for people at a terminal.

use zvv_proto::intake::v1::{
    GetSubjectRequest, LinkRelationRequest, ListFamilyRequest, ListRelationsRequest,
    RegisterSubjectRequest, Relation, RelationKind, RelationSource, ResolveSubjectRequest, Subject,
    UnlinkReason, UnlinkRelationRequest, UpdateSubjectRequest,
};

use crate::client::{ConnArgs, check};
use crate::output::{
    bsn_arg, date_arg, fresh_request_id, municipality_arg, or_dash, print_fields, print_next_page,
    timestamp, yes_no,
};

/// The `zvv subject` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SubjectCommand {
    /// Register a person (a BSN that is already registered gives its subject_id).
    Register(RegisterArgs),
    /// Turn a BSN into its subject_id (SERVICE tokens only).
    Resolve(ResolveArgs),
    /// Show a subject (the BSN masked).
    Get(GetArgs),
    /// Change names, municipality, neighbourhood, date of death or an unknown birth date.
    Update(UpdateArgs),
    /// Record that one subject is a parent or guardian of another, and where that comes from
    /// (COORDINATOR; both subjects in your jurisdiction).
    Link(LinkArgs),
    /// Remove a relation that was recorded wrongly or has ended, with the reason (COORDINATOR;
    /// both subjects in your jurisdiction).
    Unlink(UnlinkArgs),
    /// List the relations of a subject.
    Relations(RelationsArgs),
    /// Show a subject's parents and the children who share a parent with it.
    Family(FamilyArgs),
}

#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Citizen service number (9 digits); `-` reads it from standard input, which keeps it out
    /// of the process list and the shell history.
    #[arg(long)]
    bsn: String,
    #[arg(long)]
    given_name: String,
    #[arg(long)]
    family_name: String,
    /// YYYY-MM-DD.
    #[arg(long)]
    birth_date: String,
    /// Municipality code, e.g. GM0363.
    #[arg(long)]
    municipality: String,
    /// Neighbourhood (wijk) code, e.g. WK036305.
    #[arg(long)]
    neighbourhood: String,
    /// Idempotency key; default a fresh UUID. Repeat a call with the same key to retry it safely.
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Citizen service number (9 digits); `-` reads it from standard input, which keeps it out
    /// of the process list and the shell history.
    #[arg(long)]
    bsn: String,
    /// Register a bare subject when the BSN is not known yet.
    #[arg(long)]
    create: bool,
    /// With --create: the municipality responsible for a new subject (CBS code, e.g. GM0363);
    /// ignored when the BSN is known.
    #[arg(long, requires = "create", value_parser = municipality_arg)]
    municipality: Option<String>,
    /// With --create: YYYY-MM-DD, the birth date of a new subject; ignored when the BSN is known.
    #[arg(long, requires = "create", value_parser = date_arg)]
    birth_date: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    conn: ConnArgs,
    subject_id: String,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    conn: ConnArgs,
    subject_id: String,
    #[arg(long)]
    given_name: Option<String>,
    #[arg(long)]
    family_name: Option<String>,
    /// Municipality code, e.g. GM0363.
    #[arg(long)]
    municipality: Option<String>,
    /// Neighbourhood (wijk) code, e.g. WK036305.
    #[arg(long)]
    neighbourhood: Option<String>,
    /// YYYY-MM-DD; an empty string clears it. Needs a COORDINATOR token.
    #[arg(long)]
    date_of_death: Option<String>,
    /// YYYY-MM-DD; only while the birth date is unknown.
    #[arg(long)]
    birth_date: Option<String>,
    /// Optional idempotency key.
    #[arg(long)]
    request_id: Option<String>,
}

/// Kind of a relation.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Parent,
    Guardian,
}

/// Where a relation comes from.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Source {
    /// The municipal personal records database (Basisregistratie Personen).
    Brp,
    /// A court order, e.g. guardianship or custody.
    CourtOrder,
    /// A declaration by the family or a professional.
    Declaration,
}

/// Why a relation is removed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Reason {
    /// The relation was recorded by mistake.
    RecordedInError,
    /// One of the two subjects is not the person the relation was meant for.
    WrongPerson,
    /// The source (BRP, court) was corrected or withdrawn.
    SourceCorrected,
    /// Guardianship or custody ended by court order.
    CustodyEnded,
}

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The parent's or guardian's subject_id.
    #[arg(long)]
    parent: String,
    /// The child's subject_id.
    #[arg(long)]
    child: String,
    #[arg(long, value_enum, default_value = "parent")]
    kind: Kind,
    /// Where the relation comes from.
    #[arg(long, value_enum)]
    source: Source,
    /// Idempotency key; default a fresh UUID.
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct UnlinkArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The parent's or guardian's subject_id.
    #[arg(long)]
    parent: String,
    /// The child's subject_id.
    #[arg(long)]
    child: String,
    /// Why the relation is removed.
    #[arg(long, value_enum)]
    reason: Reason,
    /// Idempotency key; default a fresh UUID. Repeat a call with the same key to retry it safely.
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RelationsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    subject_id: String,
    /// At most 100; default 50.
    #[arg(long, default_value_t = 0)]
    page_size: i32,
    /// The next_page_token printed by the previous page.
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Debug, clap::Args)]
pub struct FamilyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    subject_id: String,
}

pub async fn run(cmd: SubjectCommand) -> anyhow::Result<()> {
    match cmd {
        SubjectCommand::Register(a) => {
            let response = check(
                a.conn
                    .intake()?
                    .register_subject(RegisterSubjectRequest {
                        request_id: a.request_id.unwrap_or_else(fresh_request_id),
                        bsn: bsn_arg(a.bsn)?,
                        given_name: a.given_name,
                        family_name: a.family_name,
                        birth_date: a.birth_date,
                        municipality_code: a.municipality,
                        neighbourhood_code: a.neighbourhood,
                    })
                    .await,
            )?;
            print_subject(response.subject.as_ref());
        }
        SubjectCommand::Resolve(a) => {
            let r = check(
                a.conn
                    .intake()?
                    .resolve_subject(ResolveSubjectRequest {
                        bsn: bsn_arg(a.bsn)?,
                        create_if_missing: a.create,
                        municipality_code: a.municipality.unwrap_or_default(),
                        birth_date: a.birth_date.unwrap_or_default(),
                    })
                    .await,
            )?;
            print_fields(&[
                ("subject_id", r.subject_id),
                ("birth_date", or_unknown(r.birth_date)),
                ("date_of_death", or_dash(r.date_of_death)),
                ("created", yes_no(r.created)),
                ("lookup_ref", or_dash(r.lookup_ref)),
            ]);
        }
        SubjectCommand::Get(a) => {
            let r = check(
                a.conn
                    .intake()?
                    .get_subject(GetSubjectRequest {
                        subject_id: a.subject_id,
                    })
                    .await,
            )?;
            print_subject(r.subject.as_ref());
        }
        SubjectCommand::Update(a) => update(a).await?,
        SubjectCommand::Link(a) => {
            let kind = match a.kind {
                Kind::Parent => RelationKind::Parent,
                Kind::Guardian => RelationKind::Guardian,
            };
            let source = match a.source {
                Source::Brp => RelationSource::Brp,
                Source::CourtOrder => RelationSource::CourtOrder,
                Source::Declaration => RelationSource::Declaration,
            };
            let r = check(
                a.conn
                    .intake()?
                    .link_relation(LinkRelationRequest {
                        request_id: a.request_id.unwrap_or_else(fresh_request_id),
                        parent_subject_id: a.parent,
                        child_subject_id: a.child,
                        kind: kind.into(),
                        source: source.into(),
                    })
                    .await,
            )?;
            match r.relation {
                Some(rel) => print_fields(&relation_fields(&rel)),
                None => println!("linked"),
            }
        }
        SubjectCommand::Unlink(a) => {
            let reason = match a.reason {
                Reason::RecordedInError => UnlinkReason::RecordedInError,
                Reason::WrongPerson => UnlinkReason::WrongPerson,
                Reason::SourceCorrected => UnlinkReason::SourceCorrected,
                Reason::CustodyEnded => UnlinkReason::CustodyEnded,
            };
            let r = check(
                a.conn
                    .intake()?
                    .unlink_relation(UnlinkRelationRequest {
                        request_id: a.request_id.unwrap_or_else(fresh_request_id),
                        parent_subject_id: a.parent,
                        child_subject_id: a.child,
                        reason: reason.into(),
                    })
                    .await,
            )?;
            let mut fields = r.relation.as_ref().map(relation_fields).unwrap_or_default();
            fields.extend([
                ("status", "removed".to_owned()),
                ("reason", reason_name(reason).to_owned()),
            ]);
            print_fields(&fields);
        }
        SubjectCommand::Relations(a) => {
            let r = check(
                a.conn
                    .intake()?
                    .list_relations(ListRelationsRequest {
                        subject_id: a.subject_id,
                        page_size: a.page_size,
                        page_token: a.page_token,
                    })
                    .await,
            )?;
            if r.relations.is_empty() {
                println!("no relations");
            }
            for rel in &r.relations {
                println!(
                    "{} is {} of {} (source: {})",
                    rel.parent_subject_id,
                    kind_name(rel),
                    rel.child_subject_id,
                    source_name(rel)
                );
            }
            print_next_page("relations", &r.next_page_token);
        }
        SubjectCommand::Family(a) => {
            let subject_id = a.subject_id.clone();
            let r = check(
                a.conn
                    .intake()?
                    .list_family(ListFamilyRequest {
                        subject_id: a.subject_id,
                    })
                    .await,
            )?;
            println!("subject_id: {subject_id}");
            print_list("parents", &r.parent_subject_ids);
            print_list("siblings", &r.sibling_subject_ids);
        }
    }
    Ok(())
}

async fn update(a: UpdateArgs) -> anyhow::Result<()> {
    let mut subject = Subject::default();
    let mut paths = Vec::new();
    let fields = [
        ("given_name", a.given_name, &mut subject.given_name),
        ("family_name", a.family_name, &mut subject.family_name),
        (
            "municipality_code",
            a.municipality,
            &mut subject.municipality_code,
        ),
        (
            "neighbourhood_code",
            a.neighbourhood,
            &mut subject.neighbourhood_code,
        ),
        ("date_of_death", a.date_of_death, &mut subject.date_of_death),
        ("birth_date", a.birth_date, &mut subject.birth_date),
    ];
    for (path, value, slot) in fields {
        if let Some(value) = value {
            *slot = value;
            paths.push(path.to_owned());
        }
    }
    if paths.is_empty() {
        anyhow::bail!(
            "nothing to update: pass at least one of --given-name, --family-name, --municipality, \
             --neighbourhood, --date-of-death, --birth-date"
        );
    }
    let r = check(
        a.conn
            .intake()?
            .update_subject(UpdateSubjectRequest {
                subject_id: a.subject_id.clone(),
                subject: Some(Subject {
                    subject_id: a.subject_id,
                    ..subject
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
                request_id: a.request_id.unwrap_or_default(),
            })
            .await,
    )?;
    print_subject(r.subject.as_ref());
    Ok(())
}

fn print_subject(subject: Option<&Subject>) {
    let Some(s) = subject else {
        println!("(no subject in the response)");
        return;
    };
    let name = [s.given_name.as_str(), s.family_name.as_str()]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    print_fields(&[
        ("subject_id", s.subject_id.clone()),
        ("bsn", s.bsn_masked.clone()),
        (
            "name",
            if name.is_empty() {
                "(unknown)".to_owned()
            } else {
                name
            },
        ),
        ("birth_date", or_unknown(s.birth_date.clone())),
        ("date_of_death", or_dash(s.date_of_death.clone())),
        ("municipality", or_dash(s.municipality_code.clone())),
        ("neighbourhood", or_dash(s.neighbourhood_code.clone())),
        ("created", timestamp(s.create_time.as_ref())),
        ("updated", timestamp(s.update_time.as_ref())),
    ]);
}

fn print_list(label: &str, ids: &[String]) {
    if ids.is_empty() {
        println!("{label}: none");
        return;
    }
    println!("{label}:");
    for id in ids {
        println!("  {id}");
    }
}

fn relation_fields(rel: &Relation) -> Vec<(&'static str, String)> {
    vec![
        ("parent", rel.parent_subject_id.clone()),
        ("child", rel.child_subject_id.clone()),
        ("kind", kind_name(rel).to_owned()),
        ("source", source_name(rel).to_owned()),
        ("created", timestamp(rel.create_time.as_ref())),
    ]
}

fn source_name(rel: &Relation) -> &'static str {
    match rel.source() {
        RelationSource::Brp => "brp",
        RelationSource::CourtOrder => "court-order",
        RelationSource::Declaration => "declaration",
        // relations recorded before the source was kept
        RelationSource::Unspecified => "not recorded",
    }
}

fn reason_name(reason: UnlinkReason) -> &'static str {
    match reason {
        UnlinkReason::RecordedInError => "recorded-in-error",
        UnlinkReason::WrongPerson => "wrong-person",
        UnlinkReason::SourceCorrected => "source-corrected",
        UnlinkReason::CustodyEnded => "custody-ended",
        UnlinkReason::Unspecified => "-",
    }
}

fn kind_name(rel: &Relation) -> &'static str {
    match rel.kind() {
        RelationKind::Parent => "parent",
        RelationKind::Guardian => "guardian",
        RelationKind::Unspecified => "unspecified",
    }
}

fn or_unknown(value: String) -> String {
    if value.is_empty() {
        "(unknown)".to_owned()
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_readable() {
        let ts = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(timestamp(Some(&ts)), "2023-11-14T22:13:20Z");
        assert_eq!(timestamp(None), "-");
    }
}
