-- Two-person rule for privileged roles: granting `approver` or `admin` waits here until a second
-- admin (never the one who asked) confirms it.

CREATE TABLE role_grants (
    username     TEXT NOT NULL REFERENCES users(username),
    role         TEXT NOT NULL CHECK (role IN ('admin', 'approver')),
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (username, role)
) STRICT;
