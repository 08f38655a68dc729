-- The follow-up queue is a work queue: every batch inserts rows and every claim deletes them
-- (thousands a second at fleet scale), at both ends of its indexes (the oldest ids, the
-- freshest readings). Deleted rows stay in those indexes until a vacuum, and a claim walks
-- past every one of them: with PostgreSQL's default trigger (a fifth of the table dead), claims
-- that take milliseconds on a vacuumed queue took 1-10 s at times in the million-patient fleet
-- benchmark. Vacuum it after a fixed number of changes, at full speed (the table stays small).
-- Autovacuum visits a table at most once per `autovacuum_naptime` (1 min by default; the
-- private PostgreSQL uses 10 s): set it lower on a busy external server too.
ALTER TABLE ingest_followups SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 20000,
    autovacuum_vacuum_cost_delay = 0
);
