-- 0052 vacuums the follow-up queue after a fixed 20,000 changes, which keeps a small queue
-- clean. After an outage the queue holds millions of rows (every reading of the backlog, once
-- per consumer) and takes tens of thousands of changes a second: a vacuum then came due at
-- every autovacuum visit, each reading the whole table and its four indexes, and it ran
-- beside the ingest for the whole drain. Also in proportion to the table's size now: a small
-- queue is vacuumed as before, a large one once 5 % of it has changed.
ALTER TABLE ingest_followups SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_insert_scale_factor = 0.05
);
