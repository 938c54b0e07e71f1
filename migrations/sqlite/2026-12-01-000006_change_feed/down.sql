DROP TRIGGER sessions_deleted;
DROP TRIGGER sessions_ended;
DROP TRIGGER users_deleted;
DROP TRIGGER users_changed;
DROP TABLE user_changes;
