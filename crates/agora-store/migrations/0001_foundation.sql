-- Agora metadata store, version 1: node identity, data products, search terms, API tokens.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Timestamps are RFC 3339 UTC text.

CREATE TABLE node (
    id          BIGINT PRIMARY KEY,
    member_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE products (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    title           TEXT NOT NULL,
    owner           TEXT NOT NULL,
    classification  TEXT NOT NULL,
    source_json     TEXT NOT NULL,
    schema_json     TEXT NOT NULL,
    metadata_json   TEXT NOT NULL,
    profile_json    TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    version         BIGINT NOT NULL
);

CREATE TABLE product_terms (
    product_id  TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    term        TEXT NOT NULL,
    weight      BIGINT NOT NULL,
    PRIMARY KEY (product_id, term)
);
CREATE INDEX product_terms_by_term ON product_terms (term);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    label         TEXT NOT NULL,
    role          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    last_used_at  TEXT
);
