//! The flows behind the endpoints: each does its I/O with persistence and
//! applies the decisions of the auth and domain crates. No HTTP types here
//! beyond the error they return.

pub mod accounts;
pub mod email;
pub mod login;
pub mod mfa;
pub mod sessions;
pub mod tokens;
pub mod users;
