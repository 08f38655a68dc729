-- A care team's invitation: a short code (or the link that carries it) the clinic hands a
-- patient, who opens it and shares with the team, choosing what. The code is a bearer secret:
-- only its hash is kept. The team's suggestion prefills the patient's choice; the grant the
-- patient makes is an ordinary grant.
CREATE TABLE care_team_invitations (
    id          uuid        PRIMARY KEY,
    team_id     uuid        NOT NULL REFERENCES care_teams (id) ON DELETE CASCADE,
    code_hash   bytea       NOT NULL UNIQUE,
    -- The team's own note (whom it was handed to); never shown to the patient.
    label       text        NOT NULL DEFAULT '',
    categories  text[]      NOT NULL,
    access      text[]      NOT NULL,
    purpose     text        NOT NULL,
    max_uses    integer     NOT NULL CHECK (max_uses BETWEEN 1 AND 1000),
    uses        integer     NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    created_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX care_team_invitations_team_idx ON care_team_invitations (team_id, created_at);

-- Which grant each acceptance made (a patient accepts an invitation once).
CREATE TABLE care_team_invitation_acceptances (
    invitation_id uuid        NOT NULL REFERENCES care_team_invitations (id) ON DELETE CASCADE,
    patient_id    uuid        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    grant_id      uuid        NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    accepted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invitation_id, patient_id)
);
