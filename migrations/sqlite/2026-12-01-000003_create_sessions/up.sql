-- A session: what one login, register, sliding login or password change
-- starts, named by the `sid` claim of every token it issues. Ending it
-- (logout, revocation, reuse detection) refuses all of those tokens at once.
CREATE TABLE sessions (
    id VARCHAR(64) PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    user_agent VARCHAR(256) NULL,
    ip VARCHAR(64) NULL,
    ended_at TIMESTAMP NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Every chain of refresh tokens issued before sessions existed becomes a
-- session, live unless every token of it is blacklisted: nobody is logged
-- out by the upgrade.
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, ended_at)
SELECT o.session_id,
       MIN(o.user_id),
       MIN(o.issued_at),
       MAX(o.issued_at),
       MAX(o.expires_at),
       CASE WHEN COUNT(b.id) = COUNT(o.id) THEN MAX(b.blacklisted_at) END
FROM outstanding_tokens o
LEFT JOIN blacklisted_tokens b ON b.token_id = o.id
GROUP BY o.session_id;
