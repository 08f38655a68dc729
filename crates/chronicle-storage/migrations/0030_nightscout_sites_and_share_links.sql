-- The Nightscout front door (docs/nightscout.md) and share links.
--
-- A patient's Nightscout site: the opaque id in `/nightscout/{site}/api/v1/…`, random and
-- never the patient's UUID, because every Nightscout client assumes one site is one person.
CREATE TABLE nightscout_sites (
    site_id    text        PRIMARY KEY CHECK (site_id ~ '^[a-z0-9]{20}$'),
    patient_id uuid        NOT NULL UNIQUE REFERENCES patients (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- An upload credential is a device of kind `uploader`: the registry, revocation and the
-- ingest's publisher check apply to it unchanged. Its `secret_hash` is the SHA-256 of the
-- SHA-1 hex Nightscout clients send in `api-secret`, and it has no broker password: it never
-- logs in to MQTT.
ALTER TABLE devices DROP CONSTRAINT devices_kind_check;
ALTER TABLE devices ADD CONSTRAINT devices_kind_check
    CHECK (kind IN ('cgm', 'meter', 'bp', 'uploader'));
ALTER TABLE devices ADD CONSTRAINT uploaders_have_no_broker_password
    CHECK (kind <> 'uploader' OR broker_password_hash IS NULL);

-- A pump suspended (a zero-rate temporary basal) delivered 0 U of basal insulin: kept, as a
-- fact; every other amount stays above 0.
ALTER TABLE treatment_samples DROP CONSTRAINT treatment_samples_amount_check;
ALTER TABLE treatment_samples ADD CONSTRAINT treatment_samples_amount_check
    CHECK (amount > 0 OR (kind = 'basal_insulin' AND amount = 0));

-- A share link: a named, read-only secret the patient hands out (a school nurse, a
-- babysitter, a follower app's `token=`). What it may read is its one grant, whose grantee is
-- the link (grantee_type 'share_link', grantee_id the link's id): the gate decides, logs, and
-- revokes and expires it like any grant. Only a SHA-256 of the token is stored.
ALTER TABLE grants DROP CONSTRAINT grants_grantee_type_check;
ALTER TABLE grants ADD CONSTRAINT grants_grantee_type_check
    CHECK (grantee_type IN ('user', 'care_team', 'organization', 'share_link'));

CREATE TABLE share_links (
    id         uuid        PRIMARY KEY,
    patient_id uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    name       text        NOT NULL CHECK (length(trim(name)) BETWEEN 1 AND 100),
    token_hash bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    grant_id   uuid        NOT NULL UNIQUE REFERENCES grants (id) ON DELETE CASCADE,
    created_by uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX share_links_patient_idx ON share_links (patient_id);
