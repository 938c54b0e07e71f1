//! The import's one write transaction: the Django users with their second
//! factors and linked provider identities, then simplejwt's outstanding and
//! blacklisted refresh tokens, written into latchkey through persistence's
//! per-table functions; a dry run does all of it and rolls it back.
//!
//! Memory stays bounded whatever the number of users: the Django rows are
//! read in pages ([`crate::source`]) and written in batches; the rule "an email taken by a lower id is skipped" is
//! checked against latchkey's own unique index (the lower ids were written
//! earlier in the same transaction), never against a set held in memory.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use latchkey_auth::sealing::Sealed;
use latchkey_domain::Assurance;
use latchkey_persistence::django_imports::{self, ImportRecord};
use latchkey_persistence::{
    CodeFormat, DbConnection, Identity, ImportedDevice, ImportedSession, ImportedUser, NewIdentity,
    NewOutstandingToken, NewSession, OutstandingToken, RecoveryCodes, SealedSecret, Session,
    StoreError, TotpDevice, User, db_now, plan_each_statement_afresh, write_transaction,
};

use crate::rows::{self, LiveToken, whole_second};
use crate::source::{DjangoSource, DjangoToken, PAGE, UserTable};
use crate::{
    ImportError, ImportEvent, ImportSummary, SecondFactorCounts, second_factors, social_accounts,
};

/// Users validated and written together: one email looked up and one row
/// written per user, far below either backend's bound parameters.
const BATCH: usize = 500;
/// A progress event every this many users read.
pub const PROGRESS_EVERY: u64 = 10_000;

/// How to run an import.
pub struct ImportOptions<'a> {
    pub dry_run: bool,
    /// Also replace the users latchkey changed since the previous import.
    pub overwrite: bool,
    /// Why a stored hash can never verify (parameters out of bounds, an
    /// unknown format), or `None`: the configured hasher's rule.
    pub hash_problem: &'a dyn Fn(&str) -> Option<String>,
    /// Makes the id of each session an adopted token starts.
    pub new_session_id: &'a mut dyn FnMut() -> String,
    pub on_event: &'a mut dyn FnMut(ImportEvent<'_>),
    /// Seals a second factor's TOTP secret for the user of that id (the
    /// server's keys; this crate never holds them).
    pub seal_secret: &'a dyn Fn(i64, &[u8]) -> Sealed,
    /// The keyed hash of a recovery code in its `AsStored` form, under the
    /// current code key.
    pub hash_recovery_code: &'a dyn Fn(&str) -> String,
}

/// How the transaction ends: an error, or a dry run's rollback.
enum Abort {
    Failed(ImportError),
    /// Boxed: the summary is far larger than an error.
    DryRun(Box<ImportSummary>),
}

impl From<StoreError> for Abort {
    fn from(error: StoreError) -> Self {
        Abort::Failed(ImportError::Store(error))
    }
}

impl From<ImportError> for Abort {
    fn from(error: ImportError) -> Self {
        Abort::Failed(error)
    }
}

/// Imports the users of `table` and simplejwt's tokens from `source` into
/// latchkey (`target`), in one write transaction; a dry run does all of it
/// and rolls it back. Refuses a latchkey database holding users that were
/// not imported from Django.
pub fn import(
    target: &mut DbConnection,
    source: &mut DjangoSource,
    table: &UserTable,
    options: ImportOptions<'_>,
) -> Result<ImportSummary, ImportError> {
    let dry_run = options.dry_run;
    let outcome = write_transaction::<ImportSummary, Abort, _>(target, |conn| {
        let summary = import_in_transaction(conn, source, table, options)?;
        if dry_run {
            return Err(Abort::DryRun(Box::new(summary)));
        }
        Ok(summary)
    });
    match outcome {
        Ok(summary) => Ok(summary),
        Err(Abort::DryRun(summary)) => Ok(*summary),
        Err(Abort::Failed(error)) => Err(error),
    }
}

fn import_in_transaction(
    conn: &mut DbConnection,
    source: &mut DjangoSource,
    table: &UserTable,
    options: ImportOptions<'_>,
) -> Result<ImportSummary, Abort> {
    // The lookups by email and id run against tables this transaction
    // fills: planned for them as they are, they stay on the unique indexes.
    plan_each_statement_afresh(conn)?;
    let native = User::count_native(conn)?;
    if native > 0 {
        return Err(ImportError::NativeUsers(native).into());
    }
    let now = db_now();
    let mut summary = ImportSummary {
        table: table.name.clone(),
        users: 0,
        skipped: 0,
        kept: 0,
        unusable_hashes: 0,
        tokens: 0,
        blacklisted: 0,
        group_memberships: source.count(&format!("{}_groups", table.name))?,
        user_permissions: source.count(&format!("{}_user_permissions", table.name))?,
        second_factors: source
            .has_second_factor_tables()
            .then_some(SecondFactorCounts::default()),
        identities: source.has_social_accounts().then_some(0),
        dry_run: options.dry_run,
    };
    let ImportOptions {
        overwrite,
        hash_problem,
        new_session_id,
        on_event,
        seal_secret,
        hash_recovery_code,
        ..
    } = options;

    let mut read: u64 = 0;
    let mut after = i64::MIN;
    loop {
        let page = source.user_page(table, after)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let page_len = page.len();
        for chunk in page.chunks(BATCH) {
            let (rows, skipped) = rows::prepare_users(conn, chunk, now)?;
            for row in &skipped {
                on_event(ImportEvent::Skipped(row));
            }
            summary.skipped += skipped.len() as u64;
            let upserted = upsert_users(conn, rows, overwrite)?;
            for &id in &upserted.kept {
                on_event(ImportEvent::Kept { id });
            }
            summary.kept += upserted.kept.len() as u64;
            summary.users += upserted.written.len() as u64;
            for row in &upserted.written {
                if let Some(problem) = hash_problem(&row.password_hash) {
                    on_event(ImportEvent::UnusableHash {
                        id: row.id,
                        problem: &problem,
                    });
                    summary.unusable_hashes += 1;
                }
            }
            let ids: Vec<i64> = upserted.written.iter().map(|row| row.id).collect();
            if let Some(counts) = summary.second_factors.as_mut() {
                let added = import_second_factors(
                    conn,
                    source,
                    &ids,
                    seal_secret,
                    hash_recovery_code,
                    on_event,
                )?;
                counts.totp_devices += added.totp_devices;
                counts.recovery_codes += added.recovery_codes;
            }
            if let Some(count) = summary.identities.as_mut() {
                *count += import_identities(conn, source, &ids, on_event)?;
            }
        }
        let before = read;
        read += page_len as u64;
        if read / PROGRESS_EVERY > before / PROGRESS_EVERY {
            on_event(ImportEvent::Progress {
                users: read / PROGRESS_EVERY * PROGRESS_EVERY,
            });
        }
        if (page_len as i64) < PAGE {
            break;
        }
    }

    // What the operator configures latchkey's providers with; the apps'
    // secrets are never read.
    for app in source.social_apps()? {
        on_event(ImportEvent::SocialApp {
            provider: social_accounts::app_provider(&app),
            client_id: &app.client_id,
        });
    }

    if source.has_outstanding_tokens() {
        let mut after = i64::MIN;
        loop {
            let page = source.token_page(after)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let page_len = page.len();
            let (tokens, blacklisted) = import_tokens(conn, page, now, new_session_id)?;
            summary.tokens += tokens;
            summary.blacklisted += blacklisted;
            if (page_len as i64) < PAGE {
                break;
            }
        }
    }

    if !summary.dry_run {
        // Not transactional on PostgreSQL, so a dry run leaves it alone.
        User::continue_ids_after_highest(conn)?;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        django_imports::record(
            conn,
            &ImportRecord {
                imported_at: db_now(),
                source: source.label(),
                users: count(summary.users),
                skipped: count(summary.skipped),
                tokens: count(summary.tokens),
                blacklisted: count(summary.blacklisted),
            },
        )?;
    }
    Ok(summary)
}

/// The second factors in Django of the users this run wrote (`user_ids`;
/// not those skipped, nor those kept as latchkey changed them): each user's
/// chosen TOTP device sealed, their unused recovery codes hashed, then
/// written where latchkey has none of that kind for the user (see
/// [`TotpDevice::import_batch`] and [`RecoveryCodes::import_batch`]).
fn import_second_factors(
    conn: &mut DbConnection,
    source: &mut DjangoSource,
    user_ids: &[i64],
    seal_secret: &dyn Fn(i64, &[u8]) -> Sealed,
    hash_recovery_code: &dyn Fn(&str) -> String,
    on_event: &mut dyn FnMut(ImportEvent<'_>),
) -> Result<SecondFactorCounts, Abort> {
    if user_ids.is_empty() {
        return Ok(SecondFactorCounts::default());
    }
    let otp = source.totp_devices(user_ids)?;
    let allauth = source.allauth_authenticators(user_ids)?;
    let tokens = source.static_tokens(user_ids)?;
    let (devices, mut unparsable) = second_factors::choose_devices(&otp, &allauth);
    let (codes, unreadable_codes) = second_factors::recovery_codes(&tokens, &allauth);
    unparsable.extend(unreadable_codes);
    unparsable.sort_by_key(|u| u.user_id);
    for u in &unparsable {
        on_event(ImportEvent::UnparsableSecondFactor {
            id: u.user_id,
            what: &u.what,
        });
    }
    let now = db_now();
    let sealed: Vec<Sealed> = devices
        .iter()
        .map(|device| seal_secret(device.user_id, &device.secret))
        .collect();
    let imported: Vec<ImportedDevice<'_>> = devices
        .iter()
        .zip(&sealed)
        .map(|(device, sealed)| ImportedDevice {
            user_id: device.user_id,
            secret: SealedSecret {
                blob: &sealed.blob,
                key_id: &sealed.key_id,
            },
            shape: device.shape,
            last_step_at: device.last_step_at,
        })
        .collect();
    let totp_devices = TotpDevice::import_batch(conn, &imported, now)?;
    let hashed: Vec<(i64, String)> = codes
        .iter()
        .map(|(user_id, code)| (*user_id, hash_recovery_code(code)))
        .collect();
    let recovery_codes = RecoveryCodes::import_batch(conn, &hashed, CodeFormat::AsStored, now)?;
    Ok(SecondFactorCounts {
        totp_devices: totp_devices as u64,
        recovery_codes: recovery_codes as u64,
    })
}

/// The social accounts in Django of the users this run wrote (`user_ids`;
/// not those skipped, nor those kept as latchkey changed them), each linked
/// to its user by one [`Identity::link`] (`ON CONFLICT DO NOTHING` on
/// (provider, subject)), so that a re-run links only what is new. An
/// identity latchkey has linked to another user (linked there, or moved to
/// another user in Django since the previous run) stays with that user, and
/// is reported. Returns how many were linked.
fn import_identities(
    conn: &mut DbConnection,
    source: &mut DjangoSource,
    user_ids: &[i64],
    on_event: &mut dyn FnMut(ImportEvent<'_>),
) -> Result<u64, Abort> {
    if user_ids.is_empty() {
        return Ok(0);
    }
    let rows = source.social_accounts(user_ids)?;
    let (identities, unimportable) = social_accounts::identities(&rows);
    for u in &unimportable {
        on_event(ImportEvent::UnimportableIdentity {
            id: u.user_id,
            what: &u.what,
        });
    }
    let mut linked = 0;
    for identity in &identities {
        let new = NewIdentity {
            provider: &identity.provider,
            subject: &identity.subject,
            user_id: identity.user_id,
            email: None,
            linked_at: identity.linked_at,
        };
        if Identity::link(conn, &new)? {
            linked += 1;
            continue;
        }
        if let Some(held) = Identity::find(conn, &identity.provider, &identity.subject)?
            && held.user_id != identity.user_id
        {
            on_event(ImportEvent::IdentityHeldElsewhere {
                id: identity.user_id,
                provider: &identity.provider,
                subject: &identity.subject,
                holder: held.user_id,
            });
        }
    }
    Ok(linked)
}

/// What [`upsert_users`] did with a chunk.
struct Upserted {
    /// Inserted, or updated to the Django row.
    written: Vec<ImportedUser>,
    /// Ids left as latchkey has them.
    kept: Vec<i64>,
}

/// Inserts new users and updates those an earlier run imported (matched by
/// id) to the Django row's current values, except those latchkey changed
/// since (`changed_in_latchkey_at`), unless `overwrite`. A user whose hash
/// this replaces is revoked as a password reset revokes: their sessions
/// end, and `password_changed_at` kills the reset tokens issued before.
fn upsert_users(
    conn: &mut DbConnection,
    rows: Vec<ImportedUser>,
    overwrite: bool,
) -> Result<Upserted, Abort> {
    let mut upserted = Upserted {
        written: Vec::with_capacity(rows.len()),
        kept: Vec::new(),
    };
    if rows.is_empty() {
        return Ok(upserted);
    }
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let existing = User::lock_prior_imports(conn, &ids)?;
    let mut replaced = Vec::new();
    for mut row in rows {
        match existing.get(&row.id) {
            Some(stored) if stored.changed_in_latchkey && !overwrite => upserted.kept.push(row.id),
            Some(stored) => {
                if !stored.changed_in_latchkey
                    && stored.django_hash_digest == row.django_hash_digest
                {
                    // Django's password is the one imported last time: the
                    // stored hash is that password (or its upgrade at a
                    // latchkey login), kept as it is.
                    row.password_hash.clone_from(&stored.password_hash);
                } else if stored.password_hash != row.password_hash {
                    replaced.push(row.id);
                }
                upserted.written.push(row);
            }
            None => upserted.written.push(row),
        }
    }
    User::upsert_imported_batch(conn, &upserted.written)?;
    if !replaced.is_empty() {
        let now = db_now();
        User::mark_passwords_replaced(conn, &replaced, now, whole_second(now))?;
        for &id in &replaced {
            Session::end_all_for_user(conn, id, now)?;
        }
    }
    Ok(upserted)
}

/// Each unexpired outstanding token of an imported user that latchkey does
/// not know yet becomes a session of one refresh token with the same `jti`
/// (blacklisted, and its session ended, when Django blacklisted it); a
/// known token that Django blacklisted since is blacklisted too. Returns
/// (tokens added, blacklist entries added).
fn import_tokens(
    conn: &mut DbConnection,
    page: Vec<DjangoToken>,
    now: NaiveDateTime,
    new_session_id: &mut dyn FnMut() -> String,
) -> Result<(u64, u64), Abort> {
    let live = rows::live_tokens(page, now)?;
    if live.is_empty() {
        return Ok((0, 0));
    }
    let user_ids: Vec<i64> = live.iter().map(|t| t.user_id).collect();
    let present = User::existing_ids(conn, &user_ids)?;
    let jtis: Vec<&str> = live.iter().map(|t| t.jti.as_str()).collect();
    let known = OutstandingToken::known_by_jti(conn, &jtis)?;

    // The tokens to adopt, each with the id of the session it starts.
    let mut adopted: Vec<(&LiveToken, String)> = Vec::new();
    let mut blacklist_new: HashMap<&str, NaiveDateTime> = HashMap::new();
    let mut entries = Vec::new();
    let mut ended_sessions = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for token in &live {
        if !present.contains(&token.user_id) || !seen.insert(token.jti.as_str()) {
            continue;
        }
        if let Some(stored) = known.get(&token.jti) {
            if let (Some(at), false) = (token.blacklisted_at, stored.blacklisted) {
                entries.push((stored.id, at));
                if !stored.replaced {
                    ended_sessions.push((stored.session_id.clone(), at));
                }
            }
            continue;
        }
        adopted.push((token, new_session_id()));
        if let Some(at) = token.blacklisted_at {
            blacklist_new.insert(token.jti.as_str(), at);
        }
    }
    // Django's sessions all began with a password alone.
    let (amr, aal) = NewSession::assurance_columns(&Assurance::password());
    let new_sessions: Vec<ImportedSession> = adopted
        .iter()
        .map(|(token, session_id)| ImportedSession {
            id: session_id.clone(),
            user_id: token.user_id,
            created_at: token.created_at,
            last_used_at: token.created_at,
            expires_at: token.expires_at,
            ended_at: token.blacklisted_at,
            amr: amr.clone(),
            aal,
        })
        .collect();
    let new_tokens: Vec<NewOutstandingToken<'_>> = adopted
        .iter()
        .map(|(token, session_id)| NewOutstandingToken {
            jti: &token.jti,
            user_id: token.user_id,
            session_id,
            issued_at: whole_second(token.created_at),
            expires_at: token.expires_at,
        })
        .collect();
    Session::insert_batch(conn, &new_sessions)?;
    OutstandingToken::record_batch(conn, &new_tokens)?;
    if !blacklist_new.is_empty() {
        let jtis: Vec<&str> = blacklist_new.keys().copied().collect();
        for (jti, token_id) in OutstandingToken::ids_by_jti(conn, &jtis)? {
            if let Some(&blacklisted_at) = blacklist_new.get(jti.as_str()) {
                entries.push((token_id, blacklisted_at));
            }
        }
    }
    OutstandingToken::blacklist_batch(conn, &entries)?;
    Session::end_batch(conn, &ended_sessions)?;
    Ok((new_tokens.len() as u64, entries.len() as u64))
}
