-- Detention episodes, their events, the continuity plan (conditions, actions, tasks) and the
-- anonymous release facts the statistics rest on. No BSN: only intake's subject_id.

-- The versions of the continuity policy plans were made with (the numbers of each, as
-- configured when the version was first used; a version's numbers never change).
CREATE TABLE reintegration.policies (
    version     integer PRIMARY KEY CHECK (version > 0),
    numbers     jsonb NOT NULL,
    recorded_at timestamptz NOT NULL
);

CREATE TABLE reintegration.detentions (
    detention_id             uuid PRIMARY KEY,
    -- the prison system's id of the episode
    external_ref             text NOT NULL UNIQUE,
    subject_id               uuid NOT NULL,
    -- the responsible municipality (CBS code)
    municipality_code        text NOT NULL CHECK (municipality_code ~ '^GM[0-9]{4}$'),
    status                   text NOT NULL CHECK (status IN ('DETAINED', 'ON_LEAVE', 'RELEASED')),
    began_on                 date NOT NULL,
    begin_received           boolean NOT NULL,
    expected_release_on      date,
    released_on              date,
    institution_code         text NOT NULL,
    institution_type         text NOT NULL CHECK (institution_type IN ('PI', 'JJI')),
    leaves                   integer NOT NULL DEFAULT 0,
    policy_version           integer NOT NULL REFERENCES reintegration.policies (version),
    short_stay               boolean NOT NULL,
    follow_up_until          date,
    redetained_within_months integer CHECK (redetained_within_months IN (12, 24)),
    ready_at_release         boolean,
    -- the anonymous release fact this episode's release made (statistics)
    release_fact_id          uuid,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL
);
CREATE INDEX detentions_by_municipality ON reintegration.detentions (municipality_code, detention_id);
CREATE INDEX detentions_by_subject ON reintegration.detentions (subject_id);
CREATE INDEX detentions_released ON reintegration.detentions (released_on) WHERE released_on IS NOT NULL;

CREATE TABLE reintegration.detention_events (
    event_id            uuid PRIMARY KEY,
    detention_id        uuid NOT NULL REFERENCES reintegration.detentions ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('BEGIN', 'LEAVE_START', 'LEAVE_END', 'TRANSFER', 'END')),
    occurred_on         date NOT NULL,
    institution_code    text NOT NULL,
    institution_type    text NOT NULL CHECK (institution_type IN ('PI', 'JJI')),
    expected_release_on date,
    -- the organisation that sent it
    recorded_by         text NOT NULL,
    received_at         timestamptz NOT NULL,
    -- two leaves on different days are two events; the same kind on the same day is one
    UNIQUE (detention_id, kind, occurred_on)
);

CREATE TABLE reintegration.conditions (
    condition_id uuid PRIMARY KEY,
    detention_id uuid NOT NULL REFERENCES reintegration.detentions ON DELETE CASCADE,
    kind         text NOT NULL,
    status       text NOT NULL CHECK (status IN ('UNKNOWN', 'IN_PLACE', 'AT_RISK', 'SUSPENDED',
                                                 'ARRANGED', 'LAPSED', 'NOT_APPLICABLE')),
    -- set the first time an action of it was missed (kept when the status changes later)
    lapsed_at    timestamptz,
    updated_at   timestamptz NOT NULL,
    UNIQUE (detention_id, kind)
);

CREATE TABLE reintegration.actions (
    action_id       uuid PRIMARY KEY,
    condition_id    uuid NOT NULL REFERENCES reintegration.conditions ON DELETE CASCADE,
    detention_id    uuid NOT NULL REFERENCES reintegration.detentions ON DELETE CASCADE,
    position        integer NOT NULL,
    action          text NOT NULL,
    due_on          date,
    rule            text NOT NULL,
    policy_version  integer NOT NULL,
    -- a due date moved by hand keeps its date when the plan is computed again
    override_reason text,
    done_on         date,
    warned_at       timestamptz,
    missed_at       timestamptz,
    UNIQUE (condition_id, action)
);
CREATE INDEX actions_open_by_due ON reintegration.actions (due_on, action_id)
    WHERE done_on IS NULL AND missed_at IS NULL AND due_on IS NOT NULL;

CREATE TABLE reintegration.tasks (
    task_id           uuid PRIMARY KEY,
    condition_id      uuid NOT NULL REFERENCES reintegration.conditions ON DELETE CASCADE,
    detention_id      uuid NOT NULL REFERENCES reintegration.detentions ON DELETE CASCADE,
    organisation      text NOT NULL,
    organisation_type text NOT NULL,
    contact_name      text NOT NULL,
    contact_phone     text NOT NULL,
    contact_email     text NOT NULL,
    status            text NOT NULL CHECK (status IN ('ASSIGNED', 'DONE', 'WITHDRAWN')),
    assigned_by       text NOT NULL,
    created_at        timestamptz NOT NULL,
    completed_at      timestamptz
);
-- one open task per condition
CREATE UNIQUE INDEX tasks_one_open ON reintegration.tasks (condition_id) WHERE status = 'ASSIGNED';
CREATE INDEX tasks_by_organisation ON reintegration.tasks (organisation, task_id);
CREATE INDEX tasks_by_detention ON reintegration.tasks (detention_id);

-- One row per release, without person or episode: the month, the municipality, whether every
-- condition was in place, which conditions lapsed, and re-detention. The statistics rest on
-- these, so that they outlive the retention of the episodes.
CREATE TABLE reintegration.release_facts (
    fact_id                  uuid PRIMARY KEY,
    municipality_code        text NOT NULL,
    -- the first day of the month of release
    release_month            date NOT NULL,
    all_arranged             boolean NOT NULL,
    lapsed                   text[] NOT NULL DEFAULT '{}',
    redetained_within_months integer CHECK (redetained_within_months IN (12, 24))
);
CREATE INDEX release_facts_by_month ON reintegration.release_facts (municipality_code, release_month);

-- What lets a new detention see an earlier release of the same person, and nothing else: a
-- keyed hash of the subject (HMAC under the fingerprint key), the release day and the fact. Kept
-- 24 months after the release, then destroyed.
CREATE TABLE reintegration.release_marks (
    subject_mark bytea NOT NULL,
    released_on  date NOT NULL,
    fact_id      uuid NOT NULL REFERENCES reintegration.release_facts ON DELETE CASCADE,
    PRIMARY KEY (subject_mark, released_on)
);
CREATE INDEX release_marks_by_day ON reintegration.release_marks (released_on);
