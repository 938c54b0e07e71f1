-- An identity at an external provider (OpenID Connect, OAuth 2) linked to a
-- user. (provider, subject) is unique: of two first logins of one new
-- identity, on any instance, one links it and the other finds it linked.
--   provider: the configured name (SOCIAL_PROVIDERS), as allauth names it.
--   subject: the provider's `sub` (GitHub's numeric id in decimal).
--   email: the address the provider gave when it was linked.
CREATE TABLE provider_identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider VARCHAR(64) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email VARCHAR(254) NULL,
    linked_at TIMESTAMP NOT NULL,
    last_login TIMESTAMP NULL,
    CONSTRAINT provider_identities_provider_subject_key UNIQUE (provider, subject)
);
CREATE INDEX provider_identities_user_id_idx ON provider_identities (user_id);

-- ID tokens a native app posted and latchkey accepted: each only once,
-- kept (as its SHA-256) until it expires; the primary key decides.
CREATE TABLE accepted_id_tokens (
    token_hash VARCHAR(64) PRIMARY KEY,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX accepted_id_tokens_expires_at_idx ON accepted_id_tokens (expires_at);
