//! Black-box tests of latchkey: the real server over real HTTP, and the real
//! binary, each test on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod operations;
mod register;

fn main() -> std::process::ExitCode {
    let tests = [operations::tests(), register::tests()].concat();
    latchkey_tests::runner::main(tests)
}
