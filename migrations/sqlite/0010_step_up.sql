-- A step-up window per session: one TOTP code authorises the session's sensitive actions until
-- `step_up_until`; `step_up_seq` is the audit entry of the step-up that opened it, which every
-- action done under it names. Logout, idle timeout and password or TOTP resets end the session,
-- and the window with it.

ALTER TABLE sessions ADD COLUMN step_up_until INTEGER;
ALTER TABLE sessions ADD COLUMN step_up_seq INTEGER;
