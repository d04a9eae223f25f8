-- Agora metadata store, version 11: the subject index, the inverse of `tlog_subjects` —
-- for each subject tag, the entries whose answers carried that subject's records. Written
-- in the same transaction as the entry and its tags. Every checkpoint commits to the index
-- of the entries it covers (see `agora_trust::tlog::SubjectIndex`), so that a resident can
-- be shown every access to their records in the log, and that there is no other. Read by
-- range of tag (one bucket: tags with the same first byte).
CREATE TABLE tlog_subject_entries (
    tag     BYTEA NOT NULL,
    entry   BIGINT NOT NULL,
    PRIMARY KEY (tag, entry)
);
