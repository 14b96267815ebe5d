-- The signalling index. A signal holds only the subject (a pseudonymous intake id), the
-- organisation, its contact, dates and status: no reason, no free text. The birth date and
-- neighbourhood are copied from intake at registration for the age rule and the statistics.
CREATE TABLE signalling.signals (
    signal_id           uuid        PRIMARY KEY,
    subject_id          uuid        NOT NULL,
    organisation        text        NOT NULL,
    organisation_type   text        NOT NULL,
    contact_name        text        NOT NULL,
    contact_phone       text        NOT NULL,
    contact_email       text        NOT NULL,
    registered_on       date        NOT NULL,
    duration_months     integer     NOT NULL CHECK (duration_months BETWEEN 1 AND 24),
    expires_on          date        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('ACTIVE', 'CLOSED', 'EXPIRED')),
    close_reason        text        CHECK (close_reason IN ('UNJUSTIFIED', 'RISK_GONE')),
    closed_at           timestamptz,
    parents_informed_on date,
    child_informed_on   date,
    postponement_reason text,
    birth_date          date        NOT NULL,
    municipality_code   text,
    neighbourhood_code  text,
    created_at          timestamptz NOT NULL
);

-- one active signal per organisation and subject
CREATE UNIQUE INDEX signals_one_active_per_organisation
    ON signalling.signals (subject_id, organisation) WHERE status = 'ACTIVE';
CREATE INDEX signals_by_organisation ON signalling.signals (organisation, signal_id);

CREATE TABLE signalling.matches (
    match_id              uuid        PRIMARY KEY,
    kind                  text        NOT NULL CHECK (kind IN ('CLIENT', 'FAMILY')),
    status                text        NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    -- CLIENT: the subject; FAMILY: a parent the children share
    anchor_subject_id     uuid        NOT NULL,
    coordinator_org       text,
    coordinator_name      text,
    coordinator_phone     text,
    coordinator_email     text,
    coordinator_at        timestamptz,
    coordinated           boolean     NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);

-- at most one open match per kind and anchor
CREATE UNIQUE INDEX matches_one_open_per_anchor
    ON signalling.matches (kind, anchor_subject_id) WHERE status = 'OPEN';

CREATE TABLE signalling.match_signals (
    match_id  uuid NOT NULL REFERENCES signalling.matches (match_id) ON DELETE CASCADE,
    signal_id uuid NOT NULL REFERENCES signalling.signals (signal_id) ON DELETE CASCADE,
    PRIMARY KEY (match_id, signal_id)
);
CREATE INDEX match_signals_by_signal ON signalling.match_signals (signal_id);
