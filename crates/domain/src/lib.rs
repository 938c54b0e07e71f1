//! The user and its rules: email normalising, the password validators, the
//! user manager's defaults and the permission policy of the user viewset.
//!
//! This crate performs no I/O and knows nothing of HTTP, SQL or tokens; the
//! other crates depend on it, never the reverse.

pub mod email;
pub mod password;
pub mod permissions;
pub mod user;

pub use email::{Email, EmailError};
pub use password::{Password, PasswordError};
pub use permissions::{Actor, Denied, FlagChange, Target};
pub use user::{NewAccount, UserFlags};
