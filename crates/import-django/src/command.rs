//! `latchkey import-django --from URL [--table NAME] [--dry-run] [--overwrite]`: moves a
//! Django (DRF + simplejwt) database's users, second factors, linked
//! provider identities and refresh tokens into latchkey
//! (see "Moving from Django" in the contract and docs/migrating-from-django.md).
//!
//! The Django database is opened read only and its user table found before
//! latchkey's database is touched, so a wrong `--from` or `--table` writes
//! nothing; then latchkey's pending migrations are applied and the import
//! runs in one transaction. Skipped rows, users kept as latchkey changed
//! them, rows whose hash can never verify, second factors and social
//! accounts that cannot be carried, identities latchkey links to another
//! user, allauth's social apps (by name and client id), progress and the
//! groups and permissions left behind go to stderr; the summary is the last
//! line of stdout.

use std::io::Write;

use latchkey_auth::sealing::Sealed;
use latchkey_auth::{HasherConfig, PasswordHasher};
use latchkey_persistence::{Database, run_pending_migrations};

use crate::{DjangoSource, ImportEvent, ImportOptions, write};

/// Why the command stopped: its one line for stderr.
pub type CommandFailed = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, clap::Args)]
pub struct ImportDjangoArgs {
    /// The Django database: sqlite://PATH or postgres://USER@HOST/DB (only read).
    #[arg(long = "from", value_name = "URL")]
    pub from: String,
    /// The user model's table (default: the one table with email and password columns).
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Report what would be imported; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also replace the users changed in latchkey since the previous import
    /// (by default they are kept as latchkey has them).
    #[arg(long)]
    pub overwrite: bool,
}

/// How second factors are protected at rest, from the server's keys: the
/// import seals and hashes through these and never sees a key.
pub struct SecondFactorSealing<'a> {
    /// Seals a TOTP secret for the user of that id.
    pub seal_secret: &'a dyn Fn(i64, &[u8]) -> Sealed,
    /// The keyed hash of a recovery code in its `AsStored` form.
    pub hash_recovery_code: &'a dyn Fn(&str) -> String,
}

/// Runs the command. `open_latchkey` opens latchkey's database, once the
/// Django one is open and its user table found; `hasher` is latchkey's
/// configured hasher, whose bounds each stored hash is held to; `sealing`
/// protects the second factors carried over.
pub fn run<E: Into<CommandFailed>>(
    args: &ImportDjangoArgs,
    hasher: HasherConfig,
    sealing: SecondFactorSealing<'_>,
    open_latchkey: impl FnOnce() -> Result<Database, E>,
) -> Result<(), CommandFailed> {
    let mut source = DjangoSource::open(&args.from)?;
    let table = source.user_table(args.table.as_deref())?;
    let db = open_latchkey().map_err(Into::into)?;
    run_pending_migrations(&db)?;
    let mut conn = db.get()?;
    // Each row's hash is looked at (never computed) under the configured
    // bounds, which latchkey's logins apply too. Django's unusable password
    // (`!…`) is not listed: Django refused it too, by design.
    let hasher = PasswordHasher::with_config(hasher)?;
    let hash_problem = |stored: &str| hasher.stored_hash_problem(stored).map(|p| p.to_string());
    let stderr = std::io::stderr();
    let mut on_event = |event: ImportEvent<'_>| {
        let mut err = stderr.lock();
        // A closed stderr must not stop the import.
        let _ = match event {
            ImportEvent::Skipped(row) => writeln!(err, "skipped id {}: {}", row.id, row.reason),
            ImportEvent::Kept { id } => writeln!(
                err,
                "kept id {id}: changed in latchkey since the previous import"
            ),
            ImportEvent::UnusableHash { id, problem } => writeln!(
                err,
                "unusable password hash for id {id} ({problem}): imported, but it cannot log in until a password reset"
            ),
            ImportEvent::UnparsableSecondFactor { id, what } => writeln!(
                err,
                "unparsable second factor for id {id} ({what}): not imported"
            ),
            ImportEvent::UnimportableIdentity { id, what } => writeln!(
                err,
                "unimportable provider identity for id {id} ({what}): not imported"
            ),
            ImportEvent::IdentityHeldElsewhere {
                id,
                provider,
                subject,
                holder,
            } => writeln!(
                err,
                "provider identity {provider} {subject} of id {id} is linked to id {holder} in latchkey: kept as latchkey has it"
            ),
            ImportEvent::SocialApp {
                provider,
                client_id,
            } => writeln!(err, "social app: {provider} client id {client_id}"),
            ImportEvent::Progress { users } => writeln!(err, "read {users} users"),
        };
    };
    let mut new_session_id = latchkey_auth::jwt::new_jti;
    let summary = write::import(
        &mut conn,
        &mut source,
        &table,
        ImportOptions {
            dry_run: args.dry_run,
            overwrite: args.overwrite,
            hash_problem: &hash_problem,
            new_session_id: &mut new_session_id,
            on_event: &mut on_event,
            seal_secret: sealing.seal_secret,
            hash_recovery_code: sealing.hash_recovery_code,
        },
    )?;
    if summary.kept > 0 {
        eprintln!(
            "kept latchkey's changes for {} users (--overwrite replaces them with Django's)",
            summary.kept
        );
    }
    eprintln!(
        "not imported: {} group memberships, {} user permissions",
        summary.group_memberships.unwrap_or(0),
        summary.user_permissions.unwrap_or(0)
    );
    if let Some(line) = summary.second_factors_line() {
        println!("{line}");
    }
    if let Some(line) = summary.identities_line() {
        println!("{line}");
    }
    println!("{summary}");
    Ok(())
}
