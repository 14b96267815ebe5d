-- The SQL that intake runs for one ResolveSubject call (store/pg.rs `resolve` plus
-- platform/audit.rs `append`), for pgbench. The keyed BSN lookup values cannot be computed
-- in SQL, so they come from zvv_bench.lookups (filled from intake.subjects by the bench
-- script); the audit record goes into a copy of the audit table (zvv_bench.audit_log) so that
-- the real chain stays intact.
\set n random(1, :subjects)
BEGIN;
SELECT subject_id AS sid FROM intake.subjects WHERE bsn_lookup = (SELECT bsn_lookup FROM zvv_bench.lookups WHERE n = :n) \gset
SELECT subject_id, bsn_ciphertext, bsn_key_id, given_name, family_name, birth_date, municipality_code, neighbourhood_code, date_of_death, created_at, updated_at FROM intake.subjects WHERE subject_id = :sid;
SELECT pg_advisory_xact_lock(hashtext('zvv.audit.zvv_bench'));
SELECT seq + 1 AS next_seq, encode(hash, 'hex') AS prev FROM zvv_bench.audit_log ORDER BY seq DESC LIMIT 1 \gset
INSERT INTO zvv_bench.audit_log (seq, occurred_at, action, object_ids, result, actor_sub, actor_org, actor_org_type, actor_roles, peer, legal_basis, trace_id, prev_hash, hash) VALUES (:next_seq, now(), 'zvv.intake.v1.SubjectService/ResolveSubject', ARRAY[:sid::uuid], 'OK', 'zvv-bench-dev', 'zvv-bench', 'SUITE', 'SERVICE', '127.0.0.1:40000', 'bench', '00000000000000000000000000000000', decode(:prev, 'hex'), sha256(decode(:prev, 'hex') || convert_to(:sid, 'UTF8')));
COMMIT;
