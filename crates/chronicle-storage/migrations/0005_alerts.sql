-- Alerts for the care team: the alerts themselves with their lifecycle, the historical events
-- late data showed, the append-only stream of alert events (its ids are the Server-Sent
-- Events ids), users' snoozes, and organizations' webhooks with their delivery log.
-- Everything references the patient with ON DELETE CASCADE, so erasing a patient erases
-- their alerts too.

CREATE TABLE alerts (
    id                   uuid        PRIMARY KEY,
    -- Orders alerts for cursors (newest first) without comparing uuids.
    seq                  bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    patient_id           uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    rule                 text        NOT NULL CHECK (rule IN ('glucose_very_low', 'glucose_low',
                             'glucose_predicted_low', 'glucose_very_high', 'glucose_rapid_fall',
                             'bp_crisis', 'bp_low', 'bp_stage2_trend', 'no_data')),
    category             text        NOT NULL CHECK (category IN ('glucose', 'blood_pressure')),
    severity             text        NOT NULL CHECK (severity IN ('info', 'warning', 'urgent')),
    -- 'alert': raised live, with a lifecycle. 'historical': what late data (a backlog) showed;
    -- recorded, never a live alarm, no status.
    kind                 text        NOT NULL CHECK (kind IN ('alert', 'historical')),
    status               text        CHECK (status IN ('open', 'acknowledged', 'resolved')),
    -- The device whose reading (or silence) triggered it; no foreign key, so the alert
    -- outlives a re-paired device.
    device_id            text,
    -- measured_at of the triggering reading (for no_data: when the silence passed the
    -- threshold), and of the newest reading at which the condition held.
    triggered_at         timestamptz NOT NULL,
    last_seen_at         timestamptz NOT NULL,
    -- Since when the condition has been clear; auto-resolution counts from here.
    cleared_since        timestamptz,
    trigger_count        integer     NOT NULL DEFAULT 1 CHECK (trigger_count > 0),
    -- What the triggering reading showed (chronicle_domain::alerts::rules::Evidence).
    evidence             jsonb       NOT NULL,
    opened_at            timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    acknowledged_by      uuid        REFERENCES users (id) ON DELETE SET NULL,
    acknowledged_at      timestamptz,
    acknowledgement_note text,
    resolved_by          uuid        REFERENCES users (id) ON DELETE SET NULL,
    resolved_at          timestamptz,
    resolution           text        CHECK (resolution IN ('manual', 'auto')),
    resolution_note      text,
    CHECK ((kind = 'alert') = (status IS NOT NULL)),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL AND resolution IS NOT NULL)),
    CHECK (triggered_at <= last_seen_at OR rule = 'no_data')
);
-- One active alert per patient, rule and category, whichever server evaluates: a second
-- insert fails instead of duplicating the alarm.
CREATE UNIQUE INDEX alerts_one_active_idx ON alerts (patient_id, rule, category)
    WHERE kind = 'alert' AND status IN ('open', 'acknowledged');
CREATE INDEX alerts_patient_rule_idx ON alerts (patient_id, rule, category, last_seen_at DESC);
CREATE INDEX alerts_patient_seq_idx ON alerts (patient_id, seq DESC);
CREATE INDEX alerts_active_idx ON alerts (patient_id) WHERE status IN ('open', 'acknowledged');

-- Every change of an alert that someone may need to hear about, in commit order: writers take
-- a transaction-level advisory lock before inserting, so ids become visible in increasing
-- order and a reader resuming "after id N" never misses one. The payload is the alert as it
-- was after the event.
CREATE TABLE alert_events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id   uuid        NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    patient_id uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    category   text        NOT NULL CHECK (category IN ('glucose', 'blood_pressure')),
    rule       text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('opened', 'retriggered', 'escalated',
                   'acknowledged', 'resolved', 'historical')),
    -- The user who acknowledged or resolved; NULL for the engine.
    actor_id   uuid        REFERENCES users (id) ON DELETE SET NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    payload    jsonb       NOT NULL
);
CREATE INDEX alert_events_patient_idx ON alert_events (patient_id, id);

-- A user's snooze of a patient's alarms (one rule, or '*' for all), until a time.
CREATE TABLE alert_snoozes (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    patient_id uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    rule       text        NOT NULL,
    until      timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, patient_id, rule)
);

-- An organization's webhook. The secret signs every delivery (HMAC-SHA256), so it is kept
-- as given; it is shown once, at creation.
CREATE TABLE webhooks (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url             text        NOT NULL CHECK (url ~ '^https?://'),
    secret          text        NOT NULL CHECK (length(secret) >= 16),
    created_by      uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz
);
CREATE INDEX webhooks_organization_idx ON webhooks (organization_id);

-- One alert event to one webhook. 'withheld': the patient's grant no longer allowed it when
-- its turn came; 'failed': every attempt failed.
CREATE TABLE webhook_deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        bigint      NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'delivered', 'failed', 'withheld')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- Every attempt of a delivery, with what the receiver answered.
CREATE TABLE webhook_attempts (
    delivery_id bigint      NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status_code integer,
    error       text,
    duration_ms integer     NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
