-- Bytes per glucose reading after TimescaleDB compression: run on an empty database migrated
-- with TimescaleDB (`chronicle --database-url URL migrate` on a server that has the extension),
-- e.g. `psql URL -f scripts/compressed-storage-per-reading.sql`.
-- 1,000 CGMs, 1,000 readings each (about 3.5 days) with what makes real data compress less
-- than a regular test pattern: whole mg/dL values wandering around each wearer's own level with
-- sensor noise, each sensor's own second within the 5-minute cadence plus a little drift, and
-- upload delays of a few seconds to minutes.
SELECT setseed(0.42);
INSERT INTO patients (id, display_name) VALUES ('00000000-0000-0000-0000-000000000002', 'Compression');
INSERT INTO devices (id, patient_id, kind, secret_hash)
SELECT 'dev_' || lpad(i::text, 12, '0'), '00000000-0000-0000-0000-000000000002', 'cgm', sha256('x')
FROM generate_series(1, 1000) i;
INSERT INTO glucose_samples (device_key, utc_offset_minutes, codes, measured_at,
    value_milli_mg_dl, received_after_s, original_value, device_reading_id)
SELECT d.key, 60, 0,
       timestamptz '2026-01-01' + make_interval(secs => 300 * i + (d.key * 37) % 300 + i / 100),
       1000 * greatest(40, least(400, round(
           130 + 50 * sin(i / 40.0 + d.key) + 25 * sin(i / 7.0 + 2 * d.key) + 4 * (random() - 0.5)))),
       CASE WHEN random() < 0.9 THEN 1 + (random() * 10)::int ELSE (random() * 600)::int END,
       NULL, NULL
FROM generate_series(1, 1000) i, devices d ORDER BY i, d.key;
VACUUM ANALYZE glucose_samples;
SELECT count(*) AS readings,
       round(hypertable_size('glucose_samples')::numeric / count(*), 1) AS bytes_per_reading_uncompressed
FROM glucose_samples;
SELECT count(compress_chunk(c, if_not_compressed => true)) AS chunks_compressed
FROM show_chunks('glucose_samples') c;
SELECT before_compression_total_bytes AS before_bytes,
       after_compression_total_bytes AS after_bytes,
       round(before_compression_total_bytes::numeric / nullif(after_compression_total_bytes, 0), 1) AS ratio,
       round(after_compression_total_bytes::numeric / (SELECT count(*) FROM glucose_samples), 1)
           AS bytes_per_reading_compressed
FROM hypertable_compression_stats('glucose_samples');
