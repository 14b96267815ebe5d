-- The identity registry. The BSN is never stored in clear: only as AEAD ciphertext (with the id
-- of the key that sealed it) and as a keyed HMAC used for lookup.
CREATE TABLE intake.subjects (
    subject_id         uuid        PRIMARY KEY,
    bsn_lookup         bytea       NOT NULL UNIQUE,
    bsn_ciphertext     bytea       NOT NULL,
    bsn_key_id         text        NOT NULL,
    given_name         text,
    family_name        text,
    birth_date         date,
    municipality_code  text CHECK (municipality_code ~ '^GM[0-9]{4}$'),
    neighbourhood_code text CHECK (neighbourhood_code ~ '^WK[0-9]{6}$'),
    date_of_death      date,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);

CREATE TABLE intake.relations (
    parent_subject_id uuid        NOT NULL REFERENCES intake.subjects (subject_id) ON DELETE CASCADE,
    child_subject_id  uuid        NOT NULL REFERENCES intake.subjects (subject_id) ON DELETE CASCADE,
    kind              text        NOT NULL CHECK (kind IN ('PARENT', 'GUARDIAN')),
    created_at        timestamptz NOT NULL,
    PRIMARY KEY (parent_subject_id, child_subject_id),
    CHECK (parent_subject_id <> child_subject_id)
);

CREATE INDEX relations_by_child ON intake.relations (child_subject_id);
