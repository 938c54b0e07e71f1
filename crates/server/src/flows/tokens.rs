//! Sessions and the tokens they issue, against storage: starting a session,
//! refreshing, verifying, ending.
//!
//! A session row is the unit of revocation. Every rotation and every
//! revocation of a session runs in one write transaction that first locks
//! the session's row (`FOR UPDATE` on PostgreSQL; SQLite's write
//! transactions take the database's write lock), so a refresh racing a
//! logout either finishes first, and its new tokens are ended with the
//! session, or finds the session ended and is refused.

use crate::forms::{Body, TokenForm};
use chrono::{DateTime, NaiveDateTime};
use latchkey_auth::{
    Claims, Holder, IssuedToken, RefreshDecision, Refusal, StoredRefresh, Strictness, TokenError,
    TokenType, check_holder, decide_refresh,
};
use latchkey_domain::Assurance;
use latchkey_persistence::django_imports::latest_import_at;
use latchkey_persistence::sessions::truncate_user_agent;
use latchkey_persistence::{
    DbConnection, NewOutstandingToken, NewSession, OutstandingToken, Session, SessionState,
    TokenRecord, User, db_now, write_transaction,
};

use crate::error::ApiError;
use crate::state::{AppState, State, unix_now};

/// An access and a refresh token issued together.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: IssuedToken,
    pub refresh: IssuedToken,
}

/// Who starts a session, as its list shows it.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub user_agent: Option<String>,
    /// The client address as the throttle sees it.
    pub ip: Option<String>,
}

pub fn to_naive(unix: i64) -> NaiveDateTime {
    // Claims come from tokens this server signed, or were range-checked when
    // verified; a value beyond chrono's range cannot reach here.
    #[allow(clippy::expect_used)]
    DateTime::from_timestamp(unix, 0)
        .expect("a token instant within chrono's range")
        .naive_utc()
}

pub fn to_unix(instant: NaiveDateTime) -> i64 {
    instant.and_utc().timestamp()
}

fn outstanding<'a>(refresh: &'a IssuedToken, session_id: &'a str) -> NewOutstandingToken<'a> {
    NewOutstandingToken {
        jti: &refresh.claims.jti,
        user_id: refresh.claims.user_id,
        session_id,
        issued_at: to_naive(refresh.claims.iat),
        expires_at: to_naive(refresh.claims.exp),
    }
}

fn new_session(
    conn: &mut DbConnection,
    user_id: i64,
    expires_at: i64,
    client: &Client,
    assurance: &Assurance,
) -> Result<String, ApiError> {
    let id = latchkey_auth::jwt::new_jti();
    let (amr, aal) = NewSession::assurance_columns(assurance);
    // Microseconds, not the token's whole second: sessions started in one
    // second still list in the order they were used.
    let started = db_now();
    Session::start(
        conn,
        &NewSession {
            id: &id,
            user_id,
            created_at: started,
            last_used_at: started,
            expires_at: to_naive(expires_at),
            user_agent: client.user_agent.as_deref().map(truncate_user_agent),
            ip: client.ip.as_deref(),
            amr,
            aal,
        },
    )?;
    Ok(id)
}

/// Starts a session (login, register, password change): its row, a
/// recorded refresh token and an access token, both carrying its `sid` and
/// how it was authenticated.
pub fn start_session(
    conn: &mut DbConnection,
    state: &AppState,
    user_id: i64,
    assurance: &Assurance,
    now: i64,
    client: &Client,
) -> Result<TokenPair, ApiError> {
    let expires_at = now.saturating_add(state.codec.lifetime(TokenType::Refresh));
    let sid = new_session(conn, user_id, expires_at, client, assurance)?;
    let refresh = state
        .codec
        .issue(TokenType::Refresh, user_id, &sid, assurance, now);
    OutstandingToken::record(conn, &outstanding(&refresh, &sid))?;
    let access = state
        .codec
        .issue(TokenType::Access, user_id, &sid, assurance, now);
    Ok(TokenPair { access, refresh })
}

/// Starts a sliding session: live until the token's `refresh_exp`.
pub fn start_sliding_session(
    conn: &mut DbConnection,
    state: &AppState,
    user_id: i64,
    assurance: &Assurance,
    now: i64,
    client: &Client,
) -> Result<IssuedToken, ApiError> {
    let refresh_exp = now.saturating_add(state.codec.settings().sliding_refresh_lifetime);
    let sid = new_session(conn, user_id, refresh_exp, client, assurance)?;
    Ok(state
        .codec
        .issue(TokenType::Sliding, user_id, &sid, assurance, now))
}

/// How the session was authenticated, for the tokens it issues now: what
/// its row says (a session without a row, from before sessions, began with
/// a password).
fn session_assurance(session: Option<&Session>) -> Assurance {
    session.map_or_else(Assurance::password, Session::assurance)
}

/// What a refresh gives back.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub access: IssuedToken,
    /// The new (or, inside the reuse interval, the already issued) refresh
    /// token; `None` when rotation is off.
    pub refresh: Option<IssuedToken>,
    /// The user the token speaks for, as loaded to check them.
    pub user: User,
}

/// The user a refresh or sliding token speaks for, if they may still use it
/// ([`check_holder`]: `Refresh` leaves the session to the caller, `Slide`
/// wants it live).
pub fn token_user(
    conn: &mut DbConnection,
    claims: &Claims,
    session: SessionState,
    strictness: Strictness,
) -> Result<User, ApiError> {
    let user = User::find(conn, claims.user_id)?;
    check_holder(user.as_ref().map(holder), session, claims, strictness)
        .map_err(refusal_in_token_words)?;
    user.ok_or_else(ApiError::token_invalid_or_expired)
}

/// A user as [`check_holder`] reads them.
pub fn holder(user: &User) -> Holder {
    Holder {
        is_active: user.is_active,
        tokens_valid_after: to_unix(user.tokens_valid_after),
    }
}

/// A refused token at the token endpoints (refresh, sliding refresh,
/// verify): simplejwt's words, plus the deactivated user's.
fn refusal_in_token_words(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Inactive => ApiError::user_inactive(),
        Refusal::Revoked | Refusal::EndedSession => ApiError::token_blacklisted(),
        Refusal::NoUser | Refusal::UnknownSession => ApiError::token_invalid_or_expired(),
    }
}

/// The state of a session for the token's user.
pub fn session_state(session: Option<&Session>, user_id: i64) -> SessionState {
    match session.filter(|s| s.user_id == user_id) {
        None => SessionState::Unknown,
        Some(s) if s.ended_at.is_some() => SessionState::Ended,
        Some(_) => SessionState::Live,
    }
}

fn find_session_state(
    conn: &mut DbConnection,
    sid: &str,
    user_id: i64,
) -> Result<SessionState, ApiError> {
    Ok(session_state(Session::find(conn, sid)?.as_ref(), user_id))
}

fn stored(record: &TokenRecord, session: Option<&Session>) -> StoredRefresh {
    StoredRefresh {
        blacklisted: record.blacklisted_at.is_some(),
        session_ended: session.is_none_or(|s| s.ended_at.is_some()),
        replaced: record.token.replaced_by_jti.clone().zip(
            record
                .token
                .replaced_at
                .map(|at| at.and_utc().timestamp_millis()),
        ),
    }
}

/// How a refresh ended inside its transaction: a detected reuse must commit
/// the revocation and still refuse the token.
enum Outcome {
    Refreshed(Box<Refreshed>),
    ReuseDetected,
}

/// `POST /auth/refresh/` (and the silent refresh of `GET /auth/`): one write
/// transaction under the session's lock — or, with rotation off, the
/// lock-free [`refresh_without_rotation`]. A never-recorded Django token is
/// first [`adopt`]ed.
pub fn refresh(
    conn: &mut DbConnection,
    state: &AppState,
    claims: &Claims,
    now: i64,
    client: &Client,
) -> Result<Refreshed, ApiError> {
    let known = match OutstandingToken::find_by_jti(conn, &claims.jti)? {
        Some(record) if record.token.user_id == claims.user_id => record,
        Some(_) => return Err(ApiError::token_invalid_or_expired()),
        None => adopt(conn, claims, client)?,
    };
    let sid = known.token.session_id.clone();
    if claims.sid.as_deref().is_some_and(|named| named != sid) {
        return Err(ApiError::token_invalid_or_expired());
    }
    if !state.settings.refresh.rotate
        && let Some(refreshed) = refresh_without_rotation(conn, state, claims, &known, &sid, now)?
    {
        return Ok(refreshed);
    }
    let outcome = write_transaction(conn, |conn| {
        let session = Session::lock(conn, &sid)?;
        let user = token_user(conn, claims, SessionState::NotNamed, Strictness::Refresh)?;
        let assurance = session_assurance(session.as_ref());
        let record = OutstandingToken::find_by_jti(conn, &claims.jti)?
            .ok_or_else(ApiError::token_invalid_or_expired)?;
        let decision = decide_refresh(
            Some(&stored(&record, session.as_ref())),
            &state.settings.refresh,
            db_now().and_utc().timestamp_millis(),
        );
        let access = || {
            state
                .codec
                .issue(TokenType::Access, claims.user_id, &sid, &assurance, now)
        };
        let refreshed = match decision {
            RefreshDecision::AccessOnly => {
                Session::touch(conn, &sid, db_now(), record.token.expires_at)?;
                Refreshed {
                    access: access(),
                    refresh: None,
                    user,
                }
            }
            RefreshDecision::Rotate => {
                let refresh =
                    state
                        .codec
                        .issue(TokenType::Refresh, claims.user_id, &sid, &assurance, now);
                let won = OutstandingToken::rotate(
                    conn,
                    record.token.id,
                    &outstanding(&refresh, &sid),
                    state.settings.refresh.blacklist_after_rotation,
                    db_now(),
                )?;
                if !won {
                    // Another rotation got in first despite the lock (only
                    // without a session row to lock): refuse rather than fork.
                    return Err(ApiError::token_blacklisted());
                }
                Session::touch(conn, &sid, db_now(), to_naive(refresh.claims.exp))?;
                Refreshed {
                    access: access(),
                    refresh: Some(refresh),
                    user,
                }
            }
            RefreshDecision::ReturnReplacement(jti) => {
                let replacement = OutstandingToken::find_by_jti(conn, &jti)?
                    .filter(|r| r.blacklisted_at.is_none())
                    .ok_or_else(ApiError::token_blacklisted)?;
                let refresh = state.codec.sign(Claims {
                    token_type: TokenType::Refresh,
                    exp: to_unix(replacement.token.expires_at),
                    iat: to_unix(replacement.token.issued_at),
                    jti: replacement.token.jti,
                    user_id: replacement.token.user_id,
                    sid: Some(sid.clone()),
                    refresh_exp: None,
                    assurance: assurance.clone(),
                });
                Refreshed {
                    access: access(),
                    refresh: Some(refresh),
                    user,
                }
            }
            RefreshDecision::RevokeSession => {
                Session::end(conn, &sid, claims.user_id, db_now())?;
                return Ok(Outcome::ReuseDetected);
            }
            RefreshDecision::Blacklisted | RefreshDecision::Unknown => {
                return Err(ApiError::token_blacklisted());
            }
        };
        Ok::<_, ApiError>(Outcome::Refreshed(Box::new(refreshed)))
    })?;
    match outcome {
        Outcome::Refreshed(refreshed) => Ok(*refreshed),
        Outcome::ReuseDetected => {
            log::warn!(
                "refresh token reuse detected for user {}: session ended",
                claims.user_id
            );
            Err(ApiError::token_blacklisted())
        }
    }
}

/// With rotation off, a refresh issues only an access token: nothing to
/// serialise with a revocation (the token carries the session's `sid`, so a
/// logout that commits right after it refuses it from the next request on),
/// so no lock and no transaction. `None` sends anything but a plain
/// access-only refresh down the locked path.
fn refresh_without_rotation(
    conn: &mut DbConnection,
    state: &AppState,
    claims: &Claims,
    record: &TokenRecord,
    sid: &str,
    now: i64,
) -> Result<Option<Refreshed>, ApiError> {
    let user = token_user(conn, claims, SessionState::NotNamed, Strictness::Refresh)?;
    let session = Session::find(conn, sid)?;
    let decision = decide_refresh(
        Some(&stored(record, session.as_ref())),
        &state.settings.refresh,
        db_now().and_utc().timestamp_millis(),
    );
    match decision {
        RefreshDecision::AccessOnly => {
            Session::touch_last_used(conn, sid, db_now())?;
            let assurance = session_assurance(session.as_ref());
            Ok(Some(Refreshed {
                access: state
                    .codec
                    .issue(TokenType::Access, claims.user_id, sid, &assurance, now),
                refresh: None,
                user,
            }))
        }
        RefreshDecision::Blacklisted | RefreshDecision::Unknown => {
            Err(ApiError::token_blacklisted())
        }
        _ => Ok(None),
    }
}

/// A refresh token Django issued and latchkey never recorded, presented
/// for the first time: recorded as the start of a new session when it is
/// for a user imported from Django and was issued (in whole seconds) before
/// the latest import, so that nobody is logged out by the cut-over. From
/// then on it is an ordinary token (rotated, blacklisted, reuse-detected).
fn adopt(
    conn: &mut DbConnection,
    claims: &Claims,
    client: &Client,
) -> Result<TokenRecord, ApiError> {
    let refused = ApiError::token_invalid_or_expired;
    // latchkey's own tokens name their session: one it never recorded is forged.
    if claims.sid.is_some() {
        return Err(refused());
    }
    let imported = User::find(conn, claims.user_id)?.is_some_and(|u| u.imported_from_django);
    let imported_at = latest_import_at(conn)?;
    let issued_before_import = imported_at.is_some_and(|at| claims.iat < to_unix(at));
    if !imported || !issued_before_import {
        return Err(refused());
    }
    write_transaction(conn, |conn| {
        // Django issued refresh tokens only at a password login.
        let sid = new_session(
            conn,
            claims.user_id,
            claims.exp,
            client,
            &Assurance::password(),
        )?;
        // A racing request adopting the same token recorded it first: its
        // session stands, this one is rolled back.
        let recorded = OutstandingToken::record_new(
            conn,
            &NewOutstandingToken {
                jti: &claims.jti,
                user_id: claims.user_id,
                session_id: &sid,
                issued_at: to_naive(claims.iat),
                expires_at: to_naive(claims.exp),
            },
        )?;
        if recorded {
            log::info!(
                "adopted a Django refresh token of user {} as a new session",
                claims.user_id
            );
            Ok(())
        } else {
            Err(ApiError::Conflict)
        }
    })
    .or_else(|error| match error {
        ApiError::Conflict => Ok(()),
        other => Err(other),
    })?;
    OutstandingToken::find_by_jti(conn, &claims.jti)?.ok_or_else(refused)
}

/// Verifies a refresh token and refreshes it: the async flow of
/// `POST /auth/refresh/`.
pub async fn refresh_token(
    state: &State,
    token: &str,
    client: Client,
) -> Result<Refreshed, ApiError> {
    let now = unix_now();
    let claims = state
        .codec
        .verify(token, &[TokenType::Refresh], now)
        .map_err(refused)?;
    state
        .with_conn(move |conn, app| refresh(conn, app, &claims, now, &client))
        .await
}

/// Ends one session of a user (logout, `DELETE /auth/sessions/{id}/`):
/// false when it was not a live session of theirs.
pub fn end_session(conn: &mut DbConnection, user_id: i64, sid: &str) -> Result<bool, ApiError> {
    write_transaction(conn, |conn| {
        Session::lock(conn, sid)?;
        Ok(Session::end(conn, sid, user_id, db_now())?)
    })
}

/// The session a presented token belongs to, for logout: a refresh
/// token's recorded chain, else the token's own `sid`.
pub fn session_of(conn: &mut DbConnection, claims: &Claims) -> Result<Option<String>, ApiError> {
    if claims.token_type == TokenType::Refresh
        && let Some(record) = OutstandingToken::find_by_jti(conn, &claims.jti)?
        && record.token.user_id == claims.user_id
    {
        return Ok(Some(record.token.session_id));
    }
    Ok(claims.sid.clone())
}

/// `POST /auth/verify/`: any kind of token latchkey issued, signed, in time,
/// and not revoked.
pub async fn verify(state: &State, body: Body<TokenForm>) -> Result<(), ApiError> {
    let TokenForm { token } = body.parse(&())?;
    let claims = state
        .codec
        .verify(
            &token,
            &[TokenType::Access, TokenType::Refresh, TokenType::Sliding],
            unix_now(),
        )
        .map_err(refused)?;
    state
        .with_conn(move |conn, _| verify_stored(conn, &claims))
        .await
}

/// `POST /auth/verify/` beyond the signature: the user's revocations, the
/// token's session and, for a refresh token, the blacklist.
pub fn verify_stored(conn: &mut DbConnection, claims: &Claims) -> Result<(), ApiError> {
    let user = User::find(conn, claims.user_id)?;
    let (session, blacklisted) = if claims.token_type == TokenType::Refresh {
        let record = OutstandingToken::find_by_jti(conn, &claims.jti)?
            .filter(|r| r.token.user_id == claims.user_id);
        match record {
            Some(record) => (
                find_session_state(conn, &record.token.session_id, claims.user_id)?,
                record.blacklisted_at.is_some(),
            ),
            // Never issued to this user: as a session never theirs.
            None => (SessionState::Unknown, false),
        }
    } else {
        match &claims.sid {
            Some(sid) => (find_session_state(conn, sid, claims.user_id)?, false),
            None => (SessionState::NotNamed, false),
        }
    };
    // Verify answers in the token's words (the contract's 401 of refresh),
    // a deactivated user's token as invalid.
    check_holder(
        user.as_ref().map(holder),
        session,
        claims,
        Strictness::Verify,
    )
    .map_err(|refusal| match refusal {
        Refusal::Inactive => ApiError::token_invalid_or_expired(),
        other => refusal_in_token_words(other),
    })?;
    if blacklisted {
        return Err(ApiError::token_blacklisted());
    }
    Ok(())
}

/// A token endpoint's answer to a token that does not verify.
pub fn refused(_: TokenError) -> ApiError {
    ApiError::token_invalid_or_expired()
}
