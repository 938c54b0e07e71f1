//! (being written)

use latchkey_tests::{Ctx, tests};

tests![placeholder_races];

async fn placeholder_races(_ctx: Ctx) {}
