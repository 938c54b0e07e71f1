-- Drops the outbox (queued mail is lost) and every reset token and
-- verification key (links already sent stop working).
DROP TABLE email_verification_keys;
DROP TABLE password_reset_tokens;
DROP TABLE email_outbox;
