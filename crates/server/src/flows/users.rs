//! The user viewset (`/list/`): the permission policy of the domain crate
//! applied to storage.

use latchkey_auth::Claims;
use latchkey_domain::permissions::{self, Actor, FlagChange, Target};
use latchkey_domain::{Email, NewAccount};
use latchkey_persistence::{
    DbConnection, ListOrder, ListQuery, User, UserChanges, UserPage, db_now, write_transaction,
};

use super::accounts::{create_account, new_account_form, password_rules};
use super::login::password::{verify_own_password, wrong_password};
use super::login::still_verified;
use super::sessions::{WRONG_OLD_PASSWORD, revoke_everything};
use crate::error::{ApiError, FieldErrors};
use crate::forms::{Body, UpdateContext, UpdateKind, UserCreateForm, UserUpdateForm};
use crate::state::State;

pub const DEFAULT_PAGE_SIZE: i64 = 100;
pub const MAX_PAGE_SIZE: i64 = 1000;

fn actor(caller: &User) -> Actor {
    Actor {
        id: caller.id,
        flags: caller.flags(),
    }
}

fn target(user: &User) -> Target {
    Target {
        id: user.id,
        flags: user.flags(),
    }
}

fn denied(_: permissions::Denied) -> ApiError {
    ApiError::PermissionDenied
}

/// A page request as the query string gives it.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub search: Option<String>,
    pub ordering: Option<String>,
}

pub struct Page {
    pub number: i64,
    pub size: i64,
    pub users: UserPage,
}

impl Page {
    pub fn has_next(&self) -> bool {
        self.number * self.size < self.users.count
    }
}

fn invalid_page() -> ApiError {
    ApiError::NotFoundWith("Invalid page.")
}

pub async fn list(state: &State, request: PageRequest) -> Result<Page, ApiError> {
    let size = request
        .page_size
        .as_deref()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE));
    let number = match request.page.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some("last") => -1,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(invalid_page)?,
    };
    let (order, descending) = parse_ordering(request.ordering.as_deref());
    if request.search.as_deref().is_some_and(|s| s.contains('\0')) {
        return Err(ApiError::Fields(FieldErrors::single(
            "search",
            crate::body::NULL_CHARACTER,
        )));
    }
    let search = request
        .search
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let page = state
        .with_conn(move |conn, _| {
            let mut query = ListQuery {
                search,
                order,
                descending,
                offset: 0,
                limit: size,
                ..ListQuery::default()
            };
            let mut number = number;
            if number == -1 {
                let total = User::list(
                    conn,
                    &ListQuery {
                        limit: 0,
                        ..query.clone()
                    },
                )?
                .count;
                number = ((total + size - 1) / size).max(1);
            }
            query.offset = (number - 1).saturating_mul(size);
            let users = User::list(conn, &query)?;
            Ok(Page {
                number,
                size,
                users,
            })
        })
        .await?;
    if page.number > 1 && page.users.users.is_empty() {
        return Err(invalid_page());
    }
    Ok(page)
}

/// `?ordering=`: `id`, `email` or `created_at`, each may take `-`; anything
/// else is ignored, as DRF's `OrderingFilter` does.
fn parse_ordering(raw: Option<&str>) -> (ListOrder, bool) {
    let Some(raw) = raw.and_then(|r| r.split(',').next()).map(str::trim) else {
        return (ListOrder::Id, false);
    };
    let (descending, field) = match raw.strip_prefix('-') {
        Some(field) => (true, field),
        None => (false, raw),
    };
    match field {
        "id" => (ListOrder::Id, descending),
        "email" => (ListOrder::Email, descending),
        "created_at" => (ListOrder::CreatedAt, descending),
        _ => (ListOrder::Id, false),
    }
}

pub async fn retrieve(state: &State, id: i64) -> Result<User, ApiError> {
    state
        .with_conn(move |conn, _| User::find(conn, id)?.ok_or(ApiError::NotFound))
        .await
}

/// `POST /list/`: staff create accounts; only a superuser creates one.
pub async fn create(
    state: &State,
    caller: &User,
    body: Body<UserCreateForm>,
) -> Result<User, ApiError> {
    let actor = actor(caller);
    permissions::can_create(&actor, &FlagChange::default()).map_err(denied)?;
    let form = new_account_form(state, &body).await?;
    let flags = form.flags();
    permissions::can_create(&actor, &FlagChange::for_new_account(flags)).map_err(denied)?;
    create_account(
        state,
        NewAccount::with_flags(form.email, form.password, flags),
    )
    .await
}

/// `PUT` and `PATCH /list/{id}/`.
pub async fn update(
    state: &State,
    caller: &User,
    claims: &Claims,
    id: i64,
    body: Body<UserUpdateForm>,
    kind: UpdateKind,
) -> Result<User, ApiError> {
    let existing = retrieve(state, id).await?;
    let actor = actor(caller);
    permissions::can_update(&actor, &target(&existing), &FlagChange::default()).map_err(denied)?;
    let form = body.parse(&UpdateContext {
        kind,
        stored_email: existing.email.clone(),
        by_themself: actor.id == id,
        password_rules: password_rules(state),
    })?;
    let change = FlagChange::between(
        existing.flags(),
        form.is_active,
        form.is_staff,
        form.is_superuser,
    );
    permissions::can_update(&actor, &target(&existing), &change).map_err(denied)?;
    let changes_own_credentials = actor.id == id
        && (form.password.is_some()
            || form
                .email
                .as_ref()
                .is_some_and(|e| e.as_str() != existing.email));
    if changes_own_credentials {
        super::mfa::gate::require_aal2(state, caller, claims).await?;
    }
    let checked_password = form.current_password.is_some();
    let upgraded_hash = match form.current_password {
        Some(current_password) => {
            verify_own_password(
                state,
                &existing,
                current_password,
                "current_password",
                WRONG_OLD_PASSWORD,
            )
            .await?
        }
        None => None,
    };

    let password_hash = match form.password {
        Some(password) => Some(
            state
                .hashing
                .run(move |hasher| hasher.hash(&password))
                .await?
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        ),
        None => None,
    };
    let now = db_now();
    let password_changed = password_hash.is_some();
    let new_email = form
        .email
        .map(Email::into_inner)
        .filter(|e| *e != existing.email);
    // Any new address is unverified until its owner follows the emailed
    // link; only under optional/mandatory is that link sent (under `none`
    // the flag is not enforced, but must not vouch for an address nobody
    // confirmed should verification be switched on later).
    let new_address = new_email.is_some();
    let reverify = new_address && super::email::reverifies_new_addresses(state);
    let changes = UserChanges {
        email: new_email,
        password_changed_at: password_changed.then_some(now),
        password_hash,
        is_superuser: change.is_superuser,
        is_active: change.is_active,
        is_staff: change.is_staff,
        last_login: None,
        updated_at: Some(now),
        tokens_valid_after: None,
        email_verified: new_address.then_some(false),
    };
    // A new password or a deactivation ends every session of the account.
    let user = state
        .with_conn(move |conn, app| {
            write_transaction(conn, |conn| {
                if checked_password {
                    // The current password was checked against the hash
                    // read before: a reset or password change that
                    // committed since wins, and this change is refused.
                    still_verified(conn, &existing, || {
                        wrong_password("current_password", WRONG_OLD_PASSWORD)
                    })?;
                }
                // A verified current password in an old format is stored
                // anew (not a password change: no session ends for it),
                // only while the hash checked is still the stored one.
                if let (Some(upgrade), false) = (&upgraded_hash, password_changed) {
                    User::upgrade_hash(conn, id, &existing.password_hash, upgrade)?;
                }
                let user = write_changes(conn, id, changes)?;
                if reverify {
                    super::email::queue_verification(conn, app, &user)?;
                }
                Ok(user)
            })
        })
        .await?;
    if reverify {
        state.mailer.wake();
    }
    Ok(user)
}

/// Writes a change to a user, as staff make it: a new password or a
/// deactivation ends every session of the account (the viewset and the
/// command line both go through here).
pub fn write_changes(
    conn: &mut DbConnection,
    id: i64,
    changes: UserChanges,
) -> Result<User, ApiError> {
    let revokes = changes.password_hash.is_some() || changes.is_active == Some(false);
    if revokes {
        revoke_everything(conn, id, changes)
    } else {
        Ok(User::update(conn, id, &changes)?)
    }
}

/// `is_active` set or cleared by staff (`latchkey users activate` and
/// `deactivate`); a deactivation ends every session.
pub fn set_active(conn: &mut DbConnection, id: i64, active: bool) -> Result<User, ApiError> {
    write_changes(
        conn,
        id,
        UserChanges {
            is_active: Some(active),
            updated_at: Some(db_now()),
            ..UserChanges::default()
        },
    )
}

/// `DELETE /list/{id}/`.
pub async fn destroy(state: &State, caller: &User, id: i64) -> Result<(), ApiError> {
    let existing = retrieve(state, id).await?;
    permissions::can_delete(&actor(caller), &target(&existing)).map_err(denied)?;
    // Sessions end first, under the same locks as every revocation, so a
    // refresh racing the deletion cannot deadlock with it.
    state
        .with_conn(move |conn, _| {
            write_transaction(conn, |conn| {
                revoke_everything(conn, id, UserChanges::default())?;
                if User::delete(conn, id)? {
                    Ok(())
                } else {
                    Err(ApiError::NotFound)
                }
            })
        })
        .await
}
