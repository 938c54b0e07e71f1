//! A login's second step. When the first factor names a user with a second
//! factor, [`complete_login`](super::complete_login) starts no session: it
//! begins an `mfa_pending` ceremony (what the first factor proved, which
//! session to start, the user as checked) and answers 401 `mfa_required`
//! with an `mfa_token` whose `jti` names it. `POST /auth/mfa/verify/` then
//! takes the code and, in ONE write transaction, takes one of the token's
//! tries (one statement, which also locks the ceremony), uses the code (one
//! statement), uses the ceremony up (one statement), re-checks the user
//! under lock as the first step would, and starts the session.

use latchkey_auth::secrets::secret_hash;
use latchkey_auth::{IssuedToken, TokenType};
use latchkey_domain::factors::SecondFactor;
use latchkey_domain::{Assurance, Method};
use latchkey_persistence::{
    Ceremony, CeremonyKind, DbConnection, NewCeremony, TotpDevice, User, db_now, write_transaction,
};
use serde::{Deserialize, Serialize};

use super::{Pair, SessionKind, Sliding, record_login, require_verified};
use crate::error::ApiError;
use crate::flows::mfa::codes::{self, Incorrect, Refused};
use crate::flows::mfa::notices::{Event, queue_notice};
use crate::flows::tokens::{Client, TokenPair, to_naive};
use crate::forms::Body;
use crate::forms::mfa::{Factor, MfaVerify};
use crate::state::{AppState, State, unix_now};
use crate::views::MfaToken;

/// Wrong codes an `mfa_token` takes; the last one ends it.
pub const MAX_WRONG_CODES: i32 = 5;

/// The second factors the user has enrolled, read in the login's
/// transaction: TOTP, and with it the recovery codes.
pub fn enrolled(conn: &mut DbConnection, user_id: i64) -> Result<Vec<SecondFactor>, ApiError> {
    Ok(match codes::enabled_device(conn, user_id)? {
        Some(_) => vec![SecondFactor::Totp, SecondFactor::RecoveryCode],
        None => Vec::new(),
    })
}

/// What the `mfa_pending` ceremony keeps for the second step.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// The session the login that asked starts.
    session: PendingSession,
    /// The first factor's `amr`.
    amr: Vec<String>,
    /// The user as the first factor checked them: what must not have
    /// moved by the second step (as the first step's own re-check).
    checked: Checked,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum PendingSession {
    Pair,
    Sliding,
}

#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Checked {
    /// Microseconds since the epoch.
    password_changed_at: Option<i64>,
    tokens_valid_after: i64,
    /// SHA-256 of the stored hash, never the hash.
    hash_digest: String,
}

impl Checked {
    fn of(user: &User) -> Self {
        Checked {
            password_changed_at: user
                .password_changed_at
                .map(|at| at.and_utc().timestamp_micros()),
            tokens_valid_after: user.tokens_valid_after.and_utc().timestamp_micros(),
            hash_digest: secret_hash(&user.password_hash),
        }
    }

    /// Whether `now` may still log in on what was checked: still active,
    /// the same password (unchanged, or only re-hashed by a login's
    /// upgrade, which leaves `password_changed_at`), no revocation since.
    fn still_holds(&self, now: &User) -> bool {
        let now_checked = Checked::of(now);
        now.is_active
            && now_checked.tokens_valid_after == self.tokens_valid_after
            && (now_checked.password_changed_at == self.password_changed_at
                || now_checked.hash_digest == self.hash_digest)
    }
}

/// Inside the first factor's transaction: begins the ceremony and makes
/// the `mfa_required` answer.
pub fn ask(
    conn: &mut DbConnection,
    app: &AppState,
    user: &User,
    first: &Assurance,
    session: &'static str,
    methods: &[SecondFactor],
) -> Result<ApiError, ApiError> {
    let jti = latchkey_auth::jwt::new_jti();
    let now = unix_now();
    let pending = Pending {
        session: if session == Sliding::NAME {
            PendingSession::Sliding
        } else {
            PendingSession::Pair
        },
        amr: first.amr.iter().map(|m| m.amr().to_owned()).collect(),
        checked: Checked::of(user),
    };
    let payload = serde_json::to_string(&pending).map_err(|e| ApiError::Internal(e.to_string()))?;
    let token = app.codec.issue_mfa(user.id, &jti, first, now);
    Ceremony::begin(
        conn,
        &NewCeremony {
            kind: CeremonyKind::MfaPending,
            handle_hash: &secret_hash(&jti),
            user_id: Some(user.id),
            payload: &payload,
            created_at: to_naive(now),
            expires_at: to_naive(token.claims.exp),
        },
    )?;
    Ok(ApiError::MfaRequired {
        mfa_token: MfaToken(token.token),
        methods: methods.iter().map(|m| m.name()).collect(),
    })
}

/// What a completed second step starts: the session of the login that
/// asked for it.
pub enum Completed {
    Pair(Box<(User, TokenPair)>),
    Sliding(IssuedToken),
}

/// How the second step's transaction ended.
enum Step {
    Completed(Completed),
    /// A wrong code, its try counted (committed).
    Wrong(Incorrect),
}

/// `POST /auth/mfa/verify/`. The account's login counter is reserved
/// first (past the limit: 429, right code or not); a wrong code counts as a
/// failed login and as one of the token's [`MAX_WRONG_CODES`]; only a
/// completed login resets the counter.
pub async fn verify(
    state: &State,
    body: Body<MfaVerify>,
    client: Client,
) -> Result<Completed, ApiError> {
    let MfaVerify { mfa_token, factor } = body.parse(&())?;
    let claims = state
        .codec
        .verify(&mfa_token, &[TokenType::Mfa], unix_now())
        .map_err(|_| ApiError::token_invalid_or_expired())?;
    let user_id = claims.user_id;
    let handle = secret_hash(&claims.jti);
    // A dead token answers 401 before the account's counter is touched
    // (a read that routes the answer; the transaction decides).
    let lookup = handle.clone();
    let user = state
        .with_conn(move |conn, _| {
            let live = Ceremony::find_live(conn, CeremonyKind::MfaPending, &lookup, db_now())?
                .is_some_and(|c| c.user_id == Some(user_id));
            Ok(if live {
                User::find(conn, user_id)?
            } else {
                None
            })
        })
        .await?
        .ok_or_else(ApiError::token_invalid_or_expired)?;
    let attempt = state.throttle.reserve_login_of(&user.email).await?;
    let outcome = state
        .with_conn(move |conn, app| {
            write_transaction(conn, |conn| {
                complete(conn, app, user_id, &handle, &factor, &client)
            })
        })
        .await;
    match outcome {
        Ok(Step::Completed(completed)) => {
            state.metrics.logins.inc();
            if let Some(attempt) = attempt {
                attempt.succeeded().await;
            }
            state.mailer.wake();
            Ok(completed)
        }
        Ok(Step::Wrong(incorrect)) => {
            state.metrics.login_failures.inc();
            if let Some(attempt) = attempt {
                attempt.failed();
            }
            Err(incorrect.into())
        }
        Err(error) => {
            if let Some(attempt) = attempt {
                attempt.given_back().await;
            }
            Err(error)
        }
    }
}

/// The second step's one transaction. The user's second factor is locked
/// first (the order every second-factor transaction takes), then the
/// token's try is taken by one statement that also locks the ceremony: of
/// any number of requests with one `mfa_token`, on any instance, they run
/// one at a time, at most [`MAX_WRONG_CODES`] have their code looked at,
/// and after one completes the others find it spent (401). A wrong code
/// commits its counted try (the fifth ends the token); anything else that
/// refuses rolls back, leaving the try, the code and the ceremony as they
/// were.
fn complete(
    conn: &mut DbConnection,
    app: &AppState,
    user_id: i64,
    handle: &str,
    factor: &Factor,
    client: &Client,
) -> Result<Step, ApiError> {
    TotpDevice::lock(conn, user_id)?;
    let now = db_now();
    let tries = Ceremony::spend_try(conn, MFA, handle, MAX_WRONG_CODES, now)?
        .ok_or_else(ApiError::token_invalid_or_expired)?;
    let method = match codes::accept(conn, &app.mfa_keys, user_id, factor, unix_now()) {
        Ok(method) => method,
        Err(Refused::Incorrect(incorrect)) => {
            if tries >= MAX_WRONG_CODES {
                Ceremony::consume(conn, MFA, handle, now)?;
            }
            return Ok(Step::Wrong(incorrect));
        }
        Err(Refused::Error(error)) => return Err(error),
    };
    // Live and locked since `spend_try` in this transaction.
    let ceremony = Ceremony::consume(conn, MFA, handle, now)?
        .filter(|ceremony| ceremony.user_id == Some(user_id))
        .ok_or_else(ApiError::token_invalid_or_expired)?;
    let pending: Pending = serde_json::from_str(&ceremony.payload)
        .map_err(|e| ApiError::Internal(format!("an mfa_pending ceremony: {e}")))?;
    let user = User::lock(conn, user_id)?
        .filter(|now| pending.checked.still_holds(now))
        .ok_or_else(ApiError::no_active_account)?;
    require_verified(app, &user)?;
    let first: Vec<Method> = pending
        .amr
        .iter()
        .filter_map(|name| Method::from_amr(name))
        .collect();
    let assurance = Assurance::of(first, false).and(method, false);
    if method == Method::RecoveryCode {
        queue_notice(conn, &app.settings.email, &user, Event::RecoveryCodeUsed)?;
    }
    let user = record_login(conn, app, user)?;
    Ok(Step::Completed(match pending.session {
        PendingSession::Sliding => {
            Completed::Sliding(Sliding::start(conn, app, user.id, &assurance, client)?)
        }
        PendingSession::Pair => {
            let pair = Pair::start(conn, app, user.id, &assurance, client)?;
            Completed::Pair(Box::new((user, pair)))
        }
    }))
}

const MFA: CeremonyKind = CeremonyKind::MfaPending;
