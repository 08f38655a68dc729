-- Each device's latest stored reading, kept by the ingest in the statement that stores the
-- readings, and when the device's silence next deserves a look. The `no_data` time check
-- used to compute every device's latest reading from the reading tables on every tick (about
-- 2 s for 165,000 devices, every 10 s); now it reads one narrow row per device and evaluates
-- only the patients whose device's silence came due since the last look.

-- How long a device of `kind` may be silent before its silence is worth a look: a CGM sends
-- every few minutes, meters, cuffs and uploaders a few times a day. No patient's `no_data`
-- threshold is shorter.
CREATE FUNCTION device_shortest_silence(kind text) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN kind = 'cgm' THEN interval '15 minutes' ELSE interval '1 day' END
$$;

-- Rewritten by nearly every batch, so only the key is indexed and pages keep room: the update
-- stays on its page without touching an index (HOT). The time check reads the whole table
-- instead, a narrow row per device (about 1 ms per 10,000 devices) every tick.
CREATE TABLE device_last_readings (
    device_key       integer     PRIMARY KEY REFERENCES devices (key) ON DELETE CASCADE,
    -- The latest measurement time among the device's stored readings of its own kind
    -- (blood pressure for a cuff, glucose for every other device).
    last_measured_at timestamptz NOT NULL,
    -- When the silence after that reading deserves a look; NULL once a look found it covered
    -- by a `no_data` alert (or the device revoked), until the device's next reading.
    silence_due_at   timestamptz
) WITH (fillfactor = 70);

INSERT INTO device_last_readings (device_key, last_measured_at, silence_due_at)
SELECT d.key, l.last_at, l.last_at + device_shortest_silence(d.kind)
FROM devices d
CROSS JOIN LATERAL (
    SELECT CASE WHEN d.kind = 'bp'
                THEN (SELECT max(measured_at) FROM blood_pressure_samples s WHERE s.device_key = d.key)
                ELSE (SELECT max(measured_at) FROM glucose_samples s WHERE s.device_key = d.key)
           END AS last_at
) l
WHERE l.last_at IS NOT NULL;
