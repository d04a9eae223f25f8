-- Agora metadata store, version 3: the ecosystem authority's records (when this store
-- belongs to an authority), and a node's exchange log and federated catalog.

-- ---- authority ----

CREATE TABLE authority (
    id              BIGINT PRIMARY KEY,
    ecosystem       TEXT NOT NULL,
    url             TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    -- sequence number of the last published trust list
    list_sequence   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE authority_members (
    member_id       TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    endpoints_json  TEXT NOT NULL,
    admitted_at     TEXT NOT NULL,
    -- set when the whole member is revoked
    revoked_at      TEXT,
    revoked_reason  TEXT
);

-- One-time enrolment tokens: only the SHA-256 of the secret is kept.
CREATE TABLE enrolment_tokens (
    token_hash  TEXT PRIMARY KEY,
    member_id   TEXT NOT NULL REFERENCES authority_members (member_id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

CREATE TABLE issued_certificates (
    fingerprint     TEXT PRIMARY KEY,
    serial          TEXT NOT NULL UNIQUE,
    member_id       TEXT NOT NULL REFERENCES authority_members (member_id),
    kind            TEXT NOT NULL,
    not_before      TEXT NOT NULL,
    not_after       TEXT NOT NULL,
    issued_at       TEXT NOT NULL,
    cert_pem        TEXT NOT NULL,
    revoked_at      TEXT,
    revoked_reason  TEXT
);
CREATE INDEX issued_certificates_by_member ON issued_certificates (member_id);

-- ---- node: exchange log ----

-- One row per request/response with another member, written by each side. Inbound rows are
-- inserted before the request is served (so a replayed nonce is refused by the unique key)
-- and completed afterwards. The format is documented in ARCHITECTURE.md.
CREATE TABLE exchange_log (
    seq                 BIGINT PRIMARY KEY,
    direction           TEXT NOT NULL,
    peer                TEXT NOT NULL,
    peer_certificate    TEXT NOT NULL,
    operation           TEXT NOT NULL,
    nonce               TEXT NOT NULL,
    requested_at        TEXT NOT NULL,
    request_digest      TEXT NOT NULL,
    request_signature   TEXT NOT NULL,
    response_digest     TEXT NOT NULL,
    response_signature  TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    duration_ms         BIGINT NOT NULL,
    rows_returned       BIGINT NOT NULL,
    bytes_returned      BIGINT NOT NULL,
    UNIQUE (direction, peer, nonce)
);

-- ---- node: federated catalog ----

-- What other members offer (metadata only, never data), as last fetched from them.
CREATE TABLE offers (
    id              TEXT PRIMARY KEY,
    member_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    title           TEXT NOT NULL,
    classification  TEXT NOT NULL,
    product_json    TEXT NOT NULL,
    fetched_at      TEXT NOT NULL,
    UNIQUE (member_id, name)
);

CREATE TABLE offer_terms (
    offer_id    TEXT NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    term        TEXT NOT NULL,
    weight      BIGINT NOT NULL,
    PRIMARY KEY (offer_id, term)
);
CREATE INDEX offer_terms_by_term ON offer_terms (term);

-- When each member's offers were last fetched, and how that went.
CREATE TABLE offer_sources (
    member_id   TEXT PRIMARY KEY,
    fetched_at  TEXT NOT NULL,
    outcome     TEXT NOT NULL
);
