-- Research grants de-identify with secrets of their own, drawn when the grant is made: the
-- shift that moves a study's times (never a whole number of days) and how much beyond the
-- server's hold-back the study's most recent data is withheld. Derived values (from the grant
-- and patient ids) could be recomputed by anyone who learns those ids; drawn ones cannot.
ALTER TABLE grants
    ADD COLUMN research_shift_seconds bigint,
    ADD COLUMN research_holdback_fraction double precision;

UPDATE grants
SET research_shift_seconds = (30 + floor(random() * 365)) * 86400 + 1800 + floor(random() * 82800),
    research_holdback_fraction = random()
WHERE purpose = 'research';

ALTER TABLE grants ADD CONSTRAINT research_grants_have_their_secrets CHECK (
    (purpose = 'research') = (research_shift_seconds IS NOT NULL AND research_holdback_fraction IS NOT NULL)
);
