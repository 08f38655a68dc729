-- Escalation: a care team decides who of its members an urgent alert reaches first, who
-- next when nobody has acknowledged it after some time, and how often those already told
-- are reminded while it stays unacknowledged.

-- A member's duty in the team ("nurse", "physician", "on call"), which a step can name
-- instead of people, so the chain survives a change of staff.
ALTER TABLE care_team_members
    ADD COLUMN duty text CHECK (duty IS NULL OR length(duty) BETWEEN 1 AND 60);

-- A team's policy. Without a row every member who receives a patient's alerts is notified
-- at once and never reminded.
CREATE TABLE care_team_escalation (
    team_id                uuid        PRIMARY KEY REFERENCES care_teams (id) ON DELETE CASCADE,
    renotify_every_seconds integer     CHECK (renotify_every_seconds BETWEEN 5 AND 86400),
    updated_by             uuid        REFERENCES users (id) ON DELETE SET NULL,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- The steps, in order: step 0 goes with the alarm, each later one `after_seconds` after
-- the alert became urgent if it is still unacknowledged.
CREATE TABLE care_team_escalation_steps (
    team_id       uuid     NOT NULL REFERENCES care_team_escalation (team_id) ON DELETE CASCADE,
    position      smallint NOT NULL CHECK (position BETWEEN 0 AND 9),
    after_seconds integer  NOT NULL CHECK (after_seconds BETWEEN 0 AND 86400),
    members       uuid[]   NOT NULL DEFAULT '{}',
    duties        text[]   NOT NULL DEFAULT '{}',
    PRIMARY KEY (team_id, position)
);

-- Each urgent alert's progress through each policy it falls under: how many steps were
-- notified and which reminder round went last. Gone once the alert is acknowledged or
-- resolved (looked at, then removed).
CREATE TABLE alert_escalations (
    alert_id   uuid        NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    team_id    uuid        NOT NULL REFERENCES care_teams (id) ON DELETE CASCADE,
    -- The alarm the notices speak of (the event that made the alert urgent).
    event_id   bigint      NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL,
    notified   smallint    NOT NULL DEFAULT 1,
    reminders  integer     NOT NULL DEFAULT 0,
    next_at    timestamptz,
    PRIMARY KEY (alert_id, team_id)
);
CREATE INDEX alert_escalations_due_idx ON alert_escalations (next_at) WHERE next_at IS NOT NULL;

-- A channel can now be sent the same alarm more than once: the alarm itself (round 0), and
-- reminders (rounds 1, 2, …). An escalation is a member's first notice of the alarm, so it
-- is round 0 too, with its reason.
ALTER TABLE notification_deliveries
    ADD COLUMN round integer NOT NULL DEFAULT 0 CHECK (round >= 0),
    ADD COLUMN reason text NOT NULL DEFAULT 'alarm'
        CHECK (reason IN ('alarm', 'escalation', 'reminder'));
ALTER TABLE notification_deliveries
    DROP CONSTRAINT notification_deliveries_channel_id_event_id_key,
    ADD CONSTRAINT notification_deliveries_channel_event_round_key
        UNIQUE (channel_id, event_id, round);
