//! The blacklist and session rules: what presenting a refresh token does,
//! decided from what storage knows about it.

/// What storage holds about a presented refresh token (instants in Unix
/// milliseconds: the reuse interval is not rounded to whole seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefresh {
    pub blacklisted: bool,
    /// Its session was ended (logout, revocation, reuse detection).
    pub session_ended: bool,
    /// The token this one was rotated into, and when (Unix milliseconds).
    pub replaced: Option<(String, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub rotate: bool,
    pub blacklist_after_rotation: bool,
    /// Seconds during which a rotated-away token still yields its replacement.
    pub reuse_interval: i64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            rotate: true,
            blacklist_after_rotation: true,
            reuse_interval: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Issue a new refresh token in the same session (and blacklist the old
    /// one when the policy says so).
    Rotate,
    /// Issue an access token only (rotation is off).
    AccessOnly,
    /// A concurrent refresh already rotated it moments ago: hand back that
    /// replacement with a fresh access token.
    ReturnReplacement(String),
    /// An old, rotated-away token came back: assume theft, revoke the session.
    RevokeSession,
    /// Blacklisted (logged out or revoked).
    Blacklisted,
    /// Never issued here (or deleted with its user): refuse.
    Unknown,
}

/// `now_ms` is the current instant in Unix milliseconds.
pub fn decide_refresh(
    stored: Option<&StoredRefresh>,
    policy: &RefreshPolicy,
    now_ms: i64,
) -> RefreshDecision {
    let Some(stored) = stored else {
        return RefreshDecision::Unknown;
    };
    if stored.session_ended {
        return RefreshDecision::Blacklisted;
    }
    if let Some((replacement, replaced_at)) = &stored.replaced
        && policy.blacklist_after_rotation
    {
        return if now_ms.saturating_sub(*replaced_at) <= policy.reuse_interval.saturating_mul(1000)
        {
            RefreshDecision::ReturnReplacement(replacement.clone())
        } else {
            RefreshDecision::RevokeSession
        };
    }
    if stored.blacklisted {
        return RefreshDecision::Blacklisted;
    }
    if policy.rotate {
        RefreshDecision::Rotate
    } else {
        RefreshDecision::AccessOnly
    }
}

/// A token is refused when issued strictly before its user's
/// `tokens_valid_after` (both whole seconds), so tokens issued in the same
/// second as a revocation work at once.
pub fn issued_before_revocation(iat: i64, tokens_valid_after: i64) -> bool {
    iat < tokens_valid_after
}

/// Whether a token may still speak for its user: the one rule every
/// endpoint that accepts a token applies (the per-request check, refresh,
/// sliding refresh, verify), each answering in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Speaks,
    /// The user was deactivated.
    Inactive,
    /// The token predates the user's `tokens_valid_after`.
    Revoked,
}

pub fn standing(is_active: bool, tokens_valid_after: i64, iat: i64) -> Standing {
    if !is_active {
        Standing::Inactive
    } else if issued_before_revocation(iat, tokens_valid_after) {
        Standing::Revoked
    } else {
        Standing::Speaks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> StoredRefresh {
        StoredRefresh {
            blacklisted: false,
            session_ended: false,
            replaced: None,
        }
    }

    #[test]
    fn a_fresh_token_rotates() {
        assert_eq!(
            decide_refresh(Some(&fresh()), &RefreshPolicy::default(), 0),
            RefreshDecision::Rotate
        );
    }

    #[test]
    fn without_rotation_only_an_access_token_is_issued() {
        let policy = RefreshPolicy {
            rotate: false,
            ..RefreshPolicy::default()
        };
        assert_eq!(
            decide_refresh(Some(&fresh()), &policy, 0),
            RefreshDecision::AccessOnly
        );
    }

    #[test]
    fn reuse_inside_the_interval_returns_the_replacement() {
        let stored = StoredRefresh {
            blacklisted: true,
            session_ended: false,
            replaced: Some(("next".into(), 100_000)),
        };
        assert_eq!(
            decide_refresh(Some(&stored), &RefreshPolicy::default(), 110_000),
            RefreshDecision::ReturnReplacement("next".into())
        );
        // Not rounded: 10.001 s after the rotation is past a 10 s interval.
        assert_eq!(
            decide_refresh(Some(&stored), &RefreshPolicy::default(), 110_001),
            RefreshDecision::RevokeSession
        );
    }

    #[test]
    fn blacklisted_and_unknown_tokens_are_refused() {
        let stored = StoredRefresh {
            blacklisted: true,
            session_ended: false,
            replaced: None,
        };
        assert_eq!(
            decide_refresh(Some(&stored), &RefreshPolicy::default(), 0),
            RefreshDecision::Blacklisted
        );
        assert_eq!(
            decide_refresh(None, &RefreshPolicy::default(), 0),
            RefreshDecision::Unknown
        );
    }

    #[test]
    fn a_token_of_an_ended_session_is_refused_even_inside_the_reuse_interval() {
        let stored = StoredRefresh {
            blacklisted: true,
            session_ended: true,
            replaced: Some(("next".into(), 100_000)),
        };
        assert_eq!(
            decide_refresh(Some(&stored), &RefreshPolicy::default(), 101_000),
            RefreshDecision::Blacklisted
        );
    }

    #[test]
    fn same_second_tokens_survive_a_revocation() {
        assert!(!issued_before_revocation(100, 100));
        assert!(issued_before_revocation(99, 100));
    }

    #[test]
    fn an_inactive_user_is_silenced_before_a_revocation_is_looked_at() {
        assert_eq!(standing(false, 0, 100), Standing::Inactive);
        assert_eq!(standing(false, 200, 100), Standing::Inactive);
        assert_eq!(standing(true, 200, 100), Standing::Revoked);
        assert_eq!(standing(true, 100, 100), Standing::Speaks);
    }
}
