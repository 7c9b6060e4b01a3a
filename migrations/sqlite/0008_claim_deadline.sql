-- An approval must be claimed within a window set by policy (`claim_minutes`, default 30); after
-- its deadline it expires. `claim_seconds` is fixed when the checkout is requested, the deadline
-- when the last approval arrives.

ALTER TABLE checkouts ADD COLUMN claim_seconds INTEGER NOT NULL DEFAULT 1800;
ALTER TABLE checkouts ADD COLUMN claim_deadline INTEGER;
