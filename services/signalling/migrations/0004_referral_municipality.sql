-- Referrals are routed to a municipality: only triage officers working for it see and decide
-- them. Referrals made before routing existed have none and are visible to nobody until
-- retention removes them.
ALTER TABLE signalling.referrals
    ADD COLUMN municipality_code text CHECK (municipality_code ~ '^GM[0-9]{4}$');

CREATE INDEX referrals_by_municipality ON signalling.referrals (municipality_code, referral_id);
-- decided referrals are destroyed a retention period after their decision
CREATE INDEX referrals_decided ON signalling.referrals (decided_at) WHERE status = 'DECIDED';
