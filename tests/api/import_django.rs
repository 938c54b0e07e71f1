//! (being written)

use latchkey_tests::{Ctx, tests};

tests![placeholder_import_django];

async fn placeholder_import_django(_ctx: Ctx) {}
