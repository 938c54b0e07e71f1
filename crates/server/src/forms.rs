//! The request bodies: one type per form, which is both what the flow reads
//! and the OpenAPI schema of the body. Each parses the body's fields
//! (`body::Fields`, read as DRF reads them) with DRF's messages, every field
//! error of the form at once.
//!
//! A route hands the flow a [`Body<F>`]: the body, to be read as `F`. The
//! flow parses it where DRF would validate it, after the permission and
//! object checks that answer 403 or 404 first, and with what only the flow
//! knows (the configured password limit, the stored email).

pub mod mfa;
pub mod social;

use std::marker::PhantomData;

use latchkey_domain::{Email, Password, PasswordError, UserFlags};
use utoipa::ToSchema;

use crate::body::{Fields, REQUIRED};
use crate::error::{ApiError, FieldErrors};

pub const PASSWORDS_DIFFER: &str = "Password fields didn't match.";

/// A form: how it is read from a body's fields, given what it needs to
/// know (`Context`).
pub trait Form: Sized {
    type Context;
    /// Why a body is not this form.
    type Error: Into<ApiError>;
    fn parse(fields: &Fields, context: &Self::Context) -> Result<Self, Self::Error>;
}

/// A request body, to be read as the form `F` (the extractor,
/// `crate::http::extract`, reads and decodes the body; [`Body::parse`]
/// reads the form).
pub struct Body<F> {
    fields: Fields,
    form: PhantomData<F>,
}

impl<F: Form> Body<F> {
    pub fn new(fields: Fields) -> Self {
        Body {
            fields,
            form: PhantomData,
        }
    }

    pub fn parse(&self, context: &F::Context) -> Result<F, F::Error> {
        F::parse(&self.fields, context)
    }
}

/// Django's validator messages for a refused password, under `field`.
pub fn password_errors(field: &str, failures: &[PasswordError]) -> FieldErrors {
    let mut errors = FieldErrors::default();
    for failure in failures {
        errors.add(field, failure.message());
    }
    errors
}

/// A new password: Django's validators, the configured hasher's byte limit
/// (72 for bcrypt, else 4096), similarity to `email`.
pub fn new_password(
    field: &str,
    raw: &str,
    email: Option<&Email>,
    limit: usize,
) -> Result<Password, FieldErrors> {
    Password::parse_with_limit(raw, email, limit)
        .map_err(|failures| password_errors(field, &failures))
}

fn email_field(raw: Option<String>, errors: &mut FieldErrors) -> Option<Email> {
    raw.and_then(|raw| match Email::parse(&raw) {
        Ok(email) => Some(email),
        Err(e) => {
            errors.add("email", e.message());
            None
        }
    })
}

fn password_field(
    field: &str,
    raw: Option<String>,
    email: Option<&Email>,
    limit: usize,
    errors: &mut FieldErrors,
) -> Option<Password> {
    match new_password(field, &raw?, email, limit) {
        Ok(password) => Some(password),
        Err(failures) => {
            errors.0.extend(failures.0);
            None
        }
    }
}

/// A form of a new account whose fields did not all pass, and its email
/// when that one did: DRF reports a taken address together with the other
/// field errors, which only the flow can look up.
#[derive(Debug)]
pub struct InvalidAccount {
    pub errors: FieldErrors,
    pub email: Option<Email>,
}

impl From<InvalidAccount> for ApiError {
    fn from(invalid: InvalidAccount) -> Self {
        ApiError::Fields(invalid.errors)
    }
}

/// What a new account's password is checked against.
pub struct PasswordRules {
    /// The configured hasher's byte limit.
    pub max_bytes: usize,
}

/// `POST /register/`.
#[derive(ToSchema)]
pub struct RegisterForm {
    #[schema(value_type = String, example = "jae@example.com", format = "email", max_length = 254)]
    pub email: Email,
    /// 8 characters at least, at most 72 bytes in UTF-8 under bcrypt (4096
    /// otherwise); not common, not entirely numeric, not too similar to the
    /// email.
    #[schema(value_type = String, example = "correct-horse-battery-9", min_length = 8, max_length = 72)]
    pub password: Password,
    /// When sent, must equal `password`.
    pub password2: Option<String>,
}

impl RegisterForm {
    fn read(
        fields: &Fields,
        rules: &PasswordRules,
        errors: &mut FieldErrors,
    ) -> (Option<Email>, Option<Password>, Option<String>) {
        let email = email_field(fields.required_string("email", errors), errors);
        let raw_password = fields.required_string("password", errors);
        let password2 = fields.optional_string("password2", errors);
        if let Some(password2) = &password2
            && raw_password.as_deref().is_some_and(|p| p != password2)
        {
            errors.add("password2", PASSWORDS_DIFFER);
        }
        let password = password_field(
            "password",
            raw_password,
            email.as_ref(),
            rules.max_bytes,
            errors,
        );
        (email, password, password2)
    }
}

impl Form for RegisterForm {
    type Context = PasswordRules;
    type Error = InvalidAccount;

    fn parse(fields: &Fields, rules: &PasswordRules) -> Result<Self, InvalidAccount> {
        let mut errors = FieldErrors::default();
        let (email, password, password2) = Self::read(fields, rules, &mut errors);
        match (email, password) {
            (Some(email), Some(password)) if errors.is_empty() => Ok(RegisterForm {
                email,
                password,
                password2,
            }),
            (email, _) => Err(InvalidAccount { errors, email }),
        }
    }
}

/// `POST /list/`: an account made by staff.
#[derive(ToSchema)]
pub struct UserCreateForm {
    #[schema(value_type = String, example = "jae@example.com", format = "email", max_length = 254)]
    pub email: Email,
    /// Validated as on register.
    #[schema(value_type = String, example = "correct-horse-battery-9", min_length = 8, max_length = 72)]
    pub password: Password,
    /// When sent, must equal `password`.
    pub password2: Option<String>,
    /// Default true.
    pub is_active: Option<bool>,
    /// Default false.
    pub is_staff: Option<bool>,
    /// Default false; only a superuser may set it.
    pub is_superuser: Option<bool>,
}

impl UserCreateForm {
    /// The flags asked for, with the defaults of a new account.
    pub fn flags(&self) -> UserFlags {
        UserFlags {
            is_active: self.is_active.unwrap_or(true),
            is_staff: self.is_staff.unwrap_or(false),
            is_superuser: self.is_superuser.unwrap_or(false),
        }
    }
}

impl Form for UserCreateForm {
    type Context = PasswordRules;
    type Error = InvalidAccount;

    fn parse(fields: &Fields, rules: &PasswordRules) -> Result<Self, InvalidAccount> {
        let mut errors = FieldErrors::default();
        let (email, password, password2) = RegisterForm::read(fields, rules, &mut errors);
        let (is_active, is_staff, is_superuser) = flag_fields(fields, &mut errors);
        match (email, password) {
            (Some(email), Some(password)) if errors.is_empty() => Ok(UserCreateForm {
                email,
                password,
                password2,
                is_active,
                is_staff,
                is_superuser,
            }),
            (email, _) => Err(InvalidAccount { errors, email }),
        }
    }
}

fn flag_fields(
    fields: &Fields,
    errors: &mut FieldErrors,
) -> (Option<bool>, Option<bool>, Option<bool>) {
    (
        fields.optional_bool("is_active", errors),
        fields.optional_bool("is_staff", errors),
        fields.optional_bool("is_superuser", errors),
    )
}

/// `POST /auth/` and `POST /auth/sliding/`. The email is not validated as an
/// address here: one that is not is the login's 401, not a field error.
#[derive(Debug, ToSchema)]
pub struct LoginForm {
    #[schema(example = "jae@example.com")]
    pub email: String,
    #[schema(example = "correct-horse-battery-9")]
    pub password: String,
}

impl Form for LoginForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let email = fields.required_string("email", &mut errors);
        let password = fields.required_string("password", &mut errors);
        match (email, password) {
            (Some(email), Some(password)) => Ok(LoginForm { email, password }),
            _ => Err(ApiError::Fields(errors)),
        }
    }
}

/// `POST /auth/refresh/` and `DELETE /auth/`.
#[derive(Debug, ToSchema)]
pub struct RefreshForm {
    /// The refresh token. A browser may send the `refresh` cookie (and the
    /// CSRF header) instead.
    pub refresh: Option<String>,
}

impl Form for RefreshForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let refresh = fields.optional_string("refresh", &mut errors);
        errors.into_result()?;
        Ok(RefreshForm { refresh })
    }
}

/// `POST /auth/verify/` and `POST /auth/sliding/refresh/`.
#[derive(Debug, ToSchema)]
pub struct TokenForm {
    pub token: String,
}

impl Form for TokenForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        Ok(TokenForm {
            token: fields.required("token")?,
        })
    }
}

/// `POST /auth/password/`. The new password is validated after the old one
/// is checked, so a wrong old password is the only error it gets.
#[derive(Debug, ToSchema)]
pub struct PasswordChangeForm {
    pub old_password: String,
    /// Validated as on register.
    #[schema(example = "correct-horse-battery-9")]
    pub new_password: String,
}

impl Form for PasswordChangeForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let old_password = fields.required_string("old_password", &mut errors);
        let new_password = fields.required_string("new_password", &mut errors);
        match (old_password, new_password) {
            (Some(old_password), Some(new_password)) => Ok(PasswordChangeForm {
                old_password,
                new_password,
            }),
            _ => Err(ApiError::Fields(errors)),
        }
    }
}

/// `PUT` or `PATCH`: whether `email` is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// The whole user: `email` is required (`password` stays optional).
    Put,
    /// Only the fields sent.
    Patch,
}

/// What a change of a stored user is checked against.
pub struct UpdateContext {
    pub kind: UpdateKind,
    /// The stored address: a new password must not be too similar to it
    /// (unless a new address is sent), and a change of it is a credentials
    /// change.
    pub stored_email: String,
    /// Whether the user changes themself: their own email or password
    /// needs `current_password`.
    pub by_themself: bool,
    pub password_rules: PasswordRules,
}

/// `PUT` and `PATCH /list/{id}/`. Every field optional for PATCH; PUT
/// requires `email`. Read-only and unknown fields are ignored.
#[derive(ToSchema)]
pub struct UserUpdateForm {
    #[schema(value_type = Option<String>, format = "email", max_length = 254)]
    pub email: Option<Email>,
    /// Validated as on register.
    #[schema(value_type = Option<String>)]
    pub password: Option<Password>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub is_superuser: Option<bool>,
    /// Your own password, when you change your own `email` or `password`.
    pub current_password: Option<String>,
}

impl Form for UserUpdateForm {
    type Context = UpdateContext;
    type Error = ApiError;

    fn parse(fields: &Fields, context: &UpdateContext) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let raw_email = match context.kind {
            UpdateKind::Patch => fields.optional_string("email", &mut errors),
            UpdateKind::Put => fields.required_string("email", &mut errors),
        };
        let email = email_field(raw_email, &mut errors);
        let for_similarity = email
            .clone()
            .or_else(|| Email::parse(&context.stored_email).ok());
        let password = password_field(
            "password",
            fields.optional_string("password", &mut errors),
            for_similarity.as_ref(),
            context.password_rules.max_bytes,
            &mut errors,
        );
        let (is_active, is_staff, is_superuser) = flag_fields(fields, &mut errors);
        // A user changing their own email or password proves they know the
        // current password: a stolen access token alone cannot take the
        // account.
        let email_changes = email
            .as_ref()
            .is_some_and(|e| e.as_str() != context.stored_email);
        let current_password = if context.by_themself && (email_changes || password.is_some()) {
            fields.required_string("current_password", &mut errors)
        } else {
            None
        };
        errors.into_result()?;
        Ok(UserUpdateForm {
            email,
            password,
            is_active,
            is_staff,
            is_superuser,
            current_password,
        })
    }
}

/// `POST /auth/password/reset/` and `POST /auth/registration/resend-email/`.
#[derive(Debug, ToSchema)]
pub struct EmailForm {
    #[schema(value_type = String, example = "jae@example.com", format = "email")]
    pub email: Email,
}

impl Form for EmailForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        let raw = fields.required("email")?;
        let email = Email::parse(&raw)
            .map_err(|e| ApiError::Fields(FieldErrors::single("email", e.message())))?;
        Ok(EmailForm { email })
    }
}

/// `POST /auth/password/reset/confirm/`. Checked in dj-rest-auth's order
/// (these fields, `uid`, `token`, then the new password), so the new
/// password is validated by the flow once the link holds.
#[derive(Debug, ToSchema)]
pub struct PasswordResetConfirmForm {
    /// The user id in URL-safe base64, as the emailed link gives it.
    #[schema(example = "MQ")]
    pub uid: String,
    /// The token of the emailed link.
    pub token: String,
    #[schema(example = "correct-horse-battery-9")]
    pub new_password1: String,
    /// Must equal `new_password1`.
    #[schema(example = "correct-horse-battery-9")]
    pub new_password2: String,
}

impl Form for PasswordResetConfirmForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let uid = fields.required_string("uid", &mut errors);
        let token = fields.required_string("token", &mut errors);
        let new_password1 = fields.required_string("new_password1", &mut errors);
        let new_password2 = fields.required_string("new_password2", &mut errors);
        match (uid, token, new_password1, new_password2) {
            (Some(uid), Some(token), Some(new_password1), Some(new_password2)) => {
                Ok(PasswordResetConfirmForm {
                    uid,
                    token,
                    new_password1,
                    new_password2,
                })
            }
            _ => Err(ApiError::Fields(errors)),
        }
    }
}

/// `POST /auth/registration/verify-email/`.
#[derive(Debug, ToSchema)]
pub struct VerifyEmailForm {
    /// The key of the emailed link.
    pub key: String,
}

impl Form for VerifyEmailForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        Ok(VerifyEmailForm {
            key: fields.required("key")?,
        })
    }
}

/// The field error of a missing required field.
pub fn required(field: &str) -> ApiError {
    ApiError::Fields(FieldErrors::single(field, REQUIRED))
}
