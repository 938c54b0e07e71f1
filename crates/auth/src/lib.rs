//! Tokens and credentials: simplejwt-compatible JWT issue and verification
//! (jsonwebtoken), bcrypt hashing, cookie and CSRF handling, and the rules of
//! the refresh-token blacklist and sessions.
//!
//! Everything here decides over plain data ("is this token good", "what does
//! this refresh do"); the server's flows do the I/O and apply the decisions.
//! This crate knows the domain but never storage or the server.

pub mod claims;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod hashers;
pub mod jwt;
pub mod keys;
pub mod oidc;
pub mod password;
pub mod recovery_codes;
pub mod sealing;
pub mod secrets;
pub mod sessions;
pub mod totp;

// Tests over the whole crate's public surface (once integration tests;
// unit tests here, so `cargo test` builds one executable for the crate).
#[cfg(test)]
mod django_hashes_tests;
#[cfg(test)]
mod hash_bounds_tests;
#[cfg(test)]
mod oidc_tests;

pub use claims::{Claims, TokenType};
pub use cookies::CookiePolicy;
pub use error::{HashError, KeyError, TokenError};
pub use hashers::{HashProblem, HasherConfig, HasherConfigError, HasherKind};
pub use jwt::{IssuedToken, JwtSettings, TokenCodec};
pub use keys::{KeyConfig, KeySet};
pub use password::{PasswordHasher, Verification, VerificationCounts};
pub use sessions::{
    Holder, RefreshDecision, RefreshPolicy, Refusal, StoredRefresh, Strictness, check_holder,
    decide_refresh, issued_before_revocation,
};
