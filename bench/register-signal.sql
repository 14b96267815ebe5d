-- All the SQL that one RegisterSignal on a subject with no match to make causes, in both
-- services, as one script for pgbench: intake's GetSubjectContext transaction (the subject by id,
-- its families in one query, its audit entry) and signalling's transaction (the idempotency key,
-- the subject and parent locks in one statement, the duplicate check, the signal and its event,
-- the match reads, the first response, the audit entry). The gRPC path runs the intake
-- transaction while signalling's is open; here they run one after the other. Audit entries go
-- into copies of the audit tables (zvv_bench.*) so that the real chains stay as the calls left
-- them; the sealers' work behind the calls runs on the gRPC side and counts against the suite.
\set n random(1, :subjects)
BEGIN;
SELECT subject_id AS sid FROM zvv_bench.subjects WHERE n = :n \gset
SELECT subject_id, bsn_ciphertext, bsn_key_id, bsn_aad, given_name, family_name, birth_date, municipality_code, neighbourhood_code, date_of_death, created_at, updated_at FROM intake.subjects WHERE subject_id = :sid::uuid;
SELECT r.parent_subject_id, min(p.kind), array_agg(r.child_subject_id ORDER BY r.child_subject_id) FROM intake.relations p JOIN intake.relations r ON r.parent_subject_id = p.parent_subject_id WHERE p.child_subject_id = :sid::uuid GROUP BY r.parent_subject_id ORDER BY r.parent_subject_id;
INSERT INTO zvv_bench.intake_audit_entries (occurred_at, action, object_ids, result, actor_sub, actor_org, actor_org_type, actor_roles, end_user_sub, end_user_org, end_user_org_type, end_user_roles, peer, legal_basis, trace_id) VALUES (now(), 'zvv.intake.v1.SubjectService/GetSubjectContext', ARRAY[:sid::uuid], 'OK', 'signalling', 'zvv-signalling', 'SUITE', 'SERVICE', 'zvv-bench-dev', 'zvv-bench', 'SCHOOL', 'PROFESSIONAL', '127.0.0.1:40000', 'AVG art. 6(1)(e); Jeugdwet art. 7.4.0: assessing the family situation', '4bf92f3577b34da6a3ce929d0e0e4736');
COMMIT;
BEGIN;
SELECT gen_random_uuid() AS subj, gen_random_uuid() AS sig, gen_random_uuid() AS rid \gset
SELECT pg_advisory_xact_lock(hashtext('zvv.idem.signalling.zvv-bench/RegisterSignal.' || :rid));
SELECT fingerprint, response FROM signalling.idempotency WHERE scope = 'zvv-bench/RegisterSignal' AND request_id = :rid;
SELECT pg_advisory_xact_lock(hashtext('zvv.signalling.subject.' || s.id::text)) FROM unnest(ARRAY[:subj::uuid]) AS s(id);
SELECT signal_id FROM signalling.signals WHERE subject_id = :subj::uuid AND organisation = 'zvv-bench' AND status = 'ACTIVE';
INSERT INTO signalling.signals (signal_id, subject_id, organisation, organisation_type, contact_name, contact_phone, contact_email, registered_on, duration_months, expires_on, status, birth_date, municipality_code, neighbourhood_code, created_at) VALUES (:sig::uuid, :subj::uuid, 'zvv-bench', 'SCHOOL', 'Bench', '+31 20 555 0100', 'bench@example.nl', current_date, 12, current_date + 365, 'ACTIVE', '2015-06-01', 'GM0363', 'WK036305', now());
INSERT INTO signalling.outbox (event_id, event_type, occurred_at, ids, codes, trace_id) VALUES (gen_random_uuid(), 'signalling.signal.registered', now(), jsonb_build_object('signal_id', :sig::text, 'subject_id', :subj::text), '{"organisation_type": "SCHOOL"}', '4bf92f3577b34da6a3ce929d0e0e4736');
SELECT signal_id, subject_id, organisation FROM signalling.signals WHERE subject_id = ANY(ARRAY[:subj::uuid]) AND status = 'ACTIVE' ORDER BY created_at, signal_id;
SELECT m.match_id, m.kind, m.anchor_subject_id, coalesce(array_agg(ms.signal_id) FILTER (WHERE ms.signal_id IS NOT NULL), '{}') FROM signalling.matches m LEFT JOIN signalling.match_signals ms ON ms.match_id = m.match_id WHERE m.status = 'OPEN' AND m.anchor_subject_id = ANY(ARRAY[:subj::uuid]) GROUP BY m.match_id;
INSERT INTO signalling.idempotency (scope, request_id, fingerprint, response, created_at) VALUES ('zvv-bench/RegisterSignal', :rid, sha256(convert_to(:rid, 'UTF8')), convert_to(json_build_object('signal', json_build_object('id', :sig::text, 'subject_id', :subj::text, 'organisation', 'zvv-bench', 'organisation_type', 'SCHOOL', 'contact', json_build_object('name', 'Bench', 'phone', '+31 20 555 0100', 'email', 'bench@example.nl'), 'registered_on', current_date, 'duration_months', 12, 'expires_on', current_date + 365, 'status', 'Active', 'close_reason', null, 'closed_at', null, 'parents_informed_on', null, 'child_informed_on', null, 'postponement_reason', null, 'birth_date', '2015-06-01', 'municipality_code', 'GM0363', 'neighbourhood_code', 'WK036305', 'created_at', now()), 'matches', json_build_array())::text, 'UTF8'), now());
INSERT INTO zvv_bench.signalling_audit_entries (occurred_at, action, object_ids, result, actor_sub, actor_org, actor_org_type, actor_roles, end_user_sub, end_user_org, end_user_org_type, end_user_roles, peer, legal_basis, trace_id) VALUES (now(), 'zvv.signalling.v1.SignalService/RegisterSignal', ARRAY[:sig::uuid, :subj::uuid], 'OK', 'zvv-bench-dev', 'zvv-bench', 'SCHOOL', 'PROFESSIONAL', '', '', '', '', '127.0.0.1:40000', 'Jeugdwet art. 7.1.2.1-7.1.4.3: registration in the signalling index', '4bf92f3577b34da6a3ce929d0e0e4736');
COMMIT;
