//! The second factor's request bodies. None of them derives `Debug`: they
//! hold codes, passwords and `mfa_token`s, which never reach a log.

use utoipa::ToSchema;

use super::Form;
use crate::body::Fields;
use crate::error::{ApiError, FieldErrors};

pub const EITHER_CODE: &str = "Send either code or recovery_code, not both.";

/// A second factor as typed: a TOTP code or a recovery code.
pub enum Factor {
    Totp(String),
    RecoveryCode(String),
    /// `code` at `DELETE /auth/mfa/totp/`: a TOTP code or a recovery code.
    Either(String),
}

impl Factor {
    /// The field a wrong one is reported under.
    pub fn field(&self) -> &'static str {
        match self {
            Factor::RecoveryCode(_) => "recovery_code",
            Factor::Totp(_) | Factor::Either(_) => "code",
        }
    }
}

/// `POST /auth/mfa/verify/`: the login's second step.
#[derive(ToSchema)]
pub struct MfaVerifyForm {
    /// From the `mfa_required` answer.
    pub mfa_token: String,
    /// A TOTP code (or send `recovery_code` instead).
    #[schema(example = "123456")]
    pub code: Option<String>,
    /// One of the recovery codes, `xxxx-xxxx-xxxx`, in any case, dashes
    /// optional.
    pub recovery_code: Option<String>,
}

/// [`MfaVerifyForm`] as read: the token and exactly one factor.
pub struct MfaVerify {
    pub mfa_token: String,
    pub factor: Factor,
}

impl Form for MfaVerify {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let mfa_token = fields.required_string("mfa_token", &mut errors);
        let factor = match (fields.has("code"), fields.has("recovery_code")) {
            (true, true) => {
                errors.add("non_field_errors", EITHER_CODE);
                None
            }
            (false, true) => fields
                .required_code("recovery_code", &mut errors)
                .map(Factor::RecoveryCode),
            _ => fields.required_code("code", &mut errors).map(Factor::Totp),
        };
        match (mfa_token, factor) {
            (Some(mfa_token), Some(factor)) if errors.is_empty() => {
                Ok(MfaVerify { mfa_token, factor })
            }
            _ => Err(ApiError::Fields(errors)),
        }
    }
}

/// `POST /auth/mfa/totp/confirm/` and `POST /auth/mfa/recovery-codes/`: a
/// TOTP code.
#[derive(ToSchema)]
pub struct TotpCodeForm {
    #[schema(example = "123456")]
    pub code: String,
}

impl Form for TotpCodeForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        match fields.required_code("code", &mut errors) {
            Some(code) => Ok(TotpCodeForm { code }),
            None => Err(ApiError::Fields(errors)),
        }
    }
}

/// Whether the caller has a usable password, which they must then give.
pub struct OwnPassword {
    pub usable: bool,
}

fn current_password(
    fields: &Fields,
    own: &OwnPassword,
    errors: &mut FieldErrors,
) -> Option<String> {
    if own.usable {
        fields.required_string("current_password", errors)
    } else {
        fields.optional_string("current_password", errors)
    }
}

/// `POST /auth/mfa/totp/`: start enrolling.
#[derive(ToSchema)]
pub struct TotpStartForm {
    /// Required when the user has a usable password.
    pub current_password: Option<String>,
}

impl Form for TotpStartForm {
    type Context = OwnPassword;
    type Error = ApiError;

    fn parse(fields: &Fields, own: &OwnPassword) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let current_password = current_password(fields, own, &mut errors);
        errors.into_result()?;
        Ok(TotpStartForm { current_password })
    }
}

/// `DELETE /auth/mfa/totp/`: turn TOTP off.
#[derive(ToSchema)]
pub struct TotpDisableForm {
    /// Required when the user has a usable password.
    pub current_password: Option<String>,
    /// A TOTP code or a recovery code.
    #[schema(example = "123456")]
    pub code: String,
}

/// [`TotpDisableForm`] as read.
pub struct TotpDisable {
    pub current_password: Option<String>,
    pub factor: Factor,
}

impl Form for TotpDisable {
    type Context = OwnPassword;
    type Error = ApiError;

    fn parse(fields: &Fields, own: &OwnPassword) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let current_password = current_password(fields, own, &mut errors);
        let code = fields.required_code("code", &mut errors);
        match code {
            Some(code) if errors.is_empty() => Ok(TotpDisable {
                current_password,
                factor: Factor::Either(code),
            }),
            _ => Err(ApiError::Fields(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: serde_json::Value) -> Fields {
        let serde_json::Value::Object(map) = value else {
            unreachable!("an object")
        };
        Fields(map)
    }

    fn refused(value: serde_json::Value) -> serde_json::Value {
        match MfaVerify::parse(&fields(value), &()) {
            Err(error) => error.body(),
            Ok(_) => serde_json::Value::Null,
        }
    }

    #[test]
    fn verify_needs_the_token_and_exactly_one_factor() {
        assert_eq!(
            refused(json!({})),
            json!({"mfa_token": ["This field is required."], "code": ["This field is required."]})
        );
        assert_eq!(
            refused(json!({"mfa_token": "t", "code": "1", "recovery_code": "2"})),
            json!({"non_field_errors": [EITHER_CODE]})
        );
        assert_eq!(
            refused(json!({"mfa_token": "t", "recovery_code": ""})),
            json!({"recovery_code": ["This field may not be blank."]})
        );
        let read = MfaVerify::parse(&fields(json!({"mfa_token": "t", "code": "1"})), &()).unwrap();
        assert!(matches!(read.factor, Factor::Totp(code) if code == "1"));
        // a NUL is a character that does not belong in a code: the check
        // refuses it as an incorrect code, not the form
        let read =
            MfaVerify::parse(&fields(json!({"mfa_token": "t", "code": "12\u{0}34"})), &()).unwrap();
        assert!(matches!(read.factor, Factor::Totp(code) if code == "12\u{0}34"));
    }
}
