//! (being written)

use latchkey_tests::{Ctx, tests};

tests![placeholder_hardening_cli];

async fn placeholder_hardening_cli(_ctx: Ctx) {}
