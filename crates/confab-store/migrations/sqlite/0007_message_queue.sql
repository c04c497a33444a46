-- Confab schema version 7: the offline message queue of the IM role (issue 9). A MESSAGE
-- to a known user with no registered endpoint is stored here (before the sender hears
-- 202 Accepted) until it is delivered or expires.

CREATE TABLE message_queue (
    -- Increasing in arrival order: delivery follows it.
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient          TEXT    NOT NULL CHECK (recipient <> ''),
    sender             TEXT    NOT NULL,
    -- Milliseconds since the Unix epoch.
    received_at        INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    content_type       TEXT    NOT NULL,
    -- The request as it will be delivered, in wire form.
    request            BLOB    NOT NULL,
    size               INTEGER NOT NULL CHECK (size >= 0),
    notify_failure     INTEGER NOT NULL CHECK (notify_failure IN (0, 1)),
    imdn_message_id    TEXT,
    -- Set by the first accepted delivery: the delivery window starts.
    first_delivered_at INTEGER
) STRICT;

CREATE INDEX message_queue_by_recipient ON message_queue (recipient, id);
CREATE INDEX message_queue_by_expiry ON message_queue (expires_at) WHERE first_delivered_at IS NULL;
CREATE INDEX message_queue_by_window ON message_queue (first_delivered_at)
    WHERE first_delivered_at IS NOT NULL;

-- The endpoints (binding keys) that accepted a message, so one registering again within the
-- window does not get it twice.
CREATE TABLE message_deliveries (
    message_id INTEGER NOT NULL REFERENCES message_queue (id) ON DELETE CASCADE,
    endpoint   TEXT    NOT NULL,
    PRIMARY KEY (message_id, endpoint)
) STRICT, WITHOUT ROWID;
