//! Matches: loading them, applying the domain's match rule when signals arrive or leave or a
//! family changes, and the changes participants make (coordinator, coordinated). Every match
//! event goes to the organisations in the match (before and after the change).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, idempotency::Key, outbox::Event};

use super::{
    PgStore, SIGNAL_COLUMNS, abandon, commit, emit, first_response, remember, signal_from_row,
};
use crate::{
    domain::{
        Contact, Coordinator, Family, Match, MatchKind, MatchSignal, MatchStep, Signal,
        after_leaving, after_registration,
    },
    store::{MatchChange, MatchOutcome, MatchStore},
};

/// The event of a step of match `id`: the same payload (`match_id`, `kind`) for every match
/// event, wherever the step was taken, to the organisations of `audience`.
pub(super) fn match_event(
    step: &MatchStep,
    id: Uuid,
    kind: MatchKind,
    audience: &BTreeSet<String>,
) -> Option<Event> {
    step.event().map(|t| {
        Event::new(t)
            .id("match_id", id)
            .code("kind", kind.as_str())
            .to_organisations(audience.iter().cloned())
    })
}

/// The matches with these ids, each with its current signals.
pub(super) async fn load_matches(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<Match>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT match_id, kind, status, coordinator_org, coordinator_name, coordinator_phone, \
         coordinator_email, coordinator_at, coordinated, created_at, updated_at \
         FROM signalling.matches WHERE match_id = ANY($1) ORDER BY match_id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let sql = format!(
        "SELECT ms.match_id, {SIGNAL_COLUMNS} FROM signalling.match_signals ms \
         JOIN signalling.signals s ON s.signal_id = ms.signal_id \
         WHERE ms.match_id = ANY($1) ORDER BY s.created_at, s.signal_id"
    );
    let signal_rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut signals: HashMap<Uuid, Vec<Signal>> = HashMap::new();
    for s in &signal_rows {
        signals
            .entry(s.try_get("match_id")?)
            .or_default()
            .push(signal_from_row(s)?);
    }
    let mut matches = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("match_id")?;
        let kind: String = row.try_get("kind")?;
        let status: String = row.try_get("status")?;
        let coordinator = match row.try_get::<Option<String>, _>("coordinator_org")? {
            Some(organisation) => Some(Coordinator {
                organisation,
                contact: Contact {
                    name: row
                        .try_get::<Option<String>, _>("coordinator_name")?
                        .unwrap_or_default(),
                    phone: row
                        .try_get::<Option<String>, _>("coordinator_phone")?
                        .unwrap_or_default(),
                    email: row
                        .try_get::<Option<String>, _>("coordinator_email")?
                        .unwrap_or_default(),
                },
                assigned_at: row
                    .try_get::<Option<DateTime<Utc>>, _>("coordinator_at")?
                    .unwrap_or_default(),
            }),
            None => None,
        };
        matches.push(Match {
            id,
            kind: MatchKind::parse(&kind)
                .ok_or_else(|| ApiError::internal(format!("stored match kind {kind:?}")))?,
            open: status == "OPEN",
            signals: signals.remove(&id).unwrap_or_default(),
            coordinator,
            coordinated: row.try_get("coordinated")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        });
    }
    Ok(matches)
}

/// A step of one existing open match, with the organisations its event goes to.
struct Change {
    id: Uuid,
    kind: MatchKind,
    step: MatchStep,
    audience: BTreeSet<String>,
}

/// Takes `changes` of existing open matches: closes those that close, touches the others, and
/// emits each step's event.
async fn apply_to_open(
    conn: &mut PgConnection,
    changes: &[Change],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let changed: Vec<Uuid> = changes
        .iter()
        .filter(|c| c.step.event().is_some())
        .map(|c| c.id)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let closed: Vec<Uuid> = changes
        .iter()
        .filter(|c| c.step == MatchStep::Close)
        .map(|c| c.id)
        .collect();
    sqlx::query(
        "UPDATE signalling.matches SET updated_at = $3, \
         status = CASE WHEN match_id = ANY($2) THEN 'CLOSED' ELSE status END \
         WHERE match_id = ANY($1)",
    )
    .bind(&changed)
    .bind(&closed)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for c in changes {
        if let Some(event) = match_event(&c.step, c.id, c.kind, &c.audience) {
            emit(conn, event, now).await?;
        }
    }
    Ok(())
}

/// One anchor of matches: the subject (CLIENT) or a parent (FAMILY), with the subjects whose
/// active signals count for it.
struct Anchor<'a> {
    kind: MatchKind,
    id: Uuid,
    subjects: &'a [Uuid],
}

/// A signal in an open match: (signal, subject, organisation, whether it is active).
type Member = (Uuid, Uuid, String, bool);

/// Brings the open match of each anchor up to date by the match rule, from the active signals
/// on its subjects: a match opens, is joined, loses the signals that no longer count for it
/// (e.g. of a child no longer the parent's), or closes when it no longer holds. Returns per
/// anchor its open match afterwards with the signals in it, or `None`.
async fn reconcile(
    conn: &mut PgConnection,
    anchors: &[Anchor<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Option<(Uuid, Vec<Uuid>)>>, ApiError> {
    let mut subjects: Vec<Uuid> = anchors.iter().flat_map(|a| a.subjects).copied().collect();
    subjects.sort_unstable();
    subjects.dedup();
    let anchor_ids: Vec<Uuid> = anchors.iter().map(|a| a.id).collect();

    // every active signal that counts for any of the anchors, and their open matches: two reads
    let active: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT signal_id, subject_id, organisation FROM signalling.signals \
         WHERE subject_id = ANY($1) AND status = 'ACTIVE' ORDER BY created_at, signal_id",
    )
    .bind(&subjects)
    .fetch_all(&mut *conn)
    .await?;
    type OpenRow = (
        Uuid,
        String,
        Uuid,
        Option<Uuid>,
        Option<Uuid>,
        Option<String>,
        Option<bool>,
    );
    let open_rows: Vec<OpenRow> = sqlx::query_as(
        "SELECT m.match_id, m.kind, m.anchor_subject_id, s.signal_id, s.subject_id, \
                s.organisation, s.status = 'ACTIVE' \
         FROM signalling.matches m \
         LEFT JOIN signalling.match_signals ms ON ms.match_id = m.match_id \
         LEFT JOIN signalling.signals s ON s.signal_id = ms.signal_id \
         WHERE m.status = 'OPEN' AND m.anchor_subject_id = ANY($1)",
    )
    .bind(&anchor_ids)
    .fetch_all(&mut *conn)
    .await?;
    // (match id, kind, anchor) → members
    let mut open: Vec<(Uuid, String, Uuid, Vec<Member>)> = Vec::new();
    for (match_id, kind, anchor, signal, subject, organisation, is_active) in open_rows {
        let at = match open.iter().position(|(id, ..)| *id == match_id) {
            Some(at) => at,
            None => {
                open.push((match_id, kind, anchor, Vec::new()));
                open.len() - 1
            }
        };
        if let (Some(signal), Some(subject), Some(organisation)) = (signal, subject, organisation) {
            open[at]
                .3
                .push((signal, subject, organisation, is_active.unwrap_or(false)));
        }
    }

    let mut changes = Vec::new();
    let mut results = Vec::with_capacity(anchors.len());
    for anchor in anchors {
        let counted: Vec<MatchSignal> = active
            .iter()
            .filter(|(_, subject, _)| anchor.subjects.contains(subject))
            .map(|(signal_id, subject_id, organisation)| MatchSignal {
                signal_id: *signal_id,
                subject_id: *subject_id,
                organisation: organisation.clone(),
            })
            .collect();
        let current = open
            .iter()
            .find(|(_, kind, a, _)| *a == anchor.id && kind == anchor.kind.as_str());
        let Some((id, _, _, members)) = current else {
            let step = after_registration(anchor.kind, None, &counted);
            results.push(match step {
                MatchStep::Open(ids) => {
                    Some((open_match(conn, anchor, &counted, &ids, now).await?, ids))
                }
                _ => None,
            });
            continue;
        };
        // members that no longer count: inactive, or on a subject the anchor no longer has
        let (kept, stale): (Vec<&Member>, Vec<&Member>) = members.iter().partition(|m| {
            m.3 && anchor.subjects.contains(&m.1) && counted.iter().any(|c| c.signal_id == m.0)
        });
        let kept: Vec<Uuid> = kept.iter().map(|m| m.0).collect();
        let mut step = after_registration(anchor.kind, Some(&kept), &counted);
        if !stale.is_empty() {
            let stale_ids: Vec<Uuid> = stale.iter().map(|m| m.0).collect();
            sqlx::query(
                "DELETE FROM signalling.match_signals WHERE match_id = $1 AND signal_id = ANY($2)",
            )
            .bind(id)
            .bind(&stale_ids)
            .execute(&mut *conn)
            .await?;
            if step == MatchStep::Unchanged {
                step = MatchStep::Shrink;
            }
        }
        // everybody who was in the match, and who joins it
        let mut audience: BTreeSet<String> = members.iter().map(|m| m.2.clone()).collect();
        let after = match &step {
            MatchStep::Join(added) => {
                add_signals(conn, *id, added).await?;
                audience.extend(
                    counted
                        .iter()
                        .filter(|c| added.contains(&c.signal_id))
                        .map(|c| c.organisation.clone()),
                );
                Some((*id, kept.iter().chain(added).copied().collect()))
            }
            MatchStep::Close => None,
            _ => Some((*id, kept)),
        };
        results.push(after);
        changes.push(Change {
            id: *id,
            kind: anchor.kind,
            step,
            audience,
        });
    }
    apply_to_open(conn, &changes, now).await?;
    Ok(results)
}

/// Brings the matches of `signal` up to date by the match rule after it was stored: the
/// subject's CLIENT match and a FAMILY match per parent in `families` open, are joined or (when
/// they no longer hold) close. Returns the open matches the signal is in.
pub(super) async fn reconcile_after_registration(
    conn: &mut PgConnection,
    signal: &Signal,
    families: &[Family],
    now: DateTime<Utc>,
) -> Result<Vec<Match>, ApiError> {
    let subject = [signal.subject_id];
    let anchors: Vec<Anchor<'_>> = std::iter::once(Anchor {
        kind: MatchKind::Client,
        id: signal.subject_id,
        subjects: &subject,
    })
    .chain(families.iter().map(|f| Anchor {
        kind: MatchKind::Family,
        id: f.parent,
        subjects: &f.children,
    }))
    .collect();
    let mut in_matches: Vec<Uuid> = reconcile(conn, &anchors, now)
        .await?
        .into_iter()
        .flatten()
        .filter(|(_, members)| members.contains(&signal.id))
        .map(|(id, _)| id)
        .collect();
    in_matches.sort_unstable();
    in_matches.dedup();
    load_matches(conn, &in_matches).await
}

/// Brings the FAMILY match of `parent` up to date after a relation of theirs with `child`
/// changed. `children` are all of the parent's children by intake, when `child` is still one
/// of them; otherwise (`None`) the children are those in the parent's open match but `child`.
/// Returns the family's open match afterwards, if any, and every match id it changed or closed.
pub(super) async fn reconcile_family(
    conn: &mut PgConnection,
    parent: Uuid,
    child: Uuid,
    children: Option<&[Uuid]>,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, ApiError> {
    let before: Option<Uuid> = sqlx::query_scalar(
        "SELECT match_id FROM signalling.matches \
         WHERE kind = 'FAMILY' AND status = 'OPEN' AND anchor_subject_id = $1",
    )
    .bind(parent)
    .fetch_optional(&mut *conn)
    .await?;
    let subjects: Vec<Uuid> = match children {
        Some(children) => children.to_vec(),
        None => {
            let Some(open) = before else {
                // no longer the parent's child, and no family match to leave
                return Ok(Vec::new());
            };
            sqlx::query_scalar(
                "SELECT DISTINCT s.subject_id FROM signalling.match_signals ms \
                 JOIN signalling.signals s ON s.signal_id = ms.signal_id \
                 WHERE ms.match_id = $1 AND s.subject_id <> $2",
            )
            .bind(open)
            .bind(child)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let anchor = Anchor {
        kind: MatchKind::Family,
        id: parent,
        subjects: &subjects,
    };
    let after = reconcile(conn, &[anchor], now).await?;
    let mut ids: Vec<Uuid> = before
        .into_iter()
        .chain(after.into_iter().flatten().map(|(id, _)| id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Opens a match of `signals` (of `counted`) at `anchor`, with its event to their
/// organisations.
async fn open_match(
    conn: &mut PgConnection,
    anchor: &Anchor<'_>,
    counted: &[MatchSignal],
    signals: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Uuid, ApiError> {
    let id = zvv_platform::ids::new_id();
    sqlx::query(
        "INSERT INTO signalling.matches (match_id, kind, status, anchor_subject_id, created_at, updated_at) \
         VALUES ($1, $2, 'OPEN', $3, $4, $4)",
    )
    .bind(id)
    .bind(anchor.kind.as_str())
    .bind(anchor.id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    add_signals(conn, id, signals).await?;
    let audience: BTreeSet<String> = counted
        .iter()
        .filter(|c| signals.contains(&c.signal_id))
        .map(|c| c.organisation.clone())
        .collect();
    let step = MatchStep::Open(signals.to_vec());
    if let Some(event) = match_event(&step, id, anchor.kind, &audience) {
        emit(conn, event, now).await?;
    }
    Ok(id)
}

async fn add_signals(conn: &mut PgConnection, id: Uuid, signals: &[Uuid]) -> Result<(), ApiError> {
    if signals.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO signalling.match_signals (match_id, signal_id) SELECT $1, unnest($2::uuid[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(signals)
    .execute(conn)
    .await?;
    Ok(())
}

/// A match with one of its signals (none when it has none left): match id, kind, signal id,
/// subject id, organisation.
type MemberRow = (Uuid, String, Option<Uuid>, Option<Uuid>, Option<String>);

/// `signals` leave every open match they are in (they were closed, expired or are being
/// destroyed); each of those matches then stays open or closes by the match rule, told to the
/// organisations that were in it. Returns the matches that were left.
pub(super) async fn leave_matches(
    conn: &mut PgConnection,
    signals: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, ApiError> {
    if signals.is_empty() {
        return Ok(Vec::new());
    }
    // the open matches these signals are in, locked in one order: two transactions leaving the
    // same match (retention on two replicas, a close beside retention) take turns, so that the
    // second sees who the first left and the match is closed exactly once
    sqlx::query(
        "SELECT m.match_id FROM signalling.matches m WHERE m.status = 'OPEN' \
         AND m.match_id IN (SELECT ms.match_id FROM signalling.match_signals ms \
                            WHERE ms.signal_id = ANY($1)) \
         ORDER BY m.match_id FOR UPDATE OF m",
    )
    .bind(signals)
    .execute(&mut *conn)
    .await?;
    let leaving: Vec<(Uuid, String)> = sqlx::query_as(
        "DELETE FROM signalling.match_signals ms USING signalling.matches m, signalling.signals s \
         WHERE ms.match_id = m.match_id AND s.signal_id = ms.signal_id \
           AND ms.signal_id = ANY($1) AND m.status = 'OPEN' \
         RETURNING ms.match_id, s.organisation",
    )
    .bind(signals)
    .fetch_all(&mut *conn)
    .await?;
    let mut left: Vec<Uuid> = leaving.iter().map(|(id, _)| *id).collect();
    left.sort_unstable();
    left.dedup();
    if left.is_empty() {
        return Ok(left);
    }
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT m.match_id, m.kind, s.signal_id, s.subject_id, s.organisation \
         FROM signalling.matches m \
         LEFT JOIN signalling.match_signals ms ON ms.match_id = m.match_id \
         LEFT JOIN signalling.signals s ON s.signal_id = ms.signal_id \
         WHERE m.match_id = ANY($1)",
    )
    .bind(&left)
    .fetch_all(&mut *conn)
    .await?;
    let mut changes = Vec::with_capacity(left.len());
    for id in &left {
        let mut kind = None;
        let mut remaining = Vec::new();
        for (match_id, k, signal_id, subject_id, organisation) in &rows {
            if match_id != id {
                continue;
            }
            kind = MatchKind::parse(k);
            if let (Some(signal_id), Some(subject_id), Some(organisation)) =
                (signal_id, subject_id, organisation)
            {
                remaining.push(MatchSignal {
                    signal_id: *signal_id,
                    subject_id: *subject_id,
                    organisation: organisation.clone(),
                });
            }
        }
        let kind = kind.ok_or_else(|| ApiError::internal("a left match has no kind"))?;
        let audience = leaving
            .iter()
            .filter(|(m, _)| m == id)
            .map(|(_, org)| org.clone())
            .chain(remaining.iter().map(|s| s.organisation.clone()))
            .collect();
        changes.push(Change {
            id: *id,
            kind,
            step: after_leaving(kind, &remaining),
            audience,
        });
    }
    apply_to_open(conn, &changes, now).await?;
    Ok(left)
}

impl MatchStore for PgStore {
    async fn change_match(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        change: MatchChange,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<MatchOutcome, ApiError> {
        let mut tx = self.pool.begin().await?;
        if let Some(first) = first_response::<Match>(&mut tx, key).await? {
            commit(tx, ctx, vec![id], now).await?;
            return Ok(MatchOutcome::Changed(Box::new(first)));
        }
        let locked: Option<bool> = sqlx::query_scalar(
            "SELECT coordinator_org IS NOT NULL FROM signalling.matches \
             WHERE match_id = $1 AND status = 'OPEN' FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(has_coordinator) = locked else {
            abandon(tx).await?;
            return Ok(MatchOutcome::NotFound);
        };
        let participants: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT s.organisation FROM signalling.match_signals ms \
             JOIN signalling.signals s ON s.signal_id = ms.signal_id WHERE ms.match_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        if !participants.iter().any(|p| p == organisation) {
            abandon(tx).await?;
            return Ok(MatchOutcome::NotFound);
        }
        let event = match change {
            MatchChange::AssignCoordinator(c) => {
                if !participants.contains(&c.organisation) {
                    abandon(tx).await?;
                    return Ok(MatchOutcome::CoordinatorNotParticipant);
                }
                sqlx::query(
                    "UPDATE signalling.matches SET coordinator_org = $2, coordinator_name = $3, \
                     coordinator_phone = $4, coordinator_email = $5, coordinator_at = $6, updated_at = $6 \
                     WHERE match_id = $1",
                )
                .bind(id)
                .bind(&c.organisation)
                .bind(&c.contact.name)
                .bind(&c.contact.phone)
                .bind(&c.contact.email)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                "signalling.match.coordinator_assigned"
            }
            MatchChange::MarkCoordinated => {
                if !has_coordinator {
                    abandon(tx).await?;
                    return Ok(MatchOutcome::NoCoordinator);
                }
                sqlx::query(
                    "UPDATE signalling.matches SET coordinated = true, updated_at = $2 WHERE match_id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                "signalling.match.coordinated"
            }
        };
        emit(
            &mut tx,
            Event::new(event)
                .id("match_id", id)
                .to_organisations(participants),
            now,
        )
        .await?;
        let changed = load_matches(&mut tx, &[id])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("match vanished"))?;
        remember(&mut tx, key, &changed, now).await?;
        commit(tx, ctx, vec![id], now).await?;
        Ok(MatchOutcome::Changed(Box::new(changed)))
    }

    async fn list_matches(
        &self,
        ctx: &CallContext,
        organisation: &str,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Match>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT ms.match_id FROM signalling.match_signals ms \
             JOIN signalling.signals s ON s.signal_id = ms.signal_id \
             WHERE s.organisation = $1 AND ms.match_id > $2 ORDER BY ms.match_id LIMIT $3",
        )
        .bind(organisation)
        .bind(after.unwrap_or_else(Uuid::nil))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let matches = load_matches(&mut tx, &ids).await?;
        commit(tx, ctx, ids, now).await?;
        Ok(matches)
    }

    async fn get_match(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Match>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let member: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM signalling.match_signals ms \
             JOIN signalling.signals s ON s.signal_id = ms.signal_id \
             WHERE ms.match_id = $1 AND s.organisation = $2)",
        )
        .bind(id)
        .bind(organisation)
        .fetch_one(&mut *tx)
        .await?;
        let found = if member {
            load_matches(&mut tx, &[id]).await?.into_iter().next()
        } else {
            None
        };
        match found {
            Some(m) => {
                commit(tx, ctx, vec![id], now).await?;
                Ok(Some(m))
            }
            None => {
                abandon(tx).await?;
                Ok(None)
            }
        }
    }
}
