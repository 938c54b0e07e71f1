-- A user's TOTP device: at most one row per user, kept when TOTP is
-- disabled (without its secret) so that the last accepted step survives
-- disabling and enrolling again.
--   secret_sealed / secret_key_id: the secret, sealed with AES-256-GCM
--   (the user id as associated data) under the key of that id; NULL when
--   TOTP is disabled. A secret is pending until enabled_at is set.
--   digits, step, t0: how the device makes codes (6, 30 s, 0 unless
--   imported from django-otp with others).
--   last_step_at: the start (Unix seconds) of the last step accepted, by
--   any endpoint on any instance: a code is accepted only for a later step,
--   decided by one conditional UPDATE.
CREATE TABLE totp_devices (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed TEXT NULL,
    secret_key_id VARCHAR(16) NULL,
    digits INTEGER NOT NULL DEFAULT 6,
    step INTEGER NOT NULL DEFAULT 30,
    t0 BIGINT NOT NULL DEFAULT 0,
    enabled_at TIMESTAMP NULL,
    last_step_at BIGINT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Recovery codes: only a keyed hash (HMAC-SHA-256) of each, used once.
--   format: how a typed code is reduced before hashing: 'latchkey' (12
--   base32 characters, any case, dashes and spaces ignored) or 'as_stored'
--   (an imported django-otp static token or allauth code: whitespace
--   ignored, otherwise as typed).
CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash VARCHAR(64) NOT NULL,
    format VARCHAR(16) NOT NULL DEFAULT 'latchkey',
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP NULL
);
CREATE INDEX recovery_codes_user_id_idx ON recovery_codes (user_id);
