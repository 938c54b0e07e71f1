//! The `latchkey` server: configuration, the command line, routes, the
//! authentication middleware and the error policy. It wires the domain, auth,
//! persistence and import-django crates together; none of them knows about
//! it.

pub mod body;
pub mod cache;
pub mod cli;
pub mod email;
pub mod error;
pub mod flows;
pub mod forms;
// Property tests of the body parser and the token decoder (a unit-test
// module, so `cargo test` builds one executable for the crate).
#[cfg(test)]
mod fuzz_tests;
pub mod http;
#[cfg(test)]
mod layering_tests;
pub mod net;
pub mod openapi;

pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod throttle;
pub mod views;

pub use settings::Settings;
pub use startup::Application;
