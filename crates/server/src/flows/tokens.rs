//! Issuing, refreshing, verifying and revoking tokens against storage.

use chrono::{DateTime, NaiveDateTime};
use latchkey_auth::{
    Claims, IssuedToken, RefreshDecision, StoredRefresh, TokenError, TokenType, decide_refresh,
    issued_before_revocation,
};
use latchkey_persistence::{
    DbConnection as Conn, NewOutstandingToken, OutstandingToken, TokenRecord, User, db_now,
};

use crate::error::ApiError;
use crate::state::AppState;

/// An access and a refresh token issued together.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: IssuedToken,
    pub refresh: IssuedToken,
}

fn to_naive(unix: i64) -> NaiveDateTime {
    DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .naive_utc()
}

fn to_unix(instant: NaiveDateTime) -> i64 {
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

/// Starts a session (login or register): a recorded refresh token whose jti
/// names the session, and an access token.
pub fn start_session(
    conn: &mut Conn,
    state: &AppState,
    user_id: i64,
    now: i64,
) -> Result<TokenPair, ApiError> {
    let refresh = state.codec.issue(TokenType::Refresh, user_id, now);
    OutstandingToken::record(conn, &outstanding(&refresh, &refresh.claims.jti))?;
    let access = state.codec.issue(TokenType::Access, user_id, now);
    Ok(TokenPair { access, refresh })
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

fn stored(record: &TokenRecord) -> StoredRefresh {
    StoredRefresh {
        blacklisted: record.blacklisted_at.is_some(),
        replaced: record
            .token
            .replaced_by_jti
            .clone()
            .zip(record.token.replaced_at.map(to_unix)),
    }
}

/// The user a refresh or sliding token speaks for, if they may still use it.
pub fn token_user(conn: &mut Conn, claims: &Claims) -> Result<User, ApiError> {
    let user = User::find(conn, claims.user_id)?.ok_or_else(ApiError::token_invalid_or_expired)?;
    if !user.is_active {
        return Err(ApiError::user_inactive());
    }
    if issued_before_revocation(claims.iat, to_unix(user.tokens_valid_after)) {
        return Err(ApiError::token_blacklisted());
    }
    Ok(user)
}

/// Outcome of one attempt at rotating, inside the rotation transaction.
enum Rotation {
    Done(IssuedToken),
    LostRace,
}

/// `POST /auth/refresh/` (and the silent refresh of `GET /auth/`): one unit
/// of work. The rotation itself is one transaction whose first statement is
/// a write, and the old token can be marked replaced only once, so two
/// concurrent refreshes of one token never mint two live chains: the loser
/// takes the winner's replacement.
pub fn refresh(
    conn: &mut Conn,
    state: &AppState,
    claims: &Claims,
    now: i64,
) -> Result<Refreshed, ApiError> {
    let user = token_user(conn, claims)?;
    for _ in 0..2 {
        let record = OutstandingToken::find_by_jti(conn, &claims.jti)?
            .filter(|record| record.token.user_id == claims.user_id);
        let decision = decide_refresh(
            record.as_ref().map(stored).as_ref(),
            &state.refresh_policy,
            now,
        );
        let access = || state.codec.issue(TokenType::Access, claims.user_id, now);
        match (decision, record) {
            (RefreshDecision::AccessOnly, _) => {
                return Ok(Refreshed {
                    access: access(),
                    refresh: None,
                    user,
                });
            }
            (RefreshDecision::Rotate, Some(record)) => {
                match rotate(conn, state, &record.token, now)? {
                    Rotation::Done(refresh) => {
                        return Ok(Refreshed {
                            access: access(),
                            refresh: Some(refresh),
                            user,
                        });
                    }
                    Rotation::LostRace => continue,
                }
            }
            (RefreshDecision::ReturnReplacement(jti), _) => {
                let replacement = OutstandingToken::find_by_jti(conn, &jti)?
                    .filter(|r| r.blacklisted_at.is_none())
                    .ok_or_else(ApiError::token_blacklisted)?;
                let refresh = state.codec.sign(Claims {
                    token_type: TokenType::Refresh,
                    exp: to_unix(replacement.token.expires_at),
                    iat: to_unix(replacement.token.issued_at),
                    jti: replacement.token.jti,
                    user_id: replacement.token.user_id,
                    refresh_exp: None,
                });
                return Ok(Refreshed {
                    access: access(),
                    refresh: Some(refresh),
                    user,
                });
            }
            (RefreshDecision::RevokeSession, Some(record)) => {
                let revoked =
                    OutstandingToken::blacklist_session(conn, &record.token.session_id, db_now())?;
                log::warn!(
                    "refresh token reuse detected for user {}: session revoked ({revoked} tokens)",
                    claims.user_id
                );
                return Err(ApiError::token_blacklisted());
            }
            (RefreshDecision::Blacklisted, _) => return Err(ApiError::token_blacklisted()),
            _ => return Err(ApiError::token_invalid_or_expired()),
        }
    }
    Err(ApiError::token_blacklisted())
}

fn rotate(
    conn: &mut Conn,
    state: &AppState,
    old: &OutstandingToken,
    now: i64,
) -> Result<Rotation, ApiError> {
    let refresh = state.codec.issue(TokenType::Refresh, old.user_id, now);
    let retire_old = state.refresh_policy.blacklist_after_rotation;
    let won = OutstandingToken::rotate(
        conn,
        old.id,
        &outstanding(&refresh, &old.session_id),
        retire_old,
        db_now(),
    )?;
    Ok(if won {
        Rotation::Done(refresh)
    } else {
        Rotation::LostRace
    })
}

/// `DELETE /auth/`: ends the session the refresh token belongs to. A token
/// that does not verify changes nothing (logout is idempotent).
pub fn end_session(conn: &mut Conn, claims: &Claims) -> Result<(), ApiError> {
    if let Some(record) = OutstandingToken::find_by_jti(conn, &claims.jti)?
        && record.token.user_id == claims.user_id
    {
        OutstandingToken::blacklist_session(conn, &record.token.session_id, db_now())?;
    }
    Ok(())
}

/// `POST /auth/verify/` beyond the signature: the user's revocations and,
/// for a refresh token, the blacklist.
pub fn verify_stored(conn: &mut Conn, claims: &Claims) -> Result<(), ApiError> {
    let user = User::find(conn, claims.user_id)?.ok_or_else(ApiError::token_invalid_or_expired)?;
    if issued_before_revocation(claims.iat, to_unix(user.tokens_valid_after)) {
        return Err(ApiError::token_blacklisted());
    }
    if claims.token_type == TokenType::Refresh {
        let record = OutstandingToken::find_by_jti(conn, &claims.jti)?
            .filter(|r| r.token.user_id == claims.user_id)
            .ok_or_else(ApiError::token_invalid_or_expired)?;
        if record.blacklisted_at.is_some() {
            return Err(ApiError::token_blacklisted());
        }
    }
    Ok(())
}

/// A token endpoint's answer to a token that does not verify.
pub fn refused(_error: TokenError) -> ApiError {
    ApiError::token_invalid_or_expired()
}
