//! (being written)

use latchkey_tests::{Ctx, tests};

tests![placeholder_email_flows];

async fn placeholder_email_flows(_ctx: Ctx) {}
