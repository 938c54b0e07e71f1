-- The outbox: every email latchkey sends is written here in the same
-- transaction as the change that causes it, then delivered by the background
-- sender of whichever instance claims it (see docs/email.md).
--   status: 'queued' (waiting or being retried), 'sent' or 'failed'.
--   attempts: SMTP tries made so far (the first included).
--   next_attempt_at: not before this instant (1 s doubling to EMAIL_RETRY_MAX).
--   claim_id / claimed_until: the lease of the instance sending it now;
--   an expired lease (the instance died mid-send) may be claimed again.
-- The bodies of a sent email are blanked (they hold single-use links);
-- sent and failed rows are deleted after EMAIL_RETENTION.
CREATE TABLE email_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient VARCHAR(254) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    claim_id VARCHAR(64) NULL,
    claimed_until TIMESTAMP NULL,
    last_error TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NULL
);
CREATE INDEX email_outbox_due_idx ON email_outbox (status, next_attempt_at);
CREATE INDEX email_outbox_finished_idx ON email_outbox (finished_at);

-- Password reset tokens: only the SHA-256 of each token is kept. A token is
-- good once, until expires_at (PASSWORD_RESET_TIMEOUT), for the address it
-- was sent to, and only if the password has not changed since created_at.
CREATE TABLE password_reset_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email VARCHAR(254) NOT NULL,
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP NULL
);
CREATE INDEX password_reset_tokens_user_id_idx ON password_reset_tokens (user_id);
CREATE INDEX password_reset_tokens_expires_at_idx ON password_reset_tokens (expires_at);

-- Email verification keys (SHA-256 kept): only the latest key of a user
-- works, only while the user's address is still the one it was sent to and
-- until expires_at (EMAIL_VERIFICATION_TIMEOUT).
CREATE TABLE email_verification_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email VARCHAR(254) NOT NULL,
    key_hash VARCHAR(64) NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX email_verification_keys_user_id_idx ON email_verification_keys (user_id);
CREATE INDEX email_verification_keys_expires_at_idx ON email_verification_keys (expires_at);
