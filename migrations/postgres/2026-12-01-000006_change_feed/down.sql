DROP TRIGGER sessions_deleted ON sessions;
DROP TRIGGER sessions_ended ON sessions;
DROP TRIGGER users_deleted ON users;
DROP TRIGGER users_changed ON users;
DROP FUNCTION latchkey_session_changed();
DROP FUNCTION latchkey_user_changed();
