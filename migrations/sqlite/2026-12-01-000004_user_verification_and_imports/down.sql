DROP TABLE django_imports;
ALTER TABLE users DROP COLUMN password_changed_at;
ALTER TABLE users DROP COLUMN imported_from_django;
ALTER TABLE users DROP COLUMN email_verified;
