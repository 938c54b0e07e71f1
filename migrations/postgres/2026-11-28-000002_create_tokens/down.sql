DROP TABLE blacklisted_tokens;
DROP TABLE outstanding_tokens;
