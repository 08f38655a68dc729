-- Authentication events: log-ins (failed and successful), log-outs, API tokens issued and
-- revoked, password changes, accounts disabled and enabled. Append-only. Administrators read
-- them all; a user reads those of their own account (a patient, those of their record's
-- account). Plain SQL: the table stays a plain table under TimescaleDB.

CREATE TABLE authentication_events (
    -- Newest first is descending id; the id is also the paging cursor.
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    kind           text        NOT NULL CHECK (kind IN (
                       'login_succeeded', 'login_failed', 'logged_out', 'token_issued',
                       'token_revoked', 'tokens_revoked', 'password_changed',
                       'password_change_failed', 'account_disabled', 'account_enabled')),
    -- The account concerned; NULL for a failed log-in with an e-mail no account has.
    -- The account's events go with it if the account is ever deleted.
    user_id        uuid        REFERENCES users (id) ON DELETE CASCADE,
    -- Who acted, when not the account's own user (the administrator who disabled it).
    actor_id       uuid        REFERENCES users (id) ON DELETE SET NULL,
    -- For a failed log-in with an unknown e-mail: what was given, when it has the shape of an
    -- e-mail (anything else may be a password typed in the wrong field and is not kept).
    email_tried    text        CHECK (length(email_tried) <= 320),
    failure        text        CHECK (failure IN ('unknown_account', 'wrong_password',
                       'account_disabled', 'no_password')),
    -- The TCP peer (or, behind a proxy the operator trusts, the client it names).
    client_address inet,
    -- The token issued, revoked, or of the session that logged in or out.
    token_id       uuid,
    CHECK ((failure IS NOT NULL) = (kind IN ('login_failed', 'password_change_failed')))
);
CREATE INDEX authentication_events_user_idx ON authentication_events (user_id, id DESC);

-- Every API token expires now (90 days by default, at most a year): tokens made to last for
-- ever get 90 days from today, and none outlasts a year from today.
UPDATE auth_tokens SET expires_at = now() + interval '90 days'
 WHERE kind = 'api' AND expires_at IS NULL AND revoked_at IS NULL;
UPDATE auth_tokens SET expires_at = now() + interval '365 days'
 WHERE kind = 'api' AND expires_at > now() + interval '365 days' AND revoked_at IS NULL;
