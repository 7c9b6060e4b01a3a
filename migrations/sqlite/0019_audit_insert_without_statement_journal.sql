-- The audit writer inserts a batch of entries with one multi-row INSERT inside its transaction.
-- A RAISE(ABORT) trigger made SQLite keep a statement journal for that INSERT (a copy of every
-- page it touches, so the statement alone could be undone): about a sixth of the writer's time.
-- The batch never needs that: if any row is refused, the writer rolls the whole transaction
-- back and answers every waiter with the error. RAISE(FAIL) refuses the same rows with the same
-- message and needs no statement journal (the INSERT says OR FAIL for the same reason).
DROP TRIGGER audit_outcome_typed;

CREATE TRIGGER audit_outcome_typed BEFORE INSERT ON audit_log
WHEN NEW.outcome NOT IN ('success', 'denied', 'error', 'rate_limited')
  OR NEW.actor_kind NOT IN ('user', 'client', 'token', 'system', 'anonymous')
BEGIN SELECT RAISE(FAIL, 'CHECK constraint failed: audit_log.outcome or audit_log.actor_kind'); END;
