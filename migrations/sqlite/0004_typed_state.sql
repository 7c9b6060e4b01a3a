-- Typed state: the values Rust keeps as enums (src/store/types.rs) are the only ones the database
-- accepts. SQLite cannot add a CHECK constraint to an existing table without rebuilding it (and
-- rebuilding a table that others reference needs foreign keys off, which a migration transaction
-- cannot do), so these triggers are the constraints: they refuse any other value on insert and
-- update, with a message that names the column.

CREATE TRIGGER accounts_typed_insert BEFORE INSERT ON accounts
WHEN NEW.status NOT IN ('active', 'frozen') OR NEW.platform NOT IN ('wechat', 'weibo', 'generic')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: accounts.status or accounts.platform'); END;

CREATE TRIGGER accounts_typed_update BEFORE UPDATE OF status, platform ON accounts
WHEN NEW.status NOT IN ('active', 'frozen') OR NEW.platform NOT IN ('wechat', 'weibo', 'generic')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: accounts.status or accounts.platform'); END;

CREATE TRIGGER checkouts_typed_insert BEFORE INSERT ON checkouts
WHEN NEW.status NOT IN ('pending_approval', 'approved', 'denied', 'active', 'checked_in', 'expired', 'revoked')
  OR NEW.level NOT IN ('general', 'major')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: checkouts.status or checkouts.level'); END;

CREATE TRIGGER checkouts_typed_update BEFORE UPDATE OF status, level ON checkouts
WHEN NEW.status NOT IN ('pending_approval', 'approved', 'denied', 'active', 'checked_in', 'expired', 'revoked')
  OR NEW.level NOT IN ('general', 'major')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: checkouts.status or checkouts.level'); END;

CREATE TRIGGER approvals_typed BEFORE INSERT ON approvals
WHEN NEW.decision NOT IN ('approve', 'deny')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: approvals.decision'); END;

CREATE TRIGGER audit_outcome_typed BEFORE INSERT ON audit_log
WHEN NEW.outcome NOT IN ('success', 'denied', 'error', 'rate_limited')
  OR NEW.actor_kind NOT IN ('user', 'client', 'token', 'system', 'anonymous')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: audit_log.outcome or audit_log.actor_kind'); END;
