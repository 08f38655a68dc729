-- Bytes per glucose reading on the current schema: run on an empty, migrated database
-- (`chronicle --database-url URL migrate`), e.g. `psql URL -f scripts/storage-per-reading.sql`.
-- 1,000 CGMs of one patient, 1,000 readings each at a 5-minute cadence, in arrival order.
INSERT INTO patients (id, display_name) VALUES ('00000000-0000-0000-0000-000000000001', 'Size');
INSERT INTO devices (id, patient_id, kind, secret_hash)
SELECT 'dev_' || lpad(i::text, 12, '0'), '00000000-0000-0000-0000-000000000001', 'cgm', sha256('x')
FROM generate_series(1, 1000) i;
INSERT INTO glucose_samples (device_key, utc_offset_minutes, codes, measured_at,
    value_milli_mg_dl, received_after_s, original_value, device_reading_id)
SELECT d.key, 60, 0, timestamptz '2026-01-01' + make_interval(mins => 5 * i),
       80000 + (i % 200) * 1000, 2, NULL, NULL
FROM generate_series(1, 1000) i, devices d ORDER BY i, d.key;
VACUUM ANALYZE glucose_samples;
SELECT count(*) AS readings,
       pg_relation_size('glucose_samples') AS heap_bytes,
       pg_indexes_size('glucose_samples') AS index_bytes,
       round(pg_total_relation_size('glucose_samples')::numeric / count(*), 1) AS bytes_per_reading
FROM glucose_samples;
