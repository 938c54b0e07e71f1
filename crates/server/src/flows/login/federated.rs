//! A sign-in provider as a first factor (contract: "Sign in with a
//! provider"): the browser flow (authorize, callback, the one-time
//! `social_code` and its exchange) and the native apps' tokens.
//!
//! Each step calls the provider (through `latchkey_federation`) before its
//! transaction, never inside one, and then decides in ONE write
//! transaction, whose first statement spends what the step consumes:
//! - the callback claims the flow (`Ceremony::consume`: one row or none),
//!   decides the account and stores the hashed `social_code`; a refusal
//!   rolls it all back, so the flow is as it was;
//! - the exchange spends the `social_code` the same way;
//! - a native ID token is recorded by its SHA-256 under a unique key.
//!
//! Which account a provider's person signs in to is
//! `latchkey_domain::linking::account`, applied here (see [`sign_in`]);
//! two first logins of one new identity make one user, because the loser's
//! insert meets the winner's row and its transaction runs again.
//! The gates (active, verified, second factor) run at the exchange and
//! after the native check, in `complete_login`, as for every first factor.

use std::sync::Arc;

use chrono::Duration;
use latchkey_auth::secrets::{new_link_secret, secret_hash};
use latchkey_domain::linking::{self, Account, Asserted, Known, LinkTo, Local, WaysIn};
use latchkey_domain::{Email, Method, UserFlags};
use latchkey_federation::{CodeExchange, NativeCredential, Provider, ProviderError, ProviderUser};
use latchkey_persistence::{
    AcceptedIdTokens, Ceremony, CeremonyKind, DbConnection, Identity, NewCeremony, NewIdentity,
    NewUser, SessionState, StoreError, TotpDevice, User, UserChanges, db_now, write_transaction,
};
use serde::{Deserialize, Serialize};

use super::{FirstFactor, Pair, complete_login};
use crate::error::ApiError;
use crate::flows::mfa::remove_second_factor;
use crate::flows::sessions::revoke_everything;
use crate::flows::tokens::{Client, TokenPair};
use crate::state::State;

/// A browser flow lives 10 minutes and is used once.
pub const FLOW_LIFETIME_SECONDS: i64 = 600;
/// A `social_code` works once and for 60 seconds.
pub const CODE_LIFETIME_SECONDS: i64 = 60;

/// Why a provider login was refused, in the browser's words
/// (`#social_error=`) and as the native route's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AccessDenied,
    InvalidRequest,
    ProviderError,
    AccountExists,
    EmailMissing,
    SignupClosed,
    IdentityTaken,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::AccessDenied => "access_denied",
            Refusal::InvalidRequest => "invalid_request",
            Refusal::ProviderError => "provider_error",
            Refusal::AccountExists => "account_exists",
            Refusal::EmailMissing => "email_missing",
            Refusal::SignupClosed => "signup_closed",
            Refusal::IdentityTaken => "identity_taken",
        }
    }

    /// The native route's answer to the refusals it can meet.
    fn api_error(self) -> ApiError {
        match self {
            Refusal::AccountExists => ApiError::ConflictWith {
                detail: "An account with this email already exists. Log in and link this provider.",
                code: "account_exists",
            },
            Refusal::EmailMissing => ApiError::BadRequestWith {
                detail: "The provider did not give an email address.",
                code: "email_missing",
            },
            Refusal::SignupClosed => ApiError::Forbidden {
                detail: "Sign-up is closed.",
                code: "signup_closed",
            },
            Refusal::AccessDenied
            | Refusal::InvalidRequest
            | Refusal::ProviderError
            | Refusal::IdentityTaken => provider_token_invalid(),
        }
    }
}

pub fn provider_token_invalid() -> ApiError {
    ApiError::Unauthorized {
        detail: "Invalid provider token.",
        code: "provider_token_invalid",
    }
}

/// What a transaction of this module ends in besides a store failure.
enum Failed {
    Refused(Refusal),
    Api(ApiError),
    /// The insert of a new user met another first login's: run again.
    Raced,
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Api(error.into())
    }
}

impl From<ApiError> for Failed {
    fn from(error: ApiError) -> Self {
        Failed::Api(error)
    }
}

/// What the flow's ceremony keeps for the callback.
#[derive(Serialize, Deserialize)]
struct FlowState {
    provider: String,
    /// SHA-256 of the flow cookie's value: the browser that started it.
    binding: String,
    nonce: Option<String>,
    pkce_verifier: Option<String>,
    /// Exactly the `redirect_uri` the authorization request sent.
    redirect_uri: String,
    next: String,
    /// The user to link the identity to (`link=true`), else a login.
    link: bool,
    /// For `link=true`: the session that asked, and the user as it was
    /// then ([`holder_fingerprint`]). A logout, a logout everywhere, a
    /// password change or a reclaim in between refuses the link.
    link_session: Option<String>,
    link_holder: Option<String>,
}

/// What ends a user's earlier credentials, fingerprinted: a flow or code
/// begun before a logout everywhere, a password change or a reclaim is
/// refused after it.
fn holder_fingerprint(user: &User) -> String {
    secret_hash(&format!(
        "{:?}|{:?}",
        user.tokens_valid_after, user.password_changed_at
    ))
}

/// The signed-in user asking to link a provider (`link=true`).
pub struct Linker<'a> {
    pub user: &'a User,
    /// The `sid` of the access token that asked, if it names one.
    pub session: Option<String>,
}

/// The `social_code` ceremony's payload.
#[derive(Serialize, Deserialize)]
struct CodeState {
    holder: String,
}

/// A started flow: where to send the browser, and the flow cookie's value.
pub struct Started {
    pub location: String,
    pub cookie: String,
}

/// `GET /auth/social/{name}/authorize/`: the authorization request, and
/// the flow kept for the callback (the user to link, for `link=true`).
pub async fn authorize(
    state: &State,
    provider: &Provider,
    redirect_uri: String,
    next: String,
    linker: Option<Linker<'_>>,
) -> Result<Started, ApiError> {
    let link_user = linker.as_ref().map(|l| l.user.id);
    let authorization = provider
        .authorization(&redirect_uri)
        .await
        .map_err(unavailable)?;
    let cookie = new_link_secret();
    let flow = FlowState {
        provider: provider.name().to_owned(),
        binding: secret_hash(&cookie),
        nonce: authorization.nonce,
        pkce_verifier: authorization.pkce_verifier,
        redirect_uri,
        next,
        link: linker.is_some(),
        link_session: linker.as_ref().and_then(|l| l.session.clone()),
        link_holder: linker.as_ref().map(|l| holder_fingerprint(l.user)),
    };
    let payload = serde_json::to_string(&flow).map_err(|e| ApiError::Internal(e.to_string()))?;
    let handle_hash = secret_hash(&authorization.state);
    state
        .with_conn(move |conn, _| {
            let now = db_now();
            Ceremony::begin(
                conn,
                &NewCeremony {
                    kind: CeremonyKind::OidcState,
                    handle_hash: &handle_hash,
                    user_id: link_user,
                    payload: &payload,
                    created_at: now,
                    expires_at: now + Duration::seconds(FLOW_LIFETIME_SECONDS),
                },
            )?;
            Ok(())
        })
        .await?;
    Ok(Started {
        location: authorization.url,
        cookie,
    })
}

/// What the provider sent back to the callback.
#[derive(Default)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    /// RFC 9207's `iss`, when the provider sends one.
    pub issuer: Option<String>,
}

/// Where the callback sends the browser: `next` and the fragment.
pub struct Landing {
    pub next: String,
    pub fragment: (&'static str, String),
}

/// `GET`/`POST /auth/social/{name}/callback/`. A state that is not a live
/// flow of this provider, from this browser, is the 400 `Err`; every other
/// outcome is a landing on the flow's `next`.
pub async fn callback(
    state: &State,
    provider: Arc<Provider>,
    callback: Callback,
    cookie: Option<String>,
) -> Result<Landing, ApiError> {
    let Some(flow_state) = callback.state.filter(|s| !s.is_empty()) else {
        return Err(crate::forms::required("state"));
    };
    let handle_hash = secret_hash(&flow_state);
    let looked_up = handle_hash.clone();
    let flow = state
        .with_conn(move |conn, _| {
            Ok(Ceremony::find_live(
                conn,
                CeremonyKind::OidcState,
                &looked_up,
                db_now(),
            )?)
        })
        .await?;
    let Some((ceremony, flow)) = flow.and_then(|c| {
        let flow = serde_json::from_str::<FlowState>(&c.payload).ok()?;
        Some((c, flow))
    }) else {
        return Err(invalid_state());
    };
    let same_browser = cookie.is_some_and(|value| secret_hash(&value) == flow.binding);
    if flow.provider != provider.name() || !same_browser {
        return Err(invalid_state());
    }
    let landing = |fragment: (&'static str, String)| Landing {
        next: flow.next.clone(),
        fragment,
    };
    let refused = |refusal: Refusal| landing(("social_error", refusal.reason().to_owned()));
    if let Some(error) = callback.error.as_deref() {
        return Ok(refused(if error == "access_denied" {
            Refusal::AccessDenied
        } else {
            Refusal::ProviderError
        }));
    }
    let Some(code) = callback.code.filter(|c| !c.is_empty()) else {
        return Ok(refused(Refusal::InvalidRequest));
    };
    let person = match provider
        .exchange(CodeExchange {
            code: &code,
            redirect_uri: &flow.redirect_uri,
            pkce_verifier: flow.pkce_verifier.as_deref(),
            nonce: flow.nonce.as_deref(),
            issuer: callback.issuer.as_deref(),
        })
        .await
    {
        Ok(person) => person,
        Err(error) => {
            log::info!("provider {}: callback refused: {error}", provider.name());
            return Ok(refused(Refusal::ProviderError));
        }
    };
    let provider_name = provider.name().to_owned();
    let link_user = flow.link.then_some(ceremony.user_id).flatten();
    let link_session = flow.link_session.clone();
    let link_holder = flow.link_holder.clone().unwrap_or_default();
    let outcome = state
        .with_conn(move |conn, app| {
            let signup = app.settings.social.signup;
            Ok(retrying(|| {
                write_transaction(conn, |conn| -> Result<_, Failed> {
                    // The flow's claim comes first: of two callbacks of one
                    // flow, the loser stops here.
                    if Ceremony::consume(conn, CeremonyKind::OidcState, &handle_hash, db_now())?
                        .is_none()
                    {
                        return Err(Failed::Api(invalid_state()));
                    }
                    match link_user {
                        Some(user_id) => {
                            let asked = (link_session.as_deref(), link_holder.as_str());
                            link(conn, &provider_name, &person, user_id, asked)?;
                            Ok(None)
                        }
                        None => {
                            let user = sign_in(conn, &provider_name, &person, signup)?;
                            Ok(Some(new_social_code(conn, &user)?))
                        }
                    }
                })
            }))
        })
        .await?;
    match outcome {
        Ok(Some(code)) => Ok(landing(("social_code", code))),
        Ok(None) => Ok(landing(("social_linked", provider.name().to_owned()))),
        Err(Failed::Refused(refusal)) => Ok(refused(refusal)),
        Err(Failed::Api(error)) => Err(error),
        // Still racing after running again: as a provider error, the flow
        // left as it was.
        Err(Failed::Raced) => Ok(refused(Refusal::ProviderError)),
    }
}

/// A state that names no live flow of this provider from this browser.
fn invalid_state() -> ApiError {
    ApiError::Fields(crate::error::FieldErrors::single("state", "Invalid value"))
}

/// Runs the transaction again, once, when a new user's insert met another
/// first login's (PostgreSQL aborts the loser's transaction; run again, it
/// finds the identity linked).
fn retrying<T>(mut run: impl FnMut() -> Result<T, Failed>) -> Result<T, Failed> {
    match run() {
        Err(Failed::Raced) => run(),
        other => other,
    }
}

fn new_social_code(conn: &mut DbConnection, user: &User) -> Result<String, Failed> {
    let code = new_link_secret();
    let now = db_now();
    let payload = serde_json::to_string(&CodeState {
        holder: holder_fingerprint(user),
    })
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ceremony::begin(
        conn,
        &NewCeremony {
            kind: CeremonyKind::SocialCode,
            handle_hash: &secret_hash(&code),
            user_id: Some(user.id),
            payload: &payload,
            created_at: now,
            expires_at: now + Duration::seconds(CODE_LIFETIME_SECONDS),
        },
    )?;
    Ok(code)
}

/// `POST /auth/social/exchange/`: the `social_code` spent by one statement,
/// then the login completes as for any first factor.
pub async fn exchange(
    state: &State,
    social_code: String,
    client: Client,
) -> Result<(User, TokenPair), ApiError> {
    let handle_hash = secret_hash(&social_code);
    let user = state
        .with_conn(move |conn, _| {
            write_transaction(conn, |conn| {
                let Some(spent) =
                    Ceremony::consume(conn, CeremonyKind::SocialCode, &handle_hash, db_now())?
                else {
                    return Ok(None);
                };
                let issued_to = serde_json::from_str::<CodeState>(&spent.payload).ok();
                let user = match spent.user_id {
                    Some(user_id) => User::find(conn, user_id)?,
                    None => None,
                };
                // A logout everywhere, password change or reclaim since the
                // callback voids the code.
                Ok(user.filter(|user| {
                    issued_to.is_some_and(|code| code.holder == holder_fingerprint(user))
                }))
            })
        })
        .await?
        .ok_or_else(|| {
            ApiError::Fields(crate::error::FieldErrors::single(
                "social_code",
                "Invalid value",
            ))
        })?;
    complete_login(state, federated(user), client, Pair).await
}

fn federated(user: User) -> FirstFactor {
    FirstFactor {
        user,
        method: Method::Federated,
        upgrade: None,
        attempt: None,
    }
}

/// `POST /auth/social/{name}/token/`: a native app's ID token (accepted
/// once) or GitHub access token, then the login as for any first factor.
pub async fn native(
    state: &State,
    provider: Arc<Provider>,
    credential: NativeCredential<'_>,
    client: Client,
) -> Result<(User, TokenPair), ApiError> {
    let checked = provider
        .native(credential)
        .await
        .map_err(|error| match error {
            ProviderError::Unavailable(why) => ApiError::ProviderUnavailable(why),
            ProviderError::Refused(why) => {
                log::info!("provider {}: token refused: {why}", provider.name());
                provider_token_invalid()
            }
        })?;
    let token_hash = match credential {
        // The signing input, not the whole string: a signature re-encoded
        // (unused trailing bits) or an ECDSA signature's other form would
        // otherwise be a new token.
        NativeCredential::IdToken { id_token, .. } => Some(secret_hash(
            id_token
                .rsplit_once('.')
                .map_or(id_token, |(signed, _)| signed),
        )),
        NativeCredential::AccessToken(_) => None,
    };
    let provider_name = provider.name().to_owned();
    let user = state
        .with_conn(move |conn, app| {
            let signup = app.settings.social.signup;
            Ok(retrying(|| {
                write_transaction(conn, |conn| -> Result<_, Failed> {
                    if let (Some(hash), Some(exp)) = (&token_hash, checked.id_token_exp) {
                        let until = crate::flows::tokens::to_naive(exp.max(0));
                        if !AcceptedIdTokens::accept_once(conn, hash, until)? {
                            return Err(Failed::Api(provider_token_invalid()));
                        }
                    }
                    sign_in(conn, &provider_name, &checked.user, signup)
                })
            }))
        })
        .await?
        .map_err(|failed| match failed {
            Failed::Refused(refusal) => refusal.api_error(),
            Failed::Api(error) => error,
            Failed::Raced => ApiError::Conflict,
        })?;
    complete_login(state, federated(user), client, Pair).await
}

/// The contract's "Which account", applied inside the caller's
/// transaction: the user the provider's person signs in to.
fn sign_in(
    conn: &mut DbConnection,
    provider: &str,
    person: &ProviderUser,
    signup: bool,
) -> Result<User, Failed> {
    let linked = Identity::find(conn, provider, &person.subject)?;
    let email = person
        .email
        .as_deref()
        .and_then(|raw| Email::parse(raw).ok());
    // Locked: whether it is verified decides between a link and a reclaim,
    // and must not change before the decision is written.
    let with_email = match (&linked, &email) {
        (None, Some(email)) => match User::find_by_email(conn, email)? {
            Some(found) => User::lock(conn, found.id)?.filter(|u| u.email == email.as_str()),
            None => None,
        },
        _ => None,
    };
    let decision = linking::account(
        Asserted {
            has_email: email.is_some(),
            email_verified: person.email_verified,
        },
        Known {
            linked: linked.as_ref().map(|identity| identity.user_id),
            with_email: with_email.as_ref().map(|user| Local {
                id: user.id,
                email_verified: user.email_verified,
            }),
        },
        signup,
    );
    let now = db_now();
    let new_identity = |user_id: i64| NewIdentity {
        provider,
        subject: &person.subject,
        user_id,
        email: person.email.as_deref(),
        linked_at: now,
    };
    let user_id = match decision {
        Account::Linked(user_id) => {
            // Locked, then the link read again: a reclaim that removed it
            // meanwhile makes this transaction run again.
            User::lock(conn, user_id)?;
            let still = Identity::find(conn, provider, &person.subject)?.map(|i| i.user_id);
            if still != Some(user_id) {
                return Err(Failed::Raced);
            }
            user_id
        }
        Account::Link(user_id) => {
            link_new(conn, &new_identity(user_id))?;
            user_id
        }
        Account::Reclaim(user_id) => {
            reclaim(conn, user_id)?;
            link_new(conn, &new_identity(user_id))?;
            user_id
        }
        Account::Create { email_verified } => {
            let Some(email) = &email else {
                return Err(Failed::Refused(Refusal::EmailMissing));
            };
            let unusable = unusable_password();
            let mut new_user = NewUser::new(
                email,
                &unusable,
                UserFlags {
                    is_active: true,
                    is_staff: false,
                    is_superuser: false,
                },
                now,
            );
            new_user.email_verified = email_verified;
            let user = match User::insert(conn, &new_user) {
                Ok(user) => user,
                // Another first login of this identity (or a register of
                // this address) committed first.
                Err(StoreError::EmailTaken) => return Err(Failed::Raced),
                Err(other) => return Err(other.into()),
            };
            link_new(conn, &new_identity(user.id))?;
            user.id
        }
        Account::Exists => return Err(Failed::Refused(Refusal::AccountExists)),
        Account::SignupClosed => return Err(Failed::Refused(Refusal::SignupClosed)),
        Account::EmailMissing => return Err(Failed::Refused(Refusal::EmailMissing)),
    };
    if !Identity::record_login(conn, provider, &person.subject, now)? {
        return Err(Failed::Api(ApiError::Conflict));
    }
    User::find(conn, user_id)?.ok_or(Failed::Api(ApiError::NotFound))
}

/// Links a new identity; another login of it that linked it first makes
/// this transaction run again (and find it linked).
fn link_new(conn: &mut DbConnection, new: &NewIdentity<'_>) -> Result<(), Failed> {
    if Identity::link(conn, new)? {
        Ok(())
    } else {
        Err(Failed::Raced)
    }
}

/// Rule 2 for an unverified local account: whoever registered the address
/// before its owner loses it, and keeps no way back in.
fn reclaim(conn: &mut DbConnection, user_id: i64) -> Result<(), Failed> {
    TotpDevice::lock(conn, user_id)?;
    remove_second_factor(conn, user_id)?;
    Identity::unlink_all(conn, user_id)?;
    // Passkeys join this list when they exist (issue 24).
    revoke_everything(
        conn,
        user_id,
        UserChanges {
            password_hash: Some(unusable_password()),
            password_changed_at: Some(db_now()),
            email_verified: Some(true),
            ..UserChanges::default()
        },
    )?;
    Ok(())
}

/// `link=true`: the identity to the flow's user, unless another holds it.
fn link(
    conn: &mut DbConnection,
    provider: &str,
    person: &ProviderUser,
    user_id: i64,
    (session, holder): (Option<&str>, &str),
) -> Result<(), Failed> {
    User::lock(conn, user_id)?;
    let still_signed_in = User::find_with_session(conn, user_id, session)?
        .filter(|(user, state)| {
            user.is_active
                && holder_fingerprint(user) == holder
                && matches!(
                    (session, state),
                    (Some(_), SessionState::Live) | (None, SessionState::NotNamed)
                )
        })
        .map(|(user, _)| user);
    let user = still_signed_in.ok_or(Failed::Refused(Refusal::InvalidRequest))?;
    let holder = Identity::find(conn, provider, &person.subject)?.map(|i| i.user_id);
    match linking::link_to(holder, user.id) {
        LinkTo::AlreadyLinked => Ok(()),
        LinkTo::Taken => Err(Failed::Refused(Refusal::IdentityTaken)),
        LinkTo::Link => {
            let linked = Identity::link(
                conn,
                &NewIdentity {
                    provider,
                    subject: &person.subject,
                    user_id: user.id,
                    email: person.email.as_deref(),
                    linked_at: db_now(),
                },
            )?;
            if linked {
                Ok(())
            } else {
                Err(Failed::Refused(Refusal::IdentityTaken))
            }
        }
    }
}

/// Django's unusable password: `!` and 40 random characters.
fn unusable_password() -> String {
    format!("!{}", &new_link_secret()[..40])
}

/// Authorize cannot go on without the provider's discovery: 503 whatever
/// the reason.
fn unavailable(error: ProviderError) -> ApiError {
    ApiError::ProviderUnavailable(error.to_string())
}

/// `GET /auth/social/`: the caller's linked identities.
pub async fn linked(state: &State, user_id: i64) -> Result<Vec<Identity>, ApiError> {
    state
        .with_conn(move |conn, _| Ok(Identity::for_user(conn, user_id)?))
        .await
}

/// `DELETE /auth/social/{name}/`: 404 when not linked, 400
/// `last_login_method` when it is the caller's last way in.
pub async fn unlink(state: &State, user_id: i64, provider: String) -> Result<(), ApiError> {
    state
        .with_conn(move |conn, _| {
            write_transaction(conn, |conn| {
                let user = User::lock(conn, user_id)?.ok_or(ApiError::NotAuthenticated)?;
                let identities = Identity::for_user(conn, user_id)?;
                if !identities.iter().any(|i| i.provider == provider) {
                    return Err(ApiError::NotFound);
                }
                let left = WaysIn {
                    usable_password: user.has_usable_password(),
                    other_identities: identities.iter().filter(|i| i.provider != provider).count(),
                    passkeys: 0,
                };
                if !linking::may_unlink(left) {
                    return Err(ApiError::BadRequestWith {
                        detail: "This provider is your only way to log in: link another one first.",
                        code: "last_login_method",
                    });
                }
                Identity::unlink(conn, user_id, &provider)?;
                Ok(())
            })
        })
        .await
}
