-- Trend rollups: one row per patient and local day (in the patient's zone) holding the day's
-- additive totals (chronicle_domain::trends::GlucoseTotals / BpTotals: counts, microseconds
-- and integer sums, so adding days in any order is exact), the running totals of every day up
-- to it (a window is then the difference of two rows), and, for glucose, the day's readings in
-- compact binary form for the AGP and episodes. The "trends" follow-up consumer keeps them
-- up to date from the raw readings; readers compute any day the queue still lists (or a
-- pending rebuild covers) from the raw readings with the same function, so answers are exact
-- even while the worker lags. Plain tables: the same on PostgreSQL and TimescaleDB.

CREATE TABLE glucose_days (
    patient_id      uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    day             date        NOT NULL,
    -- The zone the day was cut in (a zone change rebuilds every row).
    time_zone       text        NOT NULL,
    readings        integer     NOT NULL CHECK (readings >= 0),
    cgm_readings    integer     NOT NULL CHECK (cgm_readings >= 0),
    meter_readings  integer     NOT NULL CHECK (meter_readings >= 0),
    lab_readings    integer     NOT NULL CHECK (lab_readings >= 0),
    -- 5-minute slots holding a CGM reading (CGM active time).
    cgm_slots       integer     NOT NULL CHECK (cgm_slots >= 0),
    -- Σ value and Σ value², values in thousandths of mg/dL.
    sum_milli       bigint      NOT NULL,
    sum_sq_milli    bigint      NOT NULL,
    -- Time in each consensus band within the day, microseconds.
    very_low_us     bigint      NOT NULL,
    low_us          bigint      NOT NULL,
    in_range_us     bigint      NOT NULL,
    high_us         bigint      NOT NULL,
    very_high_us    bigint      NOT NULL,
    -- Time below, within and above the patient's target range (a targets change rebuilds).
    below_target_us bigint      NOT NULL,
    in_target_us    bigint      NOT NULL,
    above_target_us bigint      NOT NULL,
    -- The day's latest reading.
    latest_at       timestamptz,
    latest_mg_dl    double precision,
    -- chronicle_domain::trends::GlucoseRunning: the totals of this day and every earlier one,
    -- and the latest reading so far. Rewritten with the days, in the same transaction.
    running         bytea       NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, day)
);

-- Kept apart so the panel's scans over the totals stay small.
CREATE TABLE glucose_day_samples (
    patient_id uuid  NOT NULL,
    day        date  NOT NULL,
    -- chronicle_domain::trends::samples encoding.
    samples    bytea NOT NULL,
    PRIMARY KEY (patient_id, day),
    FOREIGN KEY (patient_id, day) REFERENCES glucose_days (patient_id, day) ON DELETE CASCADE
);

CREATE TABLE blood_pressure_days (
    patient_id            uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    day                   date        NOT NULL,
    time_zone             text        NOT NULL,
    readings              integer     NOT NULL CHECK (readings >= 0),
    sum_systolic          bigint      NOT NULL,
    sum_sq_systolic       bigint      NOT NULL,
    sum_diastolic         bigint      NOT NULL,
    sum_sq_diastolic      bigint      NOT NULL,
    morning_readings      integer     NOT NULL,
    morning_sum_systolic  bigint      NOT NULL,
    morning_sum_diastolic bigint      NOT NULL,
    evening_readings      integer     NOT NULL,
    evening_sum_systolic  bigint      NOT NULL,
    evening_sum_diastolic bigint      NOT NULL,
    at_or_above_130_80    integer     NOT NULL,
    at_or_above_135_85    integer     NOT NULL,
    pulse_readings        integer     NOT NULL,
    sum_pulse             bigint      NOT NULL,
    sum_sq_pulse          bigint      NOT NULL,
    latest_at             timestamptz,
    latest_systolic       smallint,
    latest_diastolic      smallint,
    -- chronicle_domain::trends::BpRunning, as for glucose.
    running               bytea       NOT NULL,
    computed_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, day)
);

-- Patients whose rollups must be recomputed from scratch: their zone changed (days are cut
-- differently), their glucose targets changed (time in target range), or they predate the
-- rollups. While a patient is listed, readers compute every day from the raw readings.
CREATE TABLE trend_rebuilds (
    patient_id   uuid        PRIMARY KEY REFERENCES patients (id) ON DELETE CASCADE,
    reason       text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION request_trend_rebuild() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    patient uuid;
BEGIN
    IF TG_TABLE_NAME = 'patients' THEN
        patient := NEW.id;
    ELSE
        patient := NEW.patient_id;
    END IF;
    INSERT INTO trend_rebuilds (patient_id, reason) VALUES (patient, TG_ARGV[0])
    ON CONFLICT (patient_id) DO UPDATE SET reason = excluded.reason, requested_at = now();
    RETURN NULL;
END
$$;

CREATE TRIGGER patients_zone_change_rebuilds_trends
    AFTER UPDATE OF time_zone ON patients
    FOR EACH ROW WHEN (OLD.time_zone IS DISTINCT FROM NEW.time_zone)
    EXECUTE FUNCTION request_trend_rebuild('time_zone');

-- Deletions come only with the patient's erasure, which takes the rollups along.
CREATE TRIGGER patient_targets_set_rebuilds_trends
    AFTER INSERT ON patient_targets
    FOR EACH ROW EXECUTE FUNCTION request_trend_rebuild('glucose_targets');
CREATE TRIGGER patient_targets_change_rebuilds_trends
    AFTER UPDATE OF glucose ON patient_targets
    FOR EACH ROW WHEN (OLD.glucose IS DISTINCT FROM NEW.glucose)
    EXECUTE FUNCTION request_trend_rebuild('glucose_targets');

-- Readings stored before this migration have no rollups yet.
INSERT INTO trend_rebuilds (patient_id, reason)
SELECT DISTINCT patient_id, 'initial' FROM glucose_readings
UNION
SELECT DISTINCT patient_id, 'initial' FROM blood_pressure_readings;
