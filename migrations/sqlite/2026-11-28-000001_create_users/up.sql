CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email VARCHAR(254) NOT NULL,
    password_hash VARCHAR(128) NOT NULL,
    is_superuser BOOLEAN NOT NULL DEFAULT 0,
    is_active BOOLEAN NOT NULL DEFAULT 1,
    is_staff BOOLEAN NOT NULL DEFAULT 0,
    last_login TIMESTAMP NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    tokens_valid_after TIMESTAMP NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Serves `?ordering=created_at` / `-created_at` (id breaks ties).
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
