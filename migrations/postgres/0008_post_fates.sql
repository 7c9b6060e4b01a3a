-- The publication watch follows a post after it went out (issue 24): WeChat reports an article
-- deleted by the account's own users (publish_status 5) or blocked by the platform after success
-- (6); Weibo answers a deleted status with 20101 and shows a restricted one's visibility. The
-- record moves on to `deleted`, `blocked` or `hidden`.
ALTER TABLE posts DROP CONSTRAINT posts_status_check;
ALTER TABLE posts ADD CONSTRAINT posts_status_check
    CHECK (status IN ('sending', 'submitted', 'published', 'failed', 'deleted', 'blocked', 'hidden'));
