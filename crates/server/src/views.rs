//! What the API returns, as typed views: the JSON bodies and their OpenAPI
//! schemas come from the same structs, so the description cannot drift.
//! A user's view never holds the password hash.

use chrono::{Datelike, NaiveDateTime, Timelike};
use latchkey_persistence::{Session, User};
use serde::Serialize;

use crate::error::FieldErrors;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, Ref, Schema};
use utoipa::{PartialSchema, ToSchema};

/// ISO 8601 in UTC with microseconds and `Z`, as DRF renders datetimes.
/// Written out field by field: chrono's `format` parses its format string
/// on every call, a fortieth of a cached request's CPU for three instants.
pub fn timestamp(instant: NaiveDateTime) -> String {
    let year = instant.year();
    let nanos = instant.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        // Years chrono signs, and leap seconds: as chrono writes them.
        return instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        instant.month(),
        instant.day(),
        instant.hour(),
        instant.minute(),
        instant.second(),
        nanos / 1000
    )
}

/// A user, as every endpoint shows one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    #[schema(example = "jae@example.com")]
    pub email: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    #[schema(example = "2026-11-28T01:02:03.456789Z")]
    pub last_login: Option<String>,
    /// Whether the address was confirmed through the verification email
    /// (true for superusers made by the CLI and users imported from Django).
    pub email_verified: bool,
    #[schema(example = "2026-11-28T01:02:03.456789Z")]
    pub created_at: String,
    #[schema(example = "2026-11-28T01:02:03.456789Z")]
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id,
            email: user.email.clone(),
            is_active: user.is_active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            last_login: user.last_login.map(timestamp),
            email_verified: user.email_verified,
            created_at: timestamp(user.created_at),
            updated_at: timestamp(user.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenPairView {
    pub access: String,
    pub refresh: String,
}

/// Register and login: the user, a message and a token pair.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub user: UserView,
    #[schema(example = "login success")]
    pub message: String,
    pub token: TokenPairView,
}

/// Register under `EMAIL_VERIFICATION=mandatory`: the user and a message,
/// no tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegisteredView {
    pub user: UserView,
    #[schema(example = "Verification e-mail sent.")]
    pub message: String,
}

/// The 201 of `POST /register/`, described as either of its bodies: a
/// [`SessionView`], or under `EMAIL_VERIFICATION=mandatory` a
/// [`RegisteredView`]. Any of (not one of): a session's body also has
/// everything a `RegisteredView` asks for.
pub struct RegisterView;

impl utoipa::PartialSchema for RegisterView {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(SessionView::name()))
            .item(Ref::from_schema_name(RegisteredView::name()))
            .into()
    }
}

impl ToSchema for RegisterView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((SessionView::name().into(), SessionView::schema()));
        SessionView::schemas(schemas);
        schemas.push((RegisteredView::name().into(), RegisteredView::schema()));
        RegisteredView::schemas(schemas);
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    #[schema(example = "Logout success")]
    pub message: String,
}

/// Password change: the new token pair of the caller's new session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PasswordChangedView {
    #[schema(example = "Password changed")]
    pub message: String,
    pub token: TokenPairView,
}

/// A refresh: a new access token and, with rotation on, a new refresh token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefreshView {
    pub access: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlidingView {
    pub token: String,
}

/// One page of users. The results are rendered one user at a time from
/// the stored rows, so a page of 1,000 never holds a second copy of them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserPageView<'a> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    #[schema(value_type = Vec<UserView>)]
    pub results: UserList<'a>,
}

/// Users rendered as [`UserView`]s while serialising.
#[derive(Debug, Clone, Copy)]
pub struct UserList<'a>(pub &'a [User]);

impl Serialize for UserList<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(UserView::from))
    }
}

/// `{"detail": ...}`, with simplejwt's `code` where it gives one, and the
/// per-token-class `messages` for a bad access token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorView {
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<TokenMessageView>>,
}

/// A 400: field errors, or `{"detail"}` for a body that is not JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BadRequestView {
    Fields(FieldErrors),
    Detail(ErrorView),
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenMessageView {
    #[schema(example = "AccessToken")]
    pub token_class: String,
    #[schema(example = "access")]
    pub token_type: String,
    #[schema(example = "Token is expired")]
    pub message: String,
}

/// An `mfa_token`: shown once, in the `mfa_required` body, and never in a
/// log (`Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct MfaToken(pub String);

impl std::fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaToken(..)")
    }
}

/// 401 `mfa_required`: the first factor passed, a second one is due.
#[derive(Clone, Serialize, ToSchema)]
pub struct MfaRequiredView {
    #[schema(example = "Multi-factor authentication is required.")]
    pub detail: String,
    #[schema(example = "mfa_required")]
    pub code: String,
    /// Continues the login at `POST /auth/mfa/verify/`.
    pub mfa_token: String,
    /// The second factors the user may give.
    #[schema(example = json!(["totp", "recovery_code"]))]
    pub methods: Vec<String>,
}

impl MfaRequiredView {
    pub fn new(token: &MfaToken, methods: &[&'static str]) -> Self {
        MfaRequiredView {
            detail: "Multi-factor authentication is required.".into(),
            code: "mfa_required".into(),
            mfa_token: token.0.clone(),
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        }
    }
}

/// `POST /auth/mfa/totp/`: the pending secret, to show as a QR code.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// Base32, 160 bits.
    pub secret: String,
    /// `otpauth://totp/…`, what authenticator apps read from a QR code.
    pub otpauth_url: String,
}

impl std::fmt::Debug for TotpEnrolmentView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolmentView(..)")
    }
}

/// `POST /auth/mfa/totp/confirm/`: the first recovery codes and the new
/// session's tokens.
#[derive(Serialize, ToSchema)]
pub struct TotpConfirmedView {
    /// Shown once: 10 codes, `xxxx-xxxx-xxxx`.
    pub recovery_codes: Vec<String>,
    pub token: TokenPairView,
}

/// `POST /auth/mfa/recovery-codes/`: a new set; the earlier one stops
/// working.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesView {
    /// Shown once: 10 codes, `xxxx-xxxx-xxxx`.
    pub recovery_codes: Vec<String>,
}

/// `GET /auth/mfa/`: the caller's second factors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MfaStatusView {
    pub totp: TotpStatusView,
    pub recovery_codes: RecoveryCodeCountView,
    /// Registered passkeys.
    pub passkeys: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotpStatusView {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecoveryCodeCountView {
    pub unused: i64,
}

/// The API root.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RootView {
    pub list: String,
    pub register: String,
    pub auth: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusView {
    #[schema(example = "ok")]
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// One live session of `GET /auth/sessions/`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionItemView {
    /// The session's id: the `sid` claim of its tokens.
    pub id: String,
    #[schema(example = "2026-11-28T01:02:03.456789Z")]
    pub created_at: String,
    /// Its latest refresh (or its start).
    #[schema(example = "2026-11-28T01:02:03.456789Z")]
    pub last_used_at: String,
    /// When its current refresh token (a sliding token's `refresh_exp`) expires.
    #[schema(example = "2026-12-05T01:02:03.000000Z")]
    pub expires_at: String,
    /// The `User-Agent` that started it (at most 256 characters).
    pub user_agent: Option<String>,
    /// The client address that started it.
    pub ip: Option<String>,
    /// Whether the token of this request belongs to it.
    pub current: bool,
    /// How it was authenticated, in order (v3): `pwd`, `otp`, `rec`, `hwk`, `fed`.
    #[schema(example = json!(["pwd"]))]
    pub amr: Vec<&'static str>,
    /// 2 after two factors or a passkey that verified its user, else 1 (v3).
    #[schema(example = 1)]
    pub aal: u8,
}

impl SessionItemView {
    /// A session row, and whether the request's token belongs to it.
    pub fn new(session: &Session, current: bool) -> Self {
        let assurance = session.assurance();
        SessionItemView {
            id: session.id.clone(),
            created_at: timestamp(session.created_at),
            last_used_at: timestamp(session.last_used_at),
            expires_at: timestamp(session.expires_at),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            current,
            amr: assurance.amr.iter().map(|m| m.amr()).collect(),
            aal: assurance.aal.level(),
        }
    }
}

/// `GET /auth/sessions/`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionListView {
    pub results: Vec<SessionItemView>,
}

#[cfg(test)]
mod tests {
    use super::timestamp;
    use chrono::NaiveDate;

    #[test]
    fn timestamps_read_as_chrono_formats_them() {
        let chrono = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let day = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        for t in [
            day.and_hms_micro_opt(3, 4, 5, 6).unwrap(),
            day.and_hms_micro_opt(23, 59, 59, 999_999).unwrap(),
            day.and_hms_nano_opt(0, 0, 0, 1_999).unwrap(),
            day.and_hms_milli_opt(23, 59, 59, 1_500).unwrap(),
            NaiveDate::from_ymd_opt(1, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
            NaiveDate::from_ymd_opt(12_000, 6, 1)
                .unwrap()
                .and_hms_opt(1, 2, 3)
                .unwrap(),
        ] {
            assert_eq!(timestamp(t), chrono(t), "{t:?}");
        }
        assert_eq!(
            timestamp(day.and_hms_micro_opt(3, 4, 5, 6).unwrap()),
            "2026-01-02T03:04:05.000006Z"
        );
    }
}

/// `GET /auth/social/providers/`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SocialProvidersView {
    pub providers: Vec<SocialProviderView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SocialProviderView {
    /// As in `SOCIAL_PROVIDERS`, lower case.
    #[schema(example = "google")]
    pub name: String,
    /// Where a browser starts signing in (add `?next=`).
    #[schema(example = "https://auth.example.com/auth/social/google/authorize/")]
    pub authorize_url: String,
}

/// `GET /auth/social/`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkedIdentitiesView {
    pub results: Vec<LinkedIdentityView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkedIdentityView {
    #[schema(example = "github")]
    pub provider: String,
    /// The provider's id of the person, always a string.
    #[schema(example = "583231")]
    pub subject: String,
    /// The address the provider gave when it was linked.
    pub email: Option<String>,
    pub linked_at: String,
    pub last_login: Option<String>,
}

impl From<&latchkey_persistence::Identity> for LinkedIdentityView {
    fn from(identity: &latchkey_persistence::Identity) -> Self {
        LinkedIdentityView {
            provider: identity.provider.clone(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            linked_at: timestamp(identity.linked_at),
            last_login: identity.last_login.map(timestamp),
        }
    }
}
