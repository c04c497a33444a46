-- Confab schema version 1: user accounts and admin API tokens.
-- Tables are STRICT (SQLite >= 3.37): a value of the wrong type is an error, not a coercion.

CREATE TABLE users (
    -- Internal key for future references (registrations, subscriptions, queued messages).
    id             INTEGER PRIMARY KEY,
    -- Address = username@domain. username is the digest username (case sensitive);
    -- domain is the digest realm, stored lowercase.
    username       TEXT    NOT NULL,
    domain         TEXT    NOT NULL,
    display_name   TEXT,
    -- Normalised phone number (+E164 or +E164;ext=N), unique across users.
    phone          TEXT    UNIQUE,
    role           TEXT    NOT NULL CHECK (role IN ('user', 'admin')),
    -- Digest HA1 = H(username:domain:password) for each hash; never the clear password.
    -- Either all three are present or none (no password set yet).
    ha1_md5        BLOB    CHECK (ha1_md5 IS NULL OR length(ha1_md5) = 16),
    ha1_sha256     BLOB    CHECK (ha1_sha256 IS NULL OR length(ha1_sha256) = 32),
    ha1_sha512_256 BLOB    CHECK (ha1_sha512_256 IS NULL OR length(ha1_sha512_256) = 32),
    -- Milliseconds since the Unix epoch.
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CHECK ((ha1_md5 IS NULL) = (ha1_sha256 IS NULL)
       AND (ha1_md5 IS NULL) = (ha1_sha512_256 IS NULL)),
    -- Also the index for listing in (domain, username) order with keyset paging.
    UNIQUE (domain, username)
) STRICT;

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    -- SHA-256 of the token secret; the secret itself is never stored.
    token_hash BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at INTEGER NOT NULL
) STRICT;
