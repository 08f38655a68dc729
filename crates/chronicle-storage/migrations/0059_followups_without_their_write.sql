-- The hand-over of stored readings to the alert engine in memory (0058) measured no gain and
-- was taken out (docs/benchmarks.md, 2026-12-07 10:20): its columns and index go again.
DROP INDEX IF EXISTS ingest_followup_batches_writer_idx;
ALTER TABLE ingest_followup_batches DROP COLUMN IF EXISTS writer, DROP COLUMN IF EXISTS write_seq;
