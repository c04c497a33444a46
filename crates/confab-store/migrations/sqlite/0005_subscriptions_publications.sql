-- Confab schema version 5: the SIP events framework (RFC 6665) and presence publications
-- (RFC 3903), so subscriptions and published state survive a restart.
--
-- The presence role owns the meaning of `data` (its serialized subscription or
-- publication); the columns beside it are what the store indexes: lookups by watcher
-- (per-watcher caps), by resource (fan-out), and by expiry (the sweeper).

CREATE TABLE subscriptions (
    id          TEXT    PRIMARY KEY NOT NULL,
    package     TEXT    NOT NULL,
    watcher     TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    -- Milliseconds since the Unix epoch.
    expires_at  INTEGER NOT NULL,
    data        BLOB    NOT NULL
) WITHOUT ROWID;

CREATE INDEX subscriptions_by_expiry ON subscriptions (expires_at);
CREATE INDEX subscriptions_by_resource ON subscriptions (resource);

CREATE TABLE publications (
    etag        TEXT    PRIMARY KEY NOT NULL,
    resource    TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    data        BLOB    NOT NULL
) WITHOUT ROWID;

CREATE INDEX publications_by_expiry ON publications (expires_at);
CREATE INDEX publications_by_resource ON publications (resource);
