//! Request bodies as DRF parses them: JSON or form-encoded, into one map of
//! fields; anything else is 415. (Reading the body, within `MAX_BODY_SIZE`
//! and `CLIENT_BODY_TIMEOUT`, is `crate::http::extract`'s.)

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldErrors};

pub const REQUIRED: &str = "This field is required.";
pub const BLANK: &str = "This field may not be blank.";
pub const NULL: &str = "This field may not be null.";
pub const NOT_A_STRING: &str = "Not a valid string.";
pub const NOT_A_BOOLEAN: &str = "Must be a valid boolean.";
/// DRF's `CharField` refuses NUL, which PostgreSQL cannot store in text.
pub const NULL_CHARACTER: &str = "Null characters are not allowed.";

/// The fields of a request body (empty when there is no body).
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Map<String, Value>);

/// Parses a body as DRF does, given its `Content-Type`: JSON or form
/// fields, 415 for anything else. Never panics, whatever the bytes.
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Fields, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Fields::default());
    }
    let content_type = content_type.unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"))
    {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))?;
        match value {
            Value::Object(map) => Ok(Fields(map)),
            other => Err(ApiError::Fields(FieldErrors::single(
                "non_field_errors",
                format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    json_type_name(&other)
                ),
            ))),
        }
    } else if media == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::BadRequest(format!("Form parse error - {e}")))?;
        Ok(Fields(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(if content_type.is_empty() {
            "".into()
        } else {
            content_type.to_owned()
        }))
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}

impl Fields {
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// A string field as DRF's `CharField`: required, not null, not blank.
    /// `None` exactly when it added the field's error.
    pub fn required_string(&self, field: &str, errors: &mut FieldErrors) -> Option<String> {
        match self.0.get(field) {
            None => {
                errors.add(field, REQUIRED);
                None
            }
            Some(Value::Null) => {
                errors.add(field, NULL);
                None
            }
            Some(Value::String(s)) if s.contains('\0') => {
                errors.add(field, NULL_CHARACTER);
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.add(field, BLANK);
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                errors.add(field, NOT_A_STRING);
                None
            }
        }
    }

    /// A code field (a TOTP or recovery code): as
    /// [`Fields::required_string`], except that a NUL is kept, for the check
    /// to refuse as an incorrect code like any character that does not
    /// belong in a code (the code is never stored).
    pub fn required_code(&self, field: &str, errors: &mut FieldErrors) -> Option<String> {
        match self.0.get(field) {
            Some(Value::String(s)) if s.contains('\0') => Some(s.clone()),
            _ => self.required_string(field, errors),
        }
    }

    /// One required string field, alone: its value or the 400.
    pub fn required(&self, field: &str) -> Result<String, ApiError> {
        let mut errors = FieldErrors::default();
        self.required_string(field, &mut errors)
            .ok_or(ApiError::Fields(errors))
    }

    /// An optional string field: absent is `None`, present must be valid.
    pub fn optional_string(&self, field: &str, errors: &mut FieldErrors) -> Option<String> {
        if self.has(field) {
            self.required_string(field, errors)
        } else {
            None
        }
    }

    /// An optional boolean field; form bodies send `true`/`false` as text.
    pub fn optional_bool(&self, field: &str, errors: &mut FieldErrors) -> Option<bool> {
        match self.0.get(field)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) if n.as_i64() == Some(1) => Some(true),
            Value::Number(n) if n.as_i64() == Some(0) => Some(false),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => Some(true),
                "false" | "0" | "off" | "no" => Some(false),
                _ => {
                    errors.add(field, NOT_A_BOOLEAN);
                    None
                }
            },
            _ => {
                errors.add(field, NOT_A_BOOLEAN);
                None
            }
        }
    }
}
