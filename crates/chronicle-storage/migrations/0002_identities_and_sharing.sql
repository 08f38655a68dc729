-- Identities (users, organizations, care teams), authentication tokens, the patient's sharing
-- grants, emergency accesses, and the append-only access log.

CREATE TABLE organizations (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL CHECK (length(trim(name)) > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    -- Log-in name; compared case-insensitively.
    email         text        NOT NULL CHECK (position('@' IN email) > 1),
    display_name  text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('patient', 'clinician', 'caregiver', 'researcher', 'admin')),
    -- argon2id PHC string; NULL for accounts that cannot log in with a password.
    password_hash text,
    -- The patient record a patient user is.
    patient_id    uuid        UNIQUE REFERENCES patients (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);
CREATE UNIQUE INDEX users_email_idx ON users (lower(email));

CREATE TABLE organization_members (
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);

CREATE TABLE care_teams (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text        NOT NULL CHECK (length(trim(name)) > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Grants to a team follow this table at every request: adding or removing a member changes
-- what they may see on their next request.
CREATE TABLE care_team_members (
    team_id  uuid        NOT NULL REFERENCES care_teams (id) ON DELETE CASCADE,
    user_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX care_team_members_user_idx ON care_team_members (user_id);

-- A guardian the patient named acts as the patient (manages grants, reads the log).
CREATE TABLE guardians (
    patient_id uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, user_id)
);

-- Bearer tokens: short-lived sessions from a password log-in, and long-lived API tokens for
-- integrations. Only a SHA-256 of the token is stored (tokens are 256 random bits).
CREATE TABLE auth_tokens (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         text        NOT NULL CHECK (kind IN ('session', 'api')),
    token_hash   bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    label        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX auth_tokens_user_idx ON auth_tokens (user_id);

CREATE TABLE grants (
    id           uuid        PRIMARY KEY,
    patient_id   uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    grantee_type text        NOT NULL CHECK (grantee_type IN ('user', 'care_team', 'organization')),
    grantee_id   uuid        NOT NULL,
    categories   text[]      NOT NULL CHECK (cardinality(categories) > 0
                     AND categories <@ ARRAY['glucose', 'blood_pressure', 'alerts', 'device_info']),
    access       text[]      NOT NULL CHECK (cardinality(access) > 0
                     AND access <@ ARRAY['view_readings', 'view_trends', 'receive_alerts', 'export']),
    purpose      text        NOT NULL CHECK (purpose IN ('care', 'caregiving', 'research', 'peer_support')),
    data_since   timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    created_by   uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grants_patient_idx ON grants (patient_id);
CREATE INDEX grants_grantee_idx ON grants (grantee_type, grantee_id);

CREATE TABLE emergency_accesses (
    id           uuid        PRIMARY KEY,
    patient_id   uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    clinician_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason       text        NOT NULL CHECK (length(trim(reason)) >= 10),
    opened_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CHECK (expires_at > opened_at)
);
CREATE INDEX emergency_accesses_clinician_idx ON emergency_accesses (clinician_id, patient_id);

-- Every read of a patient's data, allowed or denied. Append-only: the trigger below refuses
-- UPDATE, DELETE and TRUNCATE for every role, the table owner included. patient_id has no
-- foreign key so the log outlives an erased record.
CREATE TABLE access_log (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid,
    actor_role   text,
    patient_id   uuid        NOT NULL,
    action       text        NOT NULL,
    category     text,
    purpose      text,
    grant_id     uuid,
    emergency_id uuid,
    outcome      text        NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    reason       text
);
CREATE INDEX access_log_patient_idx ON access_log (patient_id, at DESC);

CREATE FUNCTION access_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER access_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_is_append_only();
CREATE TRIGGER access_log_no_truncate
    BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_is_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON access_log FROM PUBLIC;
