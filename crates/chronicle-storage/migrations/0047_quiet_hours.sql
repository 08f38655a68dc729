-- A user's quiet hours: a daily span, in their own time zone, in which their non-urgent
-- alert notifications wait until it ends (urgent alarms never wait).
CREATE TABLE user_quiet_hours (
    user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    starts     time        NOT NULL,
    ends       time        NOT NULL,
    time_zone  text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (starts <> ends)
);

-- A delivery held back by quiet hours steps aside ('held'): it does not keep the channel's
-- later deliveries (an urgent alarm) waiting behind it, and is looked at again when its
-- next_attempt_at comes.
ALTER TABLE notification_deliveries DROP CONSTRAINT notification_deliveries_status_check;
ALTER TABLE notification_deliveries ADD CONSTRAINT notification_deliveries_status_check
    CHECK (status IN ('pending', 'held', 'delivered', 'failed', 'withheld'));
