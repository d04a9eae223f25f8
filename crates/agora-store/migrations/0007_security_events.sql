-- Agora metadata store, version 7: security events — every refused, throttled or
-- turned-away sign-in, with the account name given and the client's address, for the
-- administrator and auditors.
CREATE TABLE security_events (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    client TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE INDEX security_events_at ON security_events (at);
