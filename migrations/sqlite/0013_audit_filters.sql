-- The audit review's filters at six months' scale (tens of millions of entries): each filter a
-- person, an account or target, an action, an outcome walks its own index in seq order, newest
-- first, and stops at a page. A time range becomes a range of seqs through audit_by_ts (the writer
-- never stamps an entry earlier than the one before it; in SQLite that index already ends in seq).
CREATE INDEX audit_by_action ON audit_log (action, seq);
CREATE INDEX audit_by_outcome ON audit_log (outcome, seq);
