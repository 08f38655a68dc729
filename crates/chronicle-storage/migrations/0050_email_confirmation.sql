-- An e-mail channel is used only once its owner proved the address is theirs, by typing back
-- a one-time code Chronicle mailed to it: otherwise anyone could have a patient's alarms sent
-- to a stranger's address, or flood one. Web Push subscriptions and webhooks are confirmed
-- when added (the browser or the receiver's secret stands for the user).
ALTER TABLE notification_channels ADD COLUMN confirmed_at timestamptz;
-- Channels added before confirmation existed were already receiving alarms: silencing them
-- unannounced would be worse than keeping them.
UPDATE notification_channels SET confirmed_at = created_at;

-- The one live code of an unconfirmed e-mail channel, hashed (SHA-256 of the channel id and
-- the code's canonical spelling). A new code replaces it; a confirmation deletes it.
CREATE TABLE email_confirmation_codes (
    channel_id      uuid        PRIMARY KEY REFERENCES notification_channels (id) ON DELETE CASCADE,
    code_hash       bytea       NOT NULL,
    expires_at      timestamptz NOT NULL,
    -- Wrong codes typed: at the limit the code is dead and a new one must be sent.
    failed_attempts integer     NOT NULL DEFAULT 0,
    sent_at         timestamptz NOT NULL DEFAULT now()
);

-- Every confirmation message sent, by whom and to which address (lower-cased): the limits per
-- user and per address are counted here, across every server sharing the database and across
-- channels removed and added again.
CREATE TABLE email_confirmation_sends (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address text        NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_confirmation_sends_user_idx ON email_confirmation_sends (user_id, sent_at);
CREATE INDEX email_confirmation_sends_address_idx ON email_confirmation_sends (address, sent_at);
