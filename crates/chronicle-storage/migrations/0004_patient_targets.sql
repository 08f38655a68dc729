-- Each patient's glucose targets (and, with the alerts work, alert thresholds), set by the
-- care team. A patient without a row has the standard preset. Every change is also appended
-- to patient_target_changes, so who changed what and when stays on record.
CREATE TABLE patient_targets (
    patient_id       uuid        PRIMARY KEY REFERENCES patients (id) ON DELETE CASCADE,
    preset           text        NOT NULL CHECK (preset IN ('standard', 'older_high_risk', 'pregnancy', 'custom')),
    -- chronicle_domain::targets::GlucoseTargets as JSON.
    glucose          jsonb       NOT NULL,
    -- Alert thresholds as JSON; NULL means the defaults.
    alert_thresholds jsonb,
    changed_by       uuid        REFERENCES users (id) ON DELETE SET NULL,
    changed_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE patient_target_changes (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id       uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    preset           text        NOT NULL,
    glucose          jsonb       NOT NULL,
    alert_thresholds jsonb,
    changed_by       uuid        REFERENCES users (id) ON DELETE SET NULL,
    changed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patient_target_changes_patient_idx ON patient_target_changes (patient_id, changed_at DESC);
