-- Agora metadata store, version 9: the transparency log — an append-only Merkle log of
-- every event an auditor or a resident may ask about (see agora-trust's tlog and the
-- store's tlog.rs).
--
-- Entries are kept in chunks: the entries one append group wrote into one C2SP entry
-- bundle (256 entries), in the bundle's own encoding (each entry a 16-bit big-endian
-- length and its bytes), so that a bundle is its chunks' data put together and nothing
-- written is ever rewritten. Each chunk says what its entries are about (the sets of
-- kinds, peers, products, agreements, purposes and outcomes, as ',a,b,' text, and the
-- time span), so that an auditor's filters read only the chunks that can match.
-- The tree's hashes are kept as C2SP tlog-tiles tiles (256 hashes of one level; the
-- right edge of each level is rewritten as it grows). Every checkpoint the node signed
-- is kept.
CREATE TABLE tlog_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    size    BIGINT NOT NULL,
    root    TEXT NOT NULL
);

INSERT INTO tlog_state (id, size, root)
VALUES (1, 0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');

CREATE TABLE tlog_chunks (
    first       BIGINT PRIMARY KEY,
    count       INTEGER NOT NULL,
    first_at    TEXT NOT NULL,
    last_at     TEXT NOT NULL,
    kinds       TEXT NOT NULL,
    peers       TEXT NOT NULL,
    products    TEXT NOT NULL,
    agreements  TEXT NOT NULL,
    purposes    TEXT NOT NULL,
    outcomes    TEXT NOT NULL,
    data        BYTEA NOT NULL
);

CREATE INDEX tlog_chunks_last_at ON tlog_chunks (last_at);

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

-- A checkpoint as the authority cosigned it (the note with its cosignature), once it has.
ALTER TABLE tlog_checkpoints ADD COLUMN witnessed_note TEXT;

-- On an authority: the latest checkpoint of each member's log that it witnessed (checked
-- consistent with the one before), and every inconsistency it detected.
CREATE TABLE witnessed_logs (
    member_id       TEXT PRIMARY KEY,
    origin          TEXT NOT NULL,
    size            BIGINT NOT NULL,
    root            TEXT NOT NULL,
    note            TEXT NOT NULL,
    witnessed_at    TEXT NOT NULL
);

CREATE TABLE witness_alerts (
    id              TEXT PRIMARY KEY,
    member_id       TEXT NOT NULL,
    detected_at     TEXT NOT NULL,
    witnessed_size  BIGINT NOT NULL,
    claimed_size    BIGINT NOT NULL,
    reason          TEXT NOT NULL
);
