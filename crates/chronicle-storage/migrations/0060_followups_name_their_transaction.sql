-- The transaction that queued each follow-up row (the one that stored its readings). The alert
-- engine notes which transactions had finished when an evaluation read a patient's readings:
-- work queued by one of those, for readings that evaluation covered, was done by it (it read
-- ahead of the queue) and is not done again.
ALTER TABLE ingest_followup_batches
    ADD COLUMN written_by xid8 NOT NULL DEFAULT pg_current_xact_id();
