-- Credential lifetimes (issue 24): when the account's platform token expires, as the platform
-- last said (Weibo's get_token_info `expire_in`), so the office is reminded before it does.
ALTER TABLE accounts ADD COLUMN token_expires_at INTEGER;
