ALTER TABLE users DROP COLUMN changed_in_latchkey_at;
