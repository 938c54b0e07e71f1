//! The emails that tell a user their second factor changed, queued in the
//! outbox inside the transaction that made the change (so a change that
//! rolls back sends nothing, and one that commits is told even if this
//! instance stops). They say what happened and when; never a code or a
//! secret.

use latchkey_persistence::{DbConnection, User, db_now};

use crate::email::templates::{self, Kind, site_name};
use crate::email::{EmailSettings, enqueue};
use crate::error::ApiError;

/// What happened to the account's second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    TotpEnabled,
    TotpDisabled,
    RemovedByStaff,
    RecoveryCodeUsed,
    RecoveryCodesReplaced,
}

impl Event {
    pub const fn sentence(self) -> &'static str {
        match self {
            Event::TotpEnabled => "Two-factor authentication (TOTP) was enabled on your account.",
            Event::TotpDisabled => "Two-factor authentication (TOTP) was disabled on your account.",
            Event::RemovedByStaff => {
                "Two-factor authentication was removed from your account by an administrator."
            }
            Event::RecoveryCodeUsed => "A recovery code was used on your account.",
            Event::RecoveryCodesReplaced => {
                "New recovery codes were generated for your account; the earlier ones no longer work."
            }
        }
    }
}

/// Queues the notice of `event` to `user`, in the caller's transaction.
pub fn queue_notice(
    conn: &mut DbConnection,
    email: &EmailSettings,
    user: &User,
    event: Event,
) -> Result<(), ApiError> {
    let now = db_now();
    let when = now.format("%Y-%m-%d %H:%M UTC").to_string();
    let rendered = templates::render(
        Kind::SecurityNotice,
        &[
            ("event", event.sentence()),
            ("when", &when),
            ("email", &user.email),
            ("site", &site_name(&email.public_url)),
        ],
    );
    Ok(enqueue(conn, &user.email, &rendered, now)?)
}
