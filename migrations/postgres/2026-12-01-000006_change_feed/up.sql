-- Every change to what the per-request check reads (a user's row, a
-- session's end) is announced on the `latchkey_changes` channel with the
-- user's id, whoever wrote it (an instance, the CLI, import-django, psql):
-- each instance LISTENs and forgets what it cached about that user.
-- NOTIFY is delivered at commit, and not at all on rollback.
CREATE FUNCTION latchkey_user_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('latchkey_changes', OLD.id::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION latchkey_session_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('latchkey_changes', OLD.user_id::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_changed AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION latchkey_user_changed();
CREATE TRIGGER users_deleted AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION latchkey_user_changed();
CREATE TRIGGER sessions_ended AFTER UPDATE OF ended_at ON sessions
    FOR EACH ROW WHEN (OLD.ended_at IS DISTINCT FROM NEW.ended_at)
    EXECUTE FUNCTION latchkey_session_changed();
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION latchkey_session_changed();
