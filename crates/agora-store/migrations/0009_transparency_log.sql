-- Agora metadata store, version 9: the transparency log — an append-only Merkle log of
-- every event an auditor or a resident may ask about (see agora-trust's tlog and the
-- store's tlog.rs). Entries are kept one per row with the fields an auditor filters on;
-- the tree's hashes are kept as C2SP tlog-tiles tiles (256 hashes of one level, the right
-- edge of each level rewritten as it grows); the node's signed checkpoints are kept all.
CREATE TABLE tlog_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    size    BIGINT NOT NULL,
    root    TEXT NOT NULL
);

INSERT INTO tlog_state (id, size, root)
VALUES (1, 0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');

CREATE TABLE tlog_entries (
    idx         BIGINT PRIMARY KEY,
    kind        TEXT NOT NULL,
    at          TEXT NOT NULL,
    reference   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    peer        TEXT,
    product     TEXT,
    agreement   TEXT,
    purpose     TEXT,
    outcome     TEXT NOT NULL,
    data        BYTEA NOT NULL
);

CREATE INDEX tlog_entries_at ON tlog_entries (at);
CREATE INDEX tlog_entries_reference ON tlog_entries (reference);

CREATE TABLE tlog_tiles (
    level   INTEGER NOT NULL,
    idx     BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE tlog_checkpoints (
    size        BIGINT PRIMARY KEY,
    note        TEXT NOT NULL,
    made_at     TEXT NOT NULL
);
