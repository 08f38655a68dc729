-- The follow-up queue holds one row per consumer and committed batch (at most 250 items each)
-- instead of one per consumer, patient and kind. In a fleet nearly every reading belongs to a
-- different patient, so the old queue wrote two rows (one per consumer) with four index entries
-- each for every reading, in the statement that stores it, and deleted them again: more work
-- than the reading itself. A batch's items now travel as parallel arrays, one element per
-- patient and kind, and a claim takes whole rows.
--
-- A claim no longer takes all of a patient's queued items at once; two claims (or two servers)
-- may hold items of the same patient. Both consumers take their patients' locks for the work
-- itself (the alert evaluation's advisory locks, the rollups' row locks) and read the stored
-- data, so the work is serialized and idempotent as before.
CREATE TABLE ingest_followup_batches (
    id                bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer          text          NOT NULL,
    enqueued_at       timestamptz   NOT NULL DEFAULT now(),
    -- The latest measured_at of the row's items: claims take the freshest rows first for half
    -- their share, so a reading measured now is worked on at once even behind a backlog.
    freshest_measured_at timestamptz NOT NULL,
    items             integer       NOT NULL CHECK (items > 0),
    -- One element per item: the patient, the kind, the range of measured_at of the readings
    -- the batch newly stored, and how many.
    patient_ids       uuid[]        NOT NULL,
    kinds             text[]        NOT NULL,
    first_measured_at timestamptz[] NOT NULL,
    last_measured_at  timestamptz[] NOT NULL,
    readings          integer[]     NOT NULL,
    CHECK (cardinality(patient_ids) = items AND cardinality(kinds) = items
        AND cardinality(first_measured_at) = items AND cardinality(last_measured_at) = items
        AND cardinality(readings) = items),
    CHECK (kinds <@ ARRAY['glucose', 'blood_pressure'])
);
CREATE INDEX ingest_followup_batches_consumer_idx ON ingest_followup_batches (consumer, id);
CREATE INDEX ingest_followup_batches_freshest_idx
    ON ingest_followup_batches (consumer, freshest_measured_at DESC, id DESC);

-- A work queue: rows come and go all the time, so it is vacuumed after a fixed number of
-- changes or 5 % of its size, at full speed (0052 and 0053 say why); its TOAST table (a batch
-- of many patients is stored out of line) likewise.
ALTER TABLE ingest_followup_batches SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_insert_threshold = 2000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    toast.autovacuum_vacuum_scale_factor = 0.05,
    toast.autovacuum_vacuum_threshold = 2000,
    toast.autovacuum_vacuum_insert_scale_factor = 0.05,
    toast.autovacuum_vacuum_insert_threshold = 2000,
    toast.autovacuum_vacuum_cost_delay = 0
);

-- Work still queued moves over, each old row as a row of one item.
INSERT INTO ingest_followup_batches (consumer, enqueued_at, freshest_measured_at, items,
    patient_ids, kinds, first_measured_at, last_measured_at, readings)
SELECT consumer, enqueued_at, last_measured_at, 1, ARRAY[patient_id], ARRAY[kind],
    ARRAY[first_measured_at], ARRAY[last_measured_at], ARRAY[readings]
FROM ingest_followups ORDER BY id;

DROP TABLE ingest_followups;
