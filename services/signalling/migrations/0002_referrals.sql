-- Referrals about young children (e.g. police ProKid 12-) awaiting human triage. The level is
-- the source instrument's own colour, kept as provenance; nothing here computes a risk.
CREATE TABLE signalling.referrals (
    referral_id         uuid        PRIMARY KEY,
    subject_id          uuid        NOT NULL,
    organisation        text        NOT NULL,
    source_instrument   text        NOT NULL,
    instrument_version  text        NOT NULL,
    level               text        NOT NULL CHECK (level IN ('WHITE', 'YELLOW', 'ORANGE', 'RED')),
    observed_on         date        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('AWAITING_TRIAGE', 'DECIDED')),
    decide_by           date,
    decision            text        CHECK (decision IN ('OPEN_FAMILY_APPROACH', 'FORWARD_TO_VEILIG_THUIS', 'NO_ACTION')),
    rationale           text,
    decided_by          text,
    decided_at          timestamptz,
    overdue_reported_at timestamptz,
    created_at          timestamptz NOT NULL,
    CHECK ((status = 'DECIDED') = (decision IS NOT NULL))
);

CREATE INDEX referrals_awaiting ON signalling.referrals (decide_by) WHERE status = 'AWAITING_TRIAGE';
