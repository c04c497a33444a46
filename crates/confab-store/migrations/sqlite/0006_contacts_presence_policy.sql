-- Confab schema version 6: server-stored contact lists and presence access policies
-- (issue 8 items 5 and 6). Rows belong to a user (removed with them); every write also
-- bumps the owner's row in presence_changes, which front ends poll to re-notify the
-- watchers a change affects.

CREATE TABLE contacts (
    owner_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- user@domain (any domain), as confab-core's Address prints it.
    contact      TEXT    NOT NULL CHECK (contact <> ''),
    display_name TEXT,
    -- Milliseconds since the Unix epoch.
    added_at     INTEGER NOT NULL,
    PRIMARY KEY (owner_id, contact)
) STRICT, WITHOUT ROWID;

CREATE TABLE contact_groups (
    owner_id INTEGER NOT NULL,
    contact  TEXT    NOT NULL,
    name     TEXT    NOT NULL CHECK (name <> ''),
    PRIMARY KEY (owner_id, contact, name),
    FOREIGN KEY (owner_id, contact) REFERENCES contacts (owner_id, contact) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE presence_rules (
    owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- user@domain, or a lowercase domain when is_domain = 1.
    watcher   TEXT    NOT NULL CHECK (watcher <> ''),
    is_domain INTEGER NOT NULL CHECK (is_domain IN (0, 1)),
    level     TEXT    NOT NULL CHECK (level IN ('blocked', 'public', 'colleague', 'personal')),
    PRIMARY KEY (owner_id, watcher)
) STRICT, WITHOUT ROWID;

CREATE TABLE presence_settings (
    owner_id          INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    confirm_strangers INTEGER NOT NULL CHECK (confirm_strangers IN (0, 1))
) STRICT;

-- The change feed: one row per owner, with the sequence number of their latest change.
CREATE TABLE presence_changes (
    owner_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX presence_changes_by_seq ON presence_changes (seq);
