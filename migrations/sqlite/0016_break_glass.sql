-- Break-glass (issue 24): when no approver can be reached, an admin may release a pending major
-- checkout alone, with a written reason and a fresh TOTP code, where the account's policy allows it.
-- The release is a row here, open until a second person reviews and closes it; the checkout says it
-- was released so (its tokens' audit entries carry the mark), and its account's credential is due
-- for rotation until the next rotation.
CREATE TABLE break_glass (
    checkout_id TEXT PRIMARY KEY REFERENCES checkouts(id),
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    released_by TEXT NOT NULL,
    reason      TEXT NOT NULL,
    released_at INTEGER NOT NULL,
    closed_by   TEXT,
    closed_at   INTEGER,
    close_note  TEXT,
    CHECK ((closed_by IS NULL) = (closed_at IS NULL))
) STRICT;
CREATE INDEX break_glass_open ON break_glass (closed_at, released_at);

ALTER TABLE checkouts ADD COLUMN break_glass INTEGER NOT NULL DEFAULT 0 CHECK (break_glass IN (0, 1));
-- Set by a break-glass release of a checkout of this account; cleared by the next rotation.
ALTER TABLE accounts ADD COLUMN rotation_due_at INTEGER;
