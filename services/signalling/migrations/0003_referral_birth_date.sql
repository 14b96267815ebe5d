-- The birth date (when intake knows it) is kept with a referral so that retention can destroy
-- it with everything else about the subject at 23.
ALTER TABLE signalling.referrals ADD COLUMN birth_date date;
