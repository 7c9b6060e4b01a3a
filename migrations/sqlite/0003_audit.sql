-- The tamper-evident audit log: an HMAC-SHA256 chain (src/audit/chain.rs defines the encoding).
-- Rows are only ever appended by the audit writer and removed, oldest first, by `audit prune`.

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    ts          INTEGER NOT NULL,          -- unix milliseconds
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    source_ip   TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    http_method TEXT,
    http_path   TEXT,
    http_status INTEGER,
    detail      TEXT NOT NULL,             -- JSON object, exactly the bytes that were hashed
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
) STRICT;

CREATE INDEX audit_by_ts ON audit_log (ts);
CREATE INDEX audit_by_actor ON audit_log (actor_id, seq);
CREATE INDEX audit_by_target ON audit_log (target, seq);

-- One row per prune: the chain restarts at first_seq from prev_hash. The row is MACed, so a
-- forged anchor cannot hide deleted entries.
CREATE TABLE audit_anchor (
    first_seq       INTEGER PRIMARY KEY,
    prev_hash       BLOB NOT NULL,
    pruned_from_seq INTEGER NOT NULL,
    pruned_before   INTEGER NOT NULL,     -- unix milliseconds
    pruned_at       INTEGER NOT NULL,     -- unix milliseconds
    mac             BLOB NOT NULL
) STRICT;
