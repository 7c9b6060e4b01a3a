-- Incidents (issue 10): an incident runs a playbook on one account. Its steps are the playbook's,
-- copied when it opened (a later edit of the playbook does not rewrite history); its timeline is
-- every step taken, with who and when; a close needs the signatures of two different people.

CREATE TABLE incidents (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    playbook    TEXT NOT NULL,
    title       TEXT NOT NULL,
    summary     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    -- 'manual' or the name of the early-warning rule that opened it.
    trigger     TEXT NOT NULL,
    opened_by   TEXT NOT NULL,
    opened_at   INTEGER NOT NULL,
    opened_ms   INTEGER NOT NULL,
    -- The signed audit checkpoint (`mvcp1:...`) of the chain head when the incident opened.
    checkpoint  TEXT,
    closed_at   INTEGER,
    review      TEXT
) STRICT;

CREATE INDEX incidents_account ON incidents(account_id, opened_at);

CREATE TABLE incident_steps (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    n           INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('auto', 'manual')),
    action      TEXT,
    title       TEXT NOT NULL,
    owner_role  TEXT,
    due_at      INTEGER,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed', 'skipped')),
    done_by     TEXT,
    done_at_ms  INTEGER,
    note        TEXT,
    PRIMARY KEY (incident_id, n)
) STRICT;

CREATE TABLE incident_timeline (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    at_ms       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    event       TEXT NOT NULL,
    step        INTEGER,
    detail      TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX incident_timeline_of ON incident_timeline(incident_id, id);

CREATE TABLE incident_signatures (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    username    TEXT NOT NULL,
    signed_at   INTEGER NOT NULL,
    review      TEXT NOT NULL,
    PRIMARY KEY (incident_id, username)
) STRICT;

-- A post captured as evidence: what was live on the platform, as fetched, before anything was
-- deleted. `content` is the platform's own JSON answer for the post.
CREATE TABLE incident_evidence (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id  TEXT NOT NULL REFERENCES incidents(id),
    platform_id  TEXT NOT NULL,
    content      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    captured_at  INTEGER NOT NULL,
    captured_by  TEXT NOT NULL,
    deleted_at   INTEGER,
    deleted_by   TEXT,
    UNIQUE (incident_id, platform_id)
) STRICT;

-- A credential version an incident marked compromised: the account cannot be unfrozen (and no
-- version up to this one restored) until a rotation made after the mark is current.
CREATE TABLE credential_compromised (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    version     INTEGER NOT NULL,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    marked_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, incident_id)
) STRICT;

-- Platform posts the publication watch has already reported, so one outsider post raises one
-- alert, not one per round.
CREATE TABLE watch_seen (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    platform_id TEXT NOT NULL,
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (account_id, platform_id)
) STRICT;
