-- Stored addresses are rewritten to their one form (UTS #46 A-labels) by
-- latchkey itself right after this migration applies (IDNA is not SQL):
-- see crates/persistence/src/migrations.rs, rewrite_email_domains.
SELECT 1;
