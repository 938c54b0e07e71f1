//! `latchkey users …`: Django's `changepassword` and the admin's everyday
//! actions, for a user named by their login name. Each does what the API's
//! equivalent does, through the same flows; every running instance hears of
//! the change through the database's change feed (the triggers on `users`
//! and `sessions`), as it does of `disable-mfa`.

use chrono::NaiveDateTime;
use clap::Subcommand;
use latchkey_auth::PasswordHasher;
use latchkey_domain::Email;
use latchkey_persistence::{ListQuery, User, UserChanges, run_pending_migrations};

use super::{CommandError, Prompter, password_from_environment, prompted_password, user_by_login};
use crate::flows::sessions::{replace_password, revoke_everything};
use crate::flows::users::set_active;
use crate::settings::Settings;
use crate::startup::open_database;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// One line per user: id, login name, flags, last login.
    List(List),
    /// Set a user's password (prompted twice, hidden) and end every
    /// session of theirs.
    SetPassword(SetPassword),
    /// Deactivate a user (they can no longer log in) and end every
    /// session of theirs.
    Deactivate(Login),
    /// Let a deactivated user log in again.
    Activate(Login),
    /// End every session of a user (log them out everywhere).
    EndSessions(Login),
}

#[derive(Debug, clap::Args)]
pub struct List {
    /// Only users whose login name contains this text (case-insensitive).
    #[arg(long)]
    pub search: Option<String>,
    /// Only staff users.
    #[arg(long)]
    pub staff: bool,
    /// Only inactive users.
    #[arg(long)]
    pub inactive: bool,
}

#[derive(Debug, clap::Args)]
pub struct Login {
    /// The user's login name (their email).
    pub login: String,
}

#[derive(Debug, clap::Args)]
pub struct SetPassword {
    /// The user's login name (their email).
    pub login: String,
    /// Read LATCHKEY_NEW_PASSWORD instead of prompting.
    #[arg(long)]
    pub no_input: bool,
    /// Set the password even if it fails the validators.
    #[arg(long)]
    pub bypass_validation: bool,
}

const NEW_PASSWORD_VAR: &str = "LATCHKEY_NEW_PASSWORD";

/// Users listed per query.
const BATCH: i64 = 500;

pub fn run(settings: &Settings, command: UsersCommand) -> Result<(), CommandError> {
    match command {
        UsersCommand::List(args) => list(settings, &args),
        UsersCommand::SetPassword(args) => set_password(settings, &args),
        UsersCommand::Deactivate(Login { login }) => {
            change(settings, &login, |conn, user| {
                set_active(conn, user.id, false)
            })?;
            println!("deactivated {login} and ended their sessions");
            Ok(())
        }
        UsersCommand::Activate(Login { login }) => {
            change(settings, &login, |conn, user| {
                set_active(conn, user.id, true)
            })?;
            println!("activated {login}");
            Ok(())
        }
        UsersCommand::EndSessions(Login { login }) => {
            change(settings, &login, |conn, user| {
                revoke_everything(conn, user.id, UserChanges::default())
            })?;
            println!("ended every session of {login}");
            Ok(())
        }
    }
}

/// Finds the user named by `login` and applies `flow` to them.
fn change(
    settings: &Settings,
    login: &str,
    flow: impl FnOnce(
        &mut latchkey_persistence::DbConnection,
        &User,
    ) -> Result<User, crate::error::ApiError>,
) -> Result<User, CommandError> {
    let db = open_database(settings)?;
    run_pending_migrations(&db)?;
    let mut conn = db.get()?;
    let user = user_by_login(&mut conn, login)?;
    flow(&mut conn, &user).map_err(|e| CommandError(e.to_string()))
}

fn list(settings: &Settings, args: &List) -> Result<(), CommandError> {
    let db = open_database(settings)?;
    run_pending_migrations(&db)?;
    let mut conn = db.get()?;
    let mut query = ListQuery {
        search: args
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        staff_only: args.staff,
        inactive_only: args.inactive,
        limit: BATCH,
        ..ListQuery::default()
    };
    loop {
        let page = User::list(&mut conn, &query)?;
        for user in &page.users {
            println!("{}", listed(user));
        }
        if (page.users.len() as i64) < BATCH {
            return Ok(());
        }
        query.offset += BATCH;
    }
}

/// `id<TAB>login name<TAB>flags<TAB>last login`, flags a comma-separated
/// list of `active` or `inactive`, then `staff` and `superuser` when set;
/// the last login in UTC (`never` when none).
fn listed(user: &User) -> String {
    let mut flags = vec![if user.is_active { "active" } else { "inactive" }];
    if user.is_staff {
        flags.push("staff");
    }
    if user.is_superuser {
        flags.push("superuser");
    }
    format!(
        "{}\t{}\t{}\t{}",
        user.id,
        user.login_name(),
        flags.join(","),
        user.last_login
            .as_ref()
            .map_or_else(|| "never".to_owned(), last_login)
    )
}

fn last_login(at: &NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn set_password(settings: &Settings, args: &SetPassword) -> Result<(), CommandError> {
    let db = open_database(settings)?;
    run_pending_migrations(&db)?;
    let hasher = PasswordHasher::with_config(settings.hasher)?;
    let limit = hasher.max_password_bytes();
    let user = {
        let mut conn = db.get()?;
        user_by_login(&mut conn, &args.login)?
    };
    // The validators compare the password with the user's email (as a
    // password change does; an imported address that does not parse is
    // left out of the comparison).
    let email = Email::parse(&user.email).ok();
    let password = if args.no_input {
        password_from_environment(
            NEW_PASSWORD_VAR,
            email.as_ref(),
            limit,
            args.bypass_validation,
            "set it",
        )?
    } else {
        let mut prompter = Prompter::new();
        eprintln!("Changing password for user {}", user.login_name());
        prompted_password(
            &mut prompter,
            email.as_ref(),
            limit,
            args.bypass_validation,
            "set it",
        )?
    };
    let hash = hasher.hash(&password)?;
    let mut conn = db.get()?;
    replace_password(&mut conn, user.id, hash).map_err(|e| CommandError(e.to_string()))?;
    println!(
        "changed the password of {} and ended their sessions",
        args.login
    );
    Ok(())
}
