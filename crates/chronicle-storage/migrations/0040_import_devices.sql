-- The devices that hold a patient's imported data: one per patient, source (the export's
-- vendor, or the FHIR submissions) and kind (a sensor's readings, a meter's finger sticks).
-- Imported readings are keyed like any device's (device, kind, time), so importing the same
-- export again stores nothing twice. Such a device has no credential anyone knows: only the
-- import API writes for it, and the ingest accepts from it readings older than its live
-- limit (an export holds years). Erasing the patient's devices erases these rows with them.
CREATE TABLE import_devices (
    device_id  text NOT NULL PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    patient_id uuid NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    source     text NOT NULL CHECK (source IN ('dexcom_clarity', 'libreview', 'nightscout', 'fhir')),
    kind       text NOT NULL CHECK (kind IN ('cgm', 'meter')),
    UNIQUE (patient_id, source, kind)
);
