-- Chronicle's first schema: the device registry, one time-series table per measurement kind,
-- and the record of every refused reading. Runs on plain PostgreSQL 15+; TimescaleDB
-- hypertables are added afterwards by the storage crate when the extension is available
-- (see timescale.rs), so this file never names a TimescaleDB function.

CREATE TABLE patients (
    id           uuid        PRIMARY KEY,
    display_name text        NOT NULL,
    -- An IANA zone name: days and times of day in trends follow the patient's zone.
    time_zone    text        NOT NULL DEFAULT 'UTC',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id          text        PRIMARY KEY CHECK (id ~ '^[a-z0-9_-]{1,64}$'),
    patient_id  uuid        NOT NULL REFERENCES patients (id),
    kind        text        NOT NULL CHECK (kind IN ('cgm', 'meter', 'bp')),
    label       text,
    -- SHA-256 of the device secret. The secret is 190 random bits, so a fast hash is enough;
    -- the secret itself is shown once, at creation, and never stored.
    secret_hash bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX devices_patient_idx ON devices (patient_id);

-- The primary keys are the idempotency keys (device, kind, measured_at): a resent reading is a
-- duplicate, never a second row. They contain the time column, as TimescaleDB requires.
CREATE TABLE glucose_readings (
    device_id          text             NOT NULL REFERENCES devices (id),
    measured_at        timestamptz      NOT NULL,
    patient_id         uuid             NOT NULL REFERENCES patients (id),
    value_mg_dl        double precision NOT NULL CHECK (value_mg_dl > 0 AND value_mg_dl <= 1000),
    original_value     double precision,
    original_unit      text             NOT NULL CHECK (original_unit IN ('mg/dL', 'mmol/L')),
    source             text             NOT NULL CHECK (source IN ('cgm', 'meter', 'lab')),
    flag               text             CHECK (flag IN ('lo', 'hi')),
    utc_offset_minutes smallint         NOT NULL,
    device_reading_id  text,
    received_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, measured_at)
);
CREATE INDEX glucose_readings_patient_time_idx ON glucose_readings (patient_id, measured_at DESC);
CREATE INDEX glucose_readings_time_brin ON glucose_readings USING brin (measured_at);

CREATE TABLE blood_pressure_readings (
    device_id          text        NOT NULL REFERENCES devices (id),
    measured_at        timestamptz NOT NULL,
    patient_id         uuid        NOT NULL REFERENCES patients (id),
    systolic           smallint    NOT NULL CHECK (systolic BETWEEN 50 AND 300),
    diastolic          smallint    NOT NULL CHECK (diastolic BETWEEN 20 AND 200 AND diastolic < systolic),
    pulse              smallint    CHECK (pulse BETWEEN 20 AND 300),
    utc_offset_minutes smallint    NOT NULL,
    device_reading_id  text,
    received_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, measured_at)
);
CREATE INDEX blood_pressure_readings_patient_time_idx ON blood_pressure_readings (patient_id, measured_at DESC);
CREATE INDEX blood_pressure_readings_time_brin ON blood_pressure_readings USING brin (measured_at);

-- Every refused reading or message, with the reason sent back to the device and what it sent.
-- device_id is the id named in the topic, which may not exist in the registry.
CREATE TABLE rejected_readings (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at       timestamptz NOT NULL DEFAULT now(),
    device_id         text        NOT NULL,
    patient_id        uuid        REFERENCES patients (id),
    message_id        text,
    -- Position of the reading in its message; NULL when the whole message was refused.
    reading_index     integer,
    device_reading_id text,
    reason            text        NOT NULL,
    detail            text        NOT NULL,
    -- How many readings the refusal covers (a refused message may hold many).
    readings_covered  integer     NOT NULL DEFAULT 1,
    raw               text        NOT NULL
);
CREATE INDEX rejected_readings_device_time_idx ON rejected_readings (device_id, received_at DESC);
