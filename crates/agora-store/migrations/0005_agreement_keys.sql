-- Agora metadata store, version 5: the public keys that made each agreement's two
-- signatures (base64 Ed25519), so that an agreement can be checked again at any time, also
-- after either member renewed its certificate with a new key.
ALTER TABLE negotiations ADD COLUMN owner_key TEXT;
ALTER TABLE negotiations ADD COLUMN consumer_key TEXT;
