//! Black-box tests of latchkey: the real server over real HTTP, and the real
//! binary, each test on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assurance;
mod auth_cache;
mod browser;
mod ceremonies;
mod cli;
mod cli_users;
mod current_user;
mod docs;
mod email_flows;
mod faults;
mod forged;
mod hardening;
mod hardening_cli;
mod hardening_v3;
mod identity_storage;
mod import_django;
mod import_second_factors;
mod import_social;
mod instances;
mod keys;
mod login;
mod login_races;
mod login_transaction;
mod logout;
mod mfa_enrolment;
mod mfa_inputs;
mod mfa_login;
mod mfa_management;
mod mfa_races;
mod mfa_secrecy;
mod oidc_harness;
mod operations;
mod password_upgrade;
mod persistence;
mod races;
mod refresh;
mod register;
mod requests;
mod second_factor_storage;
mod session_lifecycle;
mod sessions;
mod social_accounts;
mod social_browser;
mod social_config;
mod social_linking;
mod social_native;
mod social_races;
mod social_revocation;
mod throttling;
mod users;
mod verify;

fn main() -> std::process::ExitCode {
    let tests = [
        operations::tests(),
        persistence::tests(),
        faults::postgres_tests(),
        cli::tests(),
        cli_users::tests(),
        browser::tests(),
        docs::tests(),
        register::tests(),
        login::tests(),
        current_user::tests(),
        forged::tests(),
        refresh::tests(),
        logout::tests(),
        users::tests(),
        verify::tests(),
        requests::tests(),
        sessions::tests(),
        keys::tests(),
        instances::tests(),
        throttling::tests(),
        throttling::redis_tests(),
        hardening::tests(),
        hardening_v3::tests(),
        auth_cache::tests(),
        password_upgrade::tests(),
        auth_cache::postgres_tests(),
        hardening_cli::tests(),
        races::tests(),
        login_races::tests(),
        login_transaction::tests(),
        assurance::tests(),
        assurance::django_tests(),
        ceremonies::tests(),
        identity_storage::tests(),
        second_factor_storage::tests(),
        session_lifecycle::tests(),
        import_django::django_tests(),
        import_second_factors::django_tests(),
        import_social::django_tests(),
        import_social::django_node_tests(),
        mfa_login::django_tests(),
        mfa_inputs::django_tests(),
        mfa_races::django_tests(),
        email_flows::tests(),
        email_flows::postgres_tests(),
        mfa_enrolment::tests(),
        mfa_enrolment::django_tests(),
        mfa_management::tests(),
        mfa_management::django_tests(),
        mfa_secrecy::django_tests(),
        oidc_harness::node_tests(),
        social_config::node_tests(),
        social_browser::node_tests(),
        social_native::node_tests(),
        social_accounts::node_tests(),
        social_accounts::django_node_tests(),
        social_linking::node_tests(),
        social_races::node_tests(),
        social_revocation::node_tests(),
    ]
    .concat();
    latchkey_tests::runner::main(tests)
}
