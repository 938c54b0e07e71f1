//! (being written)

use latchkey_tests::{Ctx, tests};

tests![placeholder_session_lifecycle];

async fn placeholder_session_lifecycle(_ctx: Ctx) {}
