-- Confab schema version 3: organisation policy of the filter applications (issue 9): the
-- Client Version Filter's ordered rules and default action, the Intelligent IM Filter's URL
-- and file-transfer rules, and one version counter per policy that front ends poll.
--
-- Policy lives here, not in the TOML file, so every front end of a pool applies the same.
-- Values are validated by confab-core before they are written; the CHECKs below are the
-- database's own guard against a writer that skipped validation.

-- One row per policy that has ever been written; a missing row is version 0 (defaults).
CREATE TABLE policy_versions (
    policy     TEXT    PRIMARY KEY CHECK (policy IN ('im_filter', 'client_version')),
    version    INTEGER NOT NULL CHECK (version > 0),
    -- Milliseconds since the Unix epoch.
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The IM filter policy: at most one row (absent = defaults: allow everything).
CREATE TABLE im_filter_policy (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    url_action  TEXT    NOT NULL CHECK (url_action IN ('allow', 'block', 'disable_links')),
    url_scope   TEXT    NOT NULL CHECK (url_scope IN ('all', 'external')),
    url_prefix  TEXT    NOT NULL CHECK (url_prefix <> ''),
    url_reason  TEXT    NOT NULL CHECK (url_reason <> ''),
    file_scope  TEXT    NOT NULL CHECK (file_scope IN ('all', 'external')),
    file_reason TEXT    NOT NULL CHECK (file_reason <> '')
) STRICT;

-- Blocked file extensions, lowercase without the dot ('exe', 'tar.gz'); '*' = every file.
CREATE TABLE im_filter_extensions (
    extension TEXT PRIMARY KEY CHECK (extension <> '' AND extension = lower(extension))
) STRICT, WITHOUT ROWID;

-- Client version rules in the order they are tried (position 0 first).
CREATE TABLE client_version_rules (
    position INTEGER PRIMARY KEY CHECK (position >= 0),
    -- Product pattern ('Linphone*') and version condition ('< 5.0') as the admin wrote them.
    product  TEXT    NOT NULL CHECK (product <> ''),
    version  TEXT    NOT NULL CHECK (version <> ''),
    action   TEXT    NOT NULL
             CHECK (action IN ('allow', 'block', 'block_with_url', 'allow_with_notice')),
    reason   TEXT,
    url      TEXT,
    message  TEXT,
    CHECK ((url IS NOT NULL) = (action IN ('block_with_url', 'allow_with_notice'))),
    CHECK (reason IS NULL OR action IN ('block', 'block_with_url')),
    CHECK (message IS NULL OR action = 'allow_with_notice')
) STRICT;

-- The action for clients no rule matches: at most one row (absent = allow).
CREATE TABLE client_version_default (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    action  TEXT    NOT NULL
            CHECK (action IN ('allow', 'block', 'block_with_url', 'allow_with_notice')),
    reason  TEXT,
    url     TEXT,
    message TEXT,
    CHECK ((url IS NOT NULL) = (action IN ('block_with_url', 'allow_with_notice'))),
    CHECK (reason IS NULL OR action IN ('block', 'block_with_url')),
    CHECK (message IS NULL OR action = 'allow_with_notice')
) STRICT;
