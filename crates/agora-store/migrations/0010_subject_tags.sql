-- Agora metadata store, version 10: whose records each answer carried, for the people they
-- are about. An entry of the transparency log for an answer under a record-level agreement
-- commits to its subjects' tags (a count and a Merkle root); the tags themselves (64 bytes
-- each, concatenated in ascending order) are kept here, by the entry's index, written in
-- the same transaction as the entry. They are the node's own: never in the log, never
-- served but to show one subject the entries about them.
CREATE TABLE tlog_subjects (
    entry   BIGINT PRIMARY KEY,
    tags    BYTEA NOT NULL
);
