-- The SQL that signalling runs for one RegisterSignal on a new subject (store/pg.rs `register`
-- with no match to make, plus platform/audit.rs `append`), for pgbench. Each transaction
-- registers a signal on a subject of its own. The audit record goes into a copy of the audit
-- table (zvv_bench.audit_log) so that the real chain stays intact. Not included: the two
-- intake calls (GetSubject, ListFamily) the gRPC path makes first.
BEGIN;
SELECT gen_random_uuid() AS sid, gen_random_uuid() AS sig, gen_random_uuid() AS rid \gset
SELECT pg_advisory_xact_lock(hashtext('zvv.signalling.subject.' || :sid::text));
SELECT pg_advisory_xact_lock(hashtext('zvv.idem.signalling.zvv-bench/RegisterSignal.' || :rid::text));
SELECT fingerprint, response FROM signalling.idempotency WHERE scope = 'zvv-bench/RegisterSignal' AND request_id = :rid::text;
SELECT signal_id FROM signalling.signals WHERE subject_id = :sid::uuid AND organisation = 'zvv-bench' AND status = 'ACTIVE';
INSERT INTO signalling.signals (signal_id, subject_id, organisation, organisation_type, contact_name, contact_phone, contact_email, registered_on, duration_months, expires_on, status, birth_date, municipality_code, neighbourhood_code, created_at) VALUES (:sig::uuid, :sid::uuid, 'zvv-bench', 'SCHOOL', 'Bench', '+31 20 555 0100', 'bench@example.nl', current_date, 12, current_date + 365, 'ACTIVE', '2015-06-01', 'GM0363', 'WK036305', now());
INSERT INTO signalling.idempotency (scope, request_id, fingerprint, response, created_at) VALUES ('zvv-bench/RegisterSignal', :rid::text, sha256(convert_to(:rid::text, 'UTF8')), uuid_send(:sig::uuid), now());
INSERT INTO signalling.outbox (event_id, event_type, occurred_at, ids, codes, trace_id) VALUES (gen_random_uuid(), 'signalling.signal.registered', now(), jsonb_build_object('signal_id', :sig::text, 'subject_id', :sid::text), '{"organisation_type": "SCHOOL"}', '');
SELECT signal_id, organisation FROM signalling.signals WHERE subject_id = :sid::uuid AND status = 'ACTIVE' ORDER BY created_at, signal_id;
SELECT match_id FROM signalling.matches WHERE kind = 'CLIENT' AND anchor_subject_id = :sid::uuid AND status = 'OPEN';
SELECT ms.match_id FROM signalling.match_signals ms JOIN signalling.matches m ON m.match_id = ms.match_id WHERE ms.signal_id = :sig::uuid AND m.status = 'OPEN';
SELECT pg_advisory_xact_lock(hashtext('zvv.audit.zvv_bench'));
SELECT seq + 1 AS next_seq, encode(hash, 'hex') AS prev FROM zvv_bench.audit_log ORDER BY seq DESC LIMIT 1 \gset
INSERT INTO zvv_bench.audit_log (seq, occurred_at, action, object_ids, result, actor_sub, actor_org, actor_org_type, actor_roles, peer, legal_basis, trace_id, prev_hash, hash) VALUES (:next_seq, now(), 'zvv.signalling.v1.SignalService/RegisterSignal', ARRAY[:sig::uuid, :sid::uuid], 'OK', 'zvv-bench-user', 'zvv-bench', 'SCHOOL', 'PROFESSIONAL', '127.0.0.1:40000', 'bench', '00000000000000000000000000000000', decode(:prev, 'hex'), sha256(decode(:prev, 'hex') || convert_to(:sig::text, 'UTF8')));
COMMIT;
