-- email_verified: the address was confirmed through a verification email
-- (or the user came from Django, or the CLI made them).
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT 0;
-- Users that `latchkey import-django` created: only they may be updated by a
-- re-run, and only their never-recorded Django refresh tokens are adopted.
ALTER TABLE users ADD COLUMN imported_from_django BOOLEAN NOT NULL DEFAULT 0;
-- The last time the password changed by any path (reset tokens issued before
-- it are dead).
ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMP NULL;
-- (SQLite does not enforce VARCHAR lengths: password_hash needs no change.)

-- One row per `import-django` run; the latest `imported_at` bounds which
-- Django refresh tokens may be adopted.
CREATE TABLE django_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    imported_at TIMESTAMP NOT NULL,
    source VARCHAR(255) NOT NULL,
    users BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    blacklisted BIGINT NOT NULL
);
