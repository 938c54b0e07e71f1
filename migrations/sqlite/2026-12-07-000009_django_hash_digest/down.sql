ALTER TABLE users DROP COLUMN django_hash_digest;
