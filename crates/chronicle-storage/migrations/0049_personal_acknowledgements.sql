-- Caregivers and peer supporters acknowledge an alert each for themselves: one row per grant
-- (a grant to one user is that person), so one caregiver's "seen it" never tells another
-- caregiver, the patient or the care team that someone is on it. The patient and their
-- guardians still share one acknowledgement (the family's hand-off, `grant_id` absent), and
-- the care team's is still the alert's own state.
ALTER TABLE alert_acknowledgements DROP CONSTRAINT alert_acknowledgements_pkey;
ALTER TABLE alert_acknowledgements
    ADD COLUMN grant_id uuid REFERENCES grants (id) ON DELETE CASCADE;

-- An acknowledgement shared by every caregiver (or peer supporter) before this change spoke
-- for each of them: it becomes each one's own, still naming who made it.
INSERT INTO alert_acknowledgements (alert_id, audience, grant_id, acknowledged_by, acknowledged_at, note)
SELECT k.alert_id, k.audience, g.id, k.acknowledged_by, k.acknowledged_at, k.note
FROM alert_acknowledgements k
JOIN alerts a ON a.id = k.alert_id
JOIN grants g ON g.patient_id = a.patient_id AND g.purpose = k.audience
             AND a.category = ANY (g.categories) AND 'receive_alerts' = ANY (g.access)
WHERE k.audience IN ('caregiving', 'peer_support');
DELETE FROM alert_acknowledgements
WHERE audience IN ('caregiving', 'peer_support') AND grant_id IS NULL;

ALTER TABLE alert_acknowledgements
    ADD CONSTRAINT alert_acknowledgements_holder
        CHECK ((audience = 'patient') = (grant_id IS NULL)),
    -- The key: the family's one row per alert, or one per grant. No primary key, since the
    -- family's row has no grant; NULLS NOT DISTINCT makes that row unique all the same.
    ADD CONSTRAINT alert_acknowledgements_key
        UNIQUE NULLS NOT DISTINCT (alert_id, audience, grant_id);
