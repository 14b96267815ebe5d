-- For comparison only: the ResolveSubject SQL of resolve-subject.sql without any audit entry:
-- the limit the audited call can approach.
\set n random(1, :subjects)
BEGIN;
SELECT subject_id AS sid, bsn_ciphertext, bsn_key_id, bsn_aad, given_name, family_name, birth_date, municipality_code, neighbourhood_code, date_of_death, created_at, updated_at FROM intake.subjects WHERE bsn_lookup = (SELECT bsn_lookup FROM zvv_bench.lookups WHERE n = :n) \gset
COMMIT;
