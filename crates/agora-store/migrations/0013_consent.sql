-- Agora metadata store, version 13: residents' consent. For purposes whose legal basis is
-- consent, a resident may withdraw it through their citizen portal; an owner keeps here
-- the subjects (as its products' subject column holds them) who withdrew consent for a
-- purpose, and leaves their rows out of every agreement that relies on consent for it.
-- Granting consent again removes the row. Each change bumps the catalog version (so the
-- next query binds the agreements afresh) and is an entry of the transparency log.
CREATE TABLE consent_withdrawals (
    purpose     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    withdrawn_at TEXT NOT NULL,
    PRIMARY KEY (purpose, subject)
);
