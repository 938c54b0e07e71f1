-- Unresolved requests cannot be sent by the older code: they are dropped.
DELETE FROM email_outbox WHERE kind <> 'message';
ALTER TABLE email_outbox DROP COLUMN kind;
