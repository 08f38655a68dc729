-- Acknowledging an alert is per audience. The alert's own state (acknowledged, resolved) is
-- the care team's; the patient's side and their caregivers acknowledge for themselves here,
-- so a caregiver's "seen it" never tells the clinic that someone is on it.
CREATE TABLE alert_acknowledgements (
    alert_id        uuid        NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    audience        text        NOT NULL CHECK (audience IN ('patient', 'caregiving', 'peer_support')),
    acknowledged_by uuid        REFERENCES users (id) ON DELETE SET NULL,
    acknowledged_at timestamptz NOT NULL DEFAULT now(),
    note            text,
    PRIMARY KEY (alert_id, audience)
);
