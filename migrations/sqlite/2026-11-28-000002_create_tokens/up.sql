-- Every refresh token ever issued (simplejwt's OutstandingToken), with the
-- session (chain of rotations) it belongs to and the token that replaced it.
-- The token text itself is never stored.
CREATE TABLE outstanding_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    jti VARCHAR(64) NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id VARCHAR(64) NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    replaced_by_jti VARCHAR(64) NULL,
    replaced_at TIMESTAMP NULL,
    CONSTRAINT outstanding_tokens_jti_key UNIQUE (jti)
);
CREATE INDEX outstanding_tokens_user_id_idx ON outstanding_tokens (user_id);
CREATE INDEX outstanding_tokens_session_id_idx ON outstanding_tokens (session_id);
CREATE INDEX outstanding_tokens_expires_at_idx ON outstanding_tokens (expires_at);

-- simplejwt's BlacklistedToken: one row per outstanding token that may never
-- be used again.
CREATE TABLE blacklisted_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id BIGINT NOT NULL REFERENCES outstanding_tokens (id) ON DELETE CASCADE,
    blacklisted_at TIMESTAMP NOT NULL,
    CONSTRAINT blacklisted_tokens_token_id_key UNIQUE (token_id)
);
