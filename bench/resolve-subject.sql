-- The SQL that intake runs for one ResolveSubject call of a known BSN (store/pg.rs: the subject
-- by its keyed lookup value in one query, then the audit entry: one INSERT, no lock), for
-- pgbench. The keyed lookup values cannot be computed in SQL, so they come from
-- zvv_bench.lookups (filled from intake.subjects by the bench script); the entry goes into a
-- copy of the audit table (zvv_bench.audit_entries) so that the real chain stays as the calls
-- left it. The sealer's work behind the calls is not part of this script: on the gRPC side it
-- runs as well, and counts against the service.
\set n random(1, :subjects)
BEGIN;
SELECT subject_id AS sid, bsn_ciphertext, bsn_key_id, bsn_aad, given_name, family_name, birth_date, municipality_code, neighbourhood_code, date_of_death, created_at, updated_at FROM intake.subjects WHERE bsn_lookup = (SELECT bsn_lookup FROM zvv_bench.lookups WHERE n = :n) \gset
INSERT INTO zvv_bench.audit_entries (occurred_at, action, object_ids, result, actor_sub, actor_org, actor_org_type, actor_roles, end_user_sub, end_user_org, end_user_org_type, end_user_roles, peer, legal_basis, trace_id) VALUES (now(), 'zvv.intake.v1.SubjectService/ResolveSubject', ARRAY[:sid::uuid, gen_random_uuid()], 'OK', 'zvv-bench-dev', 'zvv-bench', 'SUITE', 'SERVICE', '', '', '', '', '127.0.0.1:40000', 'AVG art. 6(1)(e); Wabb art. 10: pseudonymisation of the BSN for suite services', '4bf92f3577b34da6a3ce929d0e0e4736');
COMMIT;
