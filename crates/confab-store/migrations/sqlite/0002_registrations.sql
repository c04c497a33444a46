-- Confab schema version 2: registrations (bindings of addresses-of-record to contacts,
-- RFC 3261 §10, with RFC 5626 outbound, RFC 5627 GRUU and RFC 3327 Path data).
--
-- Compact on purpose (issue 7 counts bytes per binding): no JSON, no duplicated keys, NULL
-- for everything absent, the AOR as one `user@domain` text. Routing reads by AOR; the
-- sweeper by expiry; flow failure by flow token; GRUU resolution by temp-GRUU id.

CREATE TABLE bindings (
    id               INTEGER PRIMARY KEY,
    -- Address-of-record, `user@domain` (domain lowercase).
    aor              TEXT    NOT NULL,
    -- Contact URI as the client wrote it, and its other header parameters (no `expires`,
    -- no `q`), as `name=value;name` without the leading `;`. '' when none.
    contact          TEXT    NOT NULL CHECK (contact <> ''),
    params           TEXT    NOT NULL,
    -- q in thousandths; NULL when the client gave none.
    q                INTEGER CHECK (q BETWEEN 0 AND 1000),
    -- Milliseconds since the Unix epoch.
    expires_at       INTEGER NOT NULL,
    call_id          TEXT    NOT NULL,
    cseq             INTEGER NOT NULL CHECK (cseq BETWEEN 0 AND 4294967295),
    -- RFC 5626: +sip.instance (without quotes) and reg-id.
    instance         TEXT,
    reg_id           INTEGER CHECK (reg_id IS NULL OR instance IS NOT NULL),
    -- The flow the REGISTER came on: transport adapter token, transport, client address
    -- (ip:port / [ip]:port), and the node id of the front end holding the flow.
    flow             TEXT    NOT NULL,
    transport        TEXT    NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')),
    source           TEXT    NOT NULL,
    node             TEXT    NOT NULL,
    -- RFC 3327 Path values in order, separated by LF; NULL when none.
    path             TEXT,
    user_agent       TEXT,
    registered_at    INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    -- RFC 5627 temporary GRUUs: random id (u64 bits as i64) and how many were issued.
    temp_gruu_id     INTEGER,
    temp_gruu_issued INTEGER,
    CHECK ((temp_gruu_id IS NULL) = (temp_gruu_issued IS NULL))
) STRICT;

-- Routing lookups and listings: (aor, registered_at) then rowid.
CREATE INDEX bindings_by_aor ON bindings (aor, registered_at);
-- The expiry sweep.
CREATE INDEX bindings_by_expiry ON bindings (expires_at);
-- Flow failure (RFC 5626 §5.3).
CREATE INDEX bindings_by_flow ON bindings (flow, node);
-- Temporary GRUU resolution.
CREATE UNIQUE INDEX bindings_by_temp_gruu ON bindings (temp_gruu_id)
    WHERE temp_gruu_id IS NOT NULL;
