-- Agora metadata store, version 12: residents signing in to the citizen portal. A
-- one-time code is issued for one resident (by `agora citizen code`, or the demo), kept
-- only as a digest, valid for minutes and used once. A resident's session is a random
-- secret in a cookie, kept only as a digest, with its CSRF token.
CREATE TABLE citizen_codes (
    code_hash   TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL,
    issued_by   TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE TABLE citizen_sessions (
    id_hash     TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
