-- For comparison only: the ResolveSubject SQL of resolve-subject.sql without the hash chain
-- (no advisory lock, no read of the previous record; the record gets its number from a
-- sequence). The difference between the two runs is what chaining the audit log costs.
\set n random(1, :subjects)
BEGIN;
SELECT subject_id AS sid FROM intake.subjects WHERE bsn_lookup = (SELECT bsn_lookup FROM zvv_bench.lookups WHERE n = :n) \gset
SELECT subject_id, bsn_ciphertext, bsn_key_id, given_name, family_name, birth_date, municipality_code, neighbourhood_code, date_of_death, created_at, updated_at FROM intake.subjects WHERE subject_id = :sid;
INSERT INTO zvv_bench.audit_unchained (seq, occurred_at, action, object_ids, result, actor_sub, actor_org, actor_org_type, actor_roles, peer, legal_basis, trace_id, prev_hash, hash) VALUES (nextval('zvv_bench.audit_seq'), now(), 'zvv.intake.v1.SubjectService/ResolveSubject', ARRAY[:sid::uuid], 'OK', 'zvv-bench-dev', 'zvv-bench', 'SUITE', 'SERVICE', '127.0.0.1:40000', 'bench', '00000000000000000000000000000000', '\x00', sha256(convert_to(:sid, 'UTF8')));
COMMIT;
