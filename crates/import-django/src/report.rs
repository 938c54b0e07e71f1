//! What an import tells its caller: the events while it runs, and the
//! summary, whose line is the contract's.

use std::fmt;

use crate::rows::SkippedRow;

/// What the import tells its caller while it runs.
#[derive(Debug)]
pub enum ImportEvent<'a> {
    Skipped(&'a SkippedRow),
    /// An earlier run imported this user and latchkey changed them since
    /// (a password set, the email or a flag): left as latchkey has them,
    /// since the run was not told to overwrite.
    Kept {
        id: i64,
    },
    /// Imported, but its stored hash can never verify (`problem` says why,
    /// as [`crate::ImportOptions::hash_problem`] found it): no password logs in
    /// until a reset.
    UnusableHash {
        id: i64,
        problem: &'a str,
    },
    /// A second factor of the user `id` that cannot be read (`what` names
    /// the row and why): not imported; the user is.
    UnparsableSecondFactor {
        id: i64,
        what: &'a str,
    },
    /// A social account of the user `id` that cannot be an identity in
    /// latchkey (`what` names the row and why): not linked; the user is
    /// imported.
    UnimportableIdentity {
        id: i64,
        what: &'a str,
    },
    /// The identity `(provider, subject)`, which Django has for the user
    /// `id`, is linked in latchkey to the user `holder`: latchkey's link is
    /// kept (a sign-in through it lands on `holder`).
    IdentityHeldElsewhere {
        id: i64,
        provider: &'a str,
        subject: &'a str,
        holder: i64,
    },
    /// An allauth social app, by the name its accounts carry and its client
    /// id (never its secret): what the operator configures latchkey with.
    SocialApp {
        provider: &'a str,
        client_id: &'a str,
    },
    /// This many Django user rows were read so far (every [`crate::PROGRESS_EVERY`]).
    Progress {
        users: u64,
    },
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub table: String,
    /// Users created or updated.
    pub users: u64,
    pub skipped: u64,
    /// Users an earlier run imported and latchkey changed since, left as
    /// latchkey has them (not in `users`).
    pub kept: u64,
    /// Users imported with a hash that can never verify (in `users`).
    pub unusable_hashes: u64,
    /// Unexpired outstanding tokens added (blacklisted ones included).
    pub tokens: u64,
    /// Blacklist entries added.
    pub blacklisted: u64,
    /// Rows of `<table>_groups`, when the table exists.
    pub group_memberships: Option<u64>,
    /// Rows of `<table>_user_permissions`, when the table exists.
    pub user_permissions: Option<u64>,
    /// Second factors added, when the Django database has django-otp's or
    /// allauth's tables.
    pub second_factors: Option<SecondFactorCounts>,
    /// Provider identities linked, when the Django database has allauth's
    /// social accounts.
    pub identities: Option<u64>,
    pub dry_run: bool,
}

/// Second factors added by an import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondFactorCounts {
    pub totp_devices: u64,
    /// Codes, not sets.
    pub recovery_codes: u64,
}

impl ImportSummary {
    fn verb(&self) -> &'static str {
        if self.dry_run {
            "would import"
        } else {
            "imported"
        }
    }

    /// The contract's line before the summary, when the Django database
    /// has second factors' tables.
    pub fn second_factors_line(&self) -> Option<String> {
        self.second_factors.map(|counts| {
            format!(
                "{} {} second factors ({} TOTP devices, {} recovery codes)",
                self.verb(),
                counts.totp_devices + counts.recovery_codes,
                counts.totp_devices,
                counts.recovery_codes
            )
        })
    }

    /// The contract's line just before the summary, when the Django
    /// database has allauth's social accounts.
    pub fn identities_line(&self) -> Option<String> {
        self.identities
            .map(|count| format!("{} {count} provider identities", self.verb()))
    }
}

impl fmt::Display for ImportSummary {
    /// The contract's summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} users ({} skipped), {} tokens, {} blacklisted",
            self.verb(),
            self.users,
            self.skipped,
            self.tokens,
            self.blacklisted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_the_contracts() {
        let mut summary = ImportSummary {
            table: "user_user".into(),
            users: 8,
            skipped: 3,
            kept: 2,
            unusable_hashes: 1,
            tokens: 3,
            blacklisted: 1,
            group_memberships: Some(2),
            user_permissions: Some(1),
            second_factors: None,
            identities: None,
            dry_run: false,
        };
        assert_eq!(summary.second_factors_line(), None);
        assert_eq!(summary.identities_line(), None);
        assert_eq!(
            summary.to_string(),
            "imported 8 users (3 skipped), 3 tokens, 1 blacklisted"
        );
        summary.dry_run = true;
        assert_eq!(
            summary.to_string(),
            "would import 8 users (3 skipped), 3 tokens, 1 blacklisted"
        );
        summary.second_factors = Some(SecondFactorCounts {
            totp_devices: 2,
            recovery_codes: 13,
        });
        assert_eq!(
            summary.second_factors_line().as_deref(),
            Some("would import 15 second factors (2 TOTP devices, 13 recovery codes)")
        );
        summary.identities = Some(4);
        assert_eq!(
            summary.identities_line().as_deref(),
            Some("would import 4 provider identities")
        );
    }
}
