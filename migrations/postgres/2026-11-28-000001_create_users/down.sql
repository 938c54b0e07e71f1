DROP INDEX IF EXISTS users_email_trgm_idx;
DROP INDEX IF EXISTS users_created_at_id_idx;
DROP TABLE users;
-- pg_trgm is left installed: other schemas in the database may use it.
