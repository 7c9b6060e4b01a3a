-- The typed-state triggers on the two tables the audit writer's append inserts into, on every
-- entry and every proxied draft. `x NOT IN ('a', 'b', ...)` in a trigger's WHEN makes SQLite build
-- an ephemeral table for the list and tear it down again on every row (a b-tree and its page
-- cache opened and closed: about 3.5 µs of a ~1.5 µs insert, measured alone, and about a tenth of
-- the writer's time under load). The same test written as comparisons needs no table. Same rows
-- refused, same messages, same FAIL / ABORT as before (see 0019 and 0005).
DROP TRIGGER audit_outcome_typed;

CREATE TRIGGER audit_outcome_typed BEFORE INSERT ON audit_log
WHEN (NEW.outcome <> 'success' AND NEW.outcome <> 'denied' AND NEW.outcome <> 'error'
      AND NEW.outcome <> 'rate_limited')
  OR (NEW.actor_kind <> 'user' AND NEW.actor_kind <> 'client' AND NEW.actor_kind <> 'token'
      AND NEW.actor_kind <> 'system' AND NEW.actor_kind <> 'anonymous')
BEGIN SELECT RAISE(FAIL, 'CHECK constraint failed: audit_log.outcome or audit_log.actor_kind'); END;

DROP TRIGGER checkout_media_typed;

CREATE TRIGGER checkout_media_typed BEFORE INSERT ON checkout_media
WHEN NEW.kind <> 'image_url' AND NEW.kind <> 'thumb' AND NEW.kind <> 'draft'
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: checkout_media.kind'); END;
