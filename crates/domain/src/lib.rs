//! The user and its rules: email normalising, the password validators, the
//! user manager's defaults, the permission policy of the user viewset, and
//! what a login proved (`factors`), which account a provider signs in to
//! (`linking`).
//!
//! This crate performs no I/O and knows nothing of HTTP, SQL or tokens; the
//! other crates depend on it, never the reverse.

pub mod email;
pub mod factors;
pub mod linking;
pub mod password;
pub mod permissions;
pub mod session;
pub mod user;

pub use email::{Email, EmailError};
pub use factors::{Aal, Assurance, Method, SecondFactor, Step};
pub use password::{Password, PasswordError};
pub use permissions::{Actor, Denied, FlagChange, Target};
pub use session::SessionState;
pub use user::{NewAccount, UserFlags};
