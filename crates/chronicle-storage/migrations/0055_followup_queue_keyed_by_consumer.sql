-- The queue's primary key leads with the consumer. Keyed by id alone, it offered the planner a
-- second way to find a consumer's oldest rows (walk all ids, skip the other consumer's), and
-- the planner took it: when the rollups fell behind after an outage, every claim of the alert
-- engine and every look at its oldest row read past the tens of thousands of rows the rollups
-- had queued first (140 ms a claim instead of 1). With (consumer, id) there is one index that
-- yields a consumer's rows in id order, and it seeks to that consumer.
ALTER TABLE ingest_followup_batches DROP CONSTRAINT ingest_followup_batches_pkey;
ALTER TABLE ingest_followup_batches ADD PRIMARY KEY (consumer, id);
DROP INDEX ingest_followup_batches_consumer_idx;
