//! What the API shows of a user: never the password hash.

use chrono::NaiveDateTime;
use latchkey_persistence::User;
use serde_json::{Value, json};

/// ISO 8601 in UTC with microseconds and `Z`, as DRF renders datetimes.
pub fn timestamp(instant: NaiveDateTime) -> String {
    instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "last_login": user.last_login.map(timestamp),
        "created_at": timestamp(user.created_at),
        "updated_at": timestamp(user.updated_at),
    })
}
