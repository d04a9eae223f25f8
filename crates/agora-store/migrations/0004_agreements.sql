-- Agora metadata store, version 4: sharing agreements and their negotiation, the messages
-- a node still owes other members, and the log of policy decisions.

-- One row per negotiation and side: both sides of a negotiation between two nodes use the
-- same id; a store holding both (tests, one process serving two members) keeps two rows.
CREATE TABLE negotiations (
    id                  TEXT NOT NULL,
    role                TEXT NOT NULL,
    consumer            TEXT NOT NULL,
    owner               TEXT NOT NULL,
    product             TEXT NOT NULL,
    purpose             TEXT NOT NULL,
    state               TEXT NOT NULL,
    request_json        TEXT NOT NULL,
    offer_json          TEXT,
    agreement_json      TEXT,
    owner_signature     TEXT,
    consumer_signature  TEXT,
    reason              TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    deadline            TEXT NOT NULL,
    PRIMARY KEY (id, role)
);
CREATE INDEX negotiations_by_parties ON negotiations (owner, consumer, product, state);

-- Every step of every negotiation, in order: who did what, when, and why.
CREATE TABLE negotiation_events (
    negotiation_id  TEXT NOT NULL,
    role            TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    at              TEXT NOT NULL,
    state           TEXT NOT NULL,
    actor           TEXT NOT NULL,
    note            TEXT NOT NULL,
    PRIMARY KEY (negotiation_id, role, seq)
);

-- Messages to other members that must arrive (negotiation steps, terminations): kept until
-- delivered, retried with back-off.
CREATE TABLE outbox (
    id              BIGINT PRIMARY KEY,
    peer            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body_json       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT
);

-- Every access decision of the policy layer, with the policies that decided it.
CREATE TABLE policy_decisions (
    seq             BIGINT PRIMARY KEY,
    at              TEXT NOT NULL,
    principal       TEXT NOT NULL,
    action          TEXT NOT NULL,
    resource        TEXT NOT NULL,
    decision        TEXT NOT NULL,
    policies_json   TEXT NOT NULL,
    reasons         TEXT NOT NULL,
    context_json    TEXT NOT NULL
);
