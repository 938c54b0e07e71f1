//! What is known about the session a token names.

/// The session a token names, as storage finds it for that token's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The token names no session (issued before sessions, or by Django).
    NotNamed,
    /// The token names a session that was never issued to this user.
    Unknown,
    Ended,
    Live,
}
