-- What a row of the outbox holds:
--   'message': a rendered email, ready to send (every row before this);
--   'password_reset': a reset request for the address in recipient, bodies
--   empty. The request writes it whether or not the address has an account
--   (so the request does the same work and the same writes for every
--   address); the sender resolves it: for an active user with a usable
--   password it makes the token and renders the email into the row (which
--   becomes a 'message'), for any other address it deletes the row.
ALTER TABLE email_outbox ADD COLUMN kind VARCHAR(32) NOT NULL DEFAULT 'message';
