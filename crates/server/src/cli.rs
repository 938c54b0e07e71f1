//! The command line: `serve` (the default), `migrate`, `create-superuser`,
//! `flush-expired-tokens`, `import-django`, `disable-mfa` and `users …`
//! (in [`users`]).

mod users;

use std::io::{BufRead, IsTerminal, Write};

use clap::{Parser, Subcommand};
use latchkey_auth::PasswordHasher;
use latchkey_domain::{Email, NewAccount, Password};
use latchkey_persistence::{
    AcceptedIdTokens, Ceremony, NewUser, OutstandingToken, StoreError, User, db_now,
    run_pending_migrations,
};

use crate::settings::Settings;
use crate::startup::{Application, open_database};

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "A JWT authentication server: register, log in, refresh, log out, manage users."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve HTTP (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Create a superuser (is_staff, is_superuser and is_active set).
    CreateSuperuser(CreateSuperuser),
    /// Delete blacklist and outstanding-token rows whose tokens have expired,
    /// and expired password reset tokens and email verification keys.
    FlushExpiredTokens,
    /// Import the users and refresh tokens of a Django database.
    ImportDjango(latchkey_import_django::ImportDjangoArgs),
    /// Remove a user's second factor (TOTP and recovery codes: a lost
    /// phone) and end every session of theirs.
    DisableMfa(DisableMfa),
    /// List users, set a password, activate, deactivate, end sessions.
    #[command(subcommand)]
    Users(users::UsersCommand),
}

#[derive(Debug, clap::Args)]
pub struct DisableMfa {
    /// The user's login name (their email).
    pub login: String,
}

#[derive(Debug, clap::Args)]
pub struct CreateSuperuser {
    /// Read LATCHKEY_SUPERUSER_EMAIL and LATCHKEY_SUPERUSER_PASSWORD instead of prompting.
    #[arg(long)]
    pub no_input: bool,
    /// Create the user even if the password fails the validators.
    #[arg(long)]
    pub bypass_validation: bool,
    /// The email (prompted for when absent and interactive).
    #[arg(long)]
    pub email: Option<String>,
}

/// A failed command: one line for stderr.
#[derive(Debug)]
pub struct CommandError(pub String);

impl<E: std::fmt::Display> From<E> for CommandError {
    fn from(error: E) -> Self {
        CommandError(error.to_string())
    }
}

pub fn run(cli: Cli) -> Result<(), CommandError> {
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
        Command::CreateSuperuser(args) => create_superuser(&settings, &args),
        Command::FlushExpiredTokens => flush_expired_tokens(&settings),
        Command::ImportDjango(args) => import_django(&settings, &args),
        Command::DisableMfa(args) => disable_mfa(&settings, &args.login),
        Command::Users(command) => users::run(&settings, command),
    }
}

/// `import-django`: the import seals second factors' secrets and hashes
/// their recovery codes through these functions, under the keys the server
/// would use (`MFA_ENCRYPTION_KEY`, else `SECRET_KEY`), never holding them.
fn import_django(
    settings: &Settings,
    args: &latchkey_import_django::ImportDjangoArgs,
) -> Result<(), CommandError> {
    let keys = settings.mfa.keys();
    let seal_secret = |user_id: i64, secret: &[u8]| keys.seal(user_id, secret);
    let hash_recovery_code = |code: &str| {
        let key = keys.recovery_code_keys().next().unwrap_or_default();
        latchkey_auth::recovery_codes::keyed_hash(key, code)
    };
    latchkey_import_django::run(
        args,
        settings.hasher,
        latchkey_import_django::SecondFactorSealing {
            seal_secret: &seal_secret,
            hash_recovery_code: &hash_recovery_code,
        },
        || open_database(settings),
    )
    .map_err(CommandError::from)
}

fn serve(settings: Settings) -> Result<(), CommandError> {
    let backend = settings.database.url.to_string();
    let public_url = settings.http.public_url.clone();
    let bind = settings.http.bind.clone();
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let app = Application::build(settings)?;
        // The addresses a person wants, ready to open.
        let base = public_url.unwrap_or_else(|| {
            let host = bind
                .rsplit_once(':')
                .map_or(bind.as_str(), |(host, _)| host);
            let host = match host {
                "0.0.0.0" | "[::]" | "" => "127.0.0.1",
                other => other,
            };
            format!("http://{host}:{}", app.port())
        });
        log::info!("latchkey is serving on {backend}");
        log::info!("  the API:          {base}/");
        log::info!("  its reference:    {base}/docs/");
        log::info!("  the demo app:     {base}/demo/");
        app.run_until_stopped().await?;
        Ok(())
    })
}

fn migrate(settings: &Settings) -> Result<(), CommandError> {
    let db = open_database(settings)?;
    let applied = run_pending_migrations(&db)?;
    if applied.is_empty() {
        println!("No migrations to apply ({}).", db.backend());
    } else {
        for version in &applied {
            println!("Applied {version}");
        }
        println!("Applied {} migration(s) ({}).", applied.len(), db.backend());
    }
    Ok(())
}

fn flush_expired_tokens(settings: &Settings) -> Result<(), CommandError> {
    let db = open_database(settings)?;
    run_pending_migrations(&db)?;
    let mut conn = db.get()?;
    let (blacklisted, outstanding, sessions) =
        OutstandingToken::flush_expired(&mut conn, db_now())?;
    println!(
        "Deleted {outstanding} expired outstanding token(s) and {blacklisted} blacklist row(s)."
    );
    println!("Deleted {sessions} expired session(s).");
    let (resets, keys) = latchkey_persistence::email_state::flush_expired(&mut conn, db_now())?;
    println!(
        "Deleted {resets} expired password reset token(s) and {keys} expired email verification key(s)."
    );
    let ceremonies = Ceremony::flush_expired(&mut conn, db_now())?;
    println!("Deleted {ceremonies} expired ceremony row(s).");
    let id_tokens = AcceptedIdTokens::flush_expired(&mut conn, db_now())?;
    println!("Deleted {id_tokens} expired accepted ID token(s).");
    Ok(())
}

/// `disable-mfa LOGIN`: what a staff member's `DELETE /list/{id}/mfa/`
/// does, for a user named by their login. Sessions end on every instance
/// at once (the database's change feed tells them), and the user is told
/// by email (the outbox, sent by a running server).
fn disable_mfa(settings: &Settings, login: &str) -> Result<(), CommandError> {
    let db = open_database(settings)?;
    run_pending_migrations(&db)?;
    let mut conn = db.get()?;
    let user = user_by_login(&mut conn, login)?;
    crate::flows::mfa::reset(&mut conn, &settings.email, user.id)
        .map_err(|e| CommandError(e.to_string()))?;
    println!("disabled the second factor of {login} and ended their sessions");
    Ok(())
}

/// The user a command names by their login name (see
/// [`User::login_name`]); an unknown one, or one that is not a login name
/// at all, is the same one-line failure naming it.
fn user_by_login(
    conn: &mut latchkey_persistence::DbConnection,
    login: &str,
) -> Result<User, CommandError> {
    Email::parse(login)
        .ok()
        .map(|email| User::find_by_email(conn, &email))
        .transpose()?
        .flatten()
        .ok_or_else(|| CommandError(format!("no user with login {login}")))
}

const EMAIL_VAR: &str = "LATCHKEY_SUPERUSER_EMAIL";
const PASSWORD_VAR: &str = "LATCHKEY_SUPERUSER_PASSWORD";

fn create_superuser(settings: &Settings, args: &CreateSuperuser) -> Result<(), CommandError> {
    let db = open_database(settings)?;
    run_pending_migrations(&db)?;
    let hasher = PasswordHasher::with_config(settings.hasher)?;
    let limit = hasher.max_password_bytes();
    let account = if args.no_input {
        account_from_environment(args, limit)?
    } else {
        account_from_prompts(&db, args, limit)?
    };
    let hash = hasher.hash(&account.password)?;
    let mut conn = db.get()?;
    let user = match User::insert(
        &mut conn,
        &NewUser::new(&account.email, &hash, account.flags, db_now()).verified(),
    ) {
        Ok(user) => user,
        Err(StoreError::EmailTaken) => {
            return Err(CommandError(format!(
                "a user with the email {} already exists",
                account.email
            )));
        }
        Err(other) => return Err(other.into()),
    };
    println!(
        "Superuser created successfully: {} (id {}).",
        user.email, user.id
    );
    Ok(())
}

fn account_from_environment(
    args: &CreateSuperuser,
    limit: usize,
) -> Result<NewAccount, CommandError> {
    let raw_email = args
        .email
        .clone()
        .or_else(|| std::env::var(EMAIL_VAR).ok())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| CommandError(format!("{EMAIL_VAR} must be set with --no-input")))?;
    let email = Email::parse(&raw_email).map_err(|e| CommandError(format!("{EMAIL_VAR}: {e}")))?;
    let password = password_from_environment(
        PASSWORD_VAR,
        Some(&email),
        limit,
        args.bypass_validation,
        "create the user",
    )?;
    Ok(NewAccount::superuser(email, password))
}

/// Reads prompted input: hidden on a terminal, plain lines otherwise (so the
/// command can be scripted through a pipe).
struct Prompter {
    interactive: bool,
    stdin: std::io::StdinLock<'static>,
}

impl Prompter {
    fn new() -> Self {
        Prompter {
            interactive: std::io::stdin().is_terminal(),
            stdin: std::io::stdin().lock(),
        }
    }

    fn line(&mut self, prompt: &str) -> Result<String, CommandError> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if self.stdin.read_line(&mut line)? == 0 {
            return Err(CommandError(
                "input ended before the command was done".into(),
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    fn hidden(&mut self, prompt: &str) -> Result<String, CommandError> {
        if self.interactive {
            Ok(rpassword::prompt_password(prompt)?)
        } else {
            self.line(prompt)
        }
    }
}

fn account_from_prompts(
    db: &latchkey_persistence::Database,
    args: &CreateSuperuser,
    limit: usize,
) -> Result<NewAccount, CommandError> {
    let mut prompter = Prompter::new();
    let mut preset = args.email.clone();
    let email = loop {
        let raw = match preset.take() {
            Some(raw) => raw,
            None => prompter.line("Email: ")?,
        };
        let email = match Email::parse(&raw) {
            Ok(email) => email,
            Err(e) => {
                eprintln!("Error: {e}");
                continue;
            }
        };
        let mut conn = db.get()?;
        if User::find_by_email(&mut conn, &email)?.is_some() {
            eprintln!("Error: That email is already taken.");
            continue;
        }
        break email;
    };
    let password = prompted_password(
        &mut prompter,
        Some(&email),
        limit,
        args.bypass_validation,
        "create user",
    )?;
    Ok(NewAccount::superuser(email, password))
}

/// Prompts for a password twice (hidden on a terminal) until the two match
/// and it passes the validators, or the validators are bypassed (`--bypass-validation`,
/// or a yes to the question, which ends with "`action` anyway").
fn prompted_password(
    prompter: &mut Prompter,
    email: Option<&Email>,
    limit: usize,
    bypass_validation: bool,
    action: &str,
) -> Result<Password, CommandError> {
    loop {
        let first = prompter.hidden("Password: ")?;
        let second = prompter.hidden("Password (again): ")?;
        if first != second {
            eprintln!("Error: Your passwords didn't match.");
            continue;
        }
        if first.trim().is_empty() {
            eprintln!("Error: Blank passwords aren't allowed.");
            continue;
        }
        match Password::parse_with_limit(&first, email, limit) {
            Ok(password) => return Ok(password),
            Err(failures) => {
                for failure in &failures {
                    eprintln!("{failure}");
                }
                match Password::parse_unvalidated_with_limit(&first, limit) {
                    Ok(password) if bypass_validation || confirm(prompter, action)? => {
                        return Ok(password);
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("Error: {e}");
                        continue;
                    }
                }
            }
        }
    }
}

/// A password read from the environment variable `var` (`--no-input`),
/// refused when blank, and when weak unless `bypass_validation`.
fn password_from_environment(
    var: &str,
    email: Option<&Email>,
    limit: usize,
    bypass_validation: bool,
    action: &str,
) -> Result<Password, CommandError> {
    let raw_password = std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| CommandError(format!("{var} must be set with --no-input")))?;
    // Login refuses a blank password, so such a user could never log in.
    if raw_password.trim().is_empty() {
        return Err(CommandError(format!(
            "{var} is blank: a password of whitespace only is refused, even with --bypass-validation"
        )));
    }
    match Password::parse_with_limit(&raw_password, email, limit) {
        Ok(password) => Ok(password),
        Err(_) if bypass_validation => Password::parse_unvalidated_with_limit(&raw_password, limit)
            .map_err(|e| CommandError(format!("{var}: {e}"))),
        Err(failures) => {
            let messages: Vec<String> = failures.iter().map(ToString::to_string).collect();
            Err(CommandError(format!(
                "{var}: {} (use --bypass-validation to {action} anyway)",
                messages.join(" ")
            )))
        }
    }
}

fn confirm(prompter: &mut Prompter, action: &str) -> Result<bool, CommandError> {
    let answer = prompter.line(&format!(
        "Bypass password validation and {action} anyway? [y/N]: "
    ))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
