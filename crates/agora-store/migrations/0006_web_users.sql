-- Agora metadata store, version 6: the people who sign in to the node's web interface and
-- their sessions. Passwords are kept only as Argon2id hashes (PHC strings, made by
-- agora-trust); a session is known by the SHA-256 of its cookie secret, never the secret.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX web_sessions_user ON web_sessions (user_id);
