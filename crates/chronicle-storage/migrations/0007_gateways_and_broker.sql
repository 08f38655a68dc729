-- The device channel: gateways that relay for registered devices, the credentials an external
-- broker (Mosquitto) checks itself, the ingest's own identities on such a broker, and a
-- notification whenever any of it changes, so brokers act on a revocation at once.

-- Mosquitto's password-file form of a device secret ("$7$<iterations>$<salt>$<hash>",
-- PBKDF2-HMAC-SHA512), computed when the secret is made because the secret itself is never
-- stored. NULL for devices registered before this migration: they reach an external Mosquitto
-- only after `chronicle device rotate-secret`.
ALTER TABLE devices ADD COLUMN broker_password_hash text;

-- A gateway is one broker identity that relays readings for the devices registered with it:
-- a patient's phone app for their meter and cuff, a home hub, a clinic's bedside gateway, the
-- simulator's load mode. It may publish only on those devices' readings topics and read only
-- their acks. A patient's own gateway relays only that patient's devices.
CREATE TABLE gateways (
    id                   text        PRIMARY KEY CHECK (id ~ '^gw_[a-z0-9]{12}$'),
    label                text,
    -- The patient whose gateway it is; NULL for a clinic's or an operator's gateway.
    patient_id           uuid        REFERENCES patients (id) ON DELETE CASCADE,
    secret_hash          bytea       NOT NULL CHECK (length(secret_hash) = 32),
    broker_password_hash text        NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    revoked_at           timestamptz
);
CREATE INDEX gateways_patient_idx ON gateways (patient_id);

CREATE TABLE gateway_devices (
    gateway_id text        NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    device_id  text        NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, device_id)
);
CREATE INDEX gateway_devices_device_idx ON gateway_devices (device_id);

-- The identities Chronicle's own ingest processes use on an external broker: they alone may
-- subscribe to every device's readings and publish acks. The embedded broker needs none (its
-- ingest is inside the process).
CREATE TABLE ingest_accounts (
    -- Never dev_… or gw_…: devices and gateways are named so, and all share one username space.
    name                 text        PRIMARY KEY
                                     CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$' AND name !~ '^(dev|gw)_'),
    secret_hash          bytea       NOT NULL CHECK (length(secret_hash) = 32),
    broker_password_hash text        NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    revoked_at           timestamptz
);

-- Who published a refused message, as the broker authenticated it (a device or a gateway);
-- NULL when the broker does not say (an external broker).
ALTER TABLE rejected_readings ADD COLUMN publisher text;

-- Revoking a device takes it off every gateway in the same transaction.
CREATE FUNCTION device_revocation_leaves_gateways() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM gateway_devices WHERE device_id = NEW.id;
    RETURN NEW;
END $$;
CREATE TRIGGER devices_revoked_leave_gateways
    AFTER UPDATE OF revoked_at ON devices
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION device_revocation_leaves_gateways();

-- Every change to who may connect or relay is announced on the channel `chronicle_registry`
-- as '<kind>:<id>' (device, gateway, ingest). Brokers re-check that identity: a revoked or
-- erased device is disconnected within moments, whichever process made the change.
CREATE FUNCTION announce_registry_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed record;
BEGIN
    IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
    IF TG_ARGV[0] = 'gateway_device' THEN
        PERFORM pg_notify('chronicle_registry', 'gateway:' || changed.gateway_id);
        PERFORM pg_notify('chronicle_registry', 'device:' || changed.device_id);
    ELSIF TG_ARGV[0] = 'ingest' THEN
        PERFORM pg_notify('chronicle_registry', 'ingest:' || changed.name);
    ELSE
        PERFORM pg_notify('chronicle_registry', TG_ARGV[0] || ':' || changed.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER devices_announce
    AFTER INSERT OR DELETE OR UPDATE OF revoked_at, secret_hash, broker_password_hash ON devices
    FOR EACH ROW EXECUTE FUNCTION announce_registry_change('device');
CREATE TRIGGER gateways_announce
    AFTER INSERT OR DELETE OR UPDATE OF revoked_at, secret_hash, broker_password_hash ON gateways
    FOR EACH ROW EXECUTE FUNCTION announce_registry_change('gateway');
CREATE TRIGGER gateway_devices_announce
    AFTER INSERT OR DELETE ON gateway_devices
    FOR EACH ROW EXECUTE FUNCTION announce_registry_change('gateway_device');
CREATE TRIGGER ingest_accounts_announce
    AFTER INSERT OR DELETE OR UPDATE ON ingest_accounts
    FOR EACH ROW EXECUTE FUNCTION announce_registry_change('ingest');
