-- Treatments: what was done around the readings (insulin, carbohydrates, exercise, notes,
-- sensor starts and changes, calibrations). They arrive like readings (the same messages, the
-- same pipeline) and are keyed like them, by device, kind and time, so a resent treatment is
-- a duplicate while a bolus and a meal entered at the same instant are two records. Their
-- own sharing category, `treatments`, decides who reads them. Plain SQL: a narrow table read
-- through a view with the device's id and patient, as the reading tables are.
CREATE TABLE treatment_samples (
    device_key         integer          NOT NULL,
    utc_offset_minutes smallint         NOT NULL,
    -- How long it lasted (a pump's basal, an extended bolus, exercise), in minutes.
    duration_minutes   smallint         CHECK (duration_minutes BETWEEN 1 AND 1440),
    received_after_s   integer          NOT NULL,
    measured_at        timestamptz      NOT NULL,
    kind               text             NOT NULL CHECK (kind IN ('bolus_insulin', 'basal_insulin',
                                            'carbohydrates', 'exercise', 'note', 'sensor_start',
                                            'sensor_change', 'calibration')),
    -- Insulin in international units, carbohydrates in grams, a calibration in mg/dL.
    amount             double precision CHECK (amount > 0),
    note               text,
    device_reading_id  text,
    PRIMARY KEY (device_key, kind, measured_at)
);
CREATE INDEX treatment_samples_time_brin ON treatment_samples USING brin (measured_at);

CREATE VIEW treatment_records AS
SELECT d.id AS device_id, s.measured_at, d.patient_id, s.kind, s.amount, s.duration_minutes,
       s.note, s.utc_offset_minutes, s.device_reading_id,
       -- The page order's tie-break: a device may hold several kinds at one instant.
       d.id || '.' || s.kind AS page_tiebreak,
       s.measured_at + make_interval(secs => s.received_after_s) AS received_at
FROM treatment_samples s JOIN devices d ON d.key = s.device_key;

ALTER TABLE grants DROP CONSTRAINT grants_categories_check;
ALTER TABLE grants ADD CONSTRAINT grants_categories_check CHECK (
    cardinality(categories) > 0
    AND categories <@ ARRAY['glucose', 'blood_pressure', 'treatments', 'device_info']
);
