-- The SHA-256 (hex) of the password hash an import-django run last wrote
-- for the user: a re-run replaces the user's hash only when Django's has
-- changed since, so an upgrade made at a latchkey login is not undone and
-- ends no session. (A digest, not the hash: the older, weaker hash is not
-- kept beside the current one.)
ALTER TABLE users ADD COLUMN django_hash_digest TEXT NULL;
