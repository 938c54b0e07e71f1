-- Ceremonies: the short-lived, single-use state of a login or enrolment
-- that takes more than one request (a pending second factor, a WebAuthn
-- challenge, an OpenID Connect state with its nonce and PKCE verifier, a
-- one-time code). Any instance may answer the next step, so it lives here.
--   kind: what it is ('mfa_pending', 'webauthn', 'oidc_state', ...);
--   handle_hash: the SHA-256 (hex) of the handle the client holds: the
--   handle itself is never stored;
--   user_id: whose it is, once known;
--   payload: what the next step needs, as JSON;
--   tries: wrong answers so far;
--   consumed_at: set once, by the one step that used it up.
-- Expired rows are deleted by `latchkey flush-expired-tokens`.
CREATE TABLE ceremonies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind VARCHAR(32) NOT NULL,
    handle_hash VARCHAR(64) NOT NULL,
    user_id BIGINT NULL REFERENCES users (id) ON DELETE CASCADE,
    payload TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    consumed_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX ceremonies_kind_handle_idx ON ceremonies (kind, handle_hash);
CREATE INDEX ceremonies_expires_at_idx ON ceremonies (expires_at);
CREATE INDEX ceremonies_user_id_idx ON ceremonies (user_id);
