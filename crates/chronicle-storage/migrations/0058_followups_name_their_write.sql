-- Which process's write queued each follow-up row, and the write's number there. A process's
-- alert engine holds the readings its own ingest stored (handed over in memory) and reads back
-- from the database only what it may lack: readings stored by another process, or by a write
-- whose readings it was not handed. NULL: a writer that hands nothing over.
ALTER TABLE ingest_followup_batches ADD COLUMN writer uuid, ADD COLUMN write_seq bigint;

-- Whether any other writer's work waits is asked before each evaluation: a look at the ends
-- of this index, not a scan of the queue (which holds tens of thousands of rows after an
-- outage).
CREATE INDEX ingest_followup_batches_writer_idx ON ingest_followup_batches (consumer, writer);
