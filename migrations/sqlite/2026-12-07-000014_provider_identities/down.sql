DROP TABLE accepted_id_tokens;
DROP TABLE provider_identities;
