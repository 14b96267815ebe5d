-- The BSN ciphertext is bound to its row: its associated data is 'zvv.bsn.v2' followed by the
-- subject id (bsn_aad = 2), so a ciphertext copied onto another subject does not decrypt. Rows
-- sealed before this (associated data 'zvv.bsn.v1', bound to nothing: bsn_aad = 1) exist only in
-- development databases; they are not read until re-encryption (`zvv-intake reencrypt`, `zvv keys
-- reencrypt`) has sealed them again bound. New rows must name the form: there is no default.
ALTER TABLE intake.subjects
    ADD COLUMN bsn_aad smallint NOT NULL DEFAULT 1 CHECK (bsn_aad IN (1, 2));
ALTER TABLE intake.subjects ALTER COLUMN bsn_aad DROP DEFAULT;

-- re-encryption and the key check look for the subjects sealed with a given key
CREATE INDEX subjects_by_bsn_key ON intake.subjects (bsn_key_id, bsn_aad);
