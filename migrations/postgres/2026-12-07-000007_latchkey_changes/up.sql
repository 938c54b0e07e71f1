-- When latchkey last changed what an `import-django` re-run would overwrite:
-- a password set by the user, staff or a reset, the email, is_active,
-- is_staff or is_superuser (not a hash upgrade at login, last_login or a
-- logout). A re-run keeps such users as latchkey has them unless
-- --overwrite; writing a user from Django clears it.
ALTER TABLE users ADD COLUMN changed_in_latchkey_at TIMESTAMP NULL;

-- Imported users changed since the latest import before this column
-- existed: a password change or reset moved password_changed_at, and a
-- change of the email or a flag moved updated_at past the import (a re-run
-- writes Django's own updated_at, which is older). Upgrades at login touch
-- neither.
UPDATE users SET changed_in_latchkey_at = CASE
        WHEN password_changed_at IS NOT NULL AND password_changed_at > updated_at
            THEN password_changed_at
        ELSE updated_at
    END
WHERE imported_from_django
  AND (password_changed_at > (SELECT MAX(imported_at) FROM django_imports)
       OR updated_at > (SELECT MAX(imported_at) FROM django_imports));
