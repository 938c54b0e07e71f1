//! (being written)

use latchkey_tests::{Ctx, tests};

tests![placeholder_hardening];

async fn placeholder_hardening(_ctx: Ctx) {}
