-- Work the ingest leaves for what follows a commit (alert evaluation, trend rollups): one row
-- per consumer, patient and kind of every committed batch that stored new readings. It is
-- written by the same statement as the readings, so a crash between the commit and the
-- follow-up work loses nothing: the work is still queued when a server starts again, and any
-- server of a shared subscription group may take it (SELECT … FOR UPDATE SKIP LOCKED).
-- patient_id has no foreign key: erasing a patient deletes their rows here too.
CREATE TABLE ingest_followups (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer          text        NOT NULL,
    patient_id        uuid        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('glucose', 'blood_pressure')),
    -- The range of measured_at of the readings this batch newly stored.
    first_measured_at timestamptz NOT NULL,
    last_measured_at  timestamptz NOT NULL,
    readings          integer     NOT NULL CHECK (readings > 0),
    enqueued_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (first_measured_at <= last_measured_at)
);
CREATE INDEX ingest_followups_consumer_idx ON ingest_followups (consumer, id);
