-- Checkouts, their approvals, and the publishing tokens they issue (as keyed hashes only).
-- A checkout row is never deleted: history outlives the token.

CREATE TABLE checkouts (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts(id),
    operator         TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    level            TEXT NOT NULL,
    status           TEXT NOT NULL,
    requested_at     INTEGER NOT NULL,
    ttl_seconds      INTEGER NOT NULL,
    approvals_needed INTEGER NOT NULL,
    content_sha256   TEXT,
    allowed_calls    TEXT NOT NULL,
    source_ip        TEXT,
    token_hash       BLOB UNIQUE,
    issued_at        INTEGER,
    expires_at       INTEGER,
    ended_at         INTEGER,
    end_reason       TEXT
) STRICT;

CREATE INDEX checkouts_by_account ON checkouts (account_id, status);
CREATE INDEX checkouts_by_status ON checkouts (status, requested_at);

CREATE TABLE approvals (
    checkout_id TEXT NOT NULL REFERENCES checkouts(id),
    approver    TEXT NOT NULL,
    decision    TEXT NOT NULL,
    comment     TEXT,
    at          INTEGER NOT NULL,
    PRIMARY KEY (checkout_id, approver)
) STRICT;
