-- Agora metadata store, version 8: the access log — every query by this node's own
-- people and tools (API tokens, web users, the command line) that read data products:
-- who, when, through what, which products and agreements, the SQL's digest, the outcome
-- and the rows returned. Queries from other members are in the exchange log.
CREATE TABLE access_log (
    id              TEXT PRIMARY KEY,
    started_at      TEXT NOT NULL,
    principal       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    products        TEXT NOT NULL,
    agreements      TEXT NOT NULL,
    sql_digest      TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    rows_returned   BIGINT NOT NULL,
    finished_at     TEXT
);

CREATE INDEX access_log_started_at ON access_log (started_at);
