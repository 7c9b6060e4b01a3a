-- The lease that makes one of several `serve` processes on this database the active node (issue
-- 22; `[cluster]` in the configuration). One row. `term` grows by one at every takeover; every
-- write of a clustered node proves, inside its own transaction, that it still holds the term it
-- was given and that the lease has not run out by the database's clock. A single node (no
-- `[cluster]`) never reads or writes this row.

CREATE TABLE lease (
    id          BIGINT  PRIMARY KEY CHECK (id = 1),
    holder      TEXT    NOT NULL,
    address     TEXT    NOT NULL,
    term        BIGINT  NOT NULL,
    -- Unix milliseconds by the database server's clock.
    expires_at  BIGINT  NOT NULL
);

INSERT INTO lease (id, holder, address, term, expires_at) VALUES (1, '', '', 0, 0);
