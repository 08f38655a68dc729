-- Alerts that reach people: each user's own channels (Web Push subscriptions, an e-mail
-- address, a personal signed webhook), the delivery of every alarm to every channel of every
-- user the patient's grants let receive it, and the server's VAPID key.

-- A channel one user chose for the alerts they receive. Only its owner sees or changes it.
CREATE TABLE notification_channels (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text        NOT NULL CHECK (kind IN ('web_push', 'email', 'webhook')),
    -- web_push: the push service's endpoint; email: the address; webhook: the URL.
    target      text        NOT NULL CHECK (length(target) BETWEEN 3 AND 2048),
    -- web_push: the browser's P-256 public key (p256dh) and auth secret, base64url.
    push_p256dh text,
    push_auth   text,
    -- webhook: the HMAC-SHA256 key every delivery is signed with (shown once).
    secret      text,
    label       text        CHECK (length(label) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    CHECK ((kind = 'web_push') = (push_p256dh IS NOT NULL AND push_auth IS NOT NULL)),
    CHECK ((kind = 'webhook') = (secret IS NOT NULL)),
    CHECK (secret IS NULL OR length(secret) >= 16)
);
CREATE INDEX notification_channels_user_idx ON notification_channels (user_id)
    WHERE disabled_at IS NULL;

-- One alert event to one channel: the user's delivery log. 'withheld': when its turn came
-- the gate no longer let the user receive it (grant revoked, alarm snoozed, account
-- disabled); 'failed': every attempt failed.
CREATE TABLE notification_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id       uuid        NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    event_id         bigint      NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    status           text        NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'delivered', 'failed', 'withheld')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    -- The receiver's answer to the last attempt (HTTP status, or the SMTP reply code).
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (channel_id, event_id)
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notification_deliveries_event_idx ON notification_deliveries (event_id);

-- Keys the servers sharing this database share: the VAPID key pair every Web Push
-- subscription is bound to must be the same on every server.
CREATE TABLE server_keys (
    name       text        PRIMARY KEY,
    value      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
