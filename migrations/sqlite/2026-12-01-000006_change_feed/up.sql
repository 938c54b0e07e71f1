-- Every change to what the per-request check reads (a user's row, a
-- session's end) is logged here with the user's id, whoever wrote it (an
-- instance, the CLI, import-django, sqlite3): each instance reads the rows
-- after the last one it saw and forgets what it cached about those users.
-- Rows older than a few minutes are pruned by the readers.
CREATE TABLE user_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL,
    changed_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TRIGGER users_changed AFTER UPDATE ON users
BEGIN
    INSERT INTO user_changes (user_id) VALUES (OLD.id);
END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO user_changes (user_id) VALUES (OLD.id);
END;
CREATE TRIGGER sessions_ended AFTER UPDATE OF ended_at ON sessions
    WHEN OLD.ended_at IS NOT NEW.ended_at
BEGIN
    INSERT INTO user_changes (user_id) VALUES (OLD.user_id);
END;
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
BEGIN
    INSERT INTO user_changes (user_id) VALUES (OLD.user_id);
END;
