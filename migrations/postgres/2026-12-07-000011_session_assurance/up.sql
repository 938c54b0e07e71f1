-- How each session was authenticated, copied into every token it issues
-- (the `amr` and `aal` claims, v3):
--   amr: the methods, in order, as a JSON list ("pwd", "otp", "rec",
--   "hwk", "fed");
--   aal: 2 after two factors or a user-verified passkey, else 1.
-- Every session before this began with a password alone.
ALTER TABLE sessions ADD COLUMN amr VARCHAR(64) NOT NULL DEFAULT '["pwd"]';
ALTER TABLE sessions ADD COLUMN aal INTEGER NOT NULL DEFAULT 1;
